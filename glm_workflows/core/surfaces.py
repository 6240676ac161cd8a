"""Surface runs (fMRIPrep's GIFTI hemisphere pairs): read, checked, packed into one image
that the volume code fits unchanged, and unpacked into one GIFTI per hemisphere.

A surface run travels between nodes as a NIfTI-1 image whose first axes hold the vertices
of both hemispheres (left, then right), *folded* so that no axis exceeds NIfTI-1's 32767:
shape ``(a, b, 1, T)`` with ``b = ceil(n / 32767)`` and ``a = ceil(n / b)``, the vertices
in storage (Fortran) order and the ``a * b - n`` padding vertices all zero (constant: out
of the mask). fsaverage5 (2 x 10242 vertices) is ``(20484, 1, 1, T)``. Beside it, a small
JSON (:func:`surface_layout`) names the mesh, the hemispheres and their vertex counts.
The mask, the vectorized fit, contrasts and fixed effects, which only index voxels through
the mask, work on it unchanged; spatial operations that assume a 3-D grid (smoothing,
cluster tables, volume figures) are not applied to it.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import nibabel as nb
import numpy as np

from .errors import InputError, one_line
from .packing import folded_shape, surface_mask
from .surface_names import CIFTI_SERIES_EXTENSION, HEMISPHERES, MESH_VERTICES

#: The fMRIPrep spaces that are surfaces (``--space``): FreeSurfer's templates, and the
#: subject's own surface (``fsnative``, per subject).
SURFACE_SPACES = ("fsaverage", "fsaverage6", "fsaverage5", "fsaverage4", "fsaverage3",
                  "fsnative")

#: The mask of a surface run (its default).
SURFACE_MASK = "vertices with finite, non-constant data (glm-workflows' surface default)"


def is_surface_space(space: str | None) -> bool:
    """Whether ``space`` (an fMRIPrep ``space-`` label) is a surface space."""
    return space in SURFACE_SPACES


def read_hemisphere(path: str | os.PathLike) -> np.ndarray:
    """A GIFTI hemisphere's data as ``(n_vertices, n_scans)`` (float32 or as stored).

    fMRIPrep writes one data array per volume; a single 2-D array is read as it is.

    Raises
    ------
    InputError
        If the file is missing, not a GIFTI image, or its arrays differ in size.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    try:
        img = nb.load(str(path))
        arrays = [np.asarray(d.data) for d in img.darrays]
    except Exception as exc:  # nibabel raises many types for corrupt files
        raise InputError(f"{path}: not a readable GIFTI image ({one_line(exc)})") from None
    if not isinstance(img, nb.gifti.GiftiImage) or not arrays:
        raise InputError(f"{path}: not a GIFTI image with data arrays")
    if len(arrays) == 1:
        data = arrays[0]
        return data[:, np.newaxis] if data.ndim == 1 else data
    if len({a.shape for a in arrays}) != 1 or arrays[0].ndim != 1:
        raise InputError(f"{path}: its data arrays differ in size (expected one per volume)")
    return np.column_stack(arrays)


