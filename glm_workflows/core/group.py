"""Group level: designs, the parametric fit and permutation inference split in chunks.

The parametric model is nilearn's :class:`~nilearn.glm.second_level.SecondLevelModel`.
The permutation test reproduces nilearn's
:func:`~nilearn.glm.second_level.non_parametric_inference` run with ``n_jobs=1`` and
an integer ``random_state``, bit for bit, while letting the permutations be computed
in any number of chunks (:func:`permutation_chunk`) that are then combined
(:func:`combine_permutations`).

How nilearn draws its permutations (``nilearn.mass_univariate.permuted_ols``):
``RandomState(seed)`` draws one integer, the seed of its single job's
``RandomState``; that job then draws, permutation after permutation, either a sign
vector (``randint(2, size=(n, 1)) * 2 - 1``, when the tested variable is the
intercept) or a row order (``permutation(n)``), and *composes* it with the previous
ones (the data keep their flipped signs, the design keeps its shuffled rows). So
permutation ``k`` depends on every draw before it: a chunk replays the draws from
the seed up to its ``start`` (cheap: a few integers per permutation) and computes
statistics only for its own range. With ``n_jobs > 1`` nilearn seeds each job
separately, so its result depends on ``n_jobs``; the result here is that of
``n_jobs=1`` whatever the chunking.

Exactness. Every statistic is computed with the very same floating-point
operations as nilearn, on arrays of the same layout, so the null maxima are equal
(``numpy.array_equal``), not merely close. In particular the per-permutation
``numpy.dot`` calls are the same BLAS calls nilearn makes: OpenBLAS results depend on
the position of a voxel in the array and on the number of BLAS threads, so
permutations are *not* batched into one matrix product, and chunks must run with the
same BLAS thread count as the reference they are compared with. The gains over
nilearn come from not copying the data at each permutation (signs are flipped on the
design instead: ``(s*y)*x == y*(s*x)`` exactly), from taking the maximum t through
the maximum correlation when there is no covariate (t is a monotone function of it,
also in floating point), from cluster sizes counted with ``bincount`` (the exact mass
sum is only recomputed, as nilearn sums it, for the few clusters that can be the
largest), from cropping volumes to the mask's bounding box for labelling, and from
ranking the original statistics once at the end (``searchsorted``) instead of at
every permutation.

Private nilearn functions used (nilearn 0.11-0.14):
``nilearn.mass_univariate._utils`` (``normalize_matrix_on_axis``,
``orthonormalize_matrix``, ``t_score_with_covars_and_normalized_design``,
``calculate_tfce``) and ``nilearn.mass_univariate.permuted_least_squares``
(``_compute_t_stat_threshold``, ``_update_outputs_for_tfce``,
``_prepare_output_permuted_ols``).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import NamedTuple

import nibabel as nb
import numpy as np
import pandas as pd

from .choices import GROUP_MODELS
from .errors import InputError, one_line
from .group_variables import dataset_design, dependent_columns
from .images import load_image_header, read_image_data
from .tables import read_tsv

#: The start of nilearn's warning that an image built from int64 data is stored as int32.
_INT64_WARNING = "Data array used to create a new image contains 64-bit ints"
_MASS_TOLERANCE = 1e-8  # relative; bounds the sum-order error of any cluster below 1e7 voxels
#: A map not finite (NaN, infinite) in more than this fraction of the group mask is refused.
MAX_NON_FINITE_FRACTION = 0.5


# --------------------------------------------------------------------------- designs


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
        return dataset_design(subjects, participants,
                              [covariates] if isinstance(covariates, str) else covariates,
                              intercept=intercept, transformations=transformations)
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
        design[name] = values - values.mean() if demean else values
    matrix = design.to_numpy(dtype=np.float64)
    if np.linalg.matrix_rank(matrix) < matrix.shape[1]:
        dependent = dependent_columns(matrix, list(design.columns))
        raise InputError(f"group design is rank deficient: columns {', '.join(dependent)} "
                         "are linearly dependent")
    return design


# --------------------------------------------------------------------------- parametric


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


class GroupMask(NamedTuple):
    """The voxels a group model fits (see :func:`finite_group_mask`).

    Attributes
    ----------
    img : nibabel.Nifti1Image
        The mask given, less every voxel where some map is not finite.
    n_voxels : int
        Voxels of ``img``.
    n_given : int
        Voxels of the mask given.
    non_finite : tuple of int
        Per map, the voxels of the mask given where it is not finite.
    """

    img: nb.Nifti1Image
    n_voxels: int
    n_given: int
    non_finite: tuple


def _same_grid(img, reference) -> str | None:
    """What differs between the grids of two images (None: the same grid).

    The affines are compared as nilearn's ``check_same_fov`` compares them
    (``numpy.allclose`` with its default tolerance), so that a grid accepted here is
    accepted by the nilearn functions the group nodes call.
    """
    if img.shape[:3] != reference.shape[:3]:
        return f"shape {img.shape[:3]}, not {reference.shape[:3]}"
    if not np.allclose(img.affine, reference.affine):
        shift = np.abs(img.affine - reference.affine).max()
        return f"its affine differs by up to {shift:.4g}"
    return None


def _map_values(item, name, mask_img, mask) -> np.ndarray:
    """The values of one map (a path or an image) in ``mask``, checked to be readable,
    one volume and on the mask's grid; errors name ``name``."""
    img = load_image_header(item) if isinstance(item, (str, Path)) else item
    if img.ndim == 4 and img.shape[3] != 1 or img.ndim not in (3, 4):
        raise InputError(f"{name}: {img.ndim}D image of shape {img.shape}; expected one "
                         "3D map")
    wrong = _same_grid(img, mask_img)
    if wrong:
        raise InputError(f"{name}: not on the group mask's grid ({wrong})")
    return read_image_data(img, name).reshape(mask.shape)[mask]


