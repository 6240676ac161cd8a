"""The vectorized fit and the persisted estimates reproduce nilearn (no Nipype)."""

import json
import re
import warnings

import nibabel as nb
import numpy as np
import pandas as pd
import pytest
from nilearn.exceptions import MaskWarning
from nilearn.glm.first_level import FirstLevelModel
from nilearn.glm.first_level.first_level import _yule_walker, run_glm
from nilearn.glm.regression import ARModel
from nilearn.masking import compute_epi_mask
from scipy import ndimage

from glm_workflows.core.contrasts import contrast_matrix
from glm_workflows.core.diagnostics import FitDiagnostics
from glm_workflows.core.errors import InputError
from glm_workflows.core.estimates import compute_contrast, load_fitted_glm, save_fitted_glm
from glm_workflows.core.glm import ar1_coefficients, bin_ar1, fit_glm
from glm_workflows.core.noise_bins import bin_chunks, fit_per_noise_bin, noise_groups, whiten

OUTPUTS = {"z": "z_score", "stat": "stat", "p": "p_value", "effect": "effect_size",
           "variance": "effect_variance"}


@pytest.fixture(scope="module")
def persisted_ar1(tmp_path_factory, seed_bold, seed_design):
    """AR(1) fit written to files and read back."""
    paths = save_fitted_glm(fit_glm(seed_bold, seed_design, noise_model="ar1", smoothing_fwhm=None),
                            tmp_path_factory.mktemp("fit"))
    return load_fitted_glm(**paths)


def _assert_same_contrasts(fit, model, columns, tolerance=1e-12):
    for rows, stat_type in ((["active - rest"], "t"), (["active", "rest"], "F")):
        matrix = contrast_matrix(rows, columns, stat_type)
        ours = compute_contrast(fit, matrix, stat_type)
        theirs = model.compute_contrast(matrix if stat_type == "F" else matrix[0],
                                        stat_type=stat_type, output_type="all")
        for key, name in OUTPUTS.items():
            np.testing.assert_allclose(ours[key].get_fdata(), theirs[name].get_fdata(),
                                       rtol=tolerance, atol=tolerance,
                                       err_msg=f"{stat_type} {key}")


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
    paths = save_fitted_glm(fit_glm(seed_bold, seed_design, noise_model="ols",
                                    smoothing_fwhm=None), tmp_path)
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
    fit = fit_glm(str(bold), seed_design, noise_model="ar1", smoothing_fwhm=None)
    np.testing.assert_array_equal(fit.mask, nilearn_seed_model.masker_.mask_img_.get_fdata() > 0)
    for rows, stat_type in ((["active - rest"], "t"), (["active", "rest"], "F")):
        matrix = contrast_matrix(rows, list(seed_design.columns), stat_type)
        ours = compute_contrast(fit, matrix, stat_type)["z"].get_fdata()[fit.mask]
        theirs = nilearn_seed_model.compute_contrast(
            matrix if stat_type == "F" else matrix[0], stat_type=stat_type,
            output_type="z_score").get_fdata()[fit.mask]
        assert np.abs(ours - theirs).max() <= 1e-4, stat_type
        np.testing.assert_allclose(ours, theirs, atol=1e-10)


@pytest.mark.slow
def test_user_mask_equals_nilearn(tmp_path, seed_bold, seed_design, nilearn_seed_model):
    """A mask given by the user is used as is, as FirstLevelModel(mask_img=...) does."""
    mask = nilearn_seed_model.masker_.mask_img_.get_fdata() > 0
    mask[:, :, :32] = False
    mask_file = tmp_path / "mask.nii.gz"
    nb.Nifti1Image(mask.astype(np.uint8), seed_bold.affine).to_filename(mask_file)
    fit = fit_glm(seed_bold, seed_design, mask_img=str(mask_file), noise_model="ar1",
                  smoothing_fwhm=None)
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
        fit_glm(seed_bold, seed_design, mask_img=str(mask_file), noise_model="ar1",
                smoothing_fwhm=None)


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
    from glm_workflows.core import noise_bins

    series, design = random_series
    residuals = series - design @ (np.linalg.pinv(design) @ series)
    expected = _yule_walker(residuals.T, 1)[:, 0]
    monkeypatch.setattr(noise_bins, "CHUNK_VOXELS", 777)  # several chunks, one partial
    rho = ar1_coefficients(series, design)
    np.testing.assert_allclose(rho, expected, rtol=1e-12, atol=1e-14)
    labels, _ = run_glm(series, design, noise_model="ar1")
    np.testing.assert_array_equal(bin_ar1(rho), [float(label) for label in labels])


