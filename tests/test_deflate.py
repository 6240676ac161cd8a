"""Images written to .nii.gz by ISA-L (core/deflate.py): what nibabel writes, once inflated,
and the same bytes every time."""

from __future__ import annotations

import gzip

import nibabel as nb
import numpy as np
import pytest

from glm_workflows.core.deflate import save_image
from glm_workflows.core.images import read_image_data


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    floats = nb.Nifti1Image(rng.standard_normal((9, 10, 11)), affine)
    scaled = nb.Nifti1Image(rng.integers(-300, 300, (9, 10, 11, 4)).astype(np.int16), affine)
    scaled.header.set_slope_inter(0.5, 10.0)
    return {"floats": floats, "scaled": scaled}


@pytest.mark.parametrize("name", ["floats", "scaled"])
def test_nii_gz_inflates_to_nibabels_file(images, name, tmp_path):
    """The inflated bytes are those of nibabel's own .nii.gz (header, scaling, data), and
    nibabel and the project's reader read the same data."""
    ours, theirs = tmp_path / "ours.nii.gz", tmp_path / "theirs.nii.gz"
    save_image(images[name], ours)
    images[name].to_filename(str(theirs))
    assert gzip.decompress(ours.read_bytes()) == gzip.decompress(theirs.read_bytes())
    expected = nb.load(theirs).get_fdata()
    np.testing.assert_array_equal(nb.load(ours).get_fdata(), expected)
    np.testing.assert_array_equal(read_image_data(nb.load(ours), ours),
                                  read_image_data(nb.load(theirs), theirs))


def test_same_image_same_bytes(images, tmp_path):
    """No file name and modification time 0 in the gzip header: the same bytes each time."""
    first, second = tmp_path / "a.nii.gz", tmp_path / "sub" / "b.nii.gz"
    second.parent.mkdir()
    save_image(images["floats"], first)
    save_image(images["floats"], second)
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes()[3:8] == b"\x00\x00\x00\x00\x00"  # no FNAME flag, mtime 0


def test_other_files_are_nibabels(images, tmp_path):
    """A .nii (uncompressed) is written by nibabel, byte for byte."""
    ours, theirs = tmp_path / "ours.nii", tmp_path / "theirs.nii"
    save_image(images["floats"], ours)
    images["floats"].to_filename(str(theirs))
    assert ours.read_bytes() == theirs.read_bytes()