def finite_group_mask(maps, mask_img, names=None) -> GroupMask:
    """The group mask less the voxels where some subject's map is not finite.

    The rule (nilearn's maskers would silently turn NaN and infinite values into zeros,
    which biases the group model towards 0): a voxel enters the group model only where
    every map is finite; a map not finite in more than
    :data:`MAX_NON_FINITE_FRACTION` of the mask (a failed subject, not a few edge
    voxels) is refused.

    Parameters
    ----------
    maps : sequence of str or nibabel images
        One map per subject.
    mask_img : str or nibabel image
        The group mask (the intersection of the subjects' masks).
    names : sequence of str, optional
        Per map, how messages name it; default: its path (``map <i>`` for an image).

    Returns
    -------
    group_mask : GroupMask

    Raises
    ------
    InputError
        A map missing, unreadable (e.g. a truncated gzip) or on another grid than the
        mask, or not finite in most of it (naming the map); an empty mask; no voxel
        finite in every map.
    """
    maps = list(maps)
    if names is None:
        names = [str(item) if isinstance(item, (str, Path)) else f"map {index}"
                 for index, item in enumerate(maps, start=1)]
    mask_name = str(mask_img) if isinstance(mask_img, (str, Path)) else "group mask"
    if isinstance(mask_img, (str, Path)):
        mask_img = load_image_header(mask_img)
    mask = read_image_data(mask_img, mask_name).reshape(mask_img.shape[:3]) != 0
    n_given = int(mask.sum())
    if not n_given:
        raise InputError(f"{mask_name}: the group mask is empty (the subjects' masks have "
                         "no voxel in common)")
    finite = np.ones(n_given, dtype=bool)
    counts = []
    for item, name in zip(maps, names, strict=True):
        values = np.isfinite(_map_values(item, name, mask_img, mask))
        count = int(n_given - values.sum())
        if count > MAX_NON_FINITE_FRACTION * n_given:
            raise InputError(f"{name}: not finite (NaN or infinite) in {count} of the "
                             f"{n_given} voxels of the group mask; a subject's map must be "
                             f"finite in at least {1 - MAX_NON_FINITE_FRACTION:.0%} of it "
                             "(fix the subject's model or leave the subject out)")
        finite &= values
        counts.append(count)
    n_voxels = int(finite.sum())
    if not n_voxels:
        raise InputError(f"group mask: none of its {n_given} voxels is finite in every "
                         "subject's map")
    if n_voxels == n_given:
        return GroupMask(mask_img, n_voxels, n_given, tuple(counts))
    reduced = np.zeros(mask.shape, dtype=np.uint8)
    reduced[mask] = finite
    header = mask_img.header.copy()
    header.set_data_dtype(np.uint8)
    return GroupMask(nb.Nifti1Image(reduced, mask_img.affine, header), n_voxels, n_given,
                     tuple(counts))


