"""The calibrated noise models (ar1-corrected, ar2-corrected): null z maps close to N(0, 1)
where nilearn's AR(1) is not, the bias correction and the exact whitening checked by
simulation and by formula, and the models through the persisted fit."""

import json

import nibabel as nb
import numpy as np
import pandas as pd
import pytest

from glm_workflows.core.contrasts import contrast_matrix
from glm_workflows.core.design import make_design_matrix
from glm_workflows.core.estimates import compute_contrast
from glm_workflows.core.glm import fit_glm
from glm_workflows.core.noise import (
    ar_autocorrelations,
    corrected_coefficients,
    expected_ratios,
    whiten_exact,
)

N_SCANS, T_R = 120, 2.0


@pytest.fixture(scope="module")
def design():
    onsets = np.arange(0, N_SCANS * T_R - 20, 15.0)
    events = pd.DataFrame({"onset": onsets, "duration": 5.0,
                           "trial_type": ["a" if i % 2 == 0 else "b" for i in range(len(onsets))]})
    return make_design_matrix(events, N_SCANS, T_R, hrf_model="spm", drift_model="cosine",
                              high_pass=1 / 160, drift_order=1, slice_time_ref=0.0)


def ar1_noise(rho, n_scans, n_voxels, rng):
    """Stationary AR(1) series with unit variance, one per column."""
    noise = np.empty((n_scans, n_voxels))
    noise[0] = rng.normal(size=n_voxels)
    innovations = rng.normal(scale=np.sqrt(1 - rho**2), size=(n_scans, n_voxels))
    for t in range(1, n_scans):
        noise[t] = rho * noise[t - 1] + innovations[t]
    return noise


