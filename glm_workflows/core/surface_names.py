"""The names of surface outputs: one file per hemisphere (``hemi-L``/``hemi-R``), GIFTI
functional data, or one CIFTI-2 dense scalar map for grayordinates (``.dscalar.nii``),
named from the volume name the sink builds (:mod:`glm_workflows.core.naming`)."""

from __future__ import annotations

from .entities import BIDS_ENTITY_ORDER, check_label

#: The hemispheres of a surface run, in packing order (fMRIPrep's ``hemi-`` labels).
HEMISPHERES = ("L", "R")

#: The extension of every per-vertex output (one file per hemisphere, GIFTI functional data
#: as fMRIPrep names its surface series), and the volume extension it replaces.
SURFACE_EXTENSION, _VOLUME_EXTENSION = "func.gii", "nii.gz"


def surface_name(name: str, hemi: str) -> str:
    """The name of one hemisphere of a surface output written under volume name ``name``.

    ``hemi-<hemi>`` enters the name's entities in the BIDS schema's order (after ``sub`` ...
    ``run``, ``echo``, before ``space``, ``den`` and ``contrast``, ``stat``), ``.nii.gz`` becomes
    ``.func.gii``: ``sub-01_task-x_space-fsaverage5_contrast-a_stat-z_statmap.nii.gz`` ->
    ``sub-01_task-x_hemi-L_space-fsaverage5_contrast-a_stat-z_statmap.func.gii``. A name of
    another extension (a TSV, a JSON, a figure) is returned unchanged.
    """
    stem, _, extension = name.partition(".")
    if extension != _VOLUME_EXTENSION:
        return name
    check_label(hemi, "hemi")
    parts = stem.split("_")
    position = BIDS_ENTITY_ORDER.index("hemi")
    index = next((i for i, part in enumerate(parts)
                  if "-" not in part or part.split("-")[0] not in BIDS_ENTITY_ORDER
                  or BIDS_ENTITY_ORDER.index(part.split("-")[0]) > position), len(parts))
    parts.insert(index, f"hemi-{hemi}")
    return f"{'_'.join(parts)}.{SURFACE_EXTENSION}"


def volume_name(name: str) -> tuple[str, str] | None:
    """The inverse of :func:`surface_name`: ``(volume name, hemi)`` of one hemisphere's
    output name, or None for a name that is not a surface output's."""
    stem, _, extension = name.partition(".")
    if extension != SURFACE_EXTENSION:
        return None
    parts = stem.split("_")
    hemis = [part for part in parts if part.startswith("hemi-")]
    if len(hemis) != 1:
        return None
    parts.remove(hemis[0])
    return f"{'_'.join(parts)}.{_VOLUME_EXTENSION}", hemis[0].removeprefix("hemi-")


#: The fMRIPrep space whose runs are CIFTI-2 grayordinates, the one density read, and the
#: mesh label of CIFTI runs and maps (their layout's ``Mesh``).
CIFTI_SPACE, CIFTI_DENSITY = "fsLR", "91k"
CIFTI_MESH = f"{CIFTI_SPACE}_den-{CIFTI_DENSITY}"

#: fMRIPrep's fsLR GIFTI pairs (``hemi-L_space-fsLR_den-32k_bold.func.gii``): their
#: density, the vertices of each hemisphere, and their mesh label (a layout's ``Mesh``;
#: also the mesh of a CIFTI file's cortex vertices).
FSLR_GIFTI_DENSITY, FSLR_VERTICES = "32k", 32492
FSLR_MESH = f"{CIFTI_SPACE}_den-{FSLR_GIFTI_DENSITY}"

#: The vertices per hemisphere a mesh's data must have, for the meshes whose data are
#: checked against their count before any work (the fsLR 32k GIFTI pairs).
MESH_VERTICES = {FSLR_MESH: FSLR_VERTICES}

#: The extension of every per-grayordinate output (a CIFTI-2 dense scalar map), and of a
#: CIFTI run (a dense time series).
CIFTI_EXTENSION, CIFTI_SERIES_EXTENSION = "dscalar.nii", "dtseries.nii"


def cifti_name(name: str) -> str:
    """The name of a CIFTI output written under volume name ``name``: ``.nii.gz`` becomes
    ``.dscalar.nii``, no ``hemi-`` (one file holds every grayordinate); a name of another
    extension is returned unchanged."""
    stem, _, extension = name.partition(".")
    return f"{stem}.{CIFTI_EXTENSION}" if extension == _VOLUME_EXTENSION else name


def cifti_volume_name(name: str) -> str | None:
    """The inverse of :func:`cifti_name`: the volume name of a CIFTI output's name, or None
    for a name that is not a CIFTI output's."""
    stem, _, extension = name.partition(".")
    return f"{stem}.{_VOLUME_EXTENSION}" if extension == CIFTI_EXTENSION else None


def map_names(name: str, mesh: str | None) -> list[str]:
    """The files a map written under volume name ``name`` becomes on ``mesh`` (a layout's
    ``Mesh``): one CIFTI file for grayordinates (``fsLR_den-91k``), one GIFTI per
    hemisphere for a mesh, ``[name]`` for a volume (None)."""
    if mesh is None:
        return [name]
    if mesh == CIFTI_MESH:
        return [cifti_name(name)]
    return [surface_name(name, hemi) for hemi in HEMISPHERES]
