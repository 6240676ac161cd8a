"""CIFTI-2 grayordinates (fMRIPrep's ``space-fsLR_den-91k_bold.dtseries.nii``): read,
checked, packed into the folded NIfTI-1 image the surface runs use
(:mod:`glm_workflows.core.surfaces`), and each map written back as a CIFTI-2 dense scalar
(``.dscalar.nii``) on the same brain models.

The CIFTI file's brain models (its ``BrainModelAxis``: the left and right cortex's kept
vertices of fsLR 32k meshes, then subcortical voxels) define the grayordinates; they are
packed in the file's order. The layout JSON beside a packed image (:func:`cifti_layout`)
records the brain models (each structure's vertices or voxel indices, the meshes' vertex
counts, the voxel grid's shape and affine), enough to write maps back without the source
file. Its ``Hemispheres`` and ``Vertices`` are empty; the geometry of the grayordinates
(clusters, figures) is :mod:`.cifti_geometry`'s.
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass
from pathlib import Path

import nibabel as nb
import numpy as np

from .errors import InputError, not_found, one_line
from .packing import folded_shape, surface_mask
from .surface_names import (  # noqa: F401 (re-exported)
    CIFTI_DENSITY,
    CIFTI_MESH,
    CIFTI_SPACE,
    FSLR_VERTICES,
)
from .surface_names import CIFTI_EXTENSION as MAP_EXTENSION
from .surface_names import CIFTI_SERIES_EXTENSION as SERIES_EXTENSION

#: The mask of a CIFTI run (its default).
CIFTI_MASK = ("grayordinates (the CIFTI file's brain models) with finite, non-constant data "
              "(glm-workflows' CIFTI default)")


def is_cifti_layout(layout: dict) -> bool:
    """Whether a packed image's layout is a CIFTI one (:func:`cifti_layout`)."""
    return "BrainModels" in layout


def is_cifti_file(path) -> bool:
    """Whether ``path`` names a CIFTI-2 dense series or map (by its extension)."""
    return str(path).endswith(("." + SERIES_EXTENSION, "." + MAP_EXTENSION))


def _axes(path, kind: str):
    """``(image, first axis, brain models)`` of a CIFTI-2 file, its header only;
    ``kind`` 'series' (a dtseries: SeriesAxis) or 'map' (a dscalar: ScalarAxis)."""
    path = Path(path)
    if not path.exists():
        raise not_found(path)
    try:
        img = nb.load(str(path))
        axes = [img.header.get_axis(i) for i in range(2)]
    except Exception as exc:  # nibabel raises many types for corrupt files
        raise InputError(f"{path}: not a readable CIFTI-2 image ({one_line(exc)})") from None
    if not isinstance(img, nb.Cifti2Image) or len(img.shape) != 2:
        raise InputError(f"{path}: not a 2-D CIFTI-2 image")
    wanted = {"series": (nb.cifti2.SeriesAxis, "a dense time series (dtseries)"),
              "map": (nb.cifti2.ScalarAxis, "a dense scalar map (dscalar)")}[kind]
    if not isinstance(axes[0], wanted[0]):
        raise InputError(f"{path}: not {wanted[1]}: its first axis is a "
                         f"{type(axes[0]).__name__}")
    if not isinstance(axes[1], nb.cifti2.BrainModelAxis):
        raise InputError(f"{path}: its second axis is a {type(axes[1]).__name__}, not brain "
                         "models (grayordinates)")
    if axes[0].size == 0:
        raise InputError(f"{path}: no {'time point' if kind == 'series' else 'map'}")
    return img, axes[0], axes[1]


@dataclass(frozen=True)
class CiftiHeader:
    """What the checks need of a CIFTI-2 file, from its NIfTI-2 header and CIFTI XML alone
    (:func:`read_header`; nibabel's ``Cifti2Image`` takes about 2 s to load a 91k header)."""

    #: ``IndicesMapToDataType`` of the first axis (``CIFTI_INDEX_TYPE_SERIES``, ...).
    first_axis: str
    #: Time points (series) or maps (scalars), and the series' step and unit.
    size: int
    step: float | None
    unit: str | None
    #: The second axis' type and grayordinates.
    second_axis: str
    n_grayordinates: int
    #: ``(structure, SurfaceNumberOfVertices)`` of the surface brain models.
    nvertices: tuple
    #: SHA-1 of the second axis' XML (its brain models).
    digest: str


def read_header(path) -> CiftiHeader:
    """:class:`CiftiHeader` of a CIFTI-2 file (cached per path, size and modification time).

    Raises
    ------
    InputError
        If the file is missing or not a readable 2-D CIFTI-2 image.
    """
    path = Path(path)
    if not path.exists():
        raise not_found(path)
    stat = path.stat()
    return _read_header(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=4096)
