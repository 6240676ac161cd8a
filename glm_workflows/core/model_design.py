"""The design matrix of a BIDS Stats Models Run node, with nilearn's regressors.

A run's events (and confounds) become variables, the node's ``Transformations`` and
``Model.HRF`` make its columns (:mod:`glm_workflows.core.transformations`; convolution
is nilearn's), ``Model.X`` picks them, in its order; then come nilearn's cosine drifts
when ``Model.Options.HighPassFilterCutoffHz`` is given (none otherwise) and the
intercept if ``X`` holds ``1``: the column order of nilearn's own designs, so that a
model file that states the seed analysis fits exactly what the command-line flags fit.

The node travels as JSON text (:func:`run_node_json`): the design node and the checks
before any work both build the design from it.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import warnings

from .errors import InputError
from .estimability import check_contrasts
from .hrf import CONVOLVED_SUFFIX
from .lazy import pandas as pd
from .stats_model import INTERCEPT, INTERCEPT_NAME, HRFSpec, NodeSpec
from .tables import read_tsv

#: How a note of ``n/a`` replaced by 0 in a design column ends (one per file and column,
#: merged over the runs' files by :func:`merged_na_notes`).
_NA_REPLACED = "replaced by 0 in the design"
_NA_NOTE = re.compile(rf"(?P<file>.+): n/a in (?P<column>'.+' \(\d+ scan\(s\)\)) "
                      rf"{_NA_REPLACED}")


def merged_na_notes(lines: list[str]) -> list[str]:
    """``lines`` with the notes of ``n/a`` replaced by 0 merged (fMRIPrep's derivative
    columns have one in every run's confounds file): one line per set of columns,
    naming the files (the first three, and how many), at the place of the first such
    note; the other lines as they were.

    Parameters
    ----------
    lines : list of str
        Notes and warnings, in order.

    Returns
    -------
    lines : list of str
    """
    columns: dict = {}  # by file: its columns' notes, in order
    kept, first = [], None
    for line in lines:
        match = _NA_NOTE.fullmatch(line)
        if match is None:
            kept.append(line)
            continue
        first = len(kept) if first is None else first
        columns.setdefault(match["file"], []).append(match["column"])
    files: dict = {}
    for file, names in columns.items():
        files.setdefault(tuple(names), []).append(file)
    merged = []
    for names, paths in files.items():
        where = paths[0] if len(paths) == 1 else (
            f"{len(paths)} files ({', '.join(paths[:3])}{', ...' if len(paths) > 3 else ''})")
        merged.append(f"{where}: n/a in {', '.join(names)} {_NA_REPLACED}")
    return kept if first is None else [*kept[:first], *merged, *kept[first:]]


def run_node_json(node: NodeSpec) -> str:
    """What the design of a Run node depends on, as JSON text (sorted keys: a setting
    that hashes the same for the same node)."""
    hrf = None if node.hrf is None else {
        "Variables": list(node.hrf.variables), "Model": node.hrf.model,
        "FirDelays": None if node.hrf.fir_delays is None else list(node.hrf.fir_delays)}
    return json.dumps({"Path": node.path, "Instructions": list(node.transformations),
                       "X": list(node.x), "HRF": hrf, "HighPassFilterCutoffHz": node.high_pass},
                      sort_keys=True)


def _read_node(text: str) -> dict:
    node = json.loads(text)
    hrf = node["HRF"]
    node["HRF"] = None if hrf is None else HRFSpec(
        tuple(hrf["Variables"]), hrf["Model"],
        None if hrf["FirDelays"] is None else tuple(hrf["FirDelays"]))
    return node


def model_design(events_file, n_scans: int, t_r: float, *, run_node: str,
                 confounds_file=None, slice_time_ref: float,
                 contrasts=()) -> tuple[pd.DataFrame, list[str]]:
    """The checked design matrix of one run under a Run node, and the warnings about it.

    Parameters
    ----------
    events_file : str or PathLike
        The run's events.tsv (every column but onset and duration is a variable).
    n_scans : int
    t_r : float
    run_node : str
        :func:`run_node_json` of the Run node.
    confounds_file : str or PathLike or None
        The run's confounds TSV (fMRIPrep's): each column is a variable; ``n/a`` in a
        column ``X`` takes (fMRIPrep's first row of derivatives) becomes 0, with a warning.
    slice_time_ref : float
    contrasts : sequence of (name, stat_type, rows)
        Checked against the design (parsed, estimable).

    Returns
    -------
    design : pandas.DataFrame
        One row per scan indexed by frame time: the ``X`` columns, drifts, intercept.
    warnings : list of str

    Raises
    ------
    InputError
        One line naming the file or the node's JSON path.
    """
    from nilearn.glm.first_level import make_first_level_design_matrix

    from .hrf import frame_times
    from .transformations import apply_transformations
    from .variables import run_variables

    node = _read_node(run_node)
    where = node["Path"]
    notes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        events = _read_table(events_file)
        confounds = None
        if confounds_file:
            confounds = _read_table(confounds_file)
            if len(confounds) != n_scans:
                raise InputError(f"{confounds_file}: {len(confounds)} rows, expected one per "
                                 f"scan ({n_scans})")
        variables = run_variables(events, confounds, source=str(events_file))
        try:
            columns = apply_transformations(node["Instructions"], variables, t_r=t_r,
                                            n_scans=n_scans, slice_time_ref=slice_time_ref,
                                            path_prefix=where, hrf=node["HRF"], x=node["X"])
        except InputError as exc:  # name the run whose variables it could not transform
            if os.fspath(events_file) in str(exc):
                raise
            raise InputError(f"{exc} (in the run of {os.fspath(events_file)})") from None
    notes += [str(w.message) for w in caught]
    picked = _picked_columns(node["X"], columns, where, events_file, confounds_file)
    design = columns[picked].astype(float)
    for name in picked:
        missing = design[name].isna()
        if missing.any():
            source = confounds_file if confounds is not None and name in confounds else \
                events_file
            notes.append(f"{source}: n/a in '{name}' ({int(missing.sum())} scan(s)) "
                         f"{_NA_REPLACED}")
            design[name] = design[name].fillna(0.0)
    times = frame_times(n_scans, t_r, slice_time_ref)
    design.index = times
    if node["HighPassFilterCutoffHz"] is not None:
        high_pass = node["HighPassFilterCutoffHz"]
        if not 0 < high_pass < 1 / (2 * t_r):
            raise InputError(f"{where}.Model.Options.HighPassFilterCutoffHz: expected a "
                             f"frequency below the Nyquist frequency {1 / (2 * t_r):g} Hz "
                             f"of {events_file}, got {high_pass!r}")
        drifts = make_first_level_design_matrix(times, None, drift_model="cosine",
                                                high_pass=high_pass)
        design = pd.concat([design, drifts.drop(columns="constant")], axis=1)
    if INTERCEPT in node["X"]:
        design[INTERCEPT_NAME] = 1.0
    if design.shape[1] >= n_scans:
        raise InputError(f"{events_file}: the run has {n_scans} scans for {design.shape[1]} "
                         "regressors: no residual degrees of freedom")
    check_contrasts(contrasts, design, events_file)
    return design, list(dict.fromkeys(notes))


def _convolved_columns(name: str, available: list[str]) -> list[str]:
    """The columns convolving ``name`` made, in nilearn's order: ``name`` and its
    ``_derivative`` and ``_dispersion``, or its FIR delays ``_delay_<d>``."""
    suffixes = re.compile(re.escape(name) + CONVOLVED_SUFFIX + "?")
    return [c for c in available if suffixes.fullmatch(c)]


def _picked_columns(x, columns: pd.DataFrame, where: str, events_file,
                    confounds_file=None) -> list[str]:
    """The design columns ``Model.X`` names (globs expand in the variables' order; a
    convolved variable brings its derivative, dispersion or FIR columns); a name no
    variable has is refused, saying so when the run has no confounds file to take it
    from (a confound named in ``X``: fMRIPrep's file missing, or no ``--derivatives``)."""
    available = [str(c) for c in columns.columns]
    picked = []
    for index, entry in enumerate(x):
        if entry == INTERCEPT:
            continue
        matches = [c for c in available if fnmatch.fnmatchcase(c, entry)] \
            if any(ch in entry for ch in "*?[") else _convolved_columns(entry, available)
        if not matches:
            raise InputError(f"{where}.Model.X[{index}]: no variable {entry!r} in the run of "
                             f"{os.fspath(events_file)} after the transformations "
                             f"(available: {', '.join(available) or 'none'})"
                             + ("" if confounds_file is not None or "." in entry else
                                "; the run has no confounds file (fMRIPrep's "
                                "*_desc-confounds_timeseries.tsv, read with --derivatives)"))
        picked += [m for m in matches if m not in picked]
    return picked


def _read_table(path) -> pd.DataFrame:
    """A BIDS TSV (``n/a`` for missing values)."""
    try:
        return read_tsv(path, na_values=["n/a"])
    except FileNotFoundError:
        raise InputError(f"{path}: file not found") from None
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{path}: not a readable tab-separated file ({exc})") from None