def null_z(design, noise, noise_model):
    """z maps of a - b on a null run made of ``noise`` (voxels on a 100 x n grid)."""
    n_voxels = noise.shape[1]
    data = (1000 + 10 * noise).T.reshape(100, n_voxels // 100, 1, -1).astype(np.float32)
    img = nb.Nifti1Image(data, np.eye(4))
    mask = nb.Nifti1Image(np.ones(data.shape[:3], np.uint8), np.eye(4))
    fit = fit_glm(img, design, mask_img=mask, noise_model=noise_model, smoothing_fwhm=None)
    matrix = contrast_matrix(["a - b"], list(design.columns), "t")
    return compute_contrast(fit, matrix, "t")["z"].get_fdata().ravel(), fit


def test_residual_autocorrelation_curve_is_the_expected_ratio(design):
    """The expected ratio (ratio of expectations plus its second-order bias) is within
    0.002 of the Monte-Carlo mean of the OLS residuals' lag-1 ratio (standard error
    0.0006), and well below the true coefficient (the bias the correction removes)."""
    rng = np.random.default_rng(0)
    X = design.to_numpy()
    residuals = ar1_noise(0.4, N_SCANS, 20000, rng)
    residuals -= X @ np.linalg.pinv(X) @ residuals
    ratio = (residuals[:-1] * residuals[1:]).sum(0) / (residuals**2).sum(0)
    rho = ar_autocorrelations(np.array([[0.4]]), N_SCANS)
    expected = expected_ratios(X, rho, 1)[0, 0]
    assert abs(ratio.mean() - expected) < 0.002
    assert expected < 0.4 - 0.05  # the bias the correction removes


def test_corrected_estimates_are_unbiased_where_nilearns_are_not(design):
    rng = np.random.default_rng(1)
    X = design.to_numpy()
    rho = corrected_coefficients(1000 + 10 * ar1_noise(0.3, N_SCANS, 20000, rng), X, 1)
    assert abs(rho.mean() - 0.3) < 0.01


def ar2_noise(phi1, phi2, n_scans, n_voxels, rng, burn=300):
    """Stationary AR(2) series (after a burn-in), unit variance."""
    noise = np.zeros((n_scans + burn, n_voxels))
    innovations = rng.normal(size=noise.shape)
    for t in range(2, n_scans + burn):
        noise[t] = phi1 * noise[t - 1] + phi2 * noise[t - 2] + innovations[t]
    noise = noise[burn:]
    return noise / noise.std()


@pytest.mark.parametrize("model, case", [
    ("ar1-corrected", 0.0), ("ar1-corrected", 0.3), ("ar1-corrected", 0.5),
    ("ar2-corrected", 0.3), ("ar2-corrected", "ar2")])
def test_null_z_maps_are_standard_normal(design, model, case):
    """On 20,000 voxels of null AR noise: z SD within 1 +- 0.02 and P(z > 3.09) within 3
    Monte-Carlo SDs of 0.001; nilearn's ar1 is wider."""
    rng = np.random.default_rng(2)
    noise = (ar2_noise(0.4, 0.2, N_SCANS, 20000, rng) if case == "ar2"
             else ar1_noise(case, N_SCANS, 20000, rng))
    z, fit = null_z(design, noise, model)
    nominal_sd = np.sqrt(0.001 * 0.999 / z.size)
    assert abs(z.std() - 1) < 0.02
    assert abs((z > 3.09).mean() - 0.001) < 3 * nominal_sd
    if model == "ar1-corrected":
        assert abs(np.median(fit.ar1) - case) < 0.05
    z_ar1, _ = null_z(design, noise, "ar1")
    assert z_ar1.std() > z.std()


@pytest.mark.parametrize("coefficients", [(0.5,), (0.4, 0.2), (0.9, -0.3)])
def test_exact_whitening_gives_white_unit_variance(coefficients):
    """Whitening a stationary AR process with its own coefficients gives samples with
    identity covariance, the first ones included: W V W' = I for the process's
    correlation matrix V (scaled to unit innovations)."""
    n = 12
    rho = ar_autocorrelations(np.array([coefficients]), n)[0]
    phi1, phi2 = coefficients[0], coefficients[1] if len(coefficients) == 2 else 0.0
    gamma0 = (1 - phi2) / ((1 + phi2) * ((1 - phi2) ** 2 - phi1**2))
    covariance = gamma0 * rho[np.abs(np.subtract.outer(np.arange(n), np.arange(n)))]
    whitening = whiten_exact(np.eye(n), coefficients)  # W applied to the identity
    np.testing.assert_allclose(whitening @ covariance @ whitening.T, np.eye(n), atol=1e-10)


@pytest.mark.parametrize("model", ["ar1-corrected", "ar2-corrected"])
def test_calibrated_models_through_the_nodes(tmp_path, design, model):
    """FitGLM + EstimateContrast give the in-memory maps, and the sidecars name the model
    and summarize the AR coefficients it whitened with."""
    from glm_workflows.interfaces import EstimateContrast, FitGLM

    from glm_workflows.core.run_tables import save_design_matrix

    rng = np.random.default_rng(3)
    noise = ar1_noise(0.3, N_SCANS, 2000, rng)
    data = (1000 + 10 * noise).T.reshape(20, 100, 1, -1).astype(np.float32)
    nb.Nifti1Image(data, np.eye(4)).to_filename(tmp_path / "bold.nii.gz")
    nb.Nifti1Image(np.ones((20, 100, 1), np.uint8), np.eye(4)).to_filename(tmp_path / "m.nii.gz")
    save_design_matrix(design, tmp_path / "design.tsv")
    fitted = FitGLM(bold_file=str(tmp_path / "bold.nii.gz"),
                    design_file=str(tmp_path / "design.tsv"), mask_file=str(tmp_path / "m.nii.gz"),
                    noise_model=model).run(cwd=str(tmp_path))
    contrast = EstimateContrast(
        contrast_name="aMinusB", contrast_rows=["a - b"],
        **{k: getattr(fitted.outputs, k) for k in ("betas", "dispersion", "ar1", "mask_file",
                                                    "model_sidecar")}).run(cwd=str(tmp_path))
    in_memory = fit_glm(str(tmp_path / "bold.nii.gz"), design,
                        mask_img=str(tmp_path / "m.nii.gz"), noise_model=model, smoothing_fwhm=None)
    expected = compute_contrast(in_memory, contrast_matrix(["a - b"], list(design.columns), "t"))
    np.testing.assert_allclose(nb.load(contrast.outputs.z).get_fdata(),
                               expected["z"].get_fdata(), atol=1e-10)
    sidecar = json.loads(open(contrast.outputs.contrast_json).read())
    assert sidecar["NoiseModel"] == model
    summary = sidecar["AutocorrelationSummary"]["phi1"]
    assert sum(summary["HistogramCounts"]) == 2000
    phi1 = [in_memory.bin_coefficients[float(code)][0] for code in in_memory.ar1]
    assert summary["Median"] == pytest.approx(float(np.median(phi1)))
    assert ("phi2" in sidecar["AutocorrelationSummary"]) == (model == "ar2-corrected")