def _read_header(path: str, size: int, mtime: int) -> CiftiHeader:
    """:func:`read_header` (``size`` and ``mtime`` key the cache)."""
    import xml.etree.ElementTree as ET

    try:
        with open(path, "rb") as stream:
            header = nb.Nifti2Header.from_fileobj(stream)
        xml = next(e.content for e in header.extensions if e.get_code() == 32)
        maps = {m.get("AppliesToMatrixDimension"): m
                for m in ET.fromstring(xml).iter("MatrixIndicesMap")}
        shape = header.get_data_shape()
        first, second = maps["0"], maps["1"]
        series = first.get("IndicesMapToDataType") == "CIFTI_INDEX_TYPE_SERIES"
        step = float(first.get("SeriesStep")) * 10.0 ** int(first.get("SeriesExponent", 0)) \
            if series else None
        models = list(second.iter("BrainModel"))
        nvertices = tuple((m.get("BrainStructure"), int(m.get("SurfaceNumberOfVertices")))
                          for m in models if m.get("ModelType") == "CIFTI_MODEL_TYPE_SURFACE")
        sizes = (int(shape[4]), int(shape[5]))
    except Exception as exc:  # not NIfTI-2, no CIFTI extension, bad XML, no such axis
        raise InputError(f"{path}: not a readable 2-D CIFTI-2 image "
                         f"({type(exc).__name__}: {one_line(exc)})") from None
    return CiftiHeader(first_axis=first.get("IndicesMapToDataType", ""), size=sizes[0],
                       step=step, unit=first.get("SeriesUnit") if series else None,
                       second_axis=second.get("IndicesMapToDataType", ""),
                       n_grayordinates=sizes[1], nvertices=nvertices,
                       digest=hashlib.sha1(ET.tostring(second)).hexdigest())


def checked_header(path, kind: str = "series") -> CiftiHeader:
    """:func:`read_header`, refused in one line unless ``kind`` ('series': a dtseries in
    seconds; 'map': a dscalar) on brain models, with at least one time point (map)."""
    header = read_header(path)
    wanted = {"series": ("CIFTI_INDEX_TYPE_SERIES", "a dense time series (dtseries)"),
              "map": ("CIFTI_INDEX_TYPE_SCALARS", "a dense scalar map (dscalar)")}[kind]
    if header.first_axis != wanted[0]:
        raise InputError(f"{path}: not {wanted[1]}: its first axis is "
                         f"{header.first_axis or 'of no type'}")
    if header.second_axis != "CIFTI_INDEX_TYPE_BRAIN_MODELS":
        raise InputError(f"{path}: its second axis is {header.second_axis or 'of no type'}, "
                         "not brain models (grayordinates)")
    if header.size == 0:
        raise InputError(f"{path}: no {'time point' if kind == 'series' else 'map'}")
    if kind == "series" and header.unit != "SECOND":
        raise InputError(f"{path}: its series axis is in {header.unit}, not seconds")
    return header


def check_fslr(path, nvertices) -> None:
    """Refuse surface brain models whose mesh is not fsLR 32k (:data:`FSLR_VERTICES`);
    ``nvertices`` pairs ``(structure, mesh vertices)``."""
    for name, count in dict(nvertices).items():
        if count != FSLR_VERTICES:
            raise InputError(f"{path}: {name} is a mesh of {count} vertices, not fsLR 32k's "
                             f"{FSLR_VERTICES} (space-{CIFTI_SPACE})")


def series_header(path) -> tuple[int, float, int]:
    """A dtseries' ``(n_scans, TR in seconds, n_grayordinates)`` from its header, checked
    (:func:`checked_header`, fsLR 32k cortex meshes)."""
    header = checked_header(path, "series")
    check_fslr(path, header.nvertices)
    return header.size, header.step, header.n_grayordinates


def check_cifti_series(path) -> tuple[int, list[int]]:
    """:func:`~glm_workflows.core.surfaces.check_surface_pair` for a CIFTI run:
    ``(n_scans, [n_grayordinates])``."""
    n_scans, _, n = series_header(path)
    return n_scans, [n]


def check_same_brain_models(paths, kind: str = "series") -> None:
    """Refuse CIFTI files (runs of one analysis, or subjects' maps) whose brain models
    differ from the first's (headers only: their XML compared, then, if it differs,
    nibabel's brain models), naming the file."""
    reference = None
    for path in paths:
        header = checked_header(path, kind)
        if reference is None:
            reference = (path, header)
        elif header.digest != reference[1].digest and \
                _axes(path, kind)[2] != _axes(reference[0], kind)[2]:
            raise InputError(f"{path}: its brain models (grayordinates, "
                             f"{header.n_grayordinates}) differ from those of {reference[0]} "
                             f"({reference[1].n_grayordinates}); every map must be on the "
                             "same ones")


def brain_models_record(brain_models) -> list[dict]:
    """A ``BrainModelAxis`` as JSON-ready structures, in the axis' order: ``Structure``,
    ``Offset``, ``Count`` and the surface's ``Vertices`` (and ``SurfaceVertices``, its
    mesh's count) or the volume's ``Voxels`` (i, j, k), ``VolumeShape``, ``Affine``."""
    record = []
    for name, where, part in brain_models.iter_structures():
        entry = {"Structure": str(name), "Offset": int(where.start or 0), "Count": len(part)}
        if part.surface_mask.all():
            entry.update(Vertices=part.vertex.tolist(),
                         SurfaceVertices=int(part.nvertices[name]))
        else:
            entry.update(Voxels=part.voxel.tolist(), VolumeShape=list(part.volume_shape),
                         Affine=part.affine.tolist())
        record.append(entry)
    return record


