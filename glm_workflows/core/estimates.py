"""A fit's persisted estimates and the contrasts computed from them.

What a contrast needs is written to plain files (NIfTI maps and a JSON sidecar,
:data:`FIT_FILES`), and :func:`compute_contrast` reproduces nilearn's
``FirstLevelModel.compute_contrast`` from those files alone.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import nibabel as nb
import numpy as np

from .deflate import save_image
from .errors import InputError
from .glm import FittedGLM
from .lazy import scipy_linalg as spl
from .noise import CORRECTED_ORDERS

#: File names of a persisted fit, inside its directory.
FIT_FILES = {
    "betas": "betas.nii",
    "dispersion": "dispersion.nii",
    "ar1": "ar1.nii",
    "mask": "mask.nii.gz",
    "sidecar": "model.json",
}


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
    save_image(fit.to_image(fit.betas), paths["betas"])
    save_image(fit.to_image(fit.dispersion), paths["dispersion"])
    save_image(fit.to_image(fit.ar1), paths["ar1"])
    save_image(nb.Nifti1Image(fit.mask.astype(np.uint8), fit.affine), paths["mask"])
    sidecar = {
        "NoiseModel": fit.noise_model,
        "DesignColumns": fit.columns,
        "DegreesOfFreedom": fit.df_residuals,
        "NonFiniteVoxels": fit.non_finite_voxels,
        "NonFiniteVolumes": fit.non_finite_volumes,
        "NoiseBins": [
            {"AR1": None if np.isnan(value) else value, "NormalizedCovariance": cov.tolist(),
             **({"Coefficients": list(fit.bin_coefficients[float(value)])}
                if fit.bin_coefficients else {})}
            for value, cov in fit.noise_bins
        ],
    }
    summary = autocorrelation_summary(fit)
    if summary:
        sidecar["AutocorrelationSummary"] = summary
    if fit.smoothing_fwhm is not None:  # an unsmoothed fit's sidecar is as it was
        sidecar["SmoothingFWHM"] = fit.smoothing_fwhm
    # one line: the pure-Python encoder behind indent= takes 30 ms for 100 bins
    Path(paths["sidecar"]).write_text(json.dumps(sidecar))
    return paths


def autocorrelation_summary(fit: FittedGLM) -> dict | None:
    """What a calibrated noise model whitened: per AR coefficient, the median, quartiles
    and histogram (bins of 0.1) over the mask; None for nilearn's models (ar1, ols)."""
    if fit.noise_model not in CORRECTED_ORDERS or not fit.ar1.size:
        return None
    codes, inverse = np.unique(fit.ar1, return_inverse=True)  # one lookup per noise bin
    coefficients = np.array([fit.bin_coefficients[float(code)] for code in codes])[inverse]
    edges = np.round(np.arange(-2.0, 2.0 + 0.1, 0.1), 2)
    summary = {}
    for j in range(coefficients.shape[1]):
        values = coefficients[:, j]
        counts, _ = np.histogram(values, bins=edges)
        q1, median, q3 = (float(v) for v in np.percentile(values, [25, 50, 75]))
        summary[f"phi{j + 1}"] = {"Median": median, "Quartiles": [q1, q3],
                                  "HistogramEdges": edges.tolist(),
                                  "HistogramCounts": counts.tolist()}
    return summary


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
        non_finite_voxels=meta.get("NonFiniteVoxels", 0),  # absent from older sidecars
        non_finite_volumes=meta.get("NonFiniteVolumes", 0),
        bin_coefficients={float(b["AR1"]): tuple(b["Coefficients"])
                          for b in meta["NoiseBins"] if "Coefficients" in b},
        smoothing_fwhm=meta.get("SmoothingFWHM"),
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
            effect[:, idx] = spl.sqrtm(np.linalg.inv(con_cov)) @ con_effect
            variance[idx] = fit.dispersion[idx]
    from nilearn.glm.contrasts import Contrast  # imported when used: it loads scikit-learn

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
