"""The mixed-effects group model: first-level variances used, the between-subject
variance estimated per voxel by restricted maximum likelihood (REML).

The random-effects meta-regression model (FSL's FLAME1 and AFNI's 3dMEMA take this
approach): subject ``i``'s effect ``y_i = x_i' b + u_i + e_i`` with ``e_i ~ N(0, v_i)``
(its first-level variance, known) and ``u_i ~ N(0, tau2)`` (the between-subject variance,
estimated). Per voxel, with weights ``w_i = 1 / (v_i + tau2)``:

- ``tau2`` by REML Fisher scoring (metafor's ``rma(method="REML")``): ``tau2 += (y'PPy -
  tr P) / tr(PP)``, ``P = W - W X (X'WX)^-1 X'W``, started at the Hedges estimate and kept
  at or above 0; once the maximum is bracketed, a step that leaves the bracket or does
  not halve the last step is replaced by bisection (Newton's method made safe);
- ``b = (X'WX)^-1 X'W y`` (weighted least squares);
- the statistic is Knapp and Hartung's (metafor's ``test="knha"``): for a t contrast
  ``c``, ``t = c'b / sqrt(q c'(X'WX)^-1 c)`` with ``q = sum(w_i r_i^2) / (n - p)``; for an
  F contrast ``C`` of rank ``r``, ``F = (Cb)'(q C(X'WX)^-1 C')^-1 (Cb) / r``. Its degrees of
  freedom are those of the weights' effective number of subjects (Kish's
  ``n_eff = (sum w)^2 / sum(w^2)``) less ``p`` (at least 1), per voxel, not ``n - p``:
  with weights that differ, fewer subjects carry the estimate, and the t on ``n - p``
  degrees of freedom is too liberal in the tails (family-wise error 0.115 instead of
  0.05 when the variances span a 16-fold range; a Wald z far more), see
  ``benchmarks/bench_mixed.py``.

With equal first-level variances, wherever ``tau2 > 0`` the weights are equal, ``q = 1``,
``n_eff = n`` and the statistic is exactly the ordinary least-squares t (or F, and their
p and z) of the same design;
where REML puts ``tau2`` at 0 (the maps vary less than their variances say) it is not.

All of it is vectorized over voxels: the per-voxel work is on ``p x p`` matrices.
"""

from __future__ import annotations

import numpy as np

from .errors import InputError

#: Fisher scoring stops when every voxel's step is below this (relative to tau2 plus the
#: voxel's mean first-level variance: the same steps whatever the maps' units).
TOLERANCE = 1e-10
#: ... or after this many iterations (metafor's default maximum is 100).
MAX_ITERATIONS = 100