def left_out_line(name, n_voxels, n_given, non_finite) -> str | None:
    """The warning line of the voxels a group analysis left out (None: none).

    Parameters
    ----------
    name : str
        The group analysis (its first-level contrast).
    n_voxels, n_given : int
        Voxels fitted, of the subjects' masks' intersection (:class:`GroupMask`).
    non_finite : dict
        Subject (``sub-<label>``) -> its non-finite voxels in that intersection.
    """
    if n_voxels == n_given:
        return None
    counts = ", ".join(f"{subject} {count}" for subject, count in non_finite.items() if count)
    return (f"group {name}: {n_given - n_voxels} of the {n_given} voxels of the subjects' "
            f"masks left out (not finite in every subject's map; non-finite voxels: "
            f"{counts})")


def check_group_files(effect_maps, mask_files, mean_files, paired_maps=None) -> GroupMask:
    """Check, before any work, every file a group analysis will read.

    Headers first (cheap): each file an image of one volume on the grid of the first
    mask. Then every file is read whole (a truncated ``.nii.gz`` is only found by
    reading it), the group mask is computed as the group workflow computes it (the
    intersection of the masks) and :func:`finite_group_mask` applies the rule on
    non-finite values to the maps the model will fit (paired: to each map, then to the
    differences).

    Parameters
    ----------
    effect_maps, mask_files, mean_files : sequence of str
        Per subject, its effect map, mask and mean image.
    paired_maps : sequence of str, optional
        Per subject, the second map of a paired model.

    Returns
    -------
    group_mask : GroupMask
        What the group model will fit.

    Raises
    ------
    InputError
        Naming the first file missing, unreadable, not one 3D volume, on another grid, a
        mask that is not binary, or a map refused by :func:`finite_group_mask`.
    """
    reference = load_image_header(mask_files[0])
    paired_maps = list(paired_maps or [])
    for path in [*mask_files, *mean_files, *effect_maps, *paired_maps]:
        img = load_image_header(path)
        if img.ndim == 4 and img.shape[3] != 1:
            raise InputError(f"{path}: 4D image of shape {img.shape}; expected one 3D map")
        wrong = _same_grid(img, reference)
        if wrong:
            raise InputError(f"{path}: not on the grid of {mask_files[0]} ({wrong})")
    mask = None
    for path in mask_files:
        data = read_image_data(load_image_header(path), path)
        values = np.unique(data)
        if values.size > 2 or values.size == 2 and 0 not in values:
            raise InputError(f"{path}: not a binary mask ({values.size} distinct values; "
                             "expected 0 and one other)")
        inside = data.reshape(reference.shape[:3]) != 0
        mask = inside if mask is None else mask & inside
    for path in mean_files:
        read_image_data(load_image_header(path), path)
    mask_img = nb.Nifti1Image(mask.astype(np.int8), reference.affine)
    if not paired_maps:
        return finite_group_mask(effect_maps, mask_img)
    finite_group_mask(effect_maps, mask_img)
    finite_group_mask(paired_maps, mask_img)
    return finite_group_mask(difference_images(effect_maps, paired_maps), mask_img,
                             [f"{a} - {b}" for a, b in zip(effect_maps, paired_maps,
                                                           strict=True)])


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


def difference_images(a_files, b_files) -> list:
    """Per-subject differences ``a - b`` of two lists of maps (paired designs).

    Parameters
    ----------
    a_files, b_files : sequence of str or nibabel images
        Same length, each pair on the same grid.

    Returns
    -------
    images : list of nibabel.Nifti1Image
        Float64 differences, with ``a``'s affine and header.
    """
    import nibabel as nb

    a_files, b_files = list(a_files), list(b_files)
    if len(a_files) != len(b_files):
        raise InputError(f"paired maps: {len(a_files)} first maps and {len(b_files)} second "
                         "maps; expected one pair per subject")
    images = []
    for a, b in zip(a_files, b_files, strict=True):
        img_a = nb.load(a) if isinstance(a, (str, Path)) else a
        img_b = nb.load(b) if isinstance(b, (str, Path)) else b
        if img_a.shape != img_b.shape or not np.allclose(img_a.affine, img_b.affine):
            raise InputError(f"paired maps {a} and {b}: not on the same grid "
                             f"(shapes {img_a.shape} and {img_b.shape}); expected the same")
        data = np.asarray(img_a.get_fdata(), dtype=np.float64) - img_b.get_fdata()
        header = img_a.header.copy()
        header.set_data_dtype(np.float64)
        images.append(nb.Nifti1Image(data, img_a.affine, header))
    return images


