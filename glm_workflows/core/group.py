"""Group level: participants' tables, designs and the parametric fit (nilearn's
:class:`~nilearn.glm.second_level.SecondLevelModel`). Which voxels a group model keeps:
:mod:`.group_mask`; permutation inference in chunks: :mod:`.permutations` and
:mod:`.permutation_results`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .choices import GROUP_MODELS
from .errors import InputError, one_line
from .group_mask import finite_group_mask
from .group_variables import check_full_rank, dataset_design
from .lazy import pandas as pd
from .tables import read_tsv

#: The start of nilearn's warning that an image built from int64 data is stored as int32.
_INT64_WARNING = "Data array used to create a new image contains 64-bit ints"




def read_participants(path) -> pd.DataFrame:
    """Read a BIDS ``participants.tsv``.

    Parameters
    ----------
    path : str or Path
        The tab-separated file; it must have a ``participant_id`` column.

    Returns
    -------
    participants : pandas.DataFrame
        One row per participant, indexed by the label without ``sub-`` (index name
        ``participant_id``); all other columns as text, ``n/a`` and empty cells as
        missing (NaN).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: participants file not found")
    try:
        table = read_tsv(path, dtype=str, na_values=["n/a", ""], keep_default_na=False)
    except InputError:
        raise
    except Exception as error:  # pandas raises several types for unreadable tables
        raise InputError(f"{path}: not a readable tab-separated table ({one_line(error)})"
                         ) from error
    table.columns = [str(c).strip() for c in table.columns]
    if "participant_id" not in table.columns:
        raise InputError(f"{path}: no 'participant_id' column "
                         f"(columns: {', '.join(table.columns) or 'none'})")
    ids = table.pop("participant_id")
    if ids.isna().any():
        raise InputError(f"{path}: 'participant_id' is empty on row "
                         f"{int(np.flatnonzero(ids.isna())[0]) + 2}")
    labels = [i.strip()[4:] if i.strip().startswith("sub-") else i.strip() for i in ids]
    duplicated = pd.Index(labels)[pd.Index(labels).duplicated()]
    if len(duplicated):
        raise InputError(f"{path}: participant 'sub-{duplicated[0]}' is listed more than once")
    table.index = pd.Index(labels, name="participant_id")
    return table


def _label(subject) -> str:
    text = str(subject).strip()
    return text[4:] if text.startswith("sub-") else text


def _column(participants, name, what):
    if name not in participants.columns:
        raise InputError(f"participants.tsv: no column '{name}' for the {what} "
                         f"(available columns: {', '.join(map(str, participants.columns))})")
    return participants[name]


