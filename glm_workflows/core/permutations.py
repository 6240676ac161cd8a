"""Group permutation inference split in chunks.

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

import numpy as np

from .errors import InputError
from .mesh_permutations import MeshSpace, cluster_max, tfce_max
from .permutation_problem import _MASS_TOLERANCE, _problem


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


def block_draws(seed, intercept_test, blocks, whole_blocks, stop):
    """Yield, for permutations ``0..stop-1``, sign flips or row orders that respect
    exchangeability blocks (FSL randomise's ``-e``, PALM's ``-eb``).

    Parameters
    ----------
    seed : int
        Seed of numpy's ``default_rng``: the sequence is this project's own (nilearn has
        no blocks), the same whatever the chunks.
    intercept_test : bool
        Sign flipping (:func:`~glm_workflows.core.permutation_problem.sign_flip_test`):
        one sign per block, all its
        subjects flipped together (valid when the subjects of a block are dependent and
        the blocks independent and symmetric).
    blocks : sequence of int
        Per subject (design row), its block.
    whole_blocks : bool
        Row permutations: True, the blocks (of one size) are shuffled as wholes, each
        keeping its order; False, rows are shuffled within their block only.
    stop : int
        Number of draws.
    """
    rng = np.random.default_rng(seed)
    blocks = np.asarray(blocks)
    labels, index = np.unique(blocks, return_inverse=True)
    members = [np.flatnonzero(index == b) for b in range(len(labels))]
    for _ in range(stop):
        if intercept_test:
            yield (rng.integers(0, 2, size=len(labels)) * 2 - 1)[index][:, np.newaxis]
        elif whole_blocks:
            shuffled = rng.permutation(len(labels))
            order = np.empty(len(blocks), dtype=int)
            for target, source in zip(members, shuffled, strict=True):
                order[target] = members[source]
            yield order
        else:
            order = np.arange(len(blocks))
            for rows in members:
                order[rows] = rows[rng.permutation(len(rows))]
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
                      two_sided=False, threshold=None, tfce=False, blocks=None,
                      whole_blocks=False, layout=None) -> dict:
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
    blocks : sequence of int or None
        Exchangeability blocks, per design row: the draws are :func:`block_draws`'
        instead of nilearn's sequence. None: nilearn's.
    whole_blocks : bool
        With ``blocks``: shuffle whole blocks (see :func:`block_draws`).
    layout : dict, optional
        Surface maps (packed, :func:`~glm_workflows.core.surfaces.surface_layout`):
        clusters and TFCE on the mesh (:mod:`.mesh_permutations`) instead of the grid.

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
    mesh = MeshSpace(problem.mask, layout) if spatial and layout is not None else None
    x0, c0 = problem.tested, problem.covars
    cached = None
    draws = _replay(int(seed), problem.intercept_test, problem.n_samples, stop) \
        if blocks is None else block_draws(int(seed), problem.intercept_test, blocks,
                                           whole_blocks, stop)
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
            if mesh is not None:
                if tfce:
                    out["max_tfce"][k] = tfce_max(scores[:, 0], mesh, problem.two_sided)
                if threshold is not None:
                    out["max_size"][k], out["max_mass"][k] = cluster_max(
                        scores[:, 0], mesh, problem.threshold_t, problem.two_sided)
                continue
            vol = problem.volume(scores[:, 0])
            if tfce:
                out["max_tfce"][k] = _tfce_max(vol, struct, problem.two_sided)
            if threshold is not None:
                size, mass = _cluster_max(vol, problem.threshold_t, struct, problem.two_sided)
                out["max_size"][k] = size
                out["max_mass"][k] = mass
    return out
