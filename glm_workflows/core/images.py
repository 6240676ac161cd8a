"""Loading, checking, concatenating and averaging functional images."""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nb
import numpy as np

from .errors import InputError, one_line

AFFINE_TOLERANCE = 1e-4


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
        If the file is missing, is not an image, or is not 3D/4D.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    try:
        img = nb.load(str(path))
    except Exception as exc:  # nibabel raises many types for corrupt files
        raise InputError(f"{path}: not a readable NIfTI/Analyze image ({one_line(exc)})") \
            from None
    if img.ndim not in (3, 4):
        raise InputError(f"{path}: expected a 3D or 4D image, got {img.ndim}D {img.shape}")
    return img


def _read_data(img, path) -> np.ndarray:
    try:
        return np.asanyarray(img.dataobj)
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
        Naming the first file whose shape or affine differs from the first file's.
    """
    if not paths:
        raise InputError("no functional images were given")
    imgs = [load_image_header(p) for p in paths]
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
        data = _read_data(img, path)
        volumes.append(data[..., np.newaxis] if data.ndim == 3 else data)
    dtypes = {v.dtype for v in volumes}
    dtype = dtypes.pop() if len(dtypes) == 1 else np.float32
    data = np.concatenate(volumes, axis=3).astype(dtype, copy=False)
    out = nb.Nifti1Image(data, imgs[0].affine)
    out.header.set_xyzt_units("mm", "sec")
    out.header.set_qform(imgs[0].affine, code=1)
    out.header.set_sform(imgs[0].affine, code=1)
    return out


def mean_image(img: nb.spatialimages.SpatialImage) -> nb.Nifti1Image:
    """Mean over time of a 4D image (a 3D image is returned as float32 unchanged)."""
    data = np.asanyarray(img.dataobj)
    if data.ndim == 4:
        data = data.mean(axis=3, dtype=np.float64)
    return nb.Nifti1Image(data.astype(np.float32), img.affine)