# --------------------------------------------------------------------------- permutations


def check_permutations(n_perm, alpha) -> int:
    """Refuse a number of permutations too small for ``alpha`` to be reachable.

    The smallest permutation p-value is ``1 / (n_perm + 1)``, so ``n_perm`` must be at
    least ``ceil(1 / alpha) - 1`` (19 for 0.05).
    """
    if not 0 < alpha < 1:
        raise InputError(f"alpha {alpha}: expected a number between 0 and 1")
    if isinstance(n_perm, bool) or int(n_perm) != n_perm:
        raise InputError(f"permutations {n_perm!r}: expected a whole number")
    needed = int(np.ceil(1.0 / alpha - 1e-9)) - 1
    if n_perm < needed:
        raise InputError(f"permutations: {n_perm} give p >= 1/{int(n_perm) + 1}; at least "
                         f"{needed} are needed for alpha {alpha}")
    return int(n_perm)


class _Problem:
    """nilearn's ``non_parametric_inference`` / ``permuted_ols`` up to the permutations,
    in the mask :func:`fit_group` fits (:func:`finite_group_mask`)."""

    def __init__(self, effect_files, design, mask_img, contrast, two_sided, threshold):
        from joblib import Memory
        from nilearn.maskers import NiftiMasker
        from nilearn.mass_univariate._utils import (
            normalize_matrix_on_axis,
            orthonormalize_matrix,
            t_score_with_covars_and_normalized_design,
        )
        from nilearn.mass_univariate.permuted_least_squares import _compute_t_stat_threshold

        effect_files = _check_inputs(effect_files, design)
        weights = _weights(contrast, design.columns)
        masker = NiftiMasker(mask_img=finite_group_mask(effect_files, mask_img).img,
                             smoothing_fwhm=None, memory=Memory(None), verbose=0,
                             memory_level=1, standardize=None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            masker.fit(effect_files[0])
            target_vars = masker.transform(effect_files)
        names = design.columns.tolist()
        column_mask = [bool(val) for val in weights]
        tested_vars = np.dot(design, weights)
        rest = [n for n, m in zip(names, column_mask, strict=True) if not m]
        confounding_vars = np.asarray(design[rest]) if rest else None

        # permuted_ols, model_intercept=True
        tested_vars = np.asanyarray(tested_vars)
        target_vars = np.asfortranarray(target_vars)
        if tested_vars.ndim == 1:
            tested_vars = np.atleast_2d(tested_vars).T
        n_samples, n_regressors = tested_vars.shape
        intercept_test = n_regressors == np.unique(tested_vars).size == 1
        model_intercept = True
        if confounding_vars is not None:
            constants = [x for x in range(confounding_vars.shape[1])
                         if np.unique(confounding_vars[:, x]).size == 1]
            if (intercept_test and len(constants) == 1) or len(constants) > 1:
                confounding_vars = np.delete(confounding_vars, constants, axis=1)
                if confounding_vars.size == 0:
                    confounding_vars = None
            if not intercept_test and len(constants) == 1:
                intercept_test = True
        if model_intercept and not intercept_test:
            ones = np.ones((n_samples, 1))
            confounding_vars = (ones if confounding_vars is None
                                else np.hstack((confounding_vars, ones)))
        covars = None
        with np.errstate(divide="ignore", invalid="ignore"):
            if confounding_vars is not None:
                covars = np.ascontiguousarray(orthonormalize_matrix(confounding_vars))
                targets = np.ascontiguousarray(normalize_matrix_on_axis(target_vars).T)
                beta = np.dot(targets, covars)
                targets = targets - np.dot(beta, covars.T)
                targets = normalize_matrix_on_axis(targets, axis=1)
                tested = normalize_matrix_on_axis(tested_vars.T, axis=1)
                beta = np.dot(tested, covars)
                tested = tested - np.dot(beta, covars.T)
                tested = normalize_matrix_on_axis(tested, axis=1).T.copy()
            else:
                targets = normalize_matrix_on_axis(target_vars).T
                tested = normalize_matrix_on_axis(tested_vars).copy()
            targets = np.ascontiguousarray(targets)
            tested = np.ascontiguousarray(tested)
            self.scores = t_score_with_covars_and_normalized_design(tested, targets.T, covars)
        self.masker = masker
        self.targets = targets              # (n_voxels, n_samples), C-contiguous
        self.tested = tested                # (n_samples, 1)
        self.covars = covars                # (n_samples, k) or None
        self.intercept_test = intercept_test
        self.n_samples = n_samples
        self.two_sided = bool(two_sided)
        self.threshold = threshold
        self.threshold_t = _compute_t_stat_threshold(threshold, two_sided, tested_vars,
                                                     confounding_vars)
        lost = 0 if covars is None else covars.shape[1]
        self.dof = targets.shape[1] - lost
        mask = np.asarray(masker.mask_img_.get_fdata()) != 0
        self.mask = mask
        where = np.nonzero(mask)
        lo = [max(int(w.min()) - 1, 0) if w.size else 0 for w in where]
        hi = [min(int(w.max()) + 2, s) if w.size else s for w, s in zip(where, mask.shape,
                                                                      strict=True)]
        self.box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        self.box_mask = mask[self.box]

    def volume(self, values):
        """Masked values as the cropped volume nilearn's labelling sees (exact copy)."""
        vol = np.zeros(self.box_mask.shape)
        vol[self.box_mask] = values
        return vol

    def t_max_from_beta(self, beta):
        """Max t (or |t|) without covariates: t is non-decreasing in the correlation."""
        with np.errstate(divide="ignore", invalid="ignore"):
            top = np.nanmax(beta)
            if self.two_sided:
                top = max(top, -np.nanmin(beta))
            b = np.array([[top]])
            t = b * np.sqrt((self.dof - 1.0) / (1 - b**2))
        return float(t[0, 0])

    def t_scores(self, tested, covars, cached=None):
        """nilearn's ``t_score_with_covars_and_normalized_design`` (same operations)."""
        beta = np.dot(self.targets, tested)
        if covars is None:
            rss = 1 - beta**2
        else:
            if cached is None:
                a2 = np.sum(np.dot(self.targets, covars) ** 2, 1)
                cached = 1 - a2[:, np.newaxis]
            rss = cached - beta**2
        np.divide(self.dof - 1.0, rss, out=rss)
        np.sqrt(rss, out=rss)
        return beta * rss, beta, cached


_CACHE: dict = {}


def _file_key(item):
    if not isinstance(item, (str, Path)):
        return None
    stat = Path(item).stat()
    return (str(Path(item).resolve()), stat.st_mtime_ns, stat.st_size)


def _problem(effect_files, design, mask_img, contrast, two_sided, threshold) -> _Problem:
    """The prepared data, kept for the next call with the same files (one entry).

    Only inputs given as file paths (checked by path, modification time and size) are
    kept, so that chunks and their combination computed in one process read and
    mask the maps once.
    """
    effect_files = _check_inputs(effect_files, design)
    files = [_file_key(item) for item in [*effect_files, mask_img]]
    key = None
    if all(files):
        key = (tuple(files), tuple(map(str, design.columns)), tuple(map(str, design.index)),
               design.to_numpy(dtype=np.float64).tobytes(), repr(contrast), bool(two_sided),
               threshold)
        if key in _CACHE:
            return _CACHE[key]
    problem = _Problem(effect_files, design, mask_img, contrast, two_sided, threshold)
    _CACHE.clear()
    if key is not None:
        _CACHE[key] = problem
    return problem


def _replay(seed, intercept_test, n_samples, stop):
    """Yield, for permutations ``0..stop-1``, the composed signs (or row order)."""
    rng = np.random.RandomState(seed)
    job = np.random.RandomState(rng.randint(1, np.iinfo(np.int32).max - 1))
    signs = np.ones((n_samples, 1), dtype=int)
    order = np.arange(n_samples)
    for _ in range(stop):
        if intercept_test:
            signs = signs * (job.randint(2, size=(n_samples, 1)) * 2 - 1)
            yield signs
        else:
            order = order[job.permutation(n_samples)]
            yield order


def _cluster_max(arr, threshold, struct, two_sided):
    """nilearn's ``calculate_cluster_measures`` for one map: (max size, max mass)."""
    from scipy.ndimage import label

    arr = arr.copy()
    if two_sided:
        arr[np.abs(arr) <= threshold] = 0
    else:
        arr[arr <= threshold] = 0
    labels, n_pos = label(arr > 0, struct)
    if two_sided:
        negative, _ = label(arr < 0, struct)
        negative[negative > 0] += n_pos
        labels = labels + negative
    flat = labels.ravel()
    sizes = np.bincount(flat)[1:]
    if not sizes.size or not sizes.any():
        return 0, 0
    excess = np.abs(arr).ravel() - threshold
    inside = flat > 0
    approx = np.bincount(flat[inside], weights=excess[inside], minlength=sizes.size + 1)[1:]
    best = approx.max()
    candidates = np.flatnonzero(approx >= best - _MASS_TOLERANCE * abs(best)) + 1
    max_mass = 0
    for value in candidates:  # nilearn's own sum, in its order, for the possible maxima
        ss_vals = np.abs(arr[labels == value]) - threshold
        max_mass = np.maximum(max_mass, np.sum(ss_vals))
    return int(sizes.max()), max_mass


def _tfce_max(vol, struct, two_sided):
    """``max |TFCE|`` of one map, as nilearn's ``calculate_tfce`` computes it.

    The same per-cluster values are added to each voxel in the same order (nilearn
    also adds zeros elsewhere, which changes nothing), but after labelling each
    threshold only touches the voxels still above it; the map is already cropped to
    the mask's bounding box.
    """
    from nilearn.mass_univariate._utils import calculate_tfce
    from scipy.ndimage import label

    with np.errstate(invalid="ignore"):
        max_score = np.nanmax(np.abs(vol)) if two_sided else np.nanmax(vol)
    if np.isnan(vol).any() or not max_score > 0:  # unusual maps: nilearn's own code
        tfce = calculate_tfce(vol[..., np.newaxis], bin_struct=struct,
                              two_sided_test=two_sided)
        return np.nanmax(np.fabs(tfce), axis=(0, 1, 2))[0]
    E, H = 0.5, 2  # nilearn's defaults (dh="auto": 100 steps)
    score_threshs = np.linspace(0, max_score, 100 + 1)[1:]
    flat = vol.ravel()
    tfce = np.zeros(flat.shape)
    for sign in ([-1, 1] if two_sided else [1]):
        temp = flat * sign
        members = np.flatnonzero(temp >= score_threshs[0])
        for score_thresh in score_threshs:
            members = members[temp[members] >= score_thresh]
            if not members.size:
                break
            labeled, _ = label((temp >= score_thresh).reshape(vol.shape), struct)
            labeled_non_zero = labeled.ravel()[members]
            cluster_counts = np.bincount(labeled_non_zero)
            cluster_tfces = sign * (cluster_counts**E) * (score_thresh**H)
            tfce[members] += cluster_tfces[labeled_non_zero]
    return np.nanmax(np.fabs(tfce))


def _check_range(n_perm, start, stop):
    for name, value in (("n_perm", n_perm), ("start", start), ("stop", stop)):
        if isinstance(value, bool) or int(value) != value:
            raise InputError(f"permutations: {name}={value!r}; expected a whole number")
    if not 0 <= start <= stop <= n_perm or n_perm < 1:
        raise InputError(f"permutation chunk {start}..{stop}: expected "
                         f"0 <= start <= stop <= n_perm ({n_perm})")


def _check_seed(seed):
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise InputError(f"permutation seed {seed!r}: expected a non-negative integer "
                         "(the same for every chunk)")


def permutation_chunk(effect_files, design, mask_img, contrast, *, n_perm, seed, start, stop,
                      two_sided=False, threshold=None, tfce=False) -> dict:
    """Null statistics of permutations ``start..stop-1`` of nilearn's sequence.

    The sequence is the one ``non_parametric_inference(..., n_perm=n_perm,
    random_state=seed, n_jobs=1)`` draws; the draws before ``start`` are replayed
    (nilearn composes each permutation on the previous one) but not evaluated.

    Parameters
    ----------
    effect_files, design, mask_img, contrast
        As for :func:`fit_group`.
    n_perm : int
        Total number of permutations of the analysis.
    seed : int
        nilearn's ``random_state``; the same for every chunk.
    start, stop : int
        The range of permutations of this chunk.
    two_sided : bool
        Statistics of |t| (nilearn's ``two_sided_test``).
    threshold : float, optional
        Cluster-forming threshold in p (nilearn's ``threshold``); adds cluster size
        and mass maxima.
    tfce : bool
        Adds TFCE maxima.

    Returns
    -------
    null : dict of numpy.ndarray
        ``start``, ``stop`` (0-d int arrays), ``max_t`` and, as requested,
        ``max_size``, ``max_mass``, ``max_tfce`` (float64, length ``stop - start``):
        what nilearn stores in ``h0_max_t``, ``h0_max_size``, ``h0_max_mass`` and
        ``h0_max_tfce`` for these permutations.
    """
    from scipy.ndimage import generate_binary_structure

    _check_range(n_perm, start, stop)
    _check_seed(seed)
    problem = _problem(effect_files, design, mask_img, contrast, two_sided, threshold)
    count = stop - start
    out = {"start": np.asarray(start), "stop": np.asarray(stop),
           "max_t": np.empty(count)}
    if threshold is not None:
        out["max_size"] = np.empty(count)
        out["max_mass"] = np.empty(count)
    if tfce:
        out["max_tfce"] = np.empty(count)
    spatial = tfce or threshold is not None
    struct = generate_binary_structure(3, 1)
    x0, c0 = problem.tested, problem.covars
    cached = None
    draws = _replay(int(seed), problem.intercept_test, problem.n_samples, stop)
    with np.errstate(divide="ignore", invalid="ignore"):
        for i, draw in enumerate(draws):
            if i < start:
                continue
            if problem.intercept_test:
                tested = draw * x0
                covars = None if c0 is None else draw * c0
                cached = None
            else:
                tested = x0[draw]
                covars = None if c0 is None else c0[draw]
                if covars is not None and not np.array_equal(covars, c0):
                    cached = None  # rows differ: nilearn's covariate products differ
            k = i - start
            if covars is None and not spatial:
                beta = np.dot(problem.targets, tested)
                value = problem.t_max_from_beta(beta)
                if not np.isfinite(value):  # perfect fits: take nilearn's path
                    scores = problem.t_scores(tested, None)[0]
                    value = (np.nanmax(np.fabs(scores)) if problem.two_sided
                             else np.nanmax(scores))
                out["max_t"][k] = value
                continue
            scores, _, new_cache = problem.t_scores(tested, covars, cached)
            if covars is not None and not problem.intercept_test:
                cached = new_cache if np.array_equal(covars, c0) else None
            out["max_t"][k] = (np.nanmax(np.fabs(scores)) if problem.two_sided
                               else np.nanmax(scores))
            if not spatial:
                continue
            vol = problem.volume(scores[:, 0])
            if tfce:
                out["max_tfce"][k] = _tfce_max(vol, struct, problem.two_sided)
            if threshold is not None:
                size, mass = _cluster_max(vol, problem.threshold_t, struct, problem.two_sided)
                out["max_size"][k] = size
                out["max_mass"][k] = mass
    return out


def _concatenate(chunks, n_perm, keys):
    chunks = sorted(chunks, key=lambda c: int(c["start"]))
    position = 0
    for chunk in chunks:
        if int(chunk["start"]) != position:
            raise InputError(f"permutation chunks: permutation {position} is "
                             f"{'missing' if int(chunk['start']) > position else 'repeated'}; "
                             "expected chunks covering 0..n_perm-1 once")
        position = int(chunk["stop"])
    if position != n_perm:
        raise InputError(f"permutation chunks cover 0..{position - 1}; expected "
                         f"0..{n_perm - 1} (n_perm={n_perm})")
    out = {}
    for key in keys:
        if any(key not in c for c in chunks):
            raise InputError(f"permutation chunks: '{key}' missing; compute the chunks "
                             "with the same threshold and tfce options")
        out[key] = np.concatenate([np.asarray(c[key], dtype=np.float64) for c in chunks])
    return out


def _ranks(h0, original):
    """nilearn's ``sum over permutations of (h0 < original)``, as float."""
    ranks = np.searchsorted(np.sort(h0), original, side="left").astype(np.float64)
    ranks[np.isnan(original)] = 0.0
    return ranks


def combine_permutations(effect_files, design, mask_img, contrast, chunks, *, n_perm,
                         two_sided=False, threshold=None, tfce=False) -> dict:
    """nilearn's ``non_parametric_inference`` output from chunks of null statistics.

    Parameters
    ----------
    effect_files, design, mask_img, contrast
        As for :func:`permutation_chunk`.
    chunks : sequence of dict
        :func:`permutation_chunk` results covering ``0..n_perm-1`` once, in any order.
    n_perm, two_sided, threshold, tfce
        As given to every chunk.

    Returns
    -------
    maps : dict of nibabel images
        ``t`` and ``logp_max_t``; with ``threshold`` also ``size``, ``logp_max_size``,
        ``mass``, ``logp_max_mass``; with ``tfce`` also ``tfce`` and ``logp_max_tfce``.
    """
    from nibabel import Nifti1Image
    from nilearn.masking import apply_mask
    from nilearn.mass_univariate._utils import calculate_tfce
    from nilearn.mass_univariate.permuted_least_squares import (
        _prepare_output_permuted_ols,
        _update_outputs_for_tfce,
    )
    from scipy.ndimage import generate_binary_structure

    keys = ["max_t"]
    if threshold is not None:
        keys += ["max_size", "max_mass"]
    if tfce:
        keys += ["max_tfce"]
    null = _concatenate(chunks, n_perm, keys)
    problem = _problem(effect_files, design, mask_img, contrast, two_sided, threshold)
    masker = problem.masker
    scores = problem.scores  # (n_voxels, 1)
    n_voxels = scores.shape[0]
    bin_struct = generate_binary_structure(3, 1)
    original = np.fabs(scores[:, 0]) if two_sided else scores[:, 0]
    ranks = _ranks(null["max_t"], original)[np.newaxis]
    vfwe_pvals = (n_perm + 1 - ranks) / float(1 + n_perm)
    outputs = {"t": scores.T, "logp_max_t": -np.log10(vfwe_pvals),
               "h0_max_t": null["max_t"][np.newaxis]}
    if tfce:
        scores_4d = masker.inverse_transform(scores.T).get_fdata()
        tfce_original = calculate_tfce(scores_4d, bin_struct=bin_struct,
                                       two_sided_test=two_sided)
        tfce_original = apply_mask(Nifti1Image(tfce_original, masker.mask_img_.affine,
                                               masker.mask_img_.header),
                                   masker.mask_img_).T
        tfce_ranks = _ranks(null["max_tfce"], np.fabs(tfce_original[:, 0]))[np.newaxis]
        outputs = _update_outputs_for_tfce(outputs, True, tfce_original,
                                           [null["max_tfce"][np.newaxis]], 1, n_voxels,
                                           [tfce_ranks], n_perm)
    if threshold is not None:
        with warnings.catch_warnings():
            # nilearn builds its cluster-size map from int64 counts (np.unique's) and
            # warns that it stores them as int32: no argument avoids it. The same values
            # are then cast to int32 here, as nilearn's own output stores them.
            warnings.filterwarnings("ignore", message=_INT64_WARNING, category=UserWarning)
            outputs = _prepare_output_permuted_ols(
                outputs, vfwe_pvals, scores, 1, threshold, [null["max_size"][np.newaxis]],
                [null["max_mass"][np.newaxis]], masker, problem.threshold_t, bin_struct,
                two_sided)
        outputs["size"] = outputs["size"].astype(np.int32)  # what nilearn stores of it
    maps = {"t": masker.inverse_transform(np.ravel(outputs["t"])),
            "logp_max_t": masker.inverse_transform(np.ravel(outputs["logp_max_t"]))}
    if tfce:
        maps["tfce"] = masker.inverse_transform(np.ravel(outputs["tfce"]))
        maps["logp_max_tfce"] = masker.inverse_transform(np.ravel(outputs["logp_max_tfce"]))
    if threshold is not None:
        for key in ("size", "logp_max_size", "mass", "logp_max_mass"):
            maps[key] = masker.inverse_transform(np.ravel(outputs[key]))
    return maps
