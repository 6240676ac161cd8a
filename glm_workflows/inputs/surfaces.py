"""fMRIPrep's surface runs: the GIFTI hemisphere pairs (``hemi-L``/``hemi-R``) of each
selected raw run, in a surface space (:data:`~glm_workflows.core.surfaces.SURFACE_SPACES`).

fMRIPrep has named them ``<run>_hemi-L_space-fsaverage5_bold.func.gii`` (current),
``<run>_space-fsaverage5_hemi-L_bold.func.gii`` and ``<run>_space-fsaverage5_hemi-L.func.gii``
(older), with ``den-`` for fsaverage at a lower density (``space-fsaverage_den-10k``).
The pair is matched by entities, whatever their order.
"""

from __future__ import annotations

from dataclasses import replace

from ..core.bids_filter import describe, query_keeps
from ..core.cifti import CIFTI_MESH, CIFTI_SPACE, check_same_brain_models
from ..core.errors import InputError
from ..core.surfaces import HEMISPHERES, SURFACE_MASK

#: The extension of fMRIPrep's surface series.
GIFTI_EXTENSION = "func.gii"


def surface_entities(name: str) -> tuple[dict, str | None]:
    """``(entities, suffix)`` of a GIFTI name: every ``key-value`` part is an entity (the
    older ``..._hemi-L.func.gii`` ends with one), the suffix (``bold``) or None."""
    stem = name.partition(".")[0]
    entities, suffix = {}, None
    for part in stem.split("_"):
        key, dash, value = part.partition("-")
        if dash:
            entities[key] = value
        else:
            suffix = part
    return entities, suffix


def surface_files(match, space: str, desc: str, den, query=()) -> dict:
    """The run's GIFTI series in ``space`` (and ``den``), by hemisphere.

    Returns
    -------
    files : dict
        ``'L'``/``'R'`` -> list of ``(path, entities)``.
    """
    found: dict = {}
    for path, *_ in match.files:
        if not path.name.endswith("." + GIFTI_EXTENSION):
            continue
        entities, suffix = surface_entities(path.name)
        if suffix not in (None, "bold") or entities.get("space") != space:
            continue
        if entities.get("desc", desc) != desc or "hemi" not in entities:
            continue
        if den is not None and entities.get("den") != den:
            continue
        if "echo" in entities:  # fMRIPrep samples the combined series only
            continue
        if not query_keeps(query, entities):  # a --bids-filter-file's bold query
            continue
        found.setdefault(entities["hemi"], []).append((path, entities))
    return found


def surface_pair(match, space: str, desc: str, den, folders, query=()) -> tuple:
    """The run's left and right hemispheres (``[(path, entities)] * 2``), refused in one line
    when one is missing (naming the file found and the one expected) or ambiguous."""
    found = surface_files(match, space, desc, den, query)
    wanted = f"space-{space}" + (f"_den-{den}" if den else "")
    if not found:
        where = ", ".join(str(f) for f in folders)
        raise InputError(f"{match.bold.name}: no surface series in {where}; searched "
                         f"{match.stem}_hemi-{{L,R}}_{wanted}_bold.func.gii"
                         + (f" (kept by --bids-filter-file: {describe(query)})" if query
                            else ""))
    pair = []
    for hemi in HEMISPHERES:
        files = found.get(hemi, [])
        if not files:
            other = next(iter(found.values()))[0][0]
            expected = other.name.replace(f"hemi-{other_hemi(hemi)}", f"hemi-{hemi}")
            raise InputError(f"{other}: its other hemisphere is missing; expected "
                             f"{other.with_name(expected)}")
        if len(files) > 1:
            dens = sorted({e.get("den") or "none" for _, e in files})
            raise InputError(f"{match.bold.name}: several hemi-{hemi} series in space-{space}: "
                             f"{' and '.join(str(p) for p, _ in files)}; choose one with "
                             f"--den (found den: {', '.join(dens)})")
        pair.append(files[0])
    left, right = pair
    if {k: v for k, v in left[1].items() if k != "hemi"} != \
            {k: v for k, v in right[1].items() if k != "hemi"}:
        raise InputError(f"{right[0]}: its entities differ from {left[0].name}'s "
                         "(besides hemi)")
    return tuple(pair)


def other_hemi(hemi: str) -> str:
    """``'L'`` -> ``'R'`` and back."""
    return HEMISPHERES[1 - HEMISPHERES.index(hemi)]


