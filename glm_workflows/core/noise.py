"""Calibrated temporal noise models: autoregressive coefficients corrected for the bias
of estimating them from OLS residuals, smoothed within the mask, and exact whitening.

nilearn's AR(1) model estimates each voxel's coefficient by lag-1 Yule-Walker on the
OLS residuals, which the residual-forming projection ``R = I - X X^+`` biases towards
zero, and whitens the first sample as if it were an innovation; its null z maps are
wider than N(0, 1). Here, for residuals ``e = R y`` of stationary AR(p) noise with
autocorrelations ``rho_k``, the expected lag-``l`` ratio ``E[sum e_t e_{t+l}] /
E[sum e_t**2] = sum_k rho_k c_k(R D_l R) / sum_k rho_k c_k(R)``, with ``c_k`` the sums of
a matrix's ``+-k`` diagonals and ``D_l`` the lag-``l`` shift (Worsley et al., NeuroImage
2002), plus the second-order difference between the mean of a ratio and the ratio of the
means (:func:`ratio_bias`). These are computed once per design on a grid of coefficients,
and each voxel takes the coefficients whose expected ratios match its observed ones. The
coefficient maps are then smoothed within the mask (:data:`FWHM_MM`, as fmristat smooths its
autocorrelations), rounded to a grid (the fit solves one whitened model per distinct
value, as nilearn bins AR(1) values), and the whitening is exact: the first ``p`` samples
are transformed by the inverse Cholesky factor of their stationary covariance.
"""

from __future__ import annotations

import numpy as np

from .lazy import scipy_linalg as spl
from .noise_bins import voxel_chunks

#: The calibrated noise models and their autoregressive order.
CORRECTED_ORDERS = {"ar1-corrected": 1, "ar2-corrected": 2}
#: FWHM (mm) of the Gaussian kernel the coefficient maps are smoothed with, within the
#: mask (fmristat: 15 mm; SPM pools one value over the brain).
FWHM_MM = 10.0
#: Grid step the coefficients are rounded to (one whitened model per distinct value).
ROUNDING = {1: 0.01, 2: 0.02}
#: AR(1) coefficients considered.
AR1_RANGE = (-0.9, 0.95)
#: Margin kept inside the AR(2) stationarity triangle.
AR2_MARGIN = 0.03


def observed_ratios(series: np.ndarray, design: np.ndarray, order: int) -> np.ndarray:
    """Per voxel, ``sum e_t e_{t+l} / sum e_t**2`` of the OLS residuals, ``l = 1..order``.

    Returns
    -------
    ratios : ndarray, shape (n_voxels, order)
        0 where a residual series is constant.
    """
    n_voxels = series.shape[1]
    calc_beta = spl.pinv(design)
    ratios = np.zeros((n_voxels, order))
    for chunk in voxel_chunks(n_voxels):
        y = series[:, chunk].astype(np.float64)
        y -= design @ (calc_beta @ y)
        squares = np.einsum("ij,ij->j", y, y)
        for lag in range(1, order + 1):
            lagged = np.einsum("ij,ij->j", y[:-lag], y[lag:])
            np.divide(lagged, squares, out=ratios[chunk, lag - 1], where=squares > 0)
    return ratios


def expected_ratios(design: np.ndarray, autocorrelations: np.ndarray, order: int) -> np.ndarray:
    """Expected residual lag ratios (see the module docstring) for noise with the given
    autocorrelations.

    Parameters
    ----------
    design : ndarray, shape (n_scans, n_regressors)
    autocorrelations : ndarray, shape (n_models, n_scans)
        ``rho_0 = 1, rho_1, ...`` of each noise model.
    order : int
        Lags 1..order.

    Returns
    -------
    ratios : ndarray, shape (n_models, order)
    """
    n_scans = design.shape[0]
    residual_forming = np.eye(n_scans) - design @ spl.pinv(design)

    def by_lag(matrix):
        return np.array([np.trace(matrix) if k == 0
                         else np.trace(matrix, k) + np.trace(matrix, -k)
                         for k in range(n_scans)])

    denominator = autocorrelations @ by_lag(residual_forming)
    ratios = np.stack([autocorrelations @ by_lag(residual_forming[:, lag:]
                                                 @ residual_forming[:-lag, :])
                       for lag in range(1, order + 1)], axis=1) / denominator[:, None]
    return ratios + ratio_bias(autocorrelations, order)