def group_design(subjects, kind, participants=None, *, group_column=None, covariates=(),
                 demean=False, transformations=(), intercept=True) -> pd.DataFrame:
    """Group-level design matrix.

    Parameters
    ----------
    subjects : sequence of str
        Subject labels (with or without ``sub-``), in the order of the effect maps.
    kind : {'one-sample', 'two-sample', 'paired'}
        ``one-sample``: an ``intercept`` column. ``two-sample``: one indicator column
        per level of ``group_column`` (named by the level, levels sorted; no
        intercept, so that e.g. ``"patient - control"`` is the group difference).
        ``paired``: the one-sample test of per-subject differences of two maps (see
        :func:`difference_images`), so an ``intercept`` column.
        The indicator columns are built directly (nilearn's
        ``make_second_level_design_matrix`` always adds an intercept, which with both
        indicators would make the design rank deficient); for one-sample its result
        is the same as here.
    participants : pandas.DataFrame, optional
        From :func:`read_participants`; needed for a group column or covariates.
    group_column : str, optional
        Column of ``participants`` holding the group of each subject (two-sample).
    covariates : sequence of str
        Numeric columns of ``participants`` appended to the design.
    demean : bool
        Subtract from each covariate its mean over ``subjects``.
    transformations : sequence of dict
        One-sample: a model file's Dataset node transformations of ``participants``'
        columns, the covariates taken after them
        (:func:`glm_workflows.core.group_variables.dataset_design`).
    intercept : bool
        One-sample: whether the design has the ``intercept`` column.

    Returns
    -------
    design : pandas.DataFrame
        Float columns, indexed by the subject labels (without ``sub-``) in the order
        given.
    """
    if kind not in GROUP_MODELS:
        raise InputError(f"group model {kind!r}: expected one of {', '.join(GROUP_MODELS)}")
    if transformations or not intercept:
        if kind != "one-sample" or demean or participants is None:
            raise InputError("group design of a model file's Dataset node: needs a "
                             "one-sample model without demean, and participants.tsv")
        design = dataset_design(subjects, participants,
                                [covariates] if isinstance(covariates, str) else covariates,
                                intercept=intercept, transformations=transformations)
        check_residual_dof(design)
        return design
    labels = [_label(s) for s in subjects]
    if len(labels) < 2:
        raise InputError(f"group model {kind}: {len(labels)} subject(s); at least two needed")
    if len(set(labels)) != len(labels):
        twice = next(lab for lab in labels if labels.count(lab) > 1)
        raise InputError(f"subjects: 'sub-{twice}' is given more than once")
    covariates = [covariates] if isinstance(covariates, str) else list(covariates)
    if kind == "two-sample" and not group_column:
        raise InputError("two-sample group model: no group column given "
                         "(the participants.tsv column holding each subject's group)")
    needs_table = bool(covariates) or kind == "two-sample"
    if needs_table and participants is None:
        raise InputError(f"group model {kind}: participants.tsv is needed for "
                         + ("the group column" if kind == "two-sample" else "the covariates"))
    if needs_table:
        missing = [lab for lab in labels if lab not in participants.index]
        if missing:
            raise InputError(f"participants.tsv: subject 'sub-{missing[0]}' is not listed "
                             f"({len(missing)} subject(s) missing)")
    design = pd.DataFrame(index=pd.Index(labels, name="subject"))
    if kind == "two-sample":
        groups = _column(participants, group_column, "groups").reindex(labels)
        if groups.isna().any():
            first = groups.index[groups.isna()][0]
            raise InputError(f"participants.tsv: column '{group_column}' is missing (n/a) "
                             f"for subject 'sub-{first}'")
        groups = groups.astype(str).str.strip()
        levels = sorted(groups.unique())
        if len(levels) != 2:
            raise InputError(f"participants.tsv: column '{group_column}' has {len(levels)} "
                             f"level(s) among the subjects ({', '.join(levels)}); "
                             "a two-sample model needs exactly two")
        for level in levels:
            count = int(np.sum(groups == level))
            if count < 2:
                raise InputError(f"participants.tsv: group '{level}' of column "
                                 f"'{group_column}' has {count} subject; at least two needed")
            design[level] = (groups == level).to_numpy(dtype=np.float64)
    else:
        design["intercept"] = np.ones(len(labels))
    for name in covariates:
        if name in design.columns:
            raise InputError(f"covariate '{name}': the design already has a column of "
                             "that name")
        raw = _column(participants, name, "covariate").reindex(labels)
        values = pd.to_numeric(raw, errors="coerce")
        bad = values.isna() | ~np.isfinite(values.to_numpy(dtype=np.float64))
        if bad.any():
            first = values.index[bad][0]
            shown = "n/a" if pd.isna(raw[first]) else repr(raw[first])
            raise InputError(f"participants.tsv: covariate '{name}' of subject 'sub-{first}' "
                             f"is {shown}; expected a number")
        values = values.to_numpy(dtype=np.float64)
        if np.ptp(values) == 0:
            raise InputError(f"participants.tsv: covariate '{name}' is {values[0]:g} for "
                             f"every one of the {len(labels)} subjects; a covariate needs "
                             "two values at least (it cannot be told from the mean)")
        design[name] = values - values.mean() if demean else values
    check_full_rank(design)
    check_residual_dof(design)
    return design


