"""Events, confounds and the first-level design matrix (nilearn underneath).

:func:`first_level_design` is the one way from a run's files to its checked design:
the command line validates runs with it and the DesignMatrix node builds with it.
nilearn's design function is imported when a design is made: importing ``nilearn.glm``
loads scikit-learn, which finding runs and refusing bad settings need not wait for.
"""

from __future__ import annotations

import os
import re
import warnings

import numpy as np

from .choices import DRIFT_MODELS
from .errors import InputError, one_line
from .estimability import check_contrasts, estimability_problem
from .hrf import HRF_COLUMN_SUFFIXES, HRF_MODELS, frame_times  # also importable from here
from .lazy import pandas as pd
from .run_tables import (
    EventsWarning,
    check_repetition_time,
    read_confounds,
    read_events,
)

#: Every module of this package a design depends on: this one and all it imports, directly
#: or not, at module level or in a function (the model-file design included). Their
#: source keys the kept outcomes of design checks (glm_workflows.inputs.checks);
#: tests/test_architecture.py checks the list against the imports.
DESIGN_MODULES = (
    "glm_workflows.core.design",
    "glm_workflows.core.hrf",
    "glm_workflows.core.contrasts",
    "glm_workflows.core.estimability",
    "glm_workflows.core.run_tables",
    "glm_workflows.core.confounds",
    "glm_workflows.core.tables",
    "glm_workflows.core.errors",
    "glm_workflows.core.model_design",
    "glm_workflows.core.stats_model",
    "glm_workflows.core.transformations",
    "glm_workflows.core.transform_checks",
    "glm_workflows.core.variables",
    "glm_workflows.core.transform_munge",
    "glm_workflows.core.transform_query",
    "glm_workflows.core.convolution",
    "glm_workflows.core.choices",
    "glm_workflows.core.lazy",
)


#: fMRIPrep's (and nilearn's) discrete cosine high-pass regressors: ``cosine00``, ...
_COSINE_COLUMN = re.compile(r"cosine\d+")


def cosine_columns(columns) -> list[str]:
    """The names among ``columns`` that are cosine high-pass regressors (``cosineXX``)."""
    return [str(c) for c in columns if _COSINE_COLUMN.fullmatch(str(c))]


def effective_drift_model(drift_model: str, confound_names=()) -> str:
    """The drift model a run's design gets: ``auto`` decided from its confounds.

    ``auto`` is ``none`` when the confounds the design takes hold cosine high-pass
    regressors (fMRIPrep's ``cosineXX``: they already high-pass the data), and
    ``cosine`` otherwise (so a confounds table without them, from an older fMRIPrep or
    another tool, never leaves the run without a high-pass filter). Any other value
    is returned as it is.

    Parameters
    ----------
    drift_model : str
        One of :data:`glm_workflows.settings.DRIFT_MODELS`.
    confound_names : iterable of str
        The names of the confound columns the design takes.

    Returns
    -------
    str
        ``cosine``, ``polynomial`` or ``none``.
    """
    if drift_model != "auto":
        return drift_model
    return "none" if cosine_columns(confound_names) else "cosine"


def check_model_settings(n_scans: int, t_r, *, hrf_model: str,
                         drift_model: str,
                         high_pass: float,
                         drift_order: int,
                         slice_time_ref: float) -> float:
    """Refuse model settings nilearn would reject, ignore or fail on; return the TR.

    The high-pass cut-off is checked for cosine (and ``auto``) drifts only (the other
    drift models ignore it), the order for any drift model (it must be >= 0) and, with
    polynomial drifts, against the number of scans.

    Raises
    ------
    InputError
        Naming the setting and its allowed range.
    """
    t_r = check_repetition_time(t_r)
    if hrf_model not in HRF_MODELS:
        raise InputError(f"hrf_model: expected one of {', '.join(HRF_MODELS)}, got {hrf_model!r}")
    if drift_model not in DRIFT_MODELS:
        raise InputError(f"drift_model: expected one of {', '.join(DRIFT_MODELS)}, "
                         f"got {drift_model!r}")
    if not 0 <= slice_time_ref <= 1:
        raise InputError(f"slice_time_ref: expected a number in [0, 1], got {slice_time_ref!r}")
    if drift_model in ("auto", "cosine") and not 0 < high_pass < 1 / (2 * t_r):
        raise InputError(f"high_pass: expected a frequency between 0 and the Nyquist "
                         f"frequency {1 / (2 * t_r):g} Hz, got {high_pass!r}")
    if drift_order < 0:
        raise InputError(f"drift_order: expected an order >= 0, got {drift_order!r}")
    if drift_model == "polynomial" and drift_order >= n_scans:
        raise InputError(f"drift_order: expected at most {n_scans - 1} for a run of {n_scans} "
                         f"scans, got {drift_order!r}")
    return t_r