def ratio_bias(autocorrelations: np.ndarray, order: int) -> np.ndarray:
    """Second-order difference between the mean of a ratio and the ratio of the means.

    For ``A = sum e_t e_{t+l}`` and ``B = sum e_t**2`` of a stationary Gaussian series,
    ``E[A/B] - E[A]/E[B] ~ (E[A] Var(B) / E[B] - Cov(A, B)) / E[B]**2``, which to first
    order in ``1/n`` is ``(2/n) (rho_l S_0 - S_l)`` with ``S_m = sum_k rho_|k| rho_|k+m|``
    over all lags. Without it the coefficients of short runs come out low (by 0.007 for
    AR(1) 0.4 over 120 scans).
    """
    n_models, n_scans = autocorrelations.shape
    bias = np.empty((n_models, order))
    for start in range(0, n_models, 4096):  # two-sided sequences of a block of models
        rho = autocorrelations[start:start + 4096]
        two_sided = np.concatenate([rho[:, :0:-1], rho], axis=1)
        s0 = np.einsum("ij,ij->i", two_sided, two_sided)
        for lag in range(1, order + 1):
            s_lag = np.einsum("ij,ij->i", two_sided[:, :-lag], two_sided[:, lag:])
            bias[start:start + 4096, lag - 1] = 2 / n_scans * (rho[:, lag] * s0 - s_lag)
    return bias


def ar_autocorrelations(coefficients: np.ndarray, n_scans: int) -> np.ndarray:
    """Autocorrelations ``rho_0..rho_{n-1}`` of stationary AR(1) or AR(2) processes.

    Parameters
    ----------
    coefficients : ndarray, shape (n_models, order)
    """
    n_models, order = coefficients.shape
    rho = np.ones((n_models, n_scans))
    phi1 = coefficients[:, 0]
    phi2 = coefficients[:, 1] if order == 2 else np.zeros(n_models)
    if n_scans > 1:
        rho[:, 1] = phi1 / (1 - phi2)
    for k in range(2, n_scans):
        rho[:, k] = phi1 * rho[:, k - 1] + phi2 * rho[:, k - 2]
    return rho


def coefficient_grid(order: int) -> np.ndarray:
    """The AR coefficients considered: AR(1) in :data:`AR1_RANGE` (step 0.001); AR(2) on a
    0.01 grid inside the stationarity triangle (minus :data:`AR2_MARGIN`)."""
    if order == 1:
        return np.round(np.arange(AR1_RANGE[0], AR1_RANGE[1] + 1e-9, 0.001), 3)[:, None]
    phi1, phi2 = np.meshgrid(np.arange(-1.0, 1.95, 0.01), np.arange(-0.95, 0.95, 0.01))
    phi1, phi2 = phi1.ravel(), phi2.ravel()
    inside = ((phi1 + phi2 < 1 - AR2_MARGIN) & (phi2 - phi1 < 1 - AR2_MARGIN)
              & (np.abs(phi2) < 1 - AR2_MARGIN))
    return np.column_stack([phi1[inside], phi2[inside]])


def corrected_coefficients(series: np.ndarray, design: np.ndarray, order: int) -> np.ndarray:
    """Per voxel, the AR(order) coefficients whose expected residual ratios are nearest
    to the observed ones (bias-corrected Yule-Walker).

    Returns
    -------
    coefficients : ndarray, shape (n_voxels, order)
    """
    observed = observed_ratios(series, design, order)
    grid = coefficient_grid(order)
    expected = expected_ratios(design, ar_autocorrelations(grid, design.shape[0]), order)
    if order == 1:
        increasing = np.maximum.accumulate(expected[:, 0])  # np.interp needs it
        return np.interp(observed[:, 0], increasing, grid[:, 0])[:, None]
    from scipy.spatial import cKDTree

    _, nearest = cKDTree(expected).query(observed)
    return grid[nearest]


