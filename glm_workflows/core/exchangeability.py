"""Exchangeability blocks of the group permutations (FSL randomise's ``-e``, PALM's
``-eb``): subjects of one block (a family, a site, a subject's repeated measures) are
not exchangeable with the others, so permutations must respect the blocks.

- **Sign flipping** (the tested column is the intercept, or nilearn flips signs anyway:
  :func:`~glm_workflows.core.permutation_problem.sign_flip_test`): the subjects of a block are
  flipped together, one sign per block; valid when the blocks are independent and each
  block's errors symmetric, whatever the dependence inside a block.
- **Row shuffles** (any other tested column): rows are shuffled within their block
  (the default: valid when the blocks' errors may differ but rows inside a block are
  exchangeable), or whole blocks of one size are shuffled as units, each keeping its
  order (``whole_blocks``: valid when the dependence is inside blocks).

Variance groups (PALM's ``-vg`` with its G statistic) are not implemented: the t
statistic assumes one error variance.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import InputError
from .lazy import pandas as pd


def block_labels(participants: pd.DataFrame, subjects, column: str,
                 source: str = "participants.tsv") -> tuple[int, ...]:
    """Per subject (in order), the index of its block in ``participants``' ``column``.

    Raises
    ------
    InputError
        The column missing, a subject's value missing, or a single block.
    """
    if column not in participants.columns:
        raise InputError(f"{source}: no column '{column}' (the exchangeability blocks); "
                         f"columns: {', '.join(map(str, participants.columns))}")
    labels = [str(s).removeprefix("sub-") for s in subjects]
    values = participants[column].reindex(labels)
    missing = [label for label, value in zip(labels, values, strict=True) if pd.isna(value)]
    if missing:
        raise InputError(f"{source}: column '{column}' (exchangeability blocks) has no value "
                         f"for sub-{', sub-'.join(missing)}")
    levels = list(dict.fromkeys(values))
    if len(levels) < 2:
        raise InputError(f"{source}: column '{column}' (exchangeability blocks) has a single "
                         f"level ({levels[0]!r}) over the {len(labels)} subjects: nothing "
                         "to permute between blocks")
    return tuple(levels.index(value) for value in values)


def distinct_permutations(blocks, sign_flips: bool, whole_blocks: bool = False) -> int:
    """How many distinct relabellings the blocks allow (the identity included)."""
    sizes = np.bincount(np.asarray(blocks))
    sizes = sizes[sizes > 0]
    if sign_flips:
        return 2 ** len(sizes)
    if whole_blocks:
        return math.factorial(len(sizes))
    return math.prod(math.factorial(int(size)) for size in sizes)


def check_blocks(blocks, *, sign_flips: bool, whole_blocks: bool, alpha: float,
                 where: str = "--exchangeability-blocks") -> None:
    """Refuse blocks the requested test cannot use: whole blocks of different sizes, or
    too few distinct relabellings for ``alpha`` to be reachable."""
    sizes = np.bincount(np.asarray(blocks))
    sizes = sizes[sizes > 0]
    if whole_blocks and not sign_flips and len(set(sizes.tolist())) > 1:
        raise InputError(f"{where}: --whole-blocks shuffles blocks as units, which needs "
                         f"blocks of one size (sizes: {', '.join(map(str, sizes))})")
    count = distinct_permutations(blocks, sign_flips, whole_blocks)
    needed = math.ceil(1.0 / alpha - 1e-9)
    if count < needed:
        kind = "sign flips of whole blocks" if sign_flips else (
            "shuffles of whole blocks" if whole_blocks else "shuffles within blocks")
        raise InputError(f"{where}: the {len(sizes)} blocks allow only {count} distinct "
                         f"{kind}; p >= 1/{count} cannot reach alpha {alpha} (at least "
                         f"{needed} needed)")


def subject_relabellings_warning(design, weights, *, alpha: float) -> str | None:
    """Why a permutation test of contrast ``weights`` over ``design`` (one row per subject,
    no blocks) cannot reach ``alpha``, or None: its subjects allow fewer than ``1 / alpha``
    distinct relabellings, ``2 ** n`` sign flips where nilearn flips signs
    (:func:`~glm_workflows.core.permutation_problem.sign_flip_test`), else the distinct
    orders of the tested column (``n! / prod(k_v!)`` over its repeated values ``v``).
    Drawing more permutations repeats the same relabellings: with 4 subjects (16 sign
    flips) the smallest FWE p-value is about 1/16, above 0.05, whatever ``--permutations``.
    The p-values are right; they only cannot be small (a warning, not a refusal).
    """
    from .permutation_problem import sign_flip_test

    values = np.asarray(design, dtype=float)
    n = len(values)
    if sign_flip_test(values, weights):
        count, kind = 2 ** n, "sign flips"
    else:
        _, repeats = np.unique(values @ np.asarray(weights, dtype=float), return_counts=True)
        count = math.factorial(n) // math.prod(math.factorial(int(k)) for k in repeats)
        kind = "orders of the tested column"
    needed = math.ceil(1.0 / alpha - 1e-9)
    if count >= needed:
        return None
    return (f"{n} subjects allow only {count} distinct {kind}: the permutation p-values "
            f"are at least about 1/{count}, so no voxel can reach FWE alpha {alpha} "
            f"({needed} needed)")
