"""Concatenation and mean images (no Nipype)."""

import nibabel as nb
import numpy as np
import pytest
from nilearn.image import concat_imgs, mean_img

from glm_workflows.core.errors import InputError
from glm_workflows.core.images import (
    check_images_compatible,
    concatenate_images,
    mean_image,
)


def test_concatenate_spm_scans_matches_nilearn(seed_bold, spm_scans):
    """96 int16 Analyze scans become one int16 4D NIfTI equal to nilearn's concat_imgs."""
    assert seed_bold.shape == (64, 64, 64, 96)
    assert seed_bold.get_data_dtype() == np.int16
    reference = concat_imgs(spm_scans)
    np.testing.assert_array_equal(np.asanyarray(seed_bold.dataobj), reference.get_fdata())
    np.testing.assert_allclose(seed_bold.affine, reference.affine)


def test_concatenate_mixes_3d_and_4d(tmp_path, spm_scans):
    """A 4D file followed by 3D scans concatenates in order."""
    first = concatenate_images(spm_scans[:3])
    first.to_filename(tmp_path / "first.nii.gz")
    out = concatenate_images([str(tmp_path / "first.nii.gz"), *spm_scans[3:5]])
    assert out.shape == (64, 64, 64, 5)
    np.testing.assert_array_equal(np.asanyarray(out.dataobj)[..., 4],
                                  np.asanyarray(nb.load(spm_scans[4]).dataobj))


def test_mean_image_matches_nilearn(seed_bold):
    """The mean over time equals nilearn's mean_img."""
    ours = mean_image(seed_bold).get_fdata()
    np.testing.assert_allclose(ours, mean_img(seed_bold, copy_header=True).get_fdata(), rtol=1e-6)


def test_mean_image_counts_non_finite_samples_as_zero(seed_bold):
    """NaN and +/-Inf samples count as 0, as nilearn's maskers read them (nilearn's own
    mean_img would give NaN/Inf there): the mean equals mean_img of the run after
    nilearn's ensure_finite_data; a 3D image gets 0 at its non-finite voxels."""
    from nilearn._utils.niimg import ensure_finite_data

    data = np.asarray(seed_bold.slicer[20:40, 20:40, 20:40].dataobj, dtype=np.float32)
    data[5, 5, 5, 10] = np.nan
    data[6, 5, 5] = np.inf
    data[7, 5, 5, 3] = -np.inf
    data[8, 5, 5, 3:5] = [np.inf, -np.inf]
    ours = mean_image(nb.Nifti1Image(data, seed_bold.affine)).get_fdata()
    assert np.isfinite(ours).all()
    zeroed = ensure_finite_data(data.copy(), raise_warning=False)
    expected = mean_img(nb.Nifti1Image(zeroed, seed_bold.affine), copy_header=True).get_fdata()
    np.testing.assert_allclose(ours, expected, rtol=1e-6)
    volume = mean_image(nb.Nifti1Image(data[..., 10], seed_bold.affine)).get_fdata()
    np.testing.assert_array_equal(volume, zeroed[..., 10])


def test_shape_mismatch_names_file(tmp_path, spm_scans):
    """A scan of another shape is refused, naming it."""
    odd = tmp_path / "odd.nii.gz"
    nb.Nifti1Image(np.zeros((32, 32, 32), np.int16), np.eye(4)).to_filename(odd)
    with pytest.raises(InputError, match=r"odd\.nii\.gz: shape \(32, 32, 32\) differs"):
        check_images_compatible([spm_scans[0], str(odd)])


def test_affine_mismatch_names_file(tmp_path, spm_scans):
    """A scan on a shifted grid is refused, naming it."""
    img = nb.load(spm_scans[1])
    affine = img.affine.copy()
    affine[0, 3] += 10
    moved = tmp_path / "moved.nii"
    nb.Nifti1Image(np.asanyarray(img.dataobj), affine).to_filename(moved)
    with pytest.raises(InputError, match=r"moved\.nii: affine differs"):
        check_images_compatible([spm_scans[0], str(moved)])


def test_missing_and_corrupt_files(tmp_path):
    """Missing and corrupt images give one-line errors naming the file."""
    with pytest.raises(InputError, match=r"nothere\.nii: file not found"):
        check_images_compatible([str(tmp_path / "nothere.nii")])
    corrupt = tmp_path / "corrupt.nii.gz"
    corrupt.write_bytes(b"this is not an image")
    with pytest.raises(InputError, match=r"corrupt\.nii\.gz: not a readable") as err:
        check_images_compatible([str(corrupt)])
    assert "\n" not in str(err.value)


def test_masked_series_reads_int16_once_in_storage_order(tmp_path, seed_bold):
    """int16 data stay int16 when read; masked series are float32 (nilearn's masker
    type) and reorder exactly to nilearn's ``data[mask]`` order."""
    from nilearn.maskers import NiftiMasker

    from glm_workflows.core.images import (
        compute_brain_mask,
        load_series,
        masked_series,
        storage_to_mask_order,
    )

    path = tmp_path / "bold.nii"
    seed_bold.to_filename(path)
    data, img = load_series(str(path))
    assert data.dtype == np.int16 and data.flags.f_contiguous
    mask = compute_brain_mask(nb.Nifti1Image(data, img.affine))
    series = masked_series(data, mask)
    assert series.dtype == np.float32 and series.shape == (96, 62073)
    masker = NiftiMasker(mask_img=nb.Nifti1Image(mask.astype(np.uint8), img.affine)).fit()
    reference = masker.transform(seed_bold)
    np.testing.assert_array_equal(series[:, storage_to_mask_order(mask)], reference)
    # the C-ordered in-memory image gives the same series
    np.testing.assert_array_equal(masked_series(np.asarray(seed_bold.dataobj), mask), series)
