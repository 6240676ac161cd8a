"""The vectorized fit and the persisted estimates reproduce nilearn (no Nipype)."""

import warnings

import nibabel as nb
import numpy as np
import pandas as pd
import pytest
from nilearn.glm.first_level import FirstLevelModel
from nilearn.glm.first_level.first_level import _yule_walker, run_glm
from nilearn.glm.regression import ARModel

from glm_workflows.core.contrasts import contrast_matrix
from glm_workflows.core.errors import InputError
from glm_workflows.core.glm import (
    ar1_coefficients,
    bin_ar1,
    compute_contrast,
    fit_glm,
    load_fitted_glm,
    save_fitted_glm,
    whiten,
)

OUTPUTS = {"z": "z_score", "stat": "stat", "p": "p_value", "effect": "effect_size",
           "variance": "effect_variance"}


@pytest.fixture(scope="module")
def persisted_ar1(tmp_path_factory, seed_bold, seed_design):
    """AR(1) fit written to files and read back."""
    paths = save_fitted_glm(fit_glm(seed_bold, seed_design), tmp_path_factory.mktemp("fit"))
    return load_fitted_glm(**paths)


def _assert_same_contrasts(fit, model, columns):
    for rows, stat_type in ((["active - rest"], "t"), (["active", "rest"], "F")):
        matrix = contrast_matrix(rows, columns, stat_type)
        ours = compute_contrast(fit, matrix, stat_type)
        theirs = model.compute_contrast(matrix if stat_type == "F" else matrix[0],
                                        stat_type=stat_type, output_type="all")
        for key, name in OUTPUTS.items():
            np.testing.assert_allclose(ours[key].get_fdata(), theirs[name].get_fdata(),
                                       rtol=1e-12, atol=1e-12, err_msg=f"{stat_type} {key}")


def test_ar1_contrasts_equal_nilearn(persisted_ar1, nilearn_seed_model, seed_design):
    """t and F maps from the files equal FirstLevelModel.compute_contrast (AR(1))."""
    np.testing.assert_array_equal(persisted_ar1.mask,
                                  nilearn_seed_model.masker_.mask_img_.get_fdata() > 0)
    assert persisted_ar1.mask.sum() == 62073
    assert persisted_ar1.df_residuals == 96 - 11
    assert len(persisted_ar1.noise_bins) == 89
    nilearn_ar1 = np.array([float(label) for label in nilearn_seed_model.labels_[0]])
    np.testing.assert_array_equal(persisted_ar1.ar1, nilearn_ar1)
    _assert_same_contrasts(persisted_ar1, nilearn_seed_model, list(seed_design.columns))


def test_ols_contrasts_equal_nilearn(tmp_path, seed_bold, seed_design, spm_events):
    """Same for the OLS noise model: a single noise bin."""
    paths = save_fitted_glm(fit_glm(seed_bold, seed_design, noise_model="ols"), tmp_path)
    fit = load_fitted_glm(**paths)
    assert len(fit.noise_bins) == 1
    model = FirstLevelModel(t_r=7, noise_model="ols", standardize=False, hrf_model="spm",
                            drift_model="cosine", high_pass=1 / 160)
    model.fit(seed_bold, events=pd.read_csv(spm_events, sep="\t"))
    _assert_same_contrasts(fit, model, list(seed_design.columns))


def test_fit_from_file_equals_nilearn_within_1e4(tmp_path, seed_bold, nilearn_seed_model,
                                                  seed_design):
    """From a NIfTI file (the workflow's path: int16 read once, volume by volume), t and F
    z maps equal nilearn's to 1e-4 (the goal; measured ~2e-15), masks identical."""
    bold = tmp_path / "bold.nii"
    seed_bold.to_filename(bold)
    fit = fit_glm(str(bold), seed_design)
    np.testing.assert_array_equal(fit.mask, nilearn_seed_model.masker_.mask_img_.get_fdata() > 0)
    for rows, stat_type in ((["active - rest"], "t"), (["active", "rest"], "F")):
        matrix = contrast_matrix(rows, list(seed_design.columns), stat_type)
        ours = compute_contrast(fit, matrix, stat_type)["z"].get_fdata()[fit.mask]
        theirs = nilearn_seed_model.compute_contrast(
            matrix if stat_type == "F" else matrix[0], stat_type=stat_type,
            output_type="z_score").get_fdata()[fit.mask]
        assert np.abs(ours - theirs).max() <= 1e-4, stat_type
        np.testing.assert_allclose(ours, theirs, atol=1e-10)