def _gram(design: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """``X' diag(w) X`` per voxel: (n_voxels, p, p)."""
    return np.einsum("ni,nv,nj->vij", design, weights, design, optimize=True)


def _weighted_fit(effects, weights, design):
    """Per voxel: ``(X'WX)^-1``, ``b`` and the residuals."""
    inverse = np.linalg.inv(_gram(design, weights))
    right = np.einsum("ni,nv->vi", design, weights * effects, optimize=True)
    beta = np.einsum("vij,vj->vi", inverse, right, optimize=True)
    residuals = effects - design @ beta.T
    return inverse, beta, residuals


def reml_tau2(effects, variances, design, *, tol: float = TOLERANCE,
              max_iter: int = MAX_ITERATIONS) -> np.ndarray:
    """The between-subject variance per voxel, by REML.

    Parameters
    ----------
    effects, variances : numpy.ndarray, shape (n_subjects, n_voxels)
        The subjects' effects and first-level variances (variances > 0).
    design : numpy.ndarray, shape (n_subjects, p)
        Full column rank, ``p < n_subjects``.
    tol, max_iter
        Convergence: every voxel's step below ``tol * (tau2 + its mean variance)`` (relative
        to the data's scale), or ``max_iter`` steps.

    Returns
    -------
    tau2 : numpy.ndarray, shape (n_voxels,)
        At or above 0.
    """
    effects = np.asarray(effects, dtype=np.float64)
    variances = np.asarray(variances, dtype=np.float64)
    design = np.asarray(design, dtype=np.float64)
    n, p = design.shape
    # Hedges' estimate to start (metafor's "HE"): the OLS residual variance less the
    # variances' share of it
    pinv = np.linalg.pinv(design)
    hat = design @ pinv
    ols_residuals = effects - hat @ effects
    leverage = np.eye(n) - hat
    tau2 = np.maximum(0.0, ((ols_residuals ** 2).sum(axis=0)
                            - np.einsum("ii,iv->v", leverage, variances)) / (n - p))
    active = np.arange(effects.shape[1])
    # the maximum is bracketed: the score is > 0 at ``low`` and <= 0 at ``high``; a Fisher
    # step leaving the bracket (it overshoots where the likelihood is far from quadratic,
    # and would oscillate) is replaced by bisection
    low, high = np.zeros_like(tau2), np.full_like(tau2, np.inf)
    last_step = np.full_like(tau2, np.inf)  # a step not halving the last one bisects too
    for _ in range(max_iter):
        if not active.size:
            break
        y, v, t2 = effects[:, active], variances[:, active], tau2[active]
        weights = 1.0 / (v + t2)
        inverse, _, residuals = _weighted_fit(y, weights, design)
        projected = weights * residuals  # P y
        squared = weights * weights
        gram2 = _gram(design, squared)
        trace_p = weights.sum(axis=0) - np.einsum("vij,vji->v", inverse, gram2)
        a_gram2 = np.einsum("vij,vjk->vik", inverse, gram2)
        trace_pp = (squared.sum(axis=0)
                    - 2 * np.einsum("vij,vji->v", inverse, _gram(design, squared * weights))
                    + np.einsum("vij,vji->v", a_gram2, a_gram2))
        score = (projected ** 2).sum(axis=0) - trace_p  # twice the REML score
        lo = np.where(score > 0, t2, low[active])
        hi = np.where(score > 0, high[active], t2)
        proposal = t2 + score / trace_pp
        slow = np.abs(score / trace_pp) > np.abs(last_step[active]) / 2
        bisect = np.isfinite(hi) & ((proposal <= lo) | (proposal >= hi) | slow)
        updated = np.where(bisect, (lo + np.where(np.isfinite(hi), hi, lo)) / 2, proposal)
        updated = np.where((t2 == 0) & (score <= 0), 0.0, np.maximum(0.0, updated))
        low[active], high[active], tau2[active] = lo, hi, updated
        last_step[active] = updated - t2
        moving = np.abs(updated - t2) > tol * (updated + v.mean(axis=0))  # scale-free
        active = active[moving]
    return tau2


def mixed_contrast(effects, variances, design, weights, *, tau2=None,
                   f_test: bool | None = None) -> dict:
    """A contrast of the mixed-effects model, per voxel.

    Parameters
    ----------
    effects, variances : numpy.ndarray, shape (n_subjects, n_voxels)
    design : numpy.ndarray, shape (n_subjects, p)
    weights : numpy.ndarray, shape (p,) for t or (r, p) for F
    tau2 : numpy.ndarray or None
        :func:`reml_tau2`'s (None: estimated here).
    f_test : bool or None
        An F test (also of one row: ``F = t**2``, two-sided); None: F for several rows.

    Returns
    -------
    dict
        ``effect`` (c'b; F: the rows' effects, (r, n_voxels)), ``variance`` (q c'(X'WX)^-1 c;
        F: its diagonal), ``stat`` (t or F), ``dof`` (per voxel, ``n_eff - p``), ``tau2``,
        ``z`` and ``p`` (one-sided for t, upper tail for F, as nilearn's).
    """
    from scipy import stats

    design = np.asarray(design, dtype=np.float64)
    n, p = design.shape
    if n <= p:
        raise InputError(f"mixed-effects group model: {n} subjects for {p} design columns; "
                         "no degree of freedom left")
    effects = np.asarray(effects, dtype=np.float64)
    variances = np.asarray(variances, dtype=np.float64)
    if tau2 is None:
        tau2 = reml_tau2(effects, variances, design)
    w = 1.0 / (variances + tau2)
    inverse, beta, residuals = _weighted_fit(effects, w, design)
    q = (w * residuals ** 2).sum(axis=0) / (n - p)
    # Kish's effective n, less p, and at least 1 (n_eff tends to 1 when one subject's
    # variance is far below the others' and tau2 is 0)
    dof = np.maximum(1.0, w.sum(axis=0) ** 2 / (w * w).sum(axis=0) - p)
    contrast = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    effect = contrast @ beta.T  # (r, v)
    covariance = np.einsum("ri,vij,sj->vrs", contrast, inverse, contrast) * q[:, None, None]
    if not (contrast.shape[0] > 1 if f_test is None else f_test):
        variance = covariance[:, 0, 0]
        stat = effect[0] / np.sqrt(variance)
        p_value = stats.t.sf(stat, dof)
        return {"effect": effect[0], "variance": variance, "stat": stat, "dof": dof,
                "tau2": tau2, "z": _z_score(p_value, stats.t.cdf(stat, dof)), "p": p_value}
    rank = contrast.shape[0]
    solved = np.linalg.solve(covariance, effect.T[:, :, None])[:, :, 0]
    stat = np.einsum("vr,vr->v", effect.T, solved) / rank
    p_value = stats.f.sf(stat, rank, dof)
    return {"effect": effect, "variance": np.einsum("vrr->rv", covariance), "stat": stat,
            "dof": dof, "tau2": tau2, "z": _z_score(p_value, stats.f.cdf(stat, rank, dof)),
            "p": p_value}


def _z_score(p_value, one_minus_p):
    """z from a p-value as nilearn computes it (``nilearn.glm._utils.z_score``): from the
    upper tail, or the lower tail where that is negative, both clipped to doubles."""
    from scipy import stats

    z = stats.norm.isf(np.clip(p_value, 1.0e-300, 1.0 - 1.0e-16))
    lower = stats.norm.ppf(np.clip(one_minus_p, 1.0e-300, 1.0 - 1.0e-16))
    return np.where(z < 0, lower, z)


def fit_group_mixed(effect_files, variance_files, design, mask_img, contrast, names=None,
                    variance_names=None) -> dict:
    """Fit the mixed-effects group model and compute one contrast (as :func:`~glm_workflows
    .core.group.fit_group` does with nilearn's SecondLevelModel).

    Parameters
    ----------
    effect_files, variance_files : sequence of str
        Per subject, its effect map and that effect's first-level variance map, in the
        order of ``design``'s rows.
    design : pandas.DataFrame
        The group design (:func:`~glm_workflows.core.group.group_design`).
    mask_img : str or nibabel image
        The group mask; the model fits its voxels where every effect map is finite and
        every variance map finite and above 0
        (:func:`~glm_workflows.core.group_mask.finite_group_mask`).
    contrast : str or list/tuple of str
        A t contrast (an expression over the design's columns) or an F contrast's rows.
    names, variance_names : sequence of str, optional
        How messages name the maps.

    Returns
    -------
    maps : dict
        ``effect``, ``variance``, ``stat`` (Knapp-Hartung t or F), ``z``, ``p`` and ``tau2``
        (the between-subject variance) nibabel images (0 outside the mask), ``dof`` (per
        voxel fitted, :func:`mixed_contrast`'s) and ``mask`` (the
        :class:`~glm_workflows.core.group_mask.GroupMask` fitted).
    """
    import nibabel as nb

    from .contrasts import contrast_matrix
    from .group_mask import finite_group_mask
    from .images import read_image_data

    effect_files, variance_files = list(effect_files), list(variance_files)
    if len(variance_files) != len(effect_files) or len(effect_files) != design.shape[0]:
        raise InputError(f"mixed-effects group model: {len(effect_files)} effect maps, "
                         f"{len(variance_files)} variance maps, {design.shape[0]} design rows; "
                         "expected one of each per subject")
    names = list(names) if names is not None else [str(f) for f in effect_files]
    variance_names = list(variance_names) if variance_names is not None else [
        str(f) for f in variance_files]
    group_mask = finite_group_mask(effect_files + variance_files, mask_img,
                                   names + variance_names,
                                   positive=[False] * len(names) + [True] * len(names))
    inside = np.asanyarray(group_mask.img.dataobj) > 0

    def masked(files, labels):
        return np.stack([read_image_data(nb.load(f), label).reshape(inside.shape)[inside]
                         for f, label in zip(files, labels, strict=True)])

    columns = [str(c) for c in design.columns]
    f_test = isinstance(contrast, (list, tuple)) and all(isinstance(r, str) for r in contrast)
    weights = contrast_matrix(list(contrast) if f_test else [contrast], columns,
                              "F" if f_test else "t")
    result = mixed_contrast(masked(effect_files, names), masked(variance_files, variance_names),
                            design.to_numpy(dtype=np.float64),
                            weights if f_test else weights[0], f_test=f_test)
    affine = group_mask.img.affine

    def image(values):
        values = np.atleast_2d(values)
        data = np.zeros(inside.shape + (values.shape[0],))
        data[inside] = values.T
        return nb.Nifti1Image(data[..., 0] if values.shape[0] == 1 else data, affine)

    maps = {key: image(result[key]) for key in ("effect", "variance", "stat", "z", "p", "tau2")}
    return {**maps, "dof": result["dof"], "mask": group_mask}
