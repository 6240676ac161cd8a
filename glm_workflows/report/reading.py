"""Reading results back from the derivatives folder, for the report pages.

Everything the reports show comes from here: which models (BIDS prefixes) and contrasts
a subject folder holds (with its session folders), which group contrasts the group folder
holds, the design and
contrast sidecars, the design and cluster tables, the z and permutation maps and the
analyses' provenance records. Missing or unreadable files give None, so the page
says what is missing instead of failing.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import nibabel as nb
import numpy as np

from ..core.analyses import analysis_label, analysis_record, parse_analysis, parse_analysis_record
from ..core.entities import (
    EXTRA_ENTITIES,
    TEMPLATE_ENTITIES,
    parse_prefix,
    template_of,
    template_part,
)
from ..core.lazy import pandas as pd
from ..core.naming import (
    GROUP_OUTPUTS,
    contrast_file,
    contrast_names,
    model_file,
    output_path,
    parse_group_stem,
    parse_output_name,
    parse_session_folder,
)

#: The outputs whose presence makes a prefix a model of the report.
_MODEL_MARKERS = ("design_file", "design_json", "contrast_jsons")


def find_prefixes(folder, subject) -> list[str]:
    """The result prefixes of a subject folder, subject level first, then runs in order.

    Parameters
    ----------
    folder : str or PathLike
        ``<derivatives>/sub-<subject>``.
    subject : str
        Subject label (without ``sub-``).

    Returns
    -------
    prefixes : list of str
        The prefixes (:func:`~glm_workflows.core.entities.bids_prefix`) of every design or
        contrast sidecar found; empty if the folder does not exist.
    """
    parsed = (parse_output_name(name) for name in _listing(folder))
    found = {p.prefix for p in parsed if p is not None and p.output in _MODEL_MARKERS
             and parse_prefix(p.prefix)["subject"] == subject}
    return sorted(found, key=_prefix_order)


def group_prefixes(prefixes) -> dict:
    """The result prefixes by session and template: ``{(session, space): [prefix, ...]}``
    (None where absent; ``space`` with its other template entities, e.g.
    ``MNI152NLin2009cAsym_res-2``), in the order given."""
    groups: dict = {}
    for prefix in prefixes:
        entities = parse_prefix(prefix)
        template = template_part(**template_of(entities))[len("_space-"):] or None
        groups.setdefault((entities["session"], template), []).append(prefix)
    return groups


def find_contrasts(folder, prefix: str) -> list[str]:
    """Names of the contrasts saved under ``prefix`` (those with a contrast sidecar)."""
    return contrast_names(_listing(folder), prefix)


#: The entities telling apart the runs a subject level combines, in BIDS order.
_RUN_ENTITIES = {"session": "ses", **{key: key for key in EXTRA_ENTITIES}, "run": "run"}


def runs_combined(prefix: str, prefixes) -> list[str]:
    """The runs among ``prefixes`` that ``prefix`` (a subject level) combines, each named
    by what tells it apart from ``prefix``: its run index when that is all (``"2"``),
    else its entities (``"acq-hi"``, ``"ses-b_run-1"``).

    A run of ``prefix`` has its subject and task and every other entity ``prefix`` has
    (the subject level keeps those all its runs share), plus more; a prefix that other
    prefixes refine in turn is a subject level too, not a run.
    """
    base = parse_prefix(prefix)
    parsed = [parse_prefix(other) for other in prefixes]
    runs = []
    for entities in parsed:
        if not _refines(entities, base) or any(_refines(more, entities) for more in parsed):
            continue
        extra = {key: entities[key] for key in _RUN_ENTITIES if entities[key] and not base[key]}
        runs.append(extra["run"] if list(extra) == ["run"] else
                    "_".join(f"{_RUN_ENTITIES[key]}-{value}" for key, value in extra.items()))
    return runs


def _refines(entities: dict, base: dict) -> bool:
    """Whether a prefix's ``entities`` are those of ``base`` plus at least one more, in
    the same template (a ``res-2`` run is none of a plain space's subject level)."""
    return (entities["subject"] == base["subject"] and entities["task"] == base["task"]
            and template_of(entities) == template_of(base)
            and all(entities[key] == base[key] for key in _RUN_ENTITIES if base[key])
            and any(entities[key] and not base[key] for key in _RUN_ENTITIES))


def read_designs(folder: Path, prefixes) -> dict:
    """Each model's design sidecar, with its contrasts' noise model(s) as ``NoiseModel``,
    the fit's smoothing width (mm) as ``SmoothingFWHM`` (when the runs were smoothed) and
    a run's whitening check as ``WhiteningCheck`` (its model sidecar's one line).

    Returns
    -------
    designs : dict of str to dict
        By prefix; models without a readable design sidecar are left out.
    """
    designs = {}
    for prefix in prefixes:
        design = read_json(result_path(folder, model_file(prefix, "design_json")))
        if design is None:
            continue
        sidecars = (read_contrast_json(folder, prefix, contrast, "contrast_jsons")
                    for contrast in find_contrasts(folder, prefix))
        sidecars = [s for s in sidecars if s]
        noise = sorted({str(s["NoiseModel"]) for s in sidecars if "NoiseModel" in s})
        designs[prefix] = {**design, "NoiseModel": ", ".join(noise)} if noise else design
        smoothing = sorted({float(s["SmoothingFWHM"]) for s in sidecars
                            if s.get("SmoothingFWHM") is not None})
        if smoothing:  # the fit's spatial smoothing (absent: none)
            designs[prefix]["SmoothingFWHM"] = smoothing[0] if len(smoothing) == 1 \
                else smoothing
        check = (read_json(result_path(folder, model_file(prefix, "model_json"))) or {}) \
            .get("WhiteningCheck")
        if isinstance(check, dict) and check.get("Summary"):  # a run's fit diagnostics
            designs[prefix]["WhiteningCheck"] = str(check["Summary"])
        summary = next((s["AutocorrelationSummary"] for s in sidecars
                        if "AutocorrelationSummary" in s), None)
        if summary:  # what a calibrated noise model whitened
            designs[prefix]["AREstimates"] = "; ".join(
                f"{name}: median {s['Median']:.2f}, quartiles {s['Quartiles'][0]:.2f} to "
                f"{s['Quartiles'][1]:.2f}, voxels per 0.1 bin from {s['HistogramEdges'][0]:g}: "
                f"{_trimmed(s['HistogramCounts'])}" for name, s in summary.items())
    return designs


def _trimmed(counts) -> str:
    """Histogram counts without their leading and trailing empty bins (their range)."""
    nonzero = [i for i, count in enumerate(counts) if count]
    if not nonzero:
        return "none"
    return f"{counts[nonzero[0]:nonzero[-1] + 1]} (bins {nonzero[0]}-{nonzero[-1]})"


def read_design_shape(folder: Path, prefix: str) -> tuple[int, int] | None:
    """(scans, regressors) of a model's design matrix TSV; None if it is missing."""
    path = result_path(folder, model_file(prefix, "design_file"))
    return pd.read_csv(path, sep="\t").shape if path.exists() else None


def read_contrast_json(folder: Path, prefix: str, contrast: str, output: str) -> dict | None:
    """A contrast's JSON output (``contrast_jsons`` or ``threshold_jsons``), see
    :func:`read_json`."""
    return read_json(result_path(folder, contrast_file(prefix, contrast, output)))


def read_clusters(folder: Path, prefix: str, contrast: str) -> list[dict] | None:
    """The rows of a contrast's cluster table as dicts of strings; None if it is missing."""
    return read_tsv(result_path(folder, contrast_file(prefix, contrast, "cluster_tables")))


def read_tsv(path: Path) -> list[dict] | None:
    """The rows of a TSV file as dicts of strings (column order kept); None if missing."""
    if not path.exists():
        return None
    with open(path, newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream, delimiter="\t"))