def make_design_matrix(
    events: pd.DataFrame,
    n_scans: int,
    t_r: float,
    *,
    hrf_model: str,
    drift_model: str,
    high_pass: float,
    drift_order: int,
    slice_time_ref: float,
    confounds: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """First-level design matrix, one row per scan, from checked events.

    A thin layer over :func:`nilearn.glm.first_level.make_first_level_design_matrix`,
    with the frame times FirstLevelModel uses, so the result equals the design
    nilearn would build inside ``FirstLevelModel.fit``. The settings are checked
    with :func:`check_model_settings`; the design itself is not (see
    :func:`first_level_design`).

    Returns
    -------
    design : pandas.DataFrame
        Shape ``(n_scans, n_regressors)``, indexed by frame time in seconds.
    """
    t_r = check_model_settings(n_scans, t_r, hrf_model=hrf_model, drift_model=drift_model,
                               high_pass=high_pass, drift_order=drift_order,
                               slice_time_ref=slice_time_ref)
    drift_model = effective_drift_model(drift_model, () if confounds is None else confounds)
    from nilearn.glm.first_level import make_first_level_design_matrix

    return make_first_level_design_matrix(
        frame_times(n_scans, t_r, slice_time_ref),
        events,
        hrf_model=hrf_model,
        drift_model=None if drift_model == "none" else drift_model,
        high_pass=high_pass,
        drift_order=drift_order,
        add_regs=None if confounds is None else confounds.to_numpy(),
        add_reg_names=None if confounds is None else list(confounds.columns),
    )


def load_design_functions() -> None:
    """Import nilearn's design-matrix functions now (about a second: scikit-learn comes
    with them), e.g. before forking processes that build designs, which then inherit
    them rather than each importing them."""
    import nilearn.glm.first_level  # noqa: F401


def first_level_design(
    events_file: str | os.PathLike,
    n_scans: int,
    t_r: float,
    *,
    confounds_file: str | os.PathLike | None = None,
    confounds: pd.DataFrame | None = None,
    sample_mask=None,
    hrf_model: str,
    drift_model: str,
    high_pass: float,
    drift_order: int,
    slice_time_ref: float,
    run_node: str,
    contrasts=(),
) -> tuple[pd.DataFrame, list[str]]:
    """The checked design matrix of one run, from its files, and the warnings about it.

    Checks, in this order: the model settings (:func:`check_model_settings`); the
    events (:func:`read_events`: events after the last frame are dropped, a
    condition left without events is refused) and confounds
    (:func:`read_confounds`); that no two regressors would share a name (a
    condition, a confound column, a drift or the constant); that the run has more
    scans than regressors; then, on the design nilearn builds, that each contrast
    parses and is estimable and that each condition's regressors are estimable
    (not zero, not linearly dependent on other columns). Confounds and drifts may be
    collinear with each other (the fit's pseudo-inverse copes), but a contrast
    weighting them must be estimable.

    Parameters
    ----------
    events_file : str or PathLike
        The run's events.tsv.
    n_scans : int
        Number of scans of the run.
    t_r : float
        Repetition time (s).
    confounds_file : str or PathLike or None
        Optional confounds TSV, one row per scan (all its columns are regressors).
    confounds : pandas.DataFrame or None
        Confounds already selected from ``confounds_file`` (e.g. by
        :func:`glm_workflows.core.confounds.select_confounds`), used instead of reading
        the whole file; ``confounds_file`` then only names them in messages.
    sample_mask : sequence of int or None
        The volumes the fit keeps (censoring); the design is built on every frame, and
        the kept volumes must outnumber its regressors.
    hrf_model, drift_model, high_pass, drift_order, slice_time_ref
        As :func:`make_design_matrix`; ``drift_model='auto'`` is decided from the
        confounds the design takes (:func:`effective_drift_model`).
    run_node : str
        A BIDS Stats Models Run node: the design is
        :func:`~glm_workflows.core.model_design.model_design`'s (the HRF, drift and
        confounds settings are then the node's).
    contrasts : sequence of (name, stat_type, rows)
        Checked against the design before the conditions are, so that a problem a
        contrast meets is reported under the contrast's name.

    Returns
    -------
    design : pandas.DataFrame
        Exactly :func:`make_design_matrix` of the kept events.
    warnings : list of str
        One line each, once, naming the events file: events dropped after the last
        frame, and what nilearn warned about while building (but a singular design,
        which is checked instead).

    Raises
    ------
    InputError
        One line naming the file, setting or contrast, on the first problem.
    """
    if run_node:  # one way: model_design and what it imports never import this module
        from .model_design import model_design

        return model_design(events_file, n_scans, check_repetition_time(t_r),
                            run_node=run_node, confounds_file=confounds_file,
                            slice_time_ref=slice_time_ref, contrasts=contrasts)
    settings = dict(hrf_model=hrf_model, drift_model=drift_model, high_pass=high_pass,
                    drift_order=drift_order, slice_time_ref=slice_time_ref)
    t_r = check_model_settings(n_scans, t_r, **settings)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # nilearn's note of a singular design: checked below instead
        warnings.filterwarnings("ignore", "Matrix is singular at working precision")
        warnings.filterwarnings("ignore", "divide by zero", RuntimeWarning)
        events = read_events(events_file, n_scans, t_r, slice_time_ref)
        if confounds is None and confounds_file:
            confounds = read_confounds(confounds_file, n_scans)
        conditions = _condition_columns(events, hrf_model)
        confound_names = () if confounds is None else list(confounds.columns)
        drift_model = settings["drift_model"] = effective_drift_model(drift_model,
                                                                      confound_names)
        cosines = cosine_columns(confound_names)
        if drift_model != "none" and cosines:
            warnings.warn(f"{confounds_file}: the design has {drift_model} drifts and the "
                          f"confounds' cosine regressors ({', '.join(cosines)}) both",
                          EventsWarning, stacklevel=2)
        drifts = _drift_columns(n_scans, t_r, drift_model, high_pass, drift_order,
                                slice_time_ref)
        columns = _check_column_names(conditions, confounds, drifts, events_file=events_file,
                                      confounds_file=confounds_file)
        if n_scans <= len(columns):
            raise InputError(
                f"{events_file}: the run has {n_scans} scans for {len(columns)} regressors: "
                "no residual degrees of freedom (a run needs more scans than regressors)")
        n_kept = n_scans if sample_mask is None else len(sample_mask)
        if n_kept <= len(columns):
            raise InputError(
                f"{confounds_file}: {n_kept} of {n_scans} volumes kept after censoring for "
                f"{len(columns)} regressors: no residual degrees of freedom")
        design = make_design_matrix(events, n_scans, t_r, confounds=confounds, **settings)
    check_contrasts(contrasts, design, events_file)
    _check_conditions(design, conditions, events_file)
    return design, list(dict.fromkeys(_warning_line(w, events_file) for w in caught))


def design_confounds(bold_file, confounds_file, n_scans: int, selection: dict | None):
    """The confounds a run's design takes from an fMRIPrep confounds file, and its sample
    mask, as :func:`glm_workflows.core.confounds.select_confounds` selects them.

    Parameters
    ----------
    bold_file : str
        The run's preprocessed bold (nilearn's presets find their files from its name).
    confounds_file : str or None
        The run's confounds TSV.
    n_scans : int
        Volumes of the run.
    selection : dict or None
        :meth:`glm_workflows.settings.ConfoundSettings.selection`; None or one that
        selects nothing: the design takes every column of ``confounds_file`` (if any).

    Returns
    -------
    confounds : pandas.DataFrame or None
        None: read ``confounds_file`` whole (or no confounds).
    sample_mask : ndarray or None
        Kept volumes; None if none is censored.
    """
    if not selection or not (selection["strategy"] or selection["columns"]):
        return None, None
    if not confounds_file:
        raise InputError(f"{bold_file}: no confounds file (desc-confounds_timeseries.tsv) "
                         "for this run; needed by --confounds-strategy/--confounds-columns")
    from .confounds import select_confounds

    return select_confounds(bold_file, confounds_file, strategy=selection["strategy"] or None,
                            columns=tuple(selection["columns"]), demean=selection["demean"],
                            n_scans=n_scans, **selection["options"])


def confound_columns(confounds: pd.DataFrame | None, confounds_file) -> list[str]:
    """The names of the confounds a design takes: the selected ones, else every column of
    ``confounds_file`` (none without a file)."""
    if confounds is not None:
        return [str(c) for c in confounds.columns]
    if not confounds_file:
        return []
    return [str(c) for c in pd.read_csv(confounds_file, sep="\t", nrows=0).columns]


def _warning_line(caught_warning, events_file) -> str:
    """One line for a warning raised while building a design, naming the events file."""
    message = one_line(caught_warning.message)
    return message if issubclass(caught_warning.category, EventsWarning) \
        else f"{events_file}: {message}"


def _check_conditions(design: pd.DataFrame, conditions: list, events_file) -> None:
    """Refuse a condition whose regressor is zero or linearly dependent on other columns."""
    for column, condition in conditions:
        problem = estimability_problem(design.columns == column, design)
        if problem:
            raise InputError(f"{events_file}: condition '{condition}' cannot be estimated: "
                             f"{problem}")


def _condition_columns(events: pd.DataFrame, hrf_model: str) -> list[tuple[str, str]]:
    """(design column name, condition) of every regressor the events give."""
    return [(f"{condition}{suffix}", condition)
            for condition in np.unique(events["trial_type"])
            for suffix in HRF_COLUMN_SUFFIXES[hrf_model]]


def _drift_columns(n_scans: int, t_r: float, drift_model: str, high_pass: float,
                   drift_order: int, slice_time_ref: float) -> list[str]:
    """Names of the drift regressors and the constant nilearn adds to a design."""
    if n_scans < 2:  # no drift fits one frame; such a run has no residual dof anyway
        return ["constant"]
    from nilearn.glm.first_level import make_first_level_design_matrix

    drifts = make_first_level_design_matrix(
        frame_times(n_scans, t_r, slice_time_ref), None,
        drift_model=None if drift_model == "none" else drift_model,
        high_pass=high_pass, drift_order=drift_order)
    return list(drifts.columns)


def _check_column_names(conditions: list, confounds, drifts, *, events_file,
                        confounds_file) -> list[str]:
    """All design column names; refuse one that two regressors would share."""
    origins: dict = {}
    for column, condition in conditions:
        origins.setdefault(column, []).append((events_file, f"condition '{condition}'"))
    for column in [] if confounds is None else map(str, confounds.columns):
        origins.setdefault(column, []).append((confounds_file, f"confound column '{column}'"))
    for column in drifts:
        origins.setdefault(column, []).append(
            (None, "the constant" if column == "constant" else "the drift model"))
    for column, sources in origins.items():
        if len(sources) > 1:
            (first_file, first), (second_file, second) = sources[:2]
            where = f" of {second_file}" if second_file and second_file != first_file else ""
            rename = f"{first} or {second}" if second_file else first
            raise InputError(f"{first_file}: design column '{column}' would come from both "
                             f"{first} and {second}{where}; rename {rename}")
    return list(origins)


