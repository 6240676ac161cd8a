"""Loading, checking, concatenating and averaging functional images."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import nibabel as nb
import numpy as np
from nilearn.exceptions import MaskWarning

from .errors import InputError, not_found, one_line
from .inflate import STEP_BYTES, gzip_open, stored_data

AFFINE_TOLERANCE = 1e-4
#: File name of a run's mean image in its node's folder (MeanImage's, FitGLM's).
MEAN_IMAGE_FILE = "mean.nii.gz"


def load_image_header(path: str | os.PathLike) -> nb.spatialimages.SpatialImage:
    """Open an image lazily (header only), with a one-line error for bad files.

    Parameters
    ----------
    path : str or PathLike
        A NIfTI (``.nii``, ``.nii.gz``) or NIfTI-pair/Analyze (``.img``/``.hdr``) file.

    Returns
    -------
    img : nibabel image
        Image whose data is not read yet.

    Raises
    ------
    InputError
        If the file is missing, is not an image, is not 3D/4D or holds no real numbers.
    """
    path = Path(path)
    if not path.exists():
        raise not_found(path)
    try:
        img = nb.load(str(path))
    except Exception as exc:  # nibabel raises many types for corrupt files
        raise InputError(f"{path}: not a readable NIfTI/Analyze image ({one_line(exc)})") \
            from None
    if img.ndim not in (3, 4):
        raise InputError(f"{path}: expected a 3D or 4D image, got {img.ndim}D {img.shape}")
    if img.get_data_dtype().kind not in "biuf":  # complex, RGB: nilearn takes neither alike
        raise InputError(f"{path}: data type {img.get_data_dtype()}; expected real numbers")
    check_data_size(img)
    return img


def check_data_size(img) -> None:
    """Refuse an image whose data file is shorter than its header says (a copy cut short):
    uncompressed, from the file's size; gzipped, from the inflated size its last four bytes
    record (:func:`_check_gzip_size`). No data read from a whole file."""
    proxy = img.dataobj
    data_file = img.file_map["image"].filename if "image" in img.file_map else None
    if (not isinstance(proxy, nb.arrayproxy.ArrayProxy) or not data_file
            or str(data_file).endswith((".bz2", ".zst"))):
        return
    dtype = img.get_data_dtype()
    expected = proxy.offset + int(np.prod(img.shape, dtype=np.int64)) * dtype.itemsize
    gzipped = str(data_file).endswith(".gz")
    size = _gzip_size(data_file, expected) if gzipped else os.path.getsize(data_file)
    if size < expected:
        raise InputError(f"{data_file}: {size} bytes{' inflated' if gzipped else ''}, but its "
                         f"header (shape {img.shape}, {dtype}) needs {expected}: the file is "
                         "cut short")


def _gzip_size(path: str, expected: int) -> int:
    """The inflated size of a gzipped file: ``expected`` when its trailer records that size
    (modulo 2**32, as gzip does), else counted by inflating it (a file cut short ends in
    compressed data, not in the trailer; a file of several gzip members or with bytes after
    the data is read to the end). A stream that cannot be inflated is refused."""
    with open(path, "rb") as stream:
        stream.seek(-4, os.SEEK_END)
        if int.from_bytes(stream.read(4), "little") == expected % 2**32:
            return expected
    size = 0
    try:
        with gzip_open()(path, "rb") as stream:
            while chunk := stream.read(STEP_BYTES):
                size += len(chunk)
    except Exception as exc:  # EOFError for a stream cut short; zlib's or ISA-L's errors
        raise InputError(f"{path}: cannot be inflated ({one_line(exc)}): the file is cut "
                         "short or damaged") from None
    return size


def read_image_data(img, path) -> np.ndarray:
    """The data of an image opened by :func:`load_image_header`, as stored.

    Reading is where a truncated or corrupt file shows (e.g. a ``.nii.gz`` cut short:
    its header opens, its data do not); the error is one line naming ``path``. A gzipped
    file is inflated by ISA-L when ``isal`` is installed (:func:`.inflate.stored_data`:
    nibabel's values, read faster).
    """
    try:
        return stored_data(img)
    except Exception as exc:
        raise InputError(f"{path}: image data cannot be read ({one_line(exc)})") from None


def check_images_compatible(paths) -> list[nb.spatialimages.SpatialImage]:
    """Check that all images share one 3D grid (shape and affine).

    Parameters
    ----------
    paths : list of str
        3D or 4D images, in acquisition order.

    Returns
    -------
    imgs : list of nibabel images
        The lazily opened images.

    Raises
    ------
    InputError
        Naming the first file whose shape or affine differs from the first file's, or a
        run given as one 3D image (one volume: no time series to fit).
    """
    if not paths:
        raise InputError("no functional images were given")
    imgs = [load_image_header(p) for p in paths]
    if len(imgs) == 1 and imgs[0].ndim == 3:
        raise InputError(f"{paths[0]}: a 3D image {imgs[0].shape}; a run needs a 4D image "
                         "(one volume per scan) or several 3D scans in order")
    ref_shape, ref_affine = imgs[0].shape[:3], imgs[0].affine
    for path, img in zip(paths[1:], imgs[1:], strict=True):
        if img.shape[:3] != ref_shape:
            raise InputError(
                f"{path}: shape {img.shape[:3]} differs from {ref_shape} of {paths[0]}"
            )
        if not np.allclose(img.affine, ref_affine, atol=AFFINE_TOLERANCE):
            raise InputError(f"{path}: affine differs from that of {paths[0]}")
    return imgs


def concatenate_images(paths) -> nb.Nifti1Image:
    """Concatenate 3D and/or 4D images along time into one 4D NIfTI image.

    The on-disk data type is kept when every file stores the same type without
    scaling, so integer scans stay integers; otherwise data are float32.

    Parameters
    ----------
    paths : list of str
        Images on one grid, in acquisition order.

    Returns
    -------
    img : nibabel.Nifti1Image
        4D image of shape ``(x, y, z, n_volumes)`` with the first image's affine.
    """
    imgs = check_images_compatible(paths)
    volumes = []
    for path, img in zip(paths, imgs, strict=True):
        data = read_image_data(img, path)
        volumes.append(data[..., np.newaxis] if data.ndim == 3 else data)
    dtypes = {v.dtype for v in volumes}
    dtype = dtypes.pop() if len(dtypes) == 1 else np.float32
    # in the file's (Fortran) order, so that writing it is one copy, not a transpose
    data = np.empty(volumes[0].shape[:3] + (sum(v.shape[3] for v in volumes),), dtype,
                    order="F")
    start = 0
    for volume in volumes:
        data[..., start:start + volume.shape[3]] = volume
        start += volume.shape[3]
    out = nb.Nifti1Image(data, imgs[0].affine)
    out.header.set_xyzt_units("mm", "sec")
    out.header.set_qform(imgs[0].affine, code=1)
    out.header.set_sform(imgs[0].affine, code=1)
    return out


def mean_image(img: nb.spatialimages.SpatialImage) -> nb.Nifti1Image:
    """Mean over time of a 4D image (a 3D image is returned as float32 unchanged).

    Non-finite samples (NaN, Inf) count as 0, as nilearn's maskers read them, so they
    leave no hole in the image (:func:`time_mean`).
    """
    return nb.Nifti1Image(time_mean(stored_data(img)).astype(np.float32), img.affine)


def time_mean(data: np.ndarray) -> np.ndarray:
    """Float64 mean over time of a 4D array (a 3D array: its values), as :func:`mean_image`.

    Non-finite samples (NaN, Inf) count as 0; only the voxels whose plain mean is not
    finite are averaged again, so a finite run is read once. For integer samples this is
    ``data.mean(axis=-1)``, the mean nilearn's EPI mask starts from.
    """
    samples = data if data.ndim == 4 else data[..., np.newaxis]
    with np.errstate(invalid="ignore"):  # +Inf and -Inf in one voxel: NaN, replaced below
        mean = samples.mean(axis=3, dtype=np.float64)
    non_finite = ~np.isfinite(mean)
    if non_finite.any():
        mean[non_finite] = np.nan_to_num(samples[non_finite], nan=0, posinf=0,
                                         neginf=0).mean(axis=1)
    return mean


TIME_UNITS_IN_SECONDS = {"sec": 1.0, "msec": 1e-3, "usec": 1e-6}


def header_repetition_time(img) -> float | None:
    """The TR a 4D image's header states, in seconds, or None if it states none: only a
    header whose time unit is set (``sec``, ``msec``, ``usec``) and whose fourth voxel
    size is positive states a TR."""
    if img.ndim != 4 or not hasattr(img.header, "get_xyzt_units"):
        return None
    unit = img.header.get_xyzt_units()[1]
    step = float(img.header.get_zooms()[3])
    if unit not in TIME_UNITS_IN_SECONDS or step <= 0:
        return None
    return step * TIME_UNITS_IN_SECONDS[unit]


def check_header_repetition_time(t_r: float, imgs, paths, tolerance: float = 1e-3) -> None:
    """Refuse a TR that differs from the one a functional image's header states."""
    for img, path in zip(imgs, paths, strict=True):
        stated = header_repetition_time(img)
        if stated is not None and abs(stated - t_r) > tolerance * max(stated, t_r):
            raise InputError(f"{path}: the header says TR = {stated:g} s but the run's TR "
                             f"(--tr or the sidecar's RepetitionTime) is {t_r:g} s")


def load_series(path_or_img) -> tuple[np.ndarray, nb.spatialimages.SpatialImage]:
    """Data of a 4D image as nibabel reads them (int16 stays int16), read once.

    Parameters
    ----------
    path_or_img : str, PathLike or nibabel image
        A 4D image.

    Returns
    -------
    data : ndarray, shape (x, y, z, n_scans)
        The values nilearn's maskers see; no float64 copy of the run is made.
    img : nibabel image
        The image (header and affine).
    """
    img = load_image_header(path_or_img) if isinstance(path_or_img, (str, os.PathLike)) \
        else path_or_img
    name = img.get_filename() or "image"
    if img.ndim != 4:
        raise InputError(f"{name}: expected a 4D image, got {img.ndim}D {img.shape}")
    return read_image_data(img, name), img


def compute_brain_mask(img: nb.spatialimages.SpatialImage, name: str = "image") -> np.ndarray:
    """The brain mask nilearn's ``FirstLevelModel`` computes for a single run.

    ``FirstLevelModel`` fits ``MultiNiftiMasker(mask_strategy='epi')`` on its runs, which
    for one run is nilearn's :func:`~nilearn.masking.compute_epi_mask` of that run
    (intersecting a single mask changes nothing); called here so the mask is the same.
    Non-finite samples are handled by nilearn (a voxel's non-finite mean counts as 0).

    Parameters
    ----------
    img : nibabel image
        4D run (in memory, so its data are read only once), or, for a run of integer
        samples, its float64 mean over time (:func:`time_mean`): nilearn's mask starts
        from that very mean (``data.mean(axis=-1)``), so the mask is the same.
    name : str
        The run's file, for the error message.

    Returns
    -------
    mask : ndarray of bool, shape (x, y, z)

    Raises
    ------
    InputError
        If the mask is empty: nilearn then warns (``MaskWarning``) or, on a run of a few
        voxels, fails to find its intensity cut-off (``ValueError``).
    """
    from nilearn.masking import compute_epi_mask  # imported when used: it loads scikit-learn

    try:
        # an empty mask is refused below, in one line; a NaN mean (+Inf and -Inf samples
        # in one voxel) is counted as 0 by nilearn
        with warnings.catch_warnings(), np.errstate(invalid="ignore"):
            warnings.simplefilter("ignore", MaskWarning)
            mask = np.asanyarray(compute_epi_mask(img).dataobj).astype(bool)
    except ValueError:
        mask = np.zeros(img.shape[:3], dtype=bool)
    if not mask.any():
        raise InputError(f"{name}: the brain mask is empty (nilearn's EPI mask finds no "
                         "brain voxel in the run)")
    return mask


def check_mask_grid(mask_img: nb.spatialimages.SpatialImage, img) -> np.ndarray:
    """A user's mask as booleans, on the image's grid, 0 outside (nilearn's rule)."""
    name = mask_img.get_filename() or "mask"
    if mask_img.shape[:3] != img.shape[:3] or (mask_img.ndim == 4 and mask_img.shape[3] != 1):
        raise InputError(f"{name}: mask shape {mask_img.shape} does not match the "
                         f"functional grid {img.shape[:3]}")
    if not np.allclose(mask_img.affine, img.affine, atol=AFFINE_TOLERANCE):
        raise InputError(f"{name}: mask affine differs from the functional image's")
    data = np.asanyarray(mask_img.dataobj).reshape(img.shape[:3])
    values = np.unique(data)
    if values.size > 2 or (values.size == 2 and 0 not in values):  # nilearn's load_mask_img
        raise InputError(f"{name}: {values.size} mask values ({values[0]:g} to {values[-1]:g}); "
                         "expected 0 outside and one value inside (threshold probability maps)")
    mask = data > 0
    if not mask.any():
        raise InputError(f"{name}: the mask is empty")
    return mask


def series_dtype(dtype) -> np.dtype:
    """Floating type nilearn's maskers give a data type (ints of up to 4 bytes: float32)."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return dtype
    return np.dtype(np.float64 if dtype.itemsize == 8 else np.float32)


def masked_series(data: np.ndarray, mask: np.ndarray, overwrite: bool = False) -> np.ndarray:
    """Time series of the voxels in a mask, copied volume by volume.

    Parameters
    ----------
    data : ndarray, shape (x, y, z, n_scans)
    mask : ndarray of bool, shape (x, y, z)
    overwrite : bool
        ``data`` may be overwritten (the caller read it and needs it no more): when it is
        in NIfTI order and a volume's masked samples, converted, take no more bytes than
        the volume (e.g. int16 data and a mask of at most half the grid), the series are
        written over ``data``'s own memory, each volume's row only over volumes already
        copied: no second array the size of the series is allocated.

    Returns
    -------
    series : ndarray, shape (n_scans, n_voxels)
        In the floating type nilearn's maskers use (:func:`series_dtype`: float32 for
        int16 data). Voxels are in storage order, ``x`` fastest, as NIfTI stores
        them; :func:`storage_to_mask_order` reorders per-voxel results to
        ``data[mask]`` order.
    """
    n_scans = data.shape[3]
    index = np.flatnonzero(mask.ravel(order="F"))  # ascending: a sequential read
    dtype = series_dtype(data.dtype)
    if overwrite and data.flags.f_contiguous and data.flags.writeable and \
            index.size * dtype.itemsize <= mask.size * data.dtype.itemsize:
        memory = data.reshape(-1, order="F").view(np.uint8)
        series = memory[:n_scans * index.size * dtype.itemsize].view(dtype)
        series = series.reshape(n_scans, index.size)
    else:
        series = np.empty((n_scans, index.size), dtype=dtype)
    for scan in range(n_scans):  # a view of each volume when data are in NIfTI order
        series[scan] = np.take(data[..., scan].ravel(order="F"), index)
    return series


def zero_non_finite(series: np.ndarray) -> tuple[int, int]:
    """Set the non-finite samples (NaN, Inf) of masked series to 0, in place.

    As nilearn's maskers do: ``nilearn.masking.apply_mask_fmri`` passes
    ``ensure_finite=True`` to ``nilearn.image.smooth_array``, whose
    ``nilearn._utils.niimg.ensure_finite_data`` sets them to 0 without a warning.

    Parameters
    ----------
    series : ndarray of floats, shape (n_scans, n_voxels)

    Returns
    -------
    n_voxels, n_volumes : int
        How many voxels (columns) and volumes (rows) held a non-finite sample.
    """
    non_finite = ~np.isfinite(series)
    if not non_finite.any():
        return 0, 0
    series[non_finite] = 0
    return int(non_finite.any(axis=0).sum()), int(non_finite.any(axis=1).sum())


def storage_to_mask_order(mask: np.ndarray) -> np.ndarray:
    """Index that reorders values from :func:`masked_series` order to ``data[mask]`` order."""
    storage = np.flatnonzero(mask.ravel(order="F"))
    in_mask_order = np.ravel_multi_index(np.nonzero(mask), mask.shape, order="F")
    return np.searchsorted(storage, in_mask_order)


def reorder_columns(series: np.ndarray, order: np.ndarray) -> None:
    """Put ``series``' columns in the order ``order`` (``series[:, order]``) in place, one
    row at a time: a row's worth of temporary where a reordered copy would be the series'
    size, and each row's gather reads in cache."""
    row = np.empty(series.shape[1], dtype=series.dtype)
    for samples in series:
        np.take(samples, order, out=row)
        samples[:] = row
