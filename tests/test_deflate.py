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


_FRESH_WRITER = """
import sys
import nibabel as nb
from glm_workflows.core.deflate import save_image
for path in sys.argv[1:]:
    save_image(nb.load(path.replace('.nii.gz', '.nii')), path)
"""


def test_bytes_do_not_depend_on_the_process_history(tmp_path):
    """Maps written after many others in one long process (as a workflow's nodes write them)
    have the bytes a fresh process writes for the same images: ISA-L compresses each image
    in one call, not from memory a previous compression left."""
    import subprocess
    import sys

    rng = np.random.default_rng(1)
    ours = []
    for index in range(40):
        shape = tuple(int(n) for n in rng.integers(4, 40, 3))
        data = rng.standard_normal(shape) * (rng.random(shape) > 0.4)
        image = nb.Nifti1Image(data.astype(np.float32 if index % 2 else np.float64),
                               np.diag([2.0, 2.0, 2.0, 1.0]))
        image.to_filename(str(tmp_path / f"map{index}.nii"))
        save_image(image, tmp_path / f"map{index}.nii.gz")
        ours.append((tmp_path / f"map{index}.nii.gz").read_bytes())
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    paths = []
    for index in range(40):
        (fresh / f"map{index}.nii").write_bytes((tmp_path / f"map{index}.nii").read_bytes())
        paths.append(str(fresh / f"map{index}.nii.gz"))
    subprocess.run([sys.executable, "-c", _FRESH_WRITER, *paths], check=True)
    assert [open(path, "rb").read() for path in paths] == ours


def test_large_images_are_written_by_nibabel(images, tmp_path, monkeypatch):
    """An image above the one-call limit is written by nibabel (zlib), byte for byte."""
    from glm_workflows.core import deflate

    monkeypatch.setattr(deflate, "ONE_CALL_BYTES", 100)
    ours, theirs = tmp_path / "ours.nii.gz", tmp_path / "theirs.nii.gz"
    deflate.save_image(images["floats"], ours)
    images["floats"].to_filename(str(theirs))
    assert ours.read_bytes() == theirs.read_bytes()