def hemisphere_shape(path) -> tuple[int, int]:
    """``(n_vertices, n_arrays)`` of a GIFTI file from its XML attributes alone (its data
    are not decoded: about 7 times faster than :func:`read_hemisphere`); a 2-D single
    array counts its columns.

    Raises
    ------
    InputError
        If the file is missing, not GIFTI XML, or its arrays differ in size.
    """
    import xml.etree.ElementTree as ET

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    dims = []
    try:
        for _, element in ET.iterparse(str(path), events=("start",)):
            if element.tag == "DataArray":
                dims.append((int(element.get("Dim0")), int(element.get("Dim1") or 0)))
    except (ET.ParseError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: not a readable GIFTI image ({one_line(exc)})") from None
    if not dims:
        raise InputError(f"{path}: not a GIFTI image with data arrays")
    if len(dims) == 1:
        return dims[0][0], max(dims[0][1], 1)
    if len(set(dims)) != 1 or dims[0][1]:
        raise InputError(f"{path}: its data arrays differ in size (expected one per volume)")
    return dims[0][0], len(dims)


def n_volumes(path) -> int:
    """The number of volumes of a 4D image, of a GIFTI series (one array per volume) or of
    a CIFTI dense time series (its time points)."""
    if str(path).endswith("." + CIFTI_SERIES_EXTENSION):
        from .cifti import check_cifti_series

        return check_cifti_series(path)[0]
    if str(path).endswith(".gii"):
        return hemisphere_shape(path)[1]
    return nb.load(str(path)).shape[3]


def check_surface_pair(paths, mesh: str | None = None) -> tuple[int, list[int]]:
    """Check a run's hemispheres (left, right): same number of volumes (their headers
    only, :func:`hemisphere_shape`) and, on a mesh of
    :data:`~glm_workflows.core.surface_names.MESH_VERTICES` (fsLR 32k), its vertices in
    each; a CIFTI run (one dtseries) is checked by
    :func:`~glm_workflows.core.cifti.check_cifti_series`.

    Returns
    -------
    n_scans : int
    n_vertices : list of int
        Per hemisphere.
    """
    if len(paths) == 1:  # a CIFTI run: its grayordinates (core.cifti)
        from .cifti import check_cifti_series

        return check_cifti_series(paths[0])
    shapes = [hemisphere_shape(path) for path in paths]
    if shapes[0][1] != shapes[1][1]:
        raise InputError(f"{paths[1]}: {shapes[1][1]} volumes, but {shapes[0][1]} in "
                         f"{Path(paths[0]).name}")
    wanted = MESH_VERTICES.get(mesh)
    for path, (count, _) in zip(paths, shapes, strict=True):
        if wanted is not None and count != wanted:
            raise InputError(f"{path}: {count} vertices, but the {mesh} mesh has {wanted} "
                             "per hemisphere (space-fsLR GIFTI pairs are fsLR 32k only)")
    return shapes[0][1], [shape[0] for shape in shapes]


def surface_layout(mesh: str, n_vertices) -> dict:
    """The JSON beside a packed surface image: mesh, hemispheres, their vertex counts and
    the packed shape."""
    n_vertices = [int(n) for n in n_vertices]
    return {"Mesh": mesh, "Hemispheres": list(HEMISPHERES), "Vertices": n_vertices,
            "PackedShape": list(folded_shape(sum(n_vertices)))}


def pack_surface(paths, mesh: str) -> tuple[nb.Nifti1Image, np.ndarray, dict]:
    """Pack a run's two hemispheres into one image, with its mask and layout.

    Parameters
    ----------
    paths : sequence of str
        The left and right hemispheres' GIFTI files (one run), or a CIFTI run's dtseries
        (:func:`~glm_workflows.core.cifti.pack_cifti`).
    mesh : str
        The mesh (fMRIPrep's space, with its density: ``fsaverage5``, ``fsaverage_den-10k``).

    Returns
    -------
    img : nibabel.Nifti1Image
        Shape ``folded_shape(n) + (T,)``, float64 (the series nilearn's ``SurfaceMasker``
        gives), identity affine, TR unset.
    mask : ndarray of bool, shape ``folded_shape(n)``
        :func:`surface_mask`.
    layout : dict
        :func:`surface_layout`.
    """
    if len(paths) == 1:  # a CIFTI run (one dtseries): its grayordinates
        from .cifti import pack_cifti

        return pack_cifti(paths[0])
    img, layout = pack_hemispheres(paths, mesh)
    mask = surface_mask(np.asanyarray(img.dataobj))
    if not mask.any():
        raise InputError(f"{paths[0]}: no vertex of the run has finite, non-constant data")
    return img, mask, layout


def pack_hemispheres(paths, mesh: str) -> tuple[nb.Nifti1Image, dict]:
    """Two hemispheres' GIFTI files (a series, or a map of one or more arrays) packed into
    one NIfTI-1 image (module docstring), float64, and their layout.

    A 4-D result ``(a, b, 1, k)``; :func:`pack_surface` adds the run's mask.
    """
    if len(paths) != len(HEMISPHERES):
        raise InputError(f"surface data need their two hemispheres, got {list(paths)}")
    n_columns, counts = check_surface_pair(paths)
    # float64, as nilearn's SurfaceMasker gives a SurfaceImage's series (its fit on them)
    data = np.concatenate([read_hemisphere(p) for p in paths], axis=0).astype(np.float64)
    layout = surface_layout(mesh, counts)
    shape = tuple(layout["PackedShape"])
    padded = np.zeros((math.prod(shape), n_columns), dtype=np.float64)
    padded[: data.shape[0]] = data
    return nb.Nifti1Image(padded.reshape(shape + (n_columns,), order="F"), np.eye(4)), layout


def unpack(values: np.ndarray, layout: dict) -> dict:
    """A packed map's values per hemisphere.

    Parameters
    ----------
    values : ndarray, shape ``PackedShape`` or ``PackedShape + (k,)``
    layout : dict
        :func:`surface_layout`.

    Returns
    -------
    hemispheres : dict
        ``'L'``/``'R'`` -> ndarray ``(n_vertices,)`` or ``(n_vertices, k)``.
    """
    shape = tuple(layout["PackedShape"])
    if tuple(values.shape[:3]) != shape:
        raise ValueError(f"map of shape {values.shape} is not packed as {shape}")
    flat = values.reshape((math.prod(shape),) + values.shape[3:], order="F")
    out, start = {}, 0
    for hemi, count in zip(layout["Hemispheres"], layout["Vertices"], strict=True):
        out[hemi] = flat[start:start + count]
        start += count
    return out


def gifti_image(values: np.ndarray) -> nb.gifti.GiftiImage:
    """A GIFTI functional image of per-vertex values: one data array per column (a map
    of ``(n_vertices,)`` is one array), float32 unless integer (a mask: uint8)."""
    values = np.asarray(values)
    columns = values[:, np.newaxis] if values.ndim == 1 else values
    dtype = np.uint8 if values.dtype == bool else (
        np.int32 if values.dtype.kind in "iu" else np.float32)
    arrays = [nb.gifti.GiftiDataArray(np.ascontiguousarray(columns[:, j], dtype=dtype),
                                      intent="NIFTI_INTENT_NONE",
                                      datatype={np.uint8: "NIFTI_TYPE_UINT8",
                                                np.int32: "NIFTI_TYPE_INT32",
                                                np.float32: "NIFTI_TYPE_FLOAT32"}[dtype])
              for j in range(columns.shape[1])]
    return nb.gifti.GiftiImage(darrays=arrays)


def write_hemispheres(packed_file, layout: dict, out_files: dict) -> dict:
    """A packed map written as one GIFTI per hemisphere.

    Parameters
    ----------
    packed_file : str or PathLike
        A map on the packed grid (NIfTI).
    layout : dict
        :func:`surface_layout`.
    out_files : dict
        ``'L'``/``'R'`` -> the path to write (``.func.gii``).

    Returns
    -------
    files : dict
        ``'L'``/``'R'`` -> path written.
    """
    img = nb.load(str(packed_file))
    data = np.asanyarray(img.dataobj)
    for hemi, values in unpack(data, layout).items():
        nb.save(gifti_image(values), str(out_files[hemi]))
    return {hemi: str(path) for hemi, path in out_files.items()}


def pack_map(paths, mesh: str) -> tuple[nb.Nifti1Image, dict]:
    """A map written per hemisphere (mask, mean, effect: one array each) packed back into
    a 3-D image on the packed grid, and its layout (:func:`pack_hemispheres`)."""
    img, layout = pack_hemispheres(paths, mesh)
    data = np.asanyarray(img.dataobj)
    if data.shape[3] != 1:
        raise InputError(f"{paths[0]}: {data.shape[3]} data arrays, expected one map")
    return nb.Nifti1Image(data[..., 0], img.affine), layout


def other_hemisphere_file(path) -> str:
    """The right hemisphere's file of a left hemisphere's (``hemi-L`` -> ``hemi-R``)."""
    path = Path(path)
    return str(path.with_name(path.name.replace("_hemi-L_", "_hemi-R_", 1)))


def check_surface_maps(left_files) -> None:
    """Check maps written per hemisphere (each given by its left file): both hemispheres
    readable, with the first map's vertex counts (one mesh)."""
    reference = None
    for left in left_files:
        right = other_hemisphere_file(left)
        _, counts = check_surface_pair([left, right])
        if reference is None:
            reference = (left, counts)
        elif counts != reference[1]:
            raise InputError(f"{left}: {counts[0]} + {counts[1]} vertices, but "
                             f"{reference[1][0]} + {reference[1][1]} in {reference[0]} "
                             "(another mesh)")


def read_layout(path) -> dict:
    """The layout JSON written beside a packed image (:func:`surface_layout`)."""
    return json.loads(Path(path).read_text())
