"""Gzipped images read in steps (and by ISA-L when installed) give nibabel's own values."""

import subprocess
import sys

import nibabel as nb
import numpy as np
import pytest

from glm_workflows.core import inflate
from glm_workflows.core.errors import InputError
from glm_workflows.core.images import load_image_header, load_series, read_image_data


def _write(path, data, dtype=None, slope_inter=None, byte_order=None):
    img = nb.Nifti1Image(data, np.diag([2.0, 2.0, 2.0, 1.0]))
    if dtype is not None:
        img.header.set_data_dtype(dtype)
    if slope_inter is not None:
        img.header.set_slope_inter(*slope_inter)
    if byte_order is not None:
        img = nb.Nifti1Image(data, img.affine, img.header.as_byteswapped(byte_order))
    img.to_filename(path)
    return str(path)


def _same_as_nibabel(path):
    expected = np.asanyarray(nb.load(path).dataobj)  # nibabel's own read: the reference
    ours = inflate.stored_data(nb.load(path))
    assert ours.dtype == expected.dtype and ours.shape == expected.shape
    assert ours.flags.f_contiguous == expected.flags.f_contiguous
    np.testing.assert_array_equal(ours, expected)
    return ours


def test_int16_run_larger_than_a_step(tmp_path):
    """An int16 run of 21 MB (more than one step of 16 MB): nibabel's values, type and
    layout, read in steps."""
    data = np.random.default_rng(0).integers(-2000, 30000, (64, 64, 64, 40), dtype=np.int16)
    assert data.nbytes > inflate.STEP_BYTES
    ours = _same_as_nibabel(_write(tmp_path / "run.nii.gz", data))
    np.testing.assert_array_equal(ours, data)


@pytest.mark.parametrize("dtype, slope_inter, byte_order", [
    (np.int16, (2.5, -3.0), None),      # scaled on read: nibabel's float type and values
    (np.int16, None, ">"),              # big-endian samples
    (np.float32, None, None),
    (np.uint8, (0.5, 10.0), ">"),
])
def test_types_scaling_and_byte_order_are_nibabel_s(tmp_path, dtype, slope_inter, byte_order):
    data = np.random.default_rng(1).uniform(0, 200, (7, 8, 9, 5)).astype(dtype)
    _same_as_nibabel(_write(tmp_path / "run.nii.gz", data, dtype, slope_inter, byte_order))


def test_uncompressed_and_in_memory_images_are_nibabel_s(tmp_path):
    data = np.arange(7 * 8 * 9 * 3, dtype=np.int16).reshape(7, 8, 9, 3)
    _same_as_nibabel(_write(tmp_path / "run.nii", data))
    in_memory = nb.Nifti1Image(data, np.eye(4))
    assert inflate.stored_data(in_memory) is in_memory.dataobj


def test_truncated_file_is_one_line_naming_it(tmp_path):
    """A .nii.gz cut short opens (its header) but is refused when opened, from gzip's record of
    the inflated size that it no longer ends with, and its data cannot be read: one line."""
    path = tmp_path / "cut.nii.gz"
    data = np.random.default_rng(2).integers(0, 1000, (20, 20, 20, 10), dtype=np.int16)
    _write(path, data)
    path.write_bytes(path.read_bytes()[:-2000])
    with pytest.raises(InputError, match=r"cut\.nii\.gz: cannot be inflated \(") as err:
        load_series(str(path))
    assert "\n" not in str(err.value)
    with pytest.raises(InputError):
        read_image_data(nb.load(path), path)


def test_file_damaged_within_its_data_is_refused_when_read(tmp_path):
    """Bytes changed in the middle of a .nii.gz (its size record intact): nibabel stops
    reading at the data's end and returns other values; here gzip's CRC is checked at the
    file's end and the read is refused in one line."""
    path = tmp_path / "damaged.nii.gz"
    data = np.random.default_rng(4).integers(0, 1000, (20, 20, 20, 10), dtype=np.int16)
    _write(path, data)
    damaged = bytearray(path.read_bytes())
    middle = len(damaged) // 2
    damaged[middle:middle + 64] = b"\xff" * 64
    path.write_bytes(bytes(damaged))
    header = load_image_header(path)  # opens: the size record is whole
    with pytest.raises(InputError, match=r"damaged\.nii\.gz: image data cannot be read \("):
        read_image_data(header, path)


def test_without_isal_the_read_is_python_s_gzip(tmp_path):
    """With the isal package absent (an import that fails), Python's gzip inflates and the
    values are still nibabel's."""
    data = np.random.default_rng(3).integers(0, 5000, (9, 10, 11, 6), dtype=np.int16)
    path = _write(tmp_path / "run.nii.gz", data)
    script = (
        "import sys; sys.modules['isal'] = None\n"
        "import gzip, nibabel as nb, numpy as np\n"
        "from glm_workflows.core import inflate\n"
        "assert inflate.gzip_open() is gzip.open\n"
        f"ours = inflate.stored_data(nb.load({path!r}))\n"
        f"assert np.array_equal(ours, np.asanyarray(nb.load({path!r}).dataobj))\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
