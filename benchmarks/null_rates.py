"""The null benchmarks' arithmetic: intervals of an observed rate and the exact
family-wise error rate of a permutation method (``bench_null``, ``bench_group_null``,
``bench_surface_null``)."""

from __future__ import annotations

import math

#: The family-wise error rate the methods are run at.
ALPHA = 0.05


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """The exact (Clopper-Pearson) interval of a rate of ``k`` in ``n``."""
    from scipy.stats import beta

    tail = (1 - level) / 2
    low = 0.0 if k == 0 else float(beta.ppf(tail, k, n - k + 1))
    high = 1.0 if k == n else float(beta.ppf(1 - tail, k + 1, n - k))
    return low, high


def wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval of a rate of ``k`` in ``n``."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def exact_fwe_rate(n_perm: int, cluster: bool, alpha: float = ALPHA) -> float:
    """The family-wise error rate a permutation method has exactly under the null, with
    ``n_perm`` permutations (the observed statistic equally likely at each of the
    ``n_perm + 1`` ranks).

    Max-t and TFCE count the original map in their p, ``(1 + #{null >= observed}) /
    (n + 1)``: ``floor(alpha (n + 1)) / (n + 1)``. Cluster p-values are nilearn's
    ``null_to_p`` (``#{null >= observed} / n``, at least ``1 / n``; the original map not
    counted), on a grid as on the mesh: ``(floor(alpha n) + 1) / (n + 1)``, 0 when
    ``1 / n > alpha``.
    """
    if cluster:
        return (math.floor(alpha * n_perm + 1e-9) + 1) / (n_perm + 1) \
            if 1 / n_perm <= alpha else 0.0
    return math.floor(alpha * (n_perm + 1) + 1e-9) / (n_perm + 1)
