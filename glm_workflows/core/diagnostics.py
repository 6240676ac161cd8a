"""A run's fit diagnostics: nilearn's R² map, a whitening check and nilearn's residuals.

All three are computed while the fit fits (:class:`FitDiagnostics`, the observer of
``fit_glm(observer=...)``: the run is read and whitened once for the fit and its
diagnostics), from each chunk of voxels the fit holds: each voxel is whitened with its own
noise bin (nilearn's AR(1) whitening for ``ar1``, none for
``ols``, the exact AR(p) whitening of :mod:`.noise` for the calibrated models), and
``wY`` (the whitened data), ``wX β`` (the whitened design times the fit's estimates) give

* **R²**, nilearn's ``RegressionResults.r_square``: ``var(wX β) / var(wY)`` over time
  (population variances, each centred on its own mean), the "pseudo-R²" of the whitened
  model (for ``ols``, as nilearn, ``var(Y)`` in the data's own type: float32 for
  integer runs); the intercept's fitted values count only as far as they vary (a constant column
  is constant for ``ols``, ``[1, 1 - ρ, 1 - ρ, ...]`` after AR(1) whitening);
* **the whitening check**: the whitened residuals ``e = wY - wX β``, centred, have
  autocorrelations ``r_k = sum_t e_t e_{t+k} / sum_t e_t**2`` at lags ``k = 1..``
  :data:`LAGS`, and the Ljung-Box statistic ``Q = n (n + 2) sum_k r_k**2 / (n - k)``
  (``n`` the fitted volumes), with each ``r_k`` taken relative to what the design's
  residuals have for white noise (:func:`expected_autocorrelations`), is compared with
  χ² of :func:`ljung_box_dof` degrees of freedom: where the noise model left the
  residuals white ``p`` is uniform, so about :data:`ALPHA` of the brain is flagged;
* **the residuals**, nilearn's ``FirstLevelModel.residuals_``: ``Y - wX β``, the
  *unwhitened* (scaled) data minus the *whitened* fitted values (nilearn's
  ``RegressionResults.predicted``; nilearn issue #2964). For ``ols`` these are the
  ordinary residuals ``Y - X β``.

Censored volumes are left out: the series is the kept volumes, taken as consecutive.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .deflate import save_image
from .glm import FittedGLM

#: Lags of the whitening check (autocorrelations and Ljung-Box test): 1..LAGS.
LAGS = 3
#: A voxel is flagged when its Ljung-Box p value is below ALPHA.
ALPHA = 0.05
#: Values held at once when the white-noise expectations of the noise bins' models are
#: computed together (:func:`expected_autocorrelations`; 8 bytes each).
EXPECTATION_BATCH = 2**22
#: File names of a fit's diagnostics (:func:`save_diagnostics`), by their key in
#: :meth:`FitDiagnostics.maps`, and their sidecar's.
DIAGNOSTICS_FILES = {"r_square": "r_square.nii.gz", "autocorrelation": "autocorrelation.nii.gz",
                     "ljung_box": "ljung_box.nii.gz", "ljung_box_p": "ljung_box_p.nii.gz",
                     "residuals": "residuals.nii.gz", "sidecar": "diagnostics.json"}


class FitDiagnostics:
    """R², whitened-residual autocorrelations, Ljung-Box test and (optionally) residuals,
    collected chunk by chunk as :func:`~glm_workflows.core.glm.fit_glm` fits (pass it as
    ``observer``), then read with :meth:`maps`.

    Parameters
    ----------
    noise_model : str
        The fit's noise model (``ols``: R² over the data in their own type, as nilearn).
    save_residuals : bool
        Also keep nilearn's residuals (an ``(n_scans, n_voxels)`` float64 array): the
        setting ``ModelSettings.save_residuals`` (no default here: the settings' is the one).
    lags : int
        Autocorrelation lags 1..lags.
    """

    def __init__(self, noise_model: str, *, save_residuals: bool, lags: int = LAGS):
        self.noise_model = noise_model
        self.save_residuals = save_residuals
        self.lags = lags

    def start(self, n_scans: int, voxels: np.ndarray) -> None:
        """Make room for ``len(voxels)`` voxels; ``voxels`` maps the fit's columns to
        mask order."""
        self.n_scans, self._voxels = n_scans, voxels
        self.r_square = np.zeros(len(voxels))
        self.autocorrelation = np.zeros((self.lags, len(voxels)))
        self.residuals = np.empty((n_scans, len(voxels))) if self.save_residuals else None

    def noise_bins(self, models: list) -> None:
        """The noise bins' ``(wX, calc_beta)``, in order: each whitened design and that
        design's pseudo-inverse."""
        self._expected = expected_autocorrelations(models, self.lags)

    def chunk(self, columns: slice, parts: list, Y: np.ndarray, wY: np.ndarray,
              fitted: np.ndarray) -> None:
        """One chunk of voxels (``parts``: ``(bin index, slice within the chunk)``): the
        scaled series ``Y``, the whitened series ``wY`` and the whitened fitted values
        ``fitted`` (``wX β``)."""
        voxels = self._voxels[columns]
        # nilearn's OLS model does not whiten, so its variance of the data is taken in
        # their own type (float32 for integer runs), as numpy sums a C-ordered array of
        # many voxels: down each column (one column alone would be summed pairwise, in
        # another order: given twice); its AR models' in float64
        if self.noise_model == "ols":
            total = np.var(np.ascontiguousarray(Y) if Y.shape[1] > 1
                           else np.repeat(Y, 2, axis=1), axis=0)[:Y.shape[1]]
        else:
            total = np.var(wY, axis=0)
        self.r_square[voxels] = np.divide(np.var(fitted, axis=0), total,
                                          out=np.zeros(total.shape), where=total > 0)
        if self.residuals is not None:
            self.residuals[:, voxels] = Y - fitted
        expected = np.empty((self.lags, wY.shape[1]))
        for index, part in parts:
            expected[:, part] = self._expected[:, index, None]
        self.autocorrelation[:, voxels] = autocorrelations(wY - fitted, self.lags) - expected

    def maps(self) -> dict:
        """The maps, in mask order: ``r_square`` (n_voxels,), ``autocorrelation`` (lags,
        n_voxels), ``ljung_box`` and ``ljung_box_p`` (n_voxels,), and with
        ``save_residuals`` ``residuals`` (n_scans, n_voxels). A voxel whose whitened series
        is constant has R² 0, autocorrelations 0, Q 0 and p 1 (nilearn gives NaN for its
        R²)."""
        from scipy.stats import chi2

        q = ljung_box(self.autocorrelation, self.n_scans)
        maps = {"r_square": self.r_square, "autocorrelation": self.autocorrelation,
                "ljung_box": q, "ljung_box_p": chi2.sf(q, ljung_box_dof(self.noise_model,
                                                                       self.lags))}
        if self.residuals is not None:
            maps["residuals"] = self.residuals
        return maps


def save_diagnostics(fit: FittedGLM, maps: dict, out_dir) -> dict:
    """Write :meth:`FitDiagnostics.maps` (as NIfTI, in the fit's grid) and their JSON
    sidecar (the noise model, the definitions, the whitening check's summary) into
    ``out_dir``, named as :data:`DIAGNOSTICS_FILES`.

    Returns
    -------
    paths : dict
        The files written, by key (the maps' and ``sidecar``).
    """
    paths = {key: str(Path(out_dir) / DIAGNOSTICS_FILES[key]) for key in [*maps, "sidecar"]}
    for key, values in maps.items():
        save_image(fit.to_image(values), paths[key])
    fraction = flagged_fraction(maps["ljung_box_p"])
    Path(paths["sidecar"]).write_text(json.dumps({
        "NoiseModel": fit.noise_model,
        "DesignColumns": fit.columns,
        "DegreesOfFreedom": fit.df_residuals,
        **({"SmoothingFWHM": fit.smoothing_fwhm} if fit.smoothing_fwhm is not None else {}),
        "RSquared": "nilearn's RegressionResults.r_square: var(wX beta) / var(wY) over time, "
                    "the whitened model's fitted values over the whitened data (population "
                    "variances)",
        "WhiteningCheck": {
            "Summary": whitening_summary(fraction),
            "FractionFlagged": fraction,
            "Alpha": ALPHA,
            "Lags": list(range(1, LAGS + 1)),
            "DegreesOfFreedom": ljung_box_dof(fit.noise_model),
            "Statistic": "Ljung-Box Q = n (n + 2) sum_k r_k^2 / (n - k) of the whitened "
                         "residuals, r_k relative to its expectation under white noise for "
                         "the design",
        },
        **({"Residuals": "nilearn's FirstLevelModel.residuals_: Y - wX beta (scaled data "
                         "minus whitened fitted values)"} if "residuals" in maps else {}),
    }, indent=2))
    return paths


def autocorrelations(values: np.ndarray, lags: int) -> np.ndarray:
    """Sample autocorrelations of each column at lags 1..lags.

    ``r_k = sum_t (e_t - m)(e_{t+k} - m) / sum_t (e_t - m)**2``, ``m`` the column's mean
    (the estimator of the Ljung-Box test); 0 for a constant column.

    Parameters
    ----------
    values : ndarray, shape (n_scans, n_columns)

    Returns
    -------
    r : ndarray, shape (lags, n_columns)
    """
    centred = values - values.mean(axis=0)
    squares = np.einsum("ij,ij->j", centred, centred)
    r = np.zeros((lags, values.shape[1]))
    for lag in range(1, lags + 1):
        lagged = np.einsum("ij,ij->j", centred[:-lag], centred[lag:])
        np.divide(lagged, squares, out=r[lag - 1], where=squares > 0)
    return r


def expected_autocorrelations(models: list, lags: int) -> np.ndarray:
    """What :func:`autocorrelations` of a model's residuals is for white noise, to first
    order: ``tr(D_k M M') / tr(M M')`` with ``M = C (I - X X^+)`` (the residual-forming
    matrix, then centring ``C``) and ``D_k`` the lag-``k`` shift; about ``-p / (n - p)``
    at lag 1 for ``p`` slow regressors, which the raw statistic would count as
    autocorrelation left by the noise model. The traces are sums of products of ``M``'s
    rows (``tr(D_k M M') = sum_t M[t + k] . M[t]``), so ``M M'`` is never formed; the
    models are taken together, :data:`EXPECTATION_BATCH` values of ``M`` at a time.

    Parameters
    ----------
    models : list of (ndarray, ndarray)
        Each model's ``(X, X^+)``: the (whitened) design the residuals are of, shape
        ``(n_scans, n_regressors)``, and its pseudo-inverse (the fit's).
    lags : int
        Lags 1..lags.

    Returns
    -------
    expected : ndarray, shape (lags, n_models)
    """
    n_scans = models[0][0].shape[0]
    expected = np.empty((lags, len(models)))
    step = max(1, EXPECTATION_BATCH // n_scans**2)
    for start in range(0, len(models), step):
        batch = models[start:start + step]
        forming = np.stack([design for design, _ in batch]) \
            @ np.stack([inverse for _, inverse in batch])
        np.negative(forming, out=forming)
        forming.reshape(len(batch), -1)[:, ::n_scans + 1] += 1  # I - X X^+
        forming -= forming.mean(axis=1, keepdims=True)  # C R
        total = np.einsum("bij,bij->b", forming, forming)
        for lag in range(1, lags + 1):
            expected[lag - 1, start:start + len(batch)] = np.einsum(
                "bij,bij->b", forming[:, lag:], forming[:, :-lag]) / total
    return expected


def ljung_box(r: np.ndarray, n_scans: int) -> np.ndarray:
    """Ljung-Box ``Q = n (n + 2) sum_k r_k**2 / (n - k)`` of autocorrelations ``r``
    (shape ``(lags, n_columns)``, lags 1..) of series of ``n_scans`` samples."""
    lag = np.arange(1, r.shape[0] + 1)[:, None]
    return n_scans * (n_scans + 2) * (r**2 / (n_scans - lag)).sum(axis=0)


def ljung_box_dof(noise_model: str, lags: int = LAGS) -> int:
    """Degrees of freedom of the Ljung-Box χ²: ``lags``, less one for nilearn's ``ar1``,
    whose coefficient is each voxel's own estimate (Box and Pierce's correction for a
    fitted AR(1)); the calibrated models' coefficients are smoothed over the brain, so
    they keep ``lags``, as ``ols``."""
    return lags - 1 if noise_model == "ar1" else lags


def flagged_fraction(p_values: np.ndarray) -> float:
    """The fraction of voxels whose Ljung-Box p value is below :data:`ALPHA`."""
    return float(np.mean(p_values < ALPHA)) if p_values.size else 0.0


def whitening_summary(fraction: float, lags: int = LAGS) -> str:
    """The one-line summary of the whitening check (``fraction``: of the brain flagged,
    :func:`flagged_fraction`), as the report and sidecar say it."""
    return (f"the noise model leaves residual autocorrelation in "
            f"{100 * fraction:.1f} % of the brain "
            f"(Ljung-Box p < {ALPHA:g}, lags 1-{lags})")