def surface_run(run, pair, space: str, den) -> object:
    """A run's RunInputs (found for its left hemisphere) made a surface run: both
    hemispheres as its ``bold_files``, its mesh, the surface mask as its mask source."""
    from .runs import _absolute

    fallbacks = {k: v for k, v in run.fallbacks.items() if k != "MaskSource"}
    den = pair[0][1].get("den") or den  # the series' own density
    mesh = space + (f"_den-{den}" if den else "")
    return replace(run, bold_files=[_absolute(path) for path, _ in pair], mask_file=None,
                   surface=mesh, fallbacks=fallbacks,
                   sources={**run.sources, "MaskSource": SURFACE_MASK})



#: The noise models a surface run may use: the calibrated ones smooth their coefficients
#: on a 3-D grid (:mod:`glm_workflows.core.noise`).
SURFACE_NOISE_MODELS = ("ar1", "ols")


def check_surface_runs(runs, *, smoothing_fwhm, noise_model: str, group_level: bool,
                       permutations: int = 0, templateflow_home=None) -> None:
    """Refuse, in one line, what a surface analysis cannot do yet: a user mask, smoothing
    (nilearn does not smooth surfaces either), a calibrated noise model (smoothed on a 3-D
    grid),
    ``fsnative`` (each subject's own mesh) above the subject level, and permutations on a
    mesh without geometry (:func:`check_surface_permutations`); CIFTI runs: one set of
    brain models (:func:`~glm_workflows.core.cifti.check_same_brain_models`), no
    permutations."""
    surfaces = [run for run in runs if run.surface]
    if not surfaces:
        return
    first = surfaces[0]
    if len(surfaces) != len(runs):
        volume = next(run for run in runs if not run.surface)
        raise InputError(f"{volume.bold_files[0]}: a volume run in an analysis of surface "
                         f"runs ({first.bold_files[0]}); analyse one space at a time")
    if first.mask_file:
        raise InputError(f"--mask {first.mask_file}: a mask is not read for surface runs yet "
                         f"(space-{first.space}: the vertices with finite, non-constant "
                         "data are fitted); leave it out")
    if smoothing_fwhm:
        raise InputError(f"--smoothing-fwhm {smoothing_fwhm:g}: surface runs "
                         f"(space-{first.space}) are not smoothed (nilearn does not smooth "
                         "surfaces either); leave it out")
    if noise_model not in SURFACE_NOISE_MODELS:
        raise InputError(f"--noise-model {noise_model}: its coefficients are smoothed on a "
                         f"3-D grid; surface runs (space-{first.space}) take "
                         f"{' or '.join(SURFACE_NOISE_MODELS)}")
    if first.surface == CIFTI_MESH:  # CIFTI grayordinates: one set of brain models
        check_same_brain_models([run.bold_files[0] for run in surfaces])
        if group_level:
            check_cifti_permutations(permutations)
        return
    if group_level and first.space == "fsnative":
        raise InputError("space-fsnative: each subject has its own mesh, so its maps are not "
                         "combined across subjects; use a template surface (--space "
                         "fsaverage5, fsaverage6, fsaverage) for the group level")
    if group_level:
        check_surface_permutations(permutations, first.surface, templateflow_home)


def check_cifti_permutations(permutations: int) -> None:
    """Refuse permutations on CIFTI grayordinates (their clusters, of vertices and voxels,
    are not built), in one line."""
    if permutations:
        raise InputError(f"--permutations {permutations}: permutation inference is not "
                         f"built for CIFTI grayordinates (space-{CIFTI_SPACE}) yet; "
                         "leave it out")


def check_surface_permutations(permutations: int, mesh, templateflow_home=None) -> None:
    """Refuse permutations on surface maps whose mesh no source has (their cluster
    statistics and TFCE need the mesh's faces; :mod:`~glm_workflows.core.mesh_sources`),
    in one line saying where to put the mesh."""
    from ..core.mesh_sources import find_mesh, where_to_put

    if permutations and find_mesh(mesh, templateflow_home) is None:
        raise InputError(f"--permutations {permutations}: permutation inference on surface "
                         f"maps needs the mesh's faces, and mesh {mesh} was not found "
                         f"(nilearn ships fsaverage5 only): {where_to_put(mesh)}, or leave "
                         "--permutations out")