def smooth_in_mask(values: np.ndarray, mask: np.ndarray, affine: np.ndarray,
                   fwhm_mm: float = FWHM_MM) -> np.ndarray:
    """Smooth per-voxel values (in :func:`~glm_workflows.core.images.masked_series`
    order) with a Gaussian kernel, within the mask only (normalized convolution: each
    voxel is the kernel-weighted mean of the mask voxels around it)."""
    from scipy.ndimage import gaussian_filter

    index = np.flatnonzero(mask.ravel(order="F"))
    volume = np.zeros(mask.size)
    volume[index] = values
    volume = volume.reshape(mask.shape, order="F")
    voxel_mm = np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))
    sigma = fwhm_mm / np.sqrt(8 * np.log(2)) / voxel_mm
    weights = gaussian_filter(mask.astype(np.float64), sigma, mode="constant")
    smoothed = gaussian_filter(volume, sigma, mode="constant")
    return smoothed.ravel(order="F")[index] / weights.ravel(order="F")[index]


def noise_codes(series: np.ndarray, design: np.ndarray, mask: np.ndarray,
                affine: np.ndarray, order: int) -> tuple[np.ndarray, dict]:
    """The corrected, smoothed and rounded coefficients of every voxel, as one code per
    voxel (the fit's noise-bin value) and the coefficients of each code.

    For AR(1) the code is the coefficient itself; for AR(2) it is
    ``1000 * i1 + i2`` with ``(phi1, phi2) = (i1, i2) * 0.02``.

    Returns
    -------
    codes : ndarray, shape (n_voxels,)
    coefficients : dict of float to tuple of float
    """
    raw = corrected_coefficients(series, design, order)
    step = ROUNDING[order]
    steps = np.column_stack([np.round(smooth_in_mask(raw[:, j], mask, affine) / step)
                             for j in range(order)])
    per_unit = round(1 / step)
    if order == 1:
        codes = steps[:, 0] / per_unit
        return codes, {float(code): (float(code),) for code in np.unique(codes)}
    # keep the rounded coefficients inside the stationarity triangle (minus the margin):
    # |phi2| <= b and phi2 - b <= phi1 <= b - phi2, in steps
    bound = np.floor((1 - AR2_MARGIN) * per_unit)
    steps[:, 1] = np.clip(steps[:, 1], -bound, bound)
    steps[:, 0] = np.clip(steps[:, 0], steps[:, 1] - bound, bound - steps[:, 1])
    codes = steps[:, 0] * 1000 + steps[:, 1]
    unique, first = np.unique(codes, return_index=True)
    return codes, {float(code): (float(steps[i, 0] / per_unit), float(steps[i, 1] / per_unit))
                   for code, i in zip(unique, first, strict=True)}


def whiten_exact(values: np.ndarray, coefficients, out: np.ndarray | None = None) -> np.ndarray:
    """Exact AR(1) or AR(2) prewhitening along the first axis: ``w_t = v_t - sum_j phi_j
    v_{t-j}`` for ``t >= p``, and the first ``p`` samples multiplied by the inverse
    Cholesky factor of their stationary covariance (for unit innovations), so every
    whitened sample of such a process has the innovations' variance. Float64, into
    ``out`` if given (an array of ``values``' shape)."""
    values = np.asarray(values)
    whitened = np.empty(values.shape, dtype=np.float64) if out is None else out
    whitened[...] = values
    phi = [float(c) for c in coefficients]
    order = len(phi)
    for j, coefficient in enumerate(phi, start=1):
        whitened[order:] -= coefficient * values[order - j:len(values) - j]
    phi1, phi2 = phi[0], phi[1] if order == 2 else 0.0
    gamma0 = (1 - phi2) / ((1 + phi2) * ((1 - phi2) ** 2 - phi1**2))
    if order == 1:
        whitened[0] = values[0] / np.sqrt(gamma0)
        return whitened
    gamma1 = phi1 * gamma0 / (1 - phi2)
    l00 = np.sqrt(gamma0)
    l10 = gamma1 / l00
    l11 = np.sqrt(gamma0 - l10**2)
    whitened[0] = values[0] / l00
    whitened[1] = (values[1] - l10 * whitened[0]) / l11
    return whitened
