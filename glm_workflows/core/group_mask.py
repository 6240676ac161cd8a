"""Which voxels a group model keeps: the subjects' maps checked (one grid, finite
values), and voxels where a subject's map is not finite left out, reported in one line."""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import nibabel as nb
import numpy as np

from .errors import InputError
from .images import load_image_header, read_image_data

#: A map not finite (NaN, infinite) in more than this fraction of the group mask is refused.
MAX_NON_FINITE_FRACTION = 0.5


class GroupMask(NamedTuple):
    """The voxels a group model fits (see :func:`finite_group_mask`).

    Attributes
    ----------
    img : nibabel.Nifti1Image
        The mask given, less every voxel where some map is not finite.
    n_voxels : int
        Voxels of ``img``.
    n_given : int
        Voxels of the mask given.
    non_finite : tuple of int
        Per map, the voxels of the mask given where it is not finite.
    """

    img: nb.Nifti1Image
    n_voxels: int
    n_given: int
    non_finite: tuple


def grid_difference(img, reference) -> str | None:
    """What differs between the grids of two images, for a message (None: the same grid).

    The affines are compared as nilearn's ``check_same_fov`` compares them
    (``numpy.allclose`` with its default tolerance), so that a grid accepted here is
    accepted by the nilearn functions the group nodes call.
    """
    if img.shape[:3] != reference.shape[:3]:
        return f"shape {img.shape[:3]}, not {reference.shape[:3]}"
    if not np.allclose(img.affine, reference.affine):
        shift = np.abs(img.affine - reference.affine).max()
        return f"its affine differs by up to {shift:.4g}"
    return None


def _map_values(item, name, mask_img, mask) -> np.ndarray:
    """The values of one map (a path or an image) in ``mask``, checked to be readable,
    one volume and on the mask's grid; errors name ``name``."""
    img = load_image_header(item) if isinstance(item, (str, Path)) else item
    if img.ndim == 4 and img.shape[3] != 1 or img.ndim not in (3, 4):
        raise InputError(f"{name}: {img.ndim}D image of shape {img.shape}; expected one "
                         "3D map")
    wrong = grid_difference(img, mask_img)
    if wrong:
        raise InputError(f"{name}: not on the group mask's grid ({wrong})")
    return read_image_data(img, name).reshape(mask.shape)[mask]


def finite_group_mask(maps, mask_img, names=None, positive=None) -> GroupMask:
    """The group mask less the voxels where some subject's map is not finite.

    The rule (nilearn's maskers would silently turn NaN and infinite values into zeros,
    which biases the group model towards 0): a voxel enters the group model only where
    every map is finite; a map not finite in more than
    :data:`MAX_NON_FINITE_FRACTION` of the mask (a failed subject, not a few edge
    voxels) is refused.

    Parameters
    ----------
    maps : sequence of str or nibabel images
        One map per subject.
    mask_img : str or nibabel image
        The group mask (the intersection of the subjects' masks).
    names : sequence of str, optional
        Per map, how messages name it; default: its path (``map <i>`` for an image).
    positive : sequence of bool, optional
        Per map, whether it must also be above 0 (a variance map): a voxel where it is not
        is left out as a non-finite one is.

    Returns
    -------
    group_mask : GroupMask

    Raises
    ------
    InputError
        A map missing, unreadable (e.g. a truncated gzip) or on another grid than the
        mask, or not finite in most of it (naming the map); an empty mask; no voxel
        finite in every map.
    """
    maps = list(maps)
    if names is None:
        names = [str(item) if isinstance(item, (str, Path)) else f"map {index}"
                 for index, item in enumerate(maps, start=1)]
    mask_name = str(mask_img) if isinstance(mask_img, (str, Path)) else "group mask"
    if isinstance(mask_img, (str, Path)):
        mask_img = load_image_header(mask_img)
    mask = read_image_data(mask_img, mask_name).reshape(mask_img.shape[:3]) != 0
    n_given = int(mask.sum())
    if not n_given:
        raise InputError(f"{mask_name}: the group mask is empty (the subjects' masks have "
                         "no voxel in common)")
    finite = np.ones(n_given, dtype=bool)
    counts = []
    for index, (item, name) in enumerate(zip(maps, names, strict=True)):
        raw = _map_values(item, name, mask_img, mask)
        above = positive is not None and positive[index]
        values = np.isfinite(raw) & (raw > 0) if above else np.isfinite(raw)
        count = int(n_given - values.sum())
        if count > MAX_NON_FINITE_FRACTION * n_given:
            what = "finite and positive" if above else "finite"
            found = "finite and positive" if above else "finite (NaN or infinite)"
            raise InputError(f"{name}: not {found} in {count} of the "
                             f"{n_given} voxels of the group mask; a subject's map must be "
                             f"{what} in at least {1 - MAX_NON_FINITE_FRACTION:.0%} of it "
                             "(fix the subject's model or leave the subject out)")
        finite &= values
        counts.append(count)
    n_voxels = int(finite.sum())
    if not n_voxels:
        raise InputError(f"group mask: none of its {n_given} voxels is finite in every "
                         "subject's map")
    if n_voxels == n_given:
        return GroupMask(mask_img, n_voxels, n_given, tuple(counts))
    reduced = np.zeros(mask.shape, dtype=np.uint8)
    reduced[mask] = finite
    header = mask_img.header.copy()
    header.set_data_dtype(np.uint8)
    return GroupMask(nb.Nifti1Image(reduced, mask_img.affine, header), n_voxels, n_given,
                     tuple(counts))