def test_whiten_equals_nilearn_ar_model(random_series):
    series, design = random_series
    model = ARModel(design, 0.37)
    np.testing.assert_array_equal(whiten(design, 0.37), model.whitened_design)
    np.testing.assert_array_equal(whiten(series[:, :50], 0.37), model.whiten(series[:, :50]))


@pytest.mark.parametrize("seed", range(20))
def test_bin_chunks_hold_each_voxel_once_and_whole_small_bins(seed):
    """Each grouped column in one chunk of at most ``size`` columns; a bin wider than
    ``size`` split into chunks of its own, narrower bins whole, sharing chunks."""
    rng = np.random.default_rng(seed)
    widths = rng.integers(1, 40 if seed % 2 else 7000, size=rng.integers(1, 30))
    bounds = np.concatenate([[0], np.cumsum(widths)])
    size = int(rng.integers(1, 3000))
    columns_seen = []
    for columns, parts in bin_chunks(bounds, size):
        assert 0 < columns.stop - columns.start <= size
        assert parts[0][1].start == 0 and parts[-1][1].stop == columns.stop - columns.start
        for index, part in parts:
            first, stop = columns.start + part.start, columns.start + part.stop
            assert bounds[index] <= first < stop <= bounds[index + 1]
            if len(parts) > 1:  # bins sharing a chunk are whole
                assert (first, stop) == (bounds[index], bounds[index + 1])
            columns_seen.extend(range(first, stop))
    assert columns_seen == list(range(bounds[-1]))