def brain_models_axis(record: list[dict]):
    """The inverse of :func:`brain_models_record`: the ``BrainModelAxis``."""
    axis = None
    for entry in record:
        if "Vertices" in entry:
            part = nb.cifti2.BrainModelAxis.from_surface(
                np.asarray(entry["Vertices"], dtype=int), entry["SurfaceVertices"],
                entry["Structure"])
        else:
            voxels = np.asarray(entry["Voxels"], dtype=int).reshape(-1, 3)
            part = nb.cifti2.BrainModelAxis(
                np.full(len(voxels), entry["Structure"]), voxel=voxels,
                affine=np.asarray(entry["Affine"]), volume_shape=tuple(entry["VolumeShape"]))
        axis = part if axis is None else axis + part
    return axis


def cifti_layout(brain_models) -> dict:
    """The JSON beside a packed CIFTI image: :data:`CIFTI_MESH`, the packed shape, the
    number of grayordinates and the brain models (:func:`brain_models_record`)."""
    n = len(brain_models)
    return {"Mesh": CIFTI_MESH, "Hemispheres": [], "Vertices": [], "Grayordinates": n,
            "PackedShape": list(folded_shape(n)),
            "BrainModels": brain_models_record(brain_models)}


def pack_values(data: np.ndarray, layout: dict) -> np.ndarray:
    """``(n_grayordinates, k)`` values on the packed grid ``PackedShape + (k,)``."""
    shape = tuple(layout["PackedShape"])
    padded = np.zeros((math.prod(shape), data.shape[1]), dtype=np.float64)
    padded[: data.shape[0]] = data
    return padded.reshape(shape + (data.shape[1],), order="F")


def pack_cifti(path) -> tuple[nb.Nifti1Image, np.ndarray, dict]:
    """A CIFTI run (dtseries) packed as :func:`~glm_workflows.core.surfaces.pack_surface`
    packs a GIFTI pair: ``(img, mask, layout)``, float64, identity affine; the mask the
    grayordinates of finite, non-constant data (:func:`~.packing.surface_mask`)."""
    img, _, brain_models = _axes(path, "series")
    check_fslr(path, brain_models.nvertices.items())
    layout = cifti_layout(brain_models)
    # float64, as the GIFTI series (nilearn fits float64 series)
    packed = pack_values(np.asarray(img.get_fdata(dtype=np.float64)).T, layout)
    mask = surface_mask(packed)
    if not mask.any():
        raise InputError(f"{path}: no grayordinate of the run has finite, non-constant data")
    return nb.Nifti1Image(packed, np.eye(4)), mask, layout


def pack_cifti_map(path) -> tuple[nb.Nifti1Image, dict]:
    """A written map (dscalar, one map) packed back into a 3-D image, and its layout."""
    img, scalars, brain_models = _axes(path, "map")
    if scalars.size != 1:
        raise InputError(f"{path}: {scalars.size} maps, expected one")
    layout = cifti_layout(brain_models)
    packed = pack_values(np.asarray(img.get_fdata(dtype=np.float64)).T, layout)
    return nb.Nifti1Image(packed[..., 0], np.eye(4)), layout


def unpack_cifti(values: np.ndarray, layout: dict) -> np.ndarray:
    """A packed map's grayordinates: ``(n,)`` or ``(n, k)`` in the brain models' order."""
    shape = tuple(layout["PackedShape"])
    if tuple(values.shape[:3]) != shape:
        raise ValueError(f"map of shape {values.shape} is not packed as {shape}")
    flat = values.reshape((math.prod(shape),) + values.shape[3:], order="F")
    return flat[: layout["Grayordinates"]]


def write_cifti_map(packed_file, layout: dict, out_file, name: str) -> str:
    """A packed map written as a CIFTI-2 dense scalar (``.dscalar.nii``): one map per
    column (``name``, or ``name_<j>`` for several), the layout's brain models; float32
    unless integer (a mask: int32)."""
    values = unpack_cifti(np.asanyarray(nb.load(str(packed_file)).dataobj), layout)
    columns = values[:, np.newaxis] if values.ndim == 1 else values
    dtype = np.int32 if columns.dtype.kind in "biu" else np.float32
    names = [name] if columns.shape[1] == 1 else [f"{name}_{j}"
                                                   for j in range(columns.shape[1])]
    header = nb.cifti2.Cifti2Header.from_axes(
        (nb.cifti2.ScalarAxis(names), brain_models_axis(layout["BrainModels"])))
    nb.Cifti2Image(np.ascontiguousarray(columns.T, dtype=dtype), header).to_filename(
        str(out_file))
    return str(out_file)