def removed_by_extent(folder: Path, prefix: str, contrast: str, settings: dict) -> bool:
    """Whether some voxel of the contrast's z map passes the finite height threshold, so
    that the cluster extent removed every voxel (assumed when the map is missing)."""
    z_map = result_path(folder, contrast_file(prefix, contrast, "z_maps"))
    return map_removed_by_extent(z_map, settings)


def map_removed_by_extent(z_map: Path, settings: dict) -> bool:
    """:func:`removed_by_extent` of the z map at ``z_map`` (any level's)."""
    threshold = settings.get("Threshold")
    if threshold is None or not np.isfinite(threshold) or not settings.get("ClusterThreshold"):
        return False
    if not z_map.exists():
        return True
    z = np.nan_to_num(np.asanyarray(nb.load(z_map).dataobj, dtype=np.float64))
    return bool(((np.abs(z) if settings.get("TwoSided") else z) >= threshold).any())


def find_group_stems(folder) -> list[str]:
    """The group contrasts of the group folder, as their stems
    ``task-<T>[_space-<S>]...[_node-<N>]_contrast-<C>[+<G>]``
    (:func:`~glm_workflows.core.naming.group_stem`).

    Parameters
    ----------
    folder : str or PathLike
        ``<derivatives>/group``.

    Returns
    -------
    stems : list of str
        The stems of every contrast sidecar found, by task and first-level contrast, the
        group mean before the other group contrasts; empty if the folder does not exist.
    """
    suffix = "_" + GROUP_OUTPUTS["contrast_jsons"]
    stems = (name[:-len(suffix)] for name in _listing(folder) if name.endswith(suffix))
    found = [stem for stem in stems if parse_group_stem(stem)]
    return sorted(found, key=_group_order)


