"""Fixed-effects combination of the runs of one subject (nilearn's compute_fixed_effects)."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nb
import numpy as np

from .errors import InputError


def run_dofs(model_sidecars) -> list[float]:
    """Residual degrees of freedom of each run, from the fits' ``model.json`` sidecars."""
    return [float(json.loads(Path(path).read_text())["DegreesOfFreedom"])
            for path in model_sidecars]


def intersect_run_masks(mask_files) -> nb.Nifti1Image:
    """Voxels fitted in every run: where the runs are combined."""
    from nilearn.masking import intersect_masks  # imported when used: it loads scikit-learn

    return intersect_masks(list(mask_files), threshold=1, connected=False)


def combine_runs(effect_files, variance_files, dofs, mask_img, weights=None) -> dict:
    """Fixed effects of one contrast over runs.

    Parameters
    ----------
    effect_files, variance_files : list of str
        Per run, the contrast's effect map (one volume per row for F) and its variance.
    dofs : list of float
        Per run, residual degrees of freedom; the combined statistic has their sum.
    mask_img : nibabel image
        Where runs are combined: :func:`intersect_run_masks` of the runs' masks.
    weights : sequence of float or None
        A linear combination of the runs (a Session or Subject node's design,
        :func:`glm_workflows.core.within_subject.combination_weights`): the effect
        ``sum(w_i e_i)`` with variance ``sum(w_i**2 v_i)``, its t on the summed degrees
        of freedom (nilearn's fixed effects of that one combined map). None: the mean.

    Returns
    -------
    maps : dict of str to nibabel.Nifti1Image
        ``effect`` (mean effect), ``variance`` (mean variance / n_runs), ``stat`` (t,
        or F for multi-row effects), ``z`` and ``p`` (one-sided, from z), as nilearn's
        ``compute_fixed_effects`` (not precision weighted).
    """
    n_runs = len(effect_files)
    if not n_runs or not len(variance_files) == len(dofs) == n_runs:
        raise InputError(f"fixed effects: expected one effect, variance and dof per run, "
                         f"got {n_runs}, {len(variance_files)}, {len(dofs)}")
    from nilearn.glm.contrasts import compute_fixed_effects
    from scipy.stats import norm  # imported when used, as nilearn: scipy.stats takes ~1 s

    effects, variances = list(effect_files), list(variance_files)
    if weights is not None:
        if len(weights) != n_runs:
            raise InputError(f"fixed effects: expected one weight per run, got {len(weights)} "
                             f"for {n_runs} runs")
        effects, variances = _weighted_sums(effects, variances, weights)
        dofs = [sum(dofs)]
    effect, variance, stat, z_map = compute_fixed_effects(
        effects, variances, mask=mask_img, precision_weighted=False, dofs=list(dofs),
    )
    inside = np.asanyarray(mask_img.dataobj) > 0
    p_values = np.zeros(inside.shape)
    p_values[inside] = norm.sf(z_map.get_fdata()[inside])
    return {"effect": effect, "variance": variance, "stat": stat, "z": z_map,
            "p": nb.Nifti1Image(p_values, mask_img.affine)}


def _weighted_sums(effect_files, variance_files, weights) -> tuple[list, list]:
    """The one combined effect map ``sum(w_i e_i)`` and its variance ``sum(w_i**2 v_i)``."""
    first = nb.load(effect_files[0])
    effect = sum(w * np.asanyarray(nb.load(f).dataobj, dtype=np.float64)
                 for w, f in zip(weights, effect_files, strict=True))
    variance = sum(w * w * np.asanyarray(nb.load(f).dataobj, dtype=np.float64)
                   for w, f in zip(weights, variance_files, strict=True))
    return ([nb.Nifti1Image(effect, first.affine)],
            [nb.Nifti1Image(variance, first.affine)])


def mean_of_images(files) -> nb.Nifti1Image:
    """Voxelwise mean of 3D images on one grid (the subject's mean functional image)."""
    imgs = [nb.load(f) for f in files]
    data = np.mean([np.asanyarray(img.dataobj, dtype=np.float64) for img in imgs], axis=0)
    return nb.Nifti1Image(data.astype(np.float32), imgs[0].affine)