def test_user_mask_equals_nilearn(tmp_path, seed_bold, seed_design, nilearn_seed_model):
    """A mask given by the user is used as is, as FirstLevelModel(mask_img=...) does."""
    mask = nilearn_seed_model.masker_.mask_img_.get_fdata() > 0
    mask[:, :, :32] = False
    mask_file = tmp_path / "mask.nii.gz"
    nb.Nifti1Image(mask.astype(np.uint8), seed_bold.affine).to_filename(mask_file)
    fit = fit_glm(seed_bold, seed_design, mask_img=str(mask_file))
    np.testing.assert_array_equal(fit.mask, mask)
    model = FirstLevelModel(mask_img=str(mask_file), noise_model="ar1", standardize=False,
                            minimize_memory=True)
    with warnings.catch_warnings():  # nilearn notes it uses the given mask
        warnings.simplefilter("ignore", RuntimeWarning)
        model.fit(seed_bold, design_matrices=[seed_design])
    weights = contrast_matrix(["active - rest"], list(seed_design.columns), "t")
    np.testing.assert_allclose(
        compute_contrast(fit, weights, "t")["z"].get_fdata(),
        model.compute_contrast(weights[0], output_type="z_score").get_fdata(), atol=1e-10)


def test_mask_on_another_grid_is_refused(tmp_path, seed_bold, seed_design):
    mask_file = tmp_path / "mask.nii.gz"
    nb.Nifti1Image(np.ones((10, 10, 10), np.uint8), seed_bold.affine).to_filename(mask_file)
    with pytest.raises(InputError, match=r"mask\.nii\.gz: mask shape \(10, 10, 10\) does not "
                                         r"match the functional grid \(64, 64, 64\)"):
        fit_glm(seed_bold, seed_design, mask_img=str(mask_file))


@pytest.fixture(scope="module")
def random_series():
    """AR(1)-ish random series and a design with a constant (deterministic)."""
    rng = np.random.default_rng(3)
    n_scans, n_voxels = 120, 5000
    design = np.column_stack([np.sin(np.arange(n_scans) / 7), np.cos(np.arange(n_scans) / 11),
                              np.ones(n_scans)])
    noise = rng.standard_normal((n_scans, n_voxels))
    rho = rng.uniform(-0.3, 0.8, n_voxels)
    for t in range(1, n_scans):
        noise[t] += rho * noise[t - 1]
    return (design @ rng.standard_normal((3, n_voxels)) + noise).astype(np.float32), design


def test_ar1_coefficients_equal_yule_walker(random_series, monkeypatch):
    """All voxels at once, in chunks, as nilearn's per-voxel Yule-Walker on OLS residuals."""
    from glm_workflows.core import glm

    series, design = random_series
    residuals = series - design @ (np.linalg.pinv(design) @ series)
    expected = _yule_walker(residuals.T, 1)[:, 0]
    monkeypatch.setattr(glm, "CHUNK_VOXELS", 777)  # several chunks, one partial
    rho = ar1_coefficients(series, design)
    np.testing.assert_allclose(rho, expected, rtol=1e-12, atol=1e-14)
    labels, _ = run_glm(series, design, noise_model="ar1")
    np.testing.assert_array_equal(bin_ar1(rho), [float(label) for label in labels])


def test_whiten_equals_nilearn_ar_model(random_series):
    series, design = random_series
    model = ARModel(design, 0.37)
    np.testing.assert_array_equal(whiten(design, 0.37), model.whitened_design)
    np.testing.assert_array_equal(whiten(series[:, :50], 0.37), model.whiten(series[:, :50]))


def test_flat_residuals_get_rho_zero(random_series):
    """Flat residual series (a voxel at its mean in every scan): nilearn's Yule-Walker
    system is singular there and it fails; these voxels get rho 0 (OLS)."""
    _, design = random_series
    np.testing.assert_array_equal(ar1_coefficients(np.zeros((120, 10)), design), 0)