def left_out_line(name, n_voxels, n_given, non_finite) -> str | None:
    """The warning line of the voxels a group analysis left out (None: none).

    Parameters
    ----------
    name : str
        The group analysis (its first-level contrast).
    n_voxels, n_given : int
        Voxels fitted, of the subjects' masks' intersection (:class:`GroupMask`).
    non_finite : dict
        Subject (``sub-<label>``) -> its non-finite voxels in that intersection.
    """
    if n_voxels == n_given:
        return None
    counts = ", ".join(f"{subject} {count}" for subject, count in non_finite.items() if count)
    return (f"group {name}: {n_given - n_voxels} of the {n_given} voxels of the subjects' "
            f"masks left out (not finite in every subject's map; non-finite voxels: "
            f"{counts})")


def check_group_files(effect_maps, mask_files, mean_files, paired_maps=None) -> GroupMask:
    """Check, before any work, every file a group analysis will read.

    Headers first (cheap): each file an image of one volume on the grid of the first
    mask. Then every file is read whole (a truncated ``.nii.gz`` is only found by
    reading it), the group mask is computed as the group workflow computes it (the
    intersection of the masks) and :func:`finite_group_mask` applies the rule on
    non-finite values to the maps the model will fit (paired: to each map, then to the
    differences).

    Parameters
    ----------
    effect_maps, mask_files, mean_files : sequence of str
        Per subject, its effect map, mask and mean image.
    paired_maps : sequence of str, optional
        Per subject, the second map of a paired model.

    Returns
    -------
    group_mask : GroupMask
        What the group model will fit.

    Raises
    ------
    InputError
        Naming the first file missing, unreadable, not one 3D volume, on another grid, a
        mask that is not binary, or a map refused by :func:`finite_group_mask`.
    """
    reference = load_image_header(mask_files[0])
    paired_maps = list(paired_maps or [])
    for path in [*mask_files, *mean_files, *effect_maps, *paired_maps]:
        img = load_image_header(path)
        if img.ndim == 4 and img.shape[3] != 1:
            raise InputError(f"{path}: 4D image of shape {img.shape}; expected one 3D map")
        wrong = grid_difference(img, reference)
        if wrong:
            raise InputError(f"{path}: not on the grid of {mask_files[0]} ({wrong})")
    mask = None
    for path in mask_files:
        data = read_image_data(load_image_header(path), path)
        values = np.unique(data)
        if values.size > 2 or values.size == 2 and 0 not in values:
            raise InputError(f"{path}: not a binary mask ({values.size} distinct values; "
                             "expected 0 and one other)")
        inside = data.reshape(reference.shape[:3]) != 0
        mask = inside if mask is None else mask & inside
    for path in mean_files:
        read_image_data(load_image_header(path), path)
    mask_img = nb.Nifti1Image(mask.astype(np.int8), reference.affine)
    if not paired_maps:
        return finite_group_mask(effect_maps, mask_img)
    finite_group_mask(effect_maps, mask_img)
    finite_group_mask(paired_maps, mask_img)
    return finite_group_mask(difference_images(effect_maps, paired_maps), mask_img,
                             [f"{a} - {b}" for a, b in zip(effect_maps, paired_maps,
                                                           strict=True)])


def difference_images(a_files, b_files) -> list:
    """Per-subject differences ``a - b`` of two lists of maps (paired designs).

    Parameters
    ----------
    a_files, b_files : sequence of str or nibabel images
        Same length, each pair on the same grid.

    Returns
    -------
    images : list of nibabel.Nifti1Image
        Float64 differences, with ``a``'s affine and header.
    """

    a_files, b_files = list(a_files), list(b_files)
    if len(a_files) != len(b_files):
        raise InputError(f"paired maps: {len(a_files)} first maps and {len(b_files)} second "
                         "maps; expected one pair per subject")
    images = []
    for a, b in zip(a_files, b_files, strict=True):
        img_a = nb.load(a) if isinstance(a, (str, Path)) else a
        img_b = nb.load(b) if isinstance(b, (str, Path)) else b
        if img_a.shape != img_b.shape or not np.allclose(img_a.affine, img_b.affine):
            raise InputError(f"paired maps {a} and {b}: not on the same grid "
                             f"(shapes {img_a.shape} and {img_b.shape}); expected the same")
        data = np.asarray(img_a.get_fdata(), dtype=np.float64) - img_b.get_fdata()
        header = img_a.header.copy()
        header.set_data_dtype(np.float64)
        images.append(nb.Nifti1Image(data, img_a.affine, header))
    return images