def check_residual_dof(design: pd.DataFrame) -> None:
    """Refuse a group design with no more subjects than columns: no degree of freedom is
    left for the variance (nilearn's fit divides by zero: non-finite maps, exit 0)."""
    if design.shape[0] <= design.shape[1]:
        raise InputError(f"group design: {design.shape[0]} subjects for {design.shape[1]} "
                         f"columns ({', '.join(str(c) for c in design.columns)}); no degree "
                         "of freedom left (a group model needs more subjects than columns)")


def pooled_design(rows, columns) -> pd.DataFrame:
    """The design of a Dataset node grouped by nothing (``GroupBy: []``): a row per map,
    the incoming contrast a variable (pybids's: each contrast an indicator).

    Parameters
    ----------
    rows : sequence of (subject, contrast label)
        The maps, in the order of the effect maps.
    columns : sequence of (name, contrast label or None)
        The node's ``X`` in order: a name and the contrast whose indicator it is, or None
        for the intercept (a column of ones, named ``intercept``).

    Returns
    -------
    design : pandas.DataFrame
        Float columns, indexed ``<subject>:<contrast>`` (index name ``map``).
    """
    labels = [label for _, label in rows]
    design = pd.DataFrame(index=pd.Index([f"{_label(s)}:{c}" for s, c in rows], name="map"))
    for name, label in columns:
        design["intercept" if label is None else str(name)] = (
            np.ones(len(rows)) if label is None
            else np.array([c == label for c in labels], dtype=np.float64))
    if len(rows) < 2:
        raise InputError(f"group design: {len(rows)} map(s); at least two needed")
    rank = np.linalg.matrix_rank(design.to_numpy(dtype=np.float64))
    if len(rows) <= rank:
        raise InputError(f"group design: {len(rows)} maps for {design.shape[1]} columns; "
                         "no degree of freedom left")
    check_full_rank(design, rank=rank)
    return design


def _weights(contrast, columns) -> np.ndarray:
    from .contrasts import contrast_matrix

    return contrast_matrix([contrast], [str(c) for c in columns], "t")[0]


def _check_inputs(effect_files, design):
    effect_files = list(effect_files)
    if not isinstance(design, pd.DataFrame):
        raise InputError("group design: expected a pandas.DataFrame")
    if len(effect_files) != design.shape[0]:
        raise InputError(f"group design: {design.shape[0]} rows for {len(effect_files)} "
                         "effect maps; expected one row per map")
    return effect_files


def fit_group(effect_files, design, mask_img, contrast, names=None) -> dict:
    """Fit the group model and compute one t contrast (nilearn's ``SecondLevelModel``).

    Parameters
    ----------
    effect_files : sequence of str or nibabel images
        One effect map per subject, in the order of ``design``'s rows.
    design : pandas.DataFrame
        From :func:`group_design`.
    mask_img : str or nibabel image
        The group mask; the model fits its voxels where every map is finite
        (:func:`finite_group_mask`).
    contrast : str, sequence of float, or list/tuple of str
        A t contrast: an expression over the design's columns or a weight per column.
        An F contrast: its rows, expressions (a list or tuple of str).
    names : sequence of str, optional
        Per map, how messages name it (see :func:`finite_group_mask`).

    Returns
    -------
    maps : dict
        ``effect``, ``variance``, ``stat`` (t or F), ``z`` and ``p`` nibabel images, and
        ``mask``: the :class:`GroupMask` fitted.
    """
    from nilearn.glm.second_level import SecondLevelModel

    from .contrasts import contrast_matrix

    effect_files = _check_inputs(effect_files, design)
    f_test = isinstance(contrast, (list, tuple)) and all(isinstance(r, str) for r in contrast)
    weights = contrast_matrix(list(contrast), [str(c) for c in design.columns], "F") \
        if f_test else _weights(contrast, design.columns)
    group_mask = finite_group_mask(effect_files, mask_img, names)
    model = SecondLevelModel(mask_img=group_mask.img).fit(effect_files, design_matrix=design)
    maps = model.compute_contrast(weights, second_level_stat_type="F" if f_test else "t",
                                  output_type="all")
    return {"effect": maps["effect_size"], "variance": maps["effect_variance"],
            "stat": maps["stat"], "z": maps["z_score"], "p": maps["p_value"],
            "mask": group_mask}