def _group_order(stem: str):
    parts = parse_group_stem(stem)
    return (parts["task"], *(parts[entity] or "" for entity in TEMPLATE_ENTITIES),
            parts["node"] or "", parts["contrast"],
            parts["group"] is not None,
            parts["group"] or "")


def read_max(path: Path) -> float | None:
    """The largest finite value of an image (e.g. a -log10 p map); None if the file is
    missing, unreadable or has no finite value."""
    if not path.exists():
        return None
    try:
        data = np.asanyarray(nb.load(path).dataobj, dtype=np.float64)
    except Exception:  # any unreadable image is reported as such
        return None
    finite = data[np.isfinite(data)]
    return float(finite.max()) if finite.size else None


def read_records(folder) -> dict:
    """The analyses' records in ``folder`` (``<analysis>_provenance.json``), by analysis
    label in order; empty if there is none.

    An unreadable record is a dict holding only the key ``"Error"``, so the report says
    why its section is empty instead of failing.
    """
    records = {}
    for label in sorted(filter(None, map(parse_analysis_record, _listing(folder)))):
        path = Path(folder) / analysis_record(label)
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            record = {"Error": f"{path.name} could not be read ({exc})"}
        if not isinstance(record, dict):
            record = {"Error": f"{path.name}: expected a JSON object"}
        records[label] = record
    return records


def find_analyses(folder, prefixes) -> list[str]:
    """The analyses whose results a subject folder holds: those with a record, and, for
    results of a task no record covers, ``task-<T>``.

    Parameters
    ----------
    folder : str or PathLike
        ``<derivatives>/sub-<subject>``.
    prefixes : list of str
        Its result prefixes (:func:`find_prefixes`).

    Returns
    -------
    analyses : list of str
        Analysis labels (:func:`~glm_workflows.core.analyses.analysis_label`), sorted.
    """
    recorded = set(filter(None, map(parse_analysis_record, _listing(folder))))
    tasks = {parse_analysis(label)["task"] for label in recorded}
    unrecorded = {analysis_label(parse_prefix(prefix)["task"]) for prefix in prefixes
                  if parse_prefix(prefix)["task"] not in tasks}
    return sorted(recorded | unrecorded)


def read_json(path: Path) -> dict | None:
    """A JSON sidecar's object; None if missing, unreadable or not an object."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def result_path(folder, name: str) -> Path:
    """The path of a subject's output ``name`` (:mod:`~glm_workflows.core.naming`), from
    its subject's ``folder``: in the session folder ``ses-<label>/`` its name gives, if
    any."""
    return Path(folder).parent / output_path(name)


def _listing(folder) -> list[str]:
    """The file names in ``folder`` and in its session folders (``ses-<label>/``, in a
    subject's folder); empty if it is not a folder."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    sessions = [p for p in folder.iterdir() if p.is_dir() and parse_session_folder(p.name)]
    return [p.name for where in (folder, *sessions) for p in where.iterdir()]


def _prefix_order(prefix: str):
    """Sort key: by session, space and task, the subject level (fewer entities) before its runs,
    runs in order (index entities as numbers)."""
    entities = parse_prefix(prefix)
    others = [entities[key] for key in (*EXTRA_ENTITIES, "run")]
    return (entities["session"] or "", template_part(**template_of(entities)), entities["task"],
            sum(v is not None for v in others),
            *((len(v), v) if v else (0, "") for v in others))
