"""fMRIPrep's CIFTI-2 runs: the ``space-fsLR_den-91k_bold.dtseries.nii`` of each selected
raw run (``--space fsLR``), whatever the order of its entities; its TR from the CIFTI's
series axis (:mod:`glm_workflows.core.cifti`). ``--space fsLR`` reads fMRIPrep's fsLR 32k
GIFTI pairs instead (:func:`fslr_density`) with ``--den 32k``, or when no selected run has
a CIFTI series."""

from __future__ import annotations

from dataclasses import replace

from ..core.bids_filter import describe, query_keeps
from ..core.cifti import (
    CIFTI_DENSITY,
    CIFTI_MASK,
    CIFTI_MESH,
    CIFTI_SPACE,
    SERIES_EXTENSION,
    series_header,
)
from ..core.errors import InputError
from ..core.surface_names import FSLR_GIFTI_DENSITY
from .surfaces import surface_entities, surface_files


def fslr_density(matches, den, desc: str, query=()) -> str:
    """What ``--space fsLR`` reads: :data:`CIFTI_DENSITY` (each run's CIFTI-2 dense time
    series) or :data:`FSLR_GIFTI_DENSITY` (each run's GIFTI hemisphere pair, fsLR 32k).

    ``--den`` chooses; without it, the CIFTI series when a selected run has one (kept by
    the filters' ``bold`` query), else the GIFTI pairs when a run has one, else the CIFTI
    series (whose refusal says what was searched). Another ``--den`` is refused in one line.
    """
    if den is not None and den not in (CIFTI_DENSITY, FSLR_GIFTI_DENSITY):
        raise InputError(f"--den {den}: space-{CIFTI_SPACE} runs are read as CIFTI-2 "
                         f"grayordinates (den-{CIFTI_DENSITY} .{SERIES_EXTENSION}) or as GIFTI "
                         f"hemisphere pairs (den-{FSLR_GIFTI_DENSITY} .func.gii); choose one "
                         "or leave --den out")
    if den is not None:
        return den
    if any(_cifti_files(match, desc, query) for match in matches):
        return CIFTI_DENSITY
    if any(surface_files(match, CIFTI_SPACE, desc, FSLR_GIFTI_DENSITY, query)
           for match in matches):
        return FSLR_GIFTI_DENSITY
    return CIFTI_DENSITY


def fslr_found_text(desc: str, query=(), found_text=None):
    """``found_text`` for :func:`cifti_file` under ``--space fsLR``: a run with a GIFTI pair
    but no CIFTI series is told that ``--den 32k`` reads the pairs (the CIFTI series are
    read when any selected run has one); any other run as ``found_text`` tells it."""
    def found(match) -> str:
        if surface_files(match, CIFTI_SPACE, desc, FSLR_GIFTI_DENSITY, query):
            return (f"found its GIFTI pair (hemi-L/R_space-{CIFTI_SPACE}_den-"
                    f"{FSLR_GIFTI_DENSITY}): --space {CIFTI_SPACE} reads the CIFTI series "
                    f"when a selected run has one; read the pairs with --den "
                    f"{FSLR_GIFTI_DENSITY}")
        return found_text(match) if found_text else "no GIFTI pair either"
    return found


def _cifti_files(match, desc: str, query=()) -> list:
    """The run's ``space-fsLR`` CIFTI dense time series (any density), as
    ``(path, entities)``, kept by ``desc`` and the filters' ``bold`` query."""
    found = []
    for path, *_ in match.files:
        if not path.name.endswith("." + SERIES_EXTENSION):
            continue
        entities, suffix = surface_entities(path.name)
        if suffix != "bold" or entities.get("space") != CIFTI_SPACE:
            continue
        if entities.get("desc", desc) != desc or "echo" in entities:
            continue
        if not query_keeps(query, entities):  # a --bids-filter-file's bold query
            continue
        found.append((path, entities))
    return found


def cifti_file(match, desc: str, folders, query=(), found_text=None) -> tuple:
    """The run's ``space-fsLR_den-91k`` dense time series, as ``(path, entities)``;
    refused in one line when there is none (``found_text(match)``, if given, says what
    there is), or when it has another density only."""
    found = _cifti_files(match, desc, query)
    kept = [f for f in found if f[1].get("den") == CIFTI_DENSITY]
    if not kept and found:
        raise InputError(f"{found[0][0]}: den-{found[0][1].get('den')} grayordinates; only "
                         f"den-{CIFTI_DENSITY} (fsLR 91k) is read")
    if not kept:
        where = ", ".join(str(f) for f in folders)
        raise InputError(f"{match.bold.name}: no CIFTI series in {where}; searched "
                         f"{match.stem}_space-{CIFTI_SPACE}_den-{CIFTI_DENSITY}_bold."
                         f"{SERIES_EXTENSION}"
                         + (f" (kept by --bids-filter-file: {describe(query)})" if query
                            else "") + (f"; {found_text(match)}" if found_text else ""))
    if len(kept) > 1:
        raise InputError(f"{match.bold.name}: several CIFTI series: "
                         f"{' and '.join(str(p) for p, _ in kept)}")
    return kept[0]


def cifti_run(run, path) -> object:
    """A run's RunInputs (found for its dtseries) made a CIFTI run: the dtseries as its
    ``bold_files``, :data:`CIFTI_MESH` as its surface, the TR the series axis' step
    (refused in one line when the sidecar's RepetitionTime differs)."""
    _, step, _ = series_header(path)
    if abs(step - run.t_r) > 1e-6 * max(step, 1.0):
        raise InputError(f"{path}: its series step (TR) is {step:g} s, but RepetitionTime "
                         f"is {run.t_r:g} s in {run.sources['RepetitionTimeSource']}")
    fallbacks = {k: v for k, v in run.fallbacks.items()
                 if k not in ("MaskSource", "RepetitionTimeSource")}
    return replace(run, mask_file=None, surface=CIFTI_MESH, fallbacks=fallbacks, t_r=step,
                   sources={**run.sources, "MaskSource": CIFTI_MASK,
                            "RepetitionTimeSource": f"{path.name}: series axis step"})

