"""GLM fit, its persisted estimates, and t/F contrasts computed from them.

The fit is nilearn's :class:`~nilearn.glm.first_level.FirstLevelModel`. What a
contrast needs is written to plain files (NIfTI maps and a JSON sidecar), and
:func:`compute_contrast` reproduces ``FirstLevelModel.compute_contrast`` from
those files alone.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd
from nilearn.glm.contrasts import Contrast
from scipy.linalg import sqrtm

from .errors import InputError

NOISE_MODELS = ("ols", "ar1")

#: File names of a persisted fit, inside its directory.
FIT_FILES = {
    "betas": "betas.nii",
    "dispersion": "dispersion.nii",
    "ar1": "ar1.nii",
    "mask": "mask.nii.gz",
    "sidecar": "model.json",
}


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
        """Put mask-ordered values (``(n_voxels,)`` or ``(k, n_voxels)``) back in 3D/4D."""
        values = np.asarray(values, dtype=np.float64)
        if values.ndim == 1:
            data = np.zeros(self.mask.shape)
            data[self.mask] = values
        else:
            data = np.zeros(self.mask.shape + (values.shape[0],))
            data[self.mask] = values.T
        return nb.Nifti1Image(data, self.affine)


def fit_glm(bold_img, design: pd.DataFrame, *, mask_img=None, noise_model: str = "ar1",
            signal_scaling=0) -> FittedGLM:
    """Fit a first-level GLM with nilearn and keep what contrasts need.

    Parameters
    ----------
    bold_img : str or nibabel image
        4D functional image, ``n_scans`` volumes.
    design : pandas.DataFrame
        Design matrix of shape ``(n_scans, n_regressors)``.
    mask_img : str, nibabel image or None
        Brain mask; by default the one ``FirstLevelModel`` computes from the data.
    noise_model : {'ar1', 'ols'}
        Temporal noise model.
    signal_scaling : 0, 1, (0, 1) or False
        As in ``FirstLevelModel`` (0: each voxel's series scaled to percent of its mean).

    Returns
    -------
    fit : FittedGLM
    """
    from nilearn.glm.first_level import FirstLevelModel

    if noise_model not in NOISE_MODELS:
        raise InputError(f"noise_model: expected one of {', '.join(NOISE_MODELS)}, "
                         f"got {noise_model!r}")
    n_scans = nb.load(bold_img).shape[3] if isinstance(bold_img, (str, os.PathLike)) \
        else bold_img.shape[3]
    if len(design) != n_scans:
        raise InputError(f"design matrix: {len(design)} rows but the image has {n_scans} scans")
    model = FirstLevelModel(
        noise_model=noise_model,
        mask_img=mask_img,
        standardize=False,
        signal_scaling=signal_scaling,
        minimize_memory=True,
    )
    model.fit(bold_img, design_matrices=[design])
    labels = model.labels_[0]
    results = model.results_[0]
    n_voxels = labels.size
    n_regressors = design.shape[1]
    label_values = np.array([float(label) for label in labels])
    betas = np.empty((n_regressors, n_voxels))
    dispersion = np.empty(n_voxels)
    values = np.unique(label_values)
    noise_bins = []
    for value in values:
        label = _find_label(results, value)
        members = label_values == value if not np.isnan(value) else np.isnan(label_values)
        betas[:, members] = results[label].theta
        dispersion[members] = results[label].dispersion
        noise_bins.append((float(value), np.asarray(results[label].cov, dtype=np.float64)))
    mask_nii = model.masker_.mask_img_
    return FittedGLM(
        mask=np.asanyarray(mask_nii.dataobj).astype(bool),
        affine=mask_nii.affine,
        betas=betas,
        dispersion=dispersion,
        ar1=label_values if noise_model == "ar1" else np.zeros(n_voxels),
        noise_bins=noise_bins,
        df_residuals=float(next(iter(results.values())).df_residuals),
        columns=[str(c) for c in design.columns],
        noise_model=noise_model,
    )


def _find_label(results: dict, value: float):
    """Key of nilearn's results dict whose numeric value is ``value``."""
    for label in results:
        numeric = float(label)
        if numeric == value or (np.isnan(numeric) and np.isnan(value)):
            return label
    raise KeyError(value)


def save_fitted_glm(fit: FittedGLM, out_dir: str | os.PathLike) -> dict:
    """Write a fit as NIfTI maps plus a JSON sidecar.

    Returns
    -------
    paths : dict
        Keys ``betas``, ``dispersion``, ``ar1``, ``mask``, ``sidecar``: the written files,
        which :func:`load_fitted_glm` takes back.
    """
    out_dir = Path(out_dir)
    paths = {key: str(out_dir / name) for key, name in FIT_FILES.items()}
    fit.to_image(fit.betas).to_filename(paths["betas"])
    fit.to_image(fit.dispersion).to_filename(paths["dispersion"])
    fit.to_image(fit.ar1).to_filename(paths["ar1"])
    nb.Nifti1Image(fit.mask.astype(np.uint8), fit.affine).to_filename(paths["mask"])
    sidecar = {
        "NoiseModel": fit.noise_model,
        "DesignColumns": fit.columns,
        "DegreesOfFreedom": fit.df_residuals,
        "NoiseBins": [
            {"AR1": None if np.isnan(value) else value, "NormalizedCovariance": cov.tolist()}
            for value, cov in fit.noise_bins
        ],
    }
    Path(paths["sidecar"]).write_text(json.dumps(sidecar, indent=1))
    return paths


def load_fitted_glm(*, betas, dispersion, ar1, mask, sidecar) -> FittedGLM:
    """Read a fit written by :func:`save_fitted_glm` from its five files."""
    paths = {"betas": betas, "dispersion": dispersion, "ar1": ar1, "mask": mask,
             "sidecar": sidecar}
    for key, path in paths.items():
        if not Path(path).exists():
            raise InputError(f"{path}: persisted GLM fit file ({key}) not found")
    meta = json.loads(Path(sidecar).read_text())
    mask_img = nb.load(mask)
    mask_data = np.asanyarray(mask_img.dataobj).astype(bool)

    def masked(path):
        return np.asanyarray(nb.load(path).dataobj)[mask_data]

    return FittedGLM(
        mask=mask_data,
        affine=mask_img.affine,
        betas=masked(betas).T,
        dispersion=masked(dispersion),
        ar1=masked(ar1),
        noise_bins=[
            (np.nan if b["AR1"] is None else b["AR1"], np.array(b["NormalizedCovariance"]))
            for b in meta["NoiseBins"]
        ],
        df_residuals=meta["DegreesOfFreedom"],
        columns=meta["DesignColumns"],
        noise_model=meta["NoiseModel"],
    )


def compute_contrast(fit: FittedGLM, con_matrix, stat_type: str = "t") -> dict:
    """t or F contrast from a persisted fit, as ``FirstLevelModel.compute_contrast``.

    Parameters
    ----------
    fit : FittedGLM
    con_matrix : array-like, shape (n_regressors,) or (n_rows, n_regressors)
        Contrast weights, one column per design column.
    stat_type : {'t', 'F'}

    Returns
    -------
    maps : dict of str to nibabel.Nifti1Image
        ``effect`` (3D for t, one volume per row for F), ``variance``, ``stat``
        (the t or F map), ``z`` and ``p``.
    """
    con_matrix = np.atleast_2d(np.asarray(con_matrix, dtype=np.float64))
    if con_matrix.shape[1] != len(fit.columns):
        raise InputError(f"contrast: {con_matrix.shape[1]} weights for {len(fit.columns)} "
                         f"design columns ({', '.join(fit.columns)})")
    if stat_type not in ("t", "F"):
        raise InputError(f"stat_type: expected 't' or 'F', got {stat_type!r}")
    if stat_type == "t" and con_matrix.shape[0] != 1:
        raise InputError(f"t contrast: expected one row of weights, got {con_matrix.shape[0]}")
    n_rows, n_voxels = con_matrix.shape[0], fit.betas.shape[1]
    effect = np.zeros((n_rows, n_voxels))
    variance = np.zeros(n_voxels)
    for cov, idx in fit.bin_members():
        con_effect = con_matrix @ fit.betas[:, idx]
        con_cov = con_matrix @ cov @ con_matrix.T
        if stat_type == "t":
            effect[:, idx] = con_effect
            # sqrt then square, as nilearn does (through the standard deviation)
            variance[idx] = np.sqrt(con_cov[0, 0] * fit.dispersion[idx]) ** 2
        else:
            effect[:, idx] = sqrtm(np.linalg.inv(con_cov)) @ con_effect
            variance[idx] = fit.dispersion[idx]
    contrast = Contrast(effect=effect if stat_type == "F" else effect[0], variance=variance,
                        dim=n_rows, dof=fit.df_residuals, stat_type=stat_type)
    stat = contrast.stat()
    z_scores = contrast.z_score()
    return {
        "effect": fit.to_image(effect[0] if stat_type == "t" else effect),
        "variance": fit.to_image(variance),
        "stat": fit.to_image(stat),
        "z": fit.to_image(z_scores),
        "p": fit.to_image(contrast.p_value_),
    }
