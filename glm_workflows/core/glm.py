"""The GLM fit: what nilearn's :class:`~nilearn.glm.first_level.FirstLevelModel`
computes, vectorized over voxels (:func:`fit_glm`), with its AR(1) helpers. The persisted
estimates and the contrasts computed from them: :mod:`.estimates`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import nibabel as nb
import numpy as np

from .choices import NOISE_MODELS
from .errors import InputError
from .images import (
    check_mask_grid,
    compute_brain_mask,
    load_image_header,
    load_series,
    storage_to_mask_order,
    time_mean,
)
from .lazy import pandas as pd
from .lazy import scipy_linalg as spl
from .noise import CORRECTED_ORDERS, noise_codes, whiten_exact
from .noise_bins import CHUNK_VOXELS, fit_per_noise_bin, noise_groups, voxel_chunks, whiten
from .run_checks import check_sample_mask, check_varies_over_time, non_finite_warnings
from .smoothing import check_fwhm_fits, masked_run, smooths

#: AR(1) coefficients are truncated to multiples of 1 / AR1_BINS (nilearn's ``bins``).
AR1_BINS = 100


@dataclass
class FittedGLM:
    """Everything a contrast needs from a first-level fit.

    Attributes
    ----------
    mask : ndarray of bool, shape (x, y, z)
        Voxels that were fitted.
    affine : ndarray, shape (4, 4)
        Voxel-to-world transform of the maps.
    betas : ndarray, shape (n_regressors, n_voxels)
        Parameter estimates, in mask order.
    dispersion : ndarray, shape (n_voxels,)
        Residual variance of the (whitened) model.
    ar1 : ndarray, shape (n_voxels,)
        Binned AR(1) coefficient of each voxel (0 everywhere for OLS); voxels that
        share a value share a whitened model.
    noise_bins : list of (float, ndarray of shape (n_regressors, n_regressors))
        Per AR(1) value, the normalized covariance of the estimates
        ``pinv(WX) pinv(WX).T``, sorted as :func:`numpy.unique` sorts the values.
    df_residuals : float
        Residual degrees of freedom.
    columns : list of str
        Design-matrix column names.
    noise_model : str
        ``'ols'`` or ``'ar1'``.
    smoothing_fwhm : float or None
        Width (mm) of the Gaussian kernel the run was smoothed with (None: unsmoothed).
    non_finite_voxels, non_finite_volumes : int
        How many voxels of the mask, and volumes, held non-finite samples (NaN, Inf),
        which were fitted as 0, as nilearn does.
    warnings : list of str
        One line per problem found in the data that did not stop the fit.
    bin_coefficients : dict
        Calibrated noise models (:mod:`glm_workflows.core.noise`): the AR coefficients of
        each noise-bin value of ``ar1`` (for ``ar2-corrected`` the ``ar1`` map holds a
        code per bin, not a coefficient); empty for nilearn's models.
    mean_img : nibabel.Nifti1Image or None
        ``fit_glm(with_mean=True)``: the run's mean over every volume, float32, computed
        from the data read for the fit
        (:func:`~glm_workflows.core.images.mean_image`'s values); else None.
    """

    mask: np.ndarray
    affine: np.ndarray
    betas: np.ndarray
    dispersion: np.ndarray
    ar1: np.ndarray
    noise_bins: list
    df_residuals: float
    columns: list
    noise_model: str
    smoothing_fwhm: float | None
    non_finite_voxels: int = 0
    non_finite_volumes: int = 0
    warnings: list = field(default_factory=list)
    bin_coefficients: dict = field(default_factory=dict)
    mean_img: nb.Nifti1Image | None = None

    def bin_members(self):
        """Yield ``(normalized_cov, voxel_index)`` for each noise bin."""
        values, inverse = np.unique(self.ar1, return_inverse=True)
        if len(values) != len(self.noise_bins):
            raise InputError(
                f"persisted fit: {len(values)} distinct AR(1) values in the map but "
                f"{len(self.noise_bins)} noise bins in the sidecar"
            )
        for index, (_, cov) in enumerate(self.noise_bins):
            yield cov, np.flatnonzero(inverse == index)

    def to_image(self, values: np.ndarray) -> nb.Nifti1Image:
        """Put mask-ordered values (``(n_voxels,)`` or ``(k, n_voxels)``) back in 3D/4D.

        The array is built in Fortran order, the order NIfTI stores, so writing it is a
        straight copy.
        """
        values = np.asarray(values, dtype=np.float64)
        rows = np.atleast_2d(values)
        data = np.zeros(self.mask.shape + (rows.shape[0],), order="F")
        for volume, row in enumerate(rows):
            data[..., volume][self.mask] = row
        return nb.Nifti1Image(data[..., 0] if values.ndim == 1 else data, self.affine)


def fit_glm(bold_img, design: pd.DataFrame, *, mask_img=None,
            noise_model: str, smoothing_fwhm: float | None,
            run_name: str | None = None, sample_mask=None,
            with_mean: bool = False, observer=None) -> FittedGLM:
    """Fit a first-level GLM, as nilearn's ``FirstLevelModel`` does, but vectorized.

    The steps and their arithmetic are nilearn's (mask, mean scaling to percent
    signal change in float32, OLS, lag-1 Yule-Walker on the OLS residuals, AR(1)
    coefficients truncated to hundredths, one whitened least-squares fit per AR(1)
    value); what differs is that every step runs on all voxels at once (in chunks
    of :data:`CHUNK_VOXELS`) instead of one Python call per voxel, and that the run
    is read once, in its stored type.

    Parameters
    ----------
    bold_img : str, PathLike or nibabel image
        4D functional image, ``n_scans`` volumes.
    design : pandas.DataFrame
        Design matrix of shape ``(n_scans, n_regressors)``.
    mask_img : str, PathLike, nibabel image or None
        Brain mask on the image's grid; by default the mask ``FirstLevelModel``
        computes (nilearn's EPI mask of the run).
    noise_model : {'ar1', 'ols', 'ar1-corrected', 'ar2-corrected'}
        Temporal noise model: ``ar1`` and ``ols`` as nilearn's; ``ar1-corrected`` and
        ``ar2-corrected``: AR(1) or AR(2) coefficients corrected for the bias of
        estimating them from residuals, smoothed within the mask, and exact whitening
        (:mod:`glm_workflows.core.noise`).
    run_name : str or None
        How warnings and errors name the run (default: the image's file name).
    sample_mask : sequence of int or None
        Indices of the volumes to fit (censoring: non-steady-state or high-motion
        volumes left out), as nilearn's ``FirstLevelModel.fit(sample_masks=...)``: the
        mask is computed on the whole run, then the kept volumes and the design's
        matching rows are fitted as one series (mean scaling and AR(1) on the kept
        volumes). None: every volume.
    smoothing_fwhm : float or None
        Smooth each volume with a Gaussian kernel of this FWHM (mm) before masking, as
        nilearn's ``FirstLevelModel(smoothing_fwhm=...)`` does
        (:mod:`glm_workflows.core.smoothing`); the mask is the unsmoothed run's. None or
        0: no smoothing.
    with_mean : bool
        Also keep the run's mean image (``mean_img``), from the data read for the fit
        (so a workflow reads the run once for both).
    observer : object or None
        Also shown the noise bins' models and each chunk of voxels as it is fitted (the
        fit's diagnostics, :class:`~glm_workflows.core.diagnostics.FitDiagnostics`, so a
        workflow reads and whitens the run once for both): its ``start(n_scans, voxels)``
        is called before the fit (``voxels``: the mask-order voxel of each column the
        chunks will come in), ``noise_bins(models)`` once with each bin's ``(wX,
        calc_beta)`` (the whitened design and its pseudo-inverse, bins in order), then
        ``chunk(columns, parts, Y, wY, fitted)`` for each chunk of voxels (a slice of those
        columns, the bins in it as :func:`~glm_workflows.core.noise_bins.bin_chunks` gives
        them; the scaled series, the whitened series and the whitened fitted values
        ``wX β``, none of which it may change or keep: the fit reuses them; ``Y`` is a
        view of the series in its own type, ``wY`` and ``fitted`` float64 views that need
        not be contiguous).

    Returns
    -------
    fit : FittedGLM
        Its ``warnings`` say how many voxels and volumes held non-finite samples
        (NaN, Inf) in a float run; nilearn's masker sets them to 0, and so does the fit.

    Raises
    ------
    InputError
        Naming the run, before fitting, if the brain mask is empty or if none of the
        voxels in the mask varies over time (nothing but rounding noise to fit).
    """
    if noise_model not in NOISE_MODELS:
        raise InputError(f"noise_model: expected one of {', '.join(NOISE_MODELS)}, "
                         f"got {noise_model!r}")
    series, X, mask, img, non_finite, name, mean_img = run_series(
        bold_img, design, mask_img=mask_img, smoothing_fwhm=smoothing_fwhm,
        run_name=run_name, sample_mask=sample_mask, with_mean=with_mean)

    if noise_model == "ar1":
        ar1 = bin_ar1(ar1_coefficients(series, X))
    elif noise_model in CORRECTED_ORDERS:
        ar1, coefficients = noise_codes(series, X, mask, img.affine,
                                        CORRECTED_ORDERS[noise_model])
    else:
        ar1 = np.zeros(series.shape[1])
    if noise_model in CORRECTED_ORDERS:
        def whiten_values(values, code, out=None):
            return whiten_exact(values, coefficients[float(code)], out)
    else:
        whiten_values = whiten
    values, order, bounds = noise_groups(ar1)
    storage_order = storage_to_mask_order(mask)
    grouped_order = np.argsort(order)[storage_order]  # both reorderings in one
    if observer is not None:
        observer.start(series.shape[0], np.argsort(grouped_order))
    betas, dispersion, noise_bins = fit_per_noise_bin(series, X, values, order, bounds,
                                                      whiten_values, observer)
    del series
    eps = np.abs(X).sum() * np.finfo(np.float64).eps
    return FittedGLM(
        mask=mask,
        affine=img.affine,
        betas=np.take(betas, grouped_order, axis=1),
        dispersion=dispersion[grouped_order],
        ar1=ar1[storage_order],
        noise_bins=noise_bins,
        df_residuals=float(X.shape[0] - np.linalg.matrix_rank(X, eps)),
        columns=[str(c) for c in design.columns],
        noise_model=noise_model,
        non_finite_voxels=non_finite[0],
        non_finite_volumes=non_finite[1],
        warnings=non_finite_warnings(name, *non_finite),
        bin_coefficients=coefficients if noise_model in CORRECTED_ORDERS else {},
        smoothing_fwhm=float(smoothing_fwhm) if smooths(smoothing_fwhm) else None,
        mean_img=mean_img,
    )


def run_series(bold_img, design: pd.DataFrame, *, mask_img, smoothing_fwhm, run_name,
               sample_mask, with_mean=False):
    """The series :func:`fit_glm` fits (same arguments): read in its stored type, masked
    (the mask given, or nilearn's EPI mask), smoothed, censored, scaled to percent signal
    change. Returns ``(series, X, mask, img, non_finite, name, mean_img)``: ``(n_kept,
    n_voxels)`` in storage order, the design's kept rows (float64), the mask, the image,
    the non-finite voxel and volume counts, the run's name and its mean image (None
    unless ``with_mean``).

    The run is read once. Its float64 mean over time is computed once when asked for or
    when it is where nilearn's EPI mask starts (integer samples: ``data.mean(axis=-1)``).
    A run read here from a file is masked over its own memory
    (:func:`~glm_workflows.core.images.masked_series` ``overwrite``)."""
    img = load_image_header(bold_img) if isinstance(bold_img, (str, os.PathLike)) else bold_img
    if img.ndim != 4 or img.shape[3] != len(design):
        raise InputError(f"design matrix: {len(design)} rows but the image has shape "
                         f"{img.shape}")
    if mask_img is not None:
        mask_img = load_image_header(mask_img) \
            if isinstance(mask_img, (str, os.PathLike)) else mask_img
        mask = check_mask_grid(mask_img, img)
    name = run_name or img.get_filename() or "image"
    check_fwhm_fits(smoothing_fwhm, img.shape, img.affine, "smoothing_fwhm", name)
    owned = not isinstance(img.dataobj, np.ndarray)  # read here: nobody else holds it
    data, img = load_series(img)
    integer = data.dtype.kind in "iu"
    mean = time_mean(data) if with_mean or (mask_img is None and integer) else None
    if mask_img is None:
        mask = compute_brain_mask(nb.Nifti1Image(mean if integer else data, img.affine), name)
    series, non_finite = masked_run(data, img.affine, mask, smoothing_fwhm,
                                    overwrite=owned and not isinstance(data, np.memmap))
    del data
    X = design.to_numpy(dtype=np.float64)
    if sample_mask is not None:
        kept = check_sample_mask(sample_mask, len(X), X.shape[1], name)
        series, X = series[kept], X[kept]
    check_varies_over_time(series, name, non_finite[0], chunk_voxels=CHUNK_VOXELS)
    mean_img = nb.Nifti1Image(mean.astype(np.float32), img.affine) if with_mean else None
    return scale_to_percent(series), X, mask, img, non_finite, name, mean_img


def scale_to_percent(series: np.ndarray) -> np.ndarray:
    """Scale each voxel's series to percent of its mean, in place (nilearn's mean_scaling).

    ``100 * (y / max(mean(y), 1) - 1)``, computed in the array's own type.
    """
    mean = np.maximum(series.mean(axis=0), 1)
    series /= mean
    series -= 1
    series *= 100
    return series


def ar1_coefficients(series: np.ndarray, design: np.ndarray) -> np.ndarray:
    """Lag-1 Yule-Walker coefficient of every voxel's OLS residuals.

    As nilearn's ``run_glm``: residuals centred on their grand mean ``m``, then
    ``rho = (sum y_t y_{t+1} / (n - 1)) / (sum y_t**2 / n)``, for all voxels at once.

    Parameters
    ----------
    series : ndarray, shape (n_scans, n_voxels)
    design : ndarray, shape (n_scans, n_regressors)

    Returns
    -------
    rho : ndarray, shape (n_voxels,)
        0 where a residual series is constant (nilearn fails there).
    """
    n_scans, n_voxels = series.shape
    calc_beta = spl.pinv(design)
    # per-voxel sums, so the grand mean can be taken out afterwards exactly
    sums, squares, lagged, ends = (np.empty(n_voxels) for _ in range(4))
    for chunk in voxel_chunks(n_voxels):
        y = series[:, chunk].astype(np.float64)
        y -= design @ (calc_beta @ y)
        sums[chunk] = y.sum(axis=0)
        squares[chunk] = np.einsum("ij,ij->j", y, y)
        lagged[chunk] = np.einsum("ij,ij->j", y[:-1], y[1:])
        ends[chunk] = y[0] + y[-1]
    m = sums.sum() / (n_scans * n_voxels)
    r0 = squares - 2 * m * sums + n_scans * m**2
    r1 = lagged - m * (2 * sums - ends) + (n_scans - 1) * m**2
    r0 /= n_scans * n_scans
    r1 /= (n_scans - 1) * n_scans
    rho = np.zeros(n_voxels)
    np.divide(r1, r0, out=rho, where=r0 > 0)
    return rho


def bin_ar1(rho: np.ndarray, bins: int = AR1_BINS) -> np.ndarray:
    """AR(1) coefficients truncated to multiples of ``1 / bins``, as nilearn bins them."""
    return (rho * bins).astype(int) * 1.0 / bins
