"""A run is read once: the fit keeps the mean image, masks over the run's own memory, and
gives nilearn's mask, AR(1) bins and maps from a gzipped file."""

import nibabel as nb
import numpy as np
import pytest
from nilearn.image import mean_img

from glm_workflows.core.contrasts import contrast_matrix
from glm_workflows.core.estimates import compute_contrast
from glm_workflows.core.glm import fit_glm
from glm_workflows.core.images import masked_series


@pytest.fixture(scope="module")
def seed_gz(tmp_path_factory, seed_bold):
    path = tmp_path_factory.mktemp("run") / "bold.nii.gz"
    seed_bold.to_filename(path)
    return str(path)


def test_gzipped_run_fit_equals_nilearn_and_keeps_the_mean(seed_gz, seed_bold, seed_design,
                                                            nilearn_seed_model):
    """From a .nii.gz (read in steps, masked over its own memory, the EPI mask from the
    mean computed once): nilearn's mask, AR(1) bins and z maps; the mean image is the
    run's float64 mean over time as float32, nilearn's mean_img."""
    fit = fit_glm(seed_gz, seed_design, noise_model="ar1", smoothing_fwhm=None, with_mean=True)
    np.testing.assert_array_equal(fit.mask, nilearn_seed_model.masker_.mask_img_.get_fdata() > 0)
    labels = np.array([float(label) for label in nilearn_seed_model.labels_[0]])
    np.testing.assert_array_equal(fit.ar1, labels)
    for rows, stat_type in ((["active - rest"], "t"), (["active", "rest"], "F")):
        matrix = contrast_matrix(rows, list(seed_design.columns), stat_type)
        ours = compute_contrast(fit, matrix, stat_type)["z"].get_fdata()[fit.mask]
        theirs = nilearn_seed_model.compute_contrast(
            matrix if stat_type == "F" else matrix[0], stat_type=stat_type,
            output_type="z_score").get_fdata()[fit.mask]
        np.testing.assert_allclose(ours, theirs, atol=1e-10)
    samples = np.asanyarray(seed_bold.dataobj)
    expected = samples.mean(axis=-1).astype(np.float32)  # the formula
    assert fit.mean_img.get_data_dtype() == np.float32
    np.testing.assert_array_equal(fit.mean_img.get_fdata(), expected)
    np.testing.assert_allclose(fit.mean_img.get_fdata(), mean_img(seed_gz).get_fdata(),
                               rtol=1e-6)
    np.testing.assert_array_equal(fit.mean_img.affine, seed_bold.affine)
    assert fit_glm(seed_bold, seed_design, noise_model="ols",
                   smoothing_fwhm=None).mean_img is None  # only when asked for


def test_fit_node_writes_the_mean_image_of_the_mean_node(seed_gz, seed_design, tmp_path,
                                                         monkeypatch):
    """FitGLM(save_mean=True) writes the mean image MeanImage wrote (same values, type,
    affine); without save_mean it writes none."""
    from glm_workflows.interfaces import FitGLM, MeanImage

    from glm_workflows.core.run_tables import save_design_matrix

    save_design_matrix(seed_design, tmp_path / "matrix.tsv")
    for folder in ("fit", "mean", "plain"):
        (tmp_path / folder).mkdir()
    monkeypatch.chdir(tmp_path / "fit")
    fit = FitGLM(bold_file=seed_gz, design_file=str(tmp_path / "matrix.tsv"),
                 noise_model="ols", save_mean=True).run().outputs
    monkeypatch.chdir(tmp_path / "mean")
    mean = MeanImage(in_file=seed_gz).run().outputs
    ours, theirs = nb.load(fit.mean_file), nb.load(mean.out_file)
    assert ours.get_data_dtype() == theirs.get_data_dtype() == np.float32
    np.testing.assert_array_equal(ours.get_fdata(), theirs.get_fdata())
    np.testing.assert_array_equal(ours.affine, theirs.affine)
    np.testing.assert_allclose(ours.get_fdata(), mean_img(seed_gz).get_fdata(), rtol=1e-6)
    monkeypatch.chdir(tmp_path / "plain")
    plain = FitGLM(bold_file=seed_gz, design_file=str(tmp_path / "matrix.tsv"),
                   noise_model="ols").run().outputs
    assert not list((tmp_path / "plain").glob("mean*"))
    assert str(plain.mean_file) == "<undefined>"


@pytest.mark.parametrize("dtype, fraction, in_place", [
    (np.int16, 0.4, True),     # float32 rows of 40 % of the grid fit in int16 volumes
    (np.int16, 0.6, False),    # they do not: a new array
    (np.float64, 0.9, True),
    (np.uint8, 0.3, False),    # 1-byte samples: at most a quarter of the grid
])
def test_masked_series_over_the_run_s_own_memory(dtype, fraction, in_place):
    """overwrite=True: the series are the masked samples (storage order, nilearn's float
    type), written over the run's memory when each row fits in its volume."""
    rng = np.random.default_rng(4)
    data = np.asfortranarray(rng.integers(0, 120, (9, 10, 11, 30)).astype(dtype))
    mask = rng.random((9, 10, 11)) < fraction
    index = np.flatnonzero(mask.ravel(order="F"))
    expected = data.reshape(-1, 30, order="F")[index].T.astype(
        np.float64 if dtype == np.float64 else np.float32)
    original = data.copy(order="F")
    series = masked_series(data, mask, overwrite=True)
    assert np.shares_memory(series, data) is in_place
    assert series.dtype == expected.dtype
    np.testing.assert_array_equal(series, expected)
    np.testing.assert_array_equal(masked_series(original, mask), expected)
    assert not np.shares_memory(masked_series(original, mask), original)  # by default