def test_fit_in_chunks_equals_nilearn_run_glm(random_series, monkeypatch):
    """Whatever the chunks (large bins split, small bins sharing one), each bin's estimates
    and dispersion equal nilearn's ``run_glm`` for that label, and the diagnostics are
    those of the fit in one chunk."""
    from glm_workflows.core import noise_bins

    series, design = random_series
    ar1 = bin_ar1(ar1_coefficients(series, design))
    values, order, bounds = noise_groups(ar1)
    labels, results = run_glm(series, design, noise_model="ar1")
    results = {float(label): result for label, result in results.items()}
    fits = {}
    for size in (37, 10_000):
        monkeypatch.setattr(noise_bins, "CHUNK_VOXELS", size)
        diagnostics = FitDiagnostics("ar1", save_residuals=True)
        diagnostics.start(len(series), order)
        betas, dispersion, _ = fit_per_noise_bin(series.copy(), design, values, order, bounds,
                                                 whiten, diagnostics)
        fits[size] = diagnostics.maps()
        for index, value in enumerate(values):
            voxels = slice(bounds[index], bounds[index + 1])
            result = results[value]  # nilearn's labels are the binned values
            np.testing.assert_allclose(betas[:, voxels], result.theta, rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(dispersion[voxels], result.dispersion, rtol=1e-10)
    assert sorted(results) == list(values)
    for key, values_in_one_chunk in fits[10_000].items():
        np.testing.assert_allclose(fits[37][key], values_in_one_chunk, rtol=1e-10, atol=1e-12,
                                   err_msg=key)


def test_exact_whitening_in_chunks_equals_each_voxels_own_model(random_series, monkeypatch):
    """The calibrated models' exact AR(2) whitening, written into the chunk's buffers: each
    voxel's estimates and dispersion are those of its own whitened model, computed alone,
    whatever the chunks; and the diagnostics do not depend on the chunks."""
    from glm_workflows.core import noise_bins
    from glm_workflows.core.noise import whiten_exact

    series, design = random_series
    ar1 = bin_ar1(ar1_coefficients(series, design))
    values, order, bounds = noise_groups(ar1)
    coefficients = {float(v): (float(v), -0.1 * float(v)) for v in values}  # stationary AR(2)

    def whiten_values(values, code, out=None):
        return whiten_exact(values, coefficients[float(code)], out)

    fits = {}
    for size in (1, 37, 10_000):
        monkeypatch.setattr(noise_bins, "CHUNK_VOXELS", size)
        diagnostics = FitDiagnostics("ar2-corrected", save_residuals=True)
        diagnostics.start(len(series), order)
        betas, dispersion, _ = fit_per_noise_bin(series.copy(), design, values, order, bounds,
                                                 whiten_values, diagnostics)
        fits[size] = betas, dispersion, diagnostics.maps()
    for column in range(0, series.shape[1], 97):
        voxel, code = order[column], ar1[order[column]]
        wX = whiten_exact(design, coefficients[code])
        wy = whiten_exact(series[:, voxel], coefficients[code])
        beta = np.linalg.lstsq(wX, wy, rcond=None)[0]
        residual = wy - wX @ beta
        for betas, dispersion, _ in fits.values():
            np.testing.assert_allclose(betas[:, column], beta, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(dispersion[column],
                                       residual @ residual / (len(wy) - design.shape[1]),
                                       rtol=1e-9)
    for size in (1, 37):
        for key, in_one_chunk in fits[10_000][2].items():
            np.testing.assert_allclose(fits[size][2][key], in_one_chunk, rtol=1e-10,
                                       atol=1e-12, err_msg=f"{key}, chunks of {size}")


def test_flat_residuals_get_rho_zero(random_series):
    """Flat residual series (a voxel at its mean in every scan): nilearn's Yule-Walker
    system is singular there and it fails; these voxels get rho 0 (OLS)."""
    _, design = random_series
    np.testing.assert_array_equal(ar1_coefficients(np.zeros((120, 10)), design), 0)


def _nilearn_model(bold, spm_events, noise_model="ar1"):
    """FirstLevelModel with the settings of the ``nilearn_seed_model`` fixture, on a file."""
    model = FirstLevelModel(t_r=7, noise_model=noise_model, standardize=False,
                            hrf_model="spm", drift_model="cosine", high_pass=1 / 160)
    return model.fit(str(bold), events=pd.read_csv(spm_events, sep="\t"))


@pytest.fixture(scope="module")
def inner_voxels(nilearn_seed_model):
    """Three voxels deep inside nilearn's mask of the seed run (4 voxels from its edge)."""
    mask = nilearn_seed_model.masker_.mask_img_.get_fdata() > 0
    inner = np.argwhere(ndimage.binary_erosion(mask, iterations=4))
    return [tuple(inner[len(inner) * k // 4]) for k in (1, 2, 3)]


def _damage(data, kind, voxels):
    """Put non-finite samples into (a float copy of) the seed run's data, in place."""
    first, second, _ = voxels
    if kind == "nan":
        data[first + (10,)] = np.nan
    elif kind == "inf":
        data[first + (10,)] = np.inf
        data[second + (60,)] = -np.inf
    else:  # NaN in five volumes of one voxel, and in every volume of a background corner
        data[first + (slice(5, 40, 7),)] = np.nan
        data[0, 0, 0] = np.nan
    return data


#: voxels of the brain and volumes that :func:`_damage` makes non-finite
DAMAGED = {"nan": (1, 1), "inf": (2, 2), "nan_volumes": (1, 5)}


@pytest.mark.slow
@pytest.mark.parametrize("noise_model", ["ar1", "ols"])
@pytest.mark.parametrize("kind", list(DAMAGED))
def test_non_finite_samples_equal_nilearn(tmp_path, seed_bold, seed_design, spm_events,
                                          inner_voxels, kind, noise_model):
    """NaN/Inf samples of a float run are set to 0, as nilearn's masker sets them: the t
    and F maps from the files equal FirstLevelModel's on the same file, and one warning
    line (and the sidecar) gives how many voxels of the mask and volumes held them."""
    data = _damage(np.asarray(seed_bold.dataobj, dtype=np.float32), kind, inner_voxels)
    bold = tmp_path / "bold.nii"
    nb.Nifti1Image(data, seed_bold.affine).to_filename(bold)
    model = _nilearn_model(bold, spm_events, noise_model)
    mask = model.masker_.mask_img_.get_fdata() > 0
    non_finite = ~np.isfinite(data[mask])  # (voxels of nilearn's mask, volumes)
    counts = (int(non_finite.any(axis=1).sum()), int(non_finite.any(axis=0).sum()))
    assert counts == DAMAGED[kind]  # the damage lies in the fitted voxels

    fitted = fit_glm(str(bold), seed_design, noise_model=noise_model, smoothing_fwhm=None)
    paths = save_fitted_glm(fitted, tmp_path)
    fit = load_fitted_glm(**paths)
    np.testing.assert_array_equal(fit.mask, mask)
    _assert_same_contrasts(fit, model, list(seed_design.columns))
    assert fitted.warnings == [
        f"{bold}: {counts[0]} voxel(s) of the mask in {counts[1]} volume(s) had non-finite "
        "samples (NaN/Inf); set to 0, as nilearn does"]
    sidecar = json.loads(open(paths["sidecar"]).read())
    assert (sidecar["NonFiniteVoxels"], sidecar["NonFiniteVolumes"]) == counts
    assert (fit.non_finite_voxels, fit.non_finite_volumes) == counts


def test_finite_runs_have_no_warning(persisted_ar1, seed_bold, seed_design):
    """An int16 run (never checked) and the same run as float32 (checked) warn of nothing."""
    assert (persisted_ar1.non_finite_voxels, persisted_ar1.non_finite_volumes) == (0, 0)
    as_float = nb.Nifti1Image(np.asarray(seed_bold.dataobj, dtype=np.float32), seed_bold.affine)
    assert fit_glm(as_float, seed_design, noise_model="ols", smoothing_fwhm=None).warnings == []


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Mean values of 0 observed:UserWarning",
                            "ignore:divide by zero:RuntimeWarning")  # nilearn, at the 0 voxel
def test_a_few_constant_voxels_are_fitted_as_nilearn_fits_them(tmp_path, seed_bold, seed_design,
                                                               spm_events, inner_voxels):
    """Voxels constant over time inside a good mask are no error; their maps equal nilearn's
    (z is 0 where the scaled series is exactly 0, at 1 and 500; at 0, scaled to -100, both
    fit the same rounding noise)."""
    data = np.asarray(seed_bold.dataobj).copy()
    for voxel, value in zip(inner_voxels, (0, 1, 500), strict=True):
        data[voxel] = value
    bold = tmp_path / "bold.nii"
    nb.Nifti1Image(data, seed_bold.affine).to_filename(bold)
    model = _nilearn_model(bold, spm_events)
    fit = fit_glm(str(bold), seed_design, noise_model="ar1", smoothing_fwhm=None)
    np.testing.assert_array_equal(fit.mask, model.masker_.mask_img_.get_fdata() > 0)
    assert all(fit.mask[voxel] for voxel in inner_voxels)
    assert fit.warnings == []
    _assert_same_contrasts(fit, model, list(seed_design.columns))


def _degenerate_data(kind, data):
    if kind == "zeros":
        return np.zeros_like(data)
    if kind == "constant":  # the first volume, repeated
        return np.repeat(data[..., :1], data.shape[3], axis=3)
    return np.full(data.shape, np.nan, dtype=np.float32)


@pytest.mark.parametrize("kind", ["zeros", "constant", "nan"])
def test_run_without_temporal_variance_is_refused(tmp_path, seed_bold, seed_design, kind):
    """An all-zero run, a run of one repeated volume and an all-NaN run (zeros once set to
    0) are refused before fitting, in one line naming the file and the size of the mask
    nilearn computes (nilearn itself fits rounding noise, or fails in its AR(1) solve)."""
    bold = tmp_path / "bold.nii"
    nb.Nifti1Image(_degenerate_data(kind, np.asarray(seed_bold.dataobj)),
                   seed_bold.affine).to_filename(bold)
    n_voxels = int(compute_epi_mask(str(bold)).get_fdata().sum())
    detail = rf" \({n_voxels} held non-finite samples, set to 0\)" if kind == "nan" else ""
    with pytest.raises(InputError, match=rf"^{re.escape(str(bold))}: none of the {n_voxels} "
                                         rf"voxels in the mask varies over time{detail}; "):
        fit_glm(str(bold), seed_design, noise_model="ar1", smoothing_fwhm=None)


@pytest.mark.parametrize("crop, nilearn_fails", [
    (np.s_[:, :, 30:33], lambda: pytest.warns(MaskWarning, match="empty mask")),
    (np.s_[30:31, 30:31, 30:31], lambda: pytest.raises(ValueError, match="argmax")),
], ids=["three_slices", "one_voxel"])
def test_empty_brain_mask_is_refused(tmp_path, seed_bold, seed_design, crop, nilearn_fails):
    """nilearn's EPI mask of a thin slab is empty (it warns) and of one voxel fails
    (ValueError); either becomes one line naming the run, and nilearn's warning does not
    leak."""
    bold = tmp_path / "bold.nii"
    seed_bold.slicer[crop].to_filename(bold)
    with nilearn_fails():
        compute_epi_mask(str(bold))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(InputError, match=rf"^{re.escape(str(bold))}: the brain mask is "
                                             r"empty \(nilearn's EPI mask finds no brain"):
            fit_glm(str(bold), seed_design, noise_model="ar1", smoothing_fwhm=None)
    assert not [w for w in caught if issubclass(w.category, MaskWarning)]


#: Censored volumes of the seed run: two non-steady-state volumes and scattered
#: "high-motion" volumes, some of them adjacent.
CENSORED = [0, 1, 17, 40, 41, 42, 77, 95]


@pytest.mark.slow
@pytest.mark.parametrize("noise_model", ["ar1", "ols"])
@pytest.mark.parametrize("as_boolean", [False, True])
def test_censored_fit_equals_nilearn_sample_masks(tmp_path, seed_bold, seed_design, spm_events,
                                                  noise_model, as_boolean):
    """A fit on the kept volumes (sample mask) equals FirstLevelModel.fit(sample_masks=...):
    mask from the whole run, design rows dropped, mean scaling and AR(1) on the kept
    series; t and F maps read back from the files agree to 1e-10."""
    kept = np.setdiff1d(np.arange(96), CENSORED)
    sample_mask = np.isin(np.arange(96), kept) if as_boolean else kept
    fit = fit_glm(seed_bold, seed_design, noise_model=noise_model, smoothing_fwhm=None,
                  sample_mask=sample_mask)
    assert fit.df_residuals == len(kept) - seed_design.shape[1]
    fit = load_fitted_glm(**save_fitted_glm(fit, tmp_path))
    model = FirstLevelModel(t_r=7, noise_model=noise_model, standardize=False,
                            hrf_model="spm", drift_model="cosine", high_pass=1 / 160)
    model.fit(seed_bold, events=pd.read_csv(spm_events, sep="\t"), sample_masks=[kept])
    np.testing.assert_array_equal(fit.mask, model.masker_.mask_img_.get_fdata() > 0)
    if noise_model == "ar1":
        np.testing.assert_array_equal(fit.ar1, [float(x) for x in model.labels_[0]])
    _assert_same_contrasts(fit, model, list(seed_design.columns), tolerance=1e-10)


@pytest.mark.parametrize("sample_mask, message", [
    (list(range(11)), "11 of 96 volumes kept after censoring, not more than the 11 regressors"),
    ([0, 5, 96], "expected distinct volume indices in [0, 96)"),
    ([3, 3, 4], "expected distinct volume indices in [0, 96)"),
])
def test_bad_sample_masks_are_refused(seed_bold, seed_design, sample_mask, message):
    """Too few kept volumes, indices out of range or repeated: one line naming the run."""
    with pytest.raises(InputError, match=re.escape(message)) as caught:
        fit_glm(seed_bold, seed_design, sample_mask=sample_mask, run_name="sub-01_task-x",
                noise_model="ar1", smoothing_fwhm=None)
    assert str(caught.value).startswith("sub-01_task-x: ")
