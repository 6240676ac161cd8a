"""fMRIPrep's CIFTI-2 runs: the ``space-fsLR_den-91k_bold.dtseries.nii`` of each selected
raw run (``--space fsLR``), whatever the order of its entities; its TR from the CIFTI's
series axis (:mod:`glm_workflows.core.cifti`)."""

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
from .surfaces import surface_entities


def check_cifti_density(den) -> None:
    """Refuse, in one line, a ``--den`` other than the grayordinates' 91k."""
    if den is not None and den != CIFTI_DENSITY:
        raise InputError(f"--den {den}: space-{CIFTI_SPACE} runs are read as CIFTI-2 "
                         f"grayordinates at den-{CIFTI_DENSITY} only; leave --den out")


def cifti_file(match, desc: str, folders, query=(), found_text=None) -> tuple:
    """The run's ``space-fsLR_den-91k`` dense time series, as ``(path, entities)``;
    refused in one line when there is none (``found_text(match)``, if given, says what
    there is), or when it has another density only."""
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

