"""What every permutation of a group test shares, computed once per process and kept
(:class:`_Problem`): the masked maps, the design normalized as nilearn normalizes it,
the original statistics and the cluster-forming threshold."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from .group import _check_inputs, _weights
from .group_mask import finite_group_mask

_MASS_TOLERANCE = 1e-8  # relative; bounds the sum-order error of any cluster below 1e7 voxels


_CACHE: dict = {}


class _Problem:
    """nilearn's ``non_parametric_inference`` / ``permuted_ols`` up to the permutations,
    in the mask :func:`fit_group` fits (:func:`finite_group_mask`)."""

    def __init__(self, effect_files, design, mask_img, contrast, two_sided, threshold):
        from joblib import Memory
        from nilearn.maskers import NiftiMasker
        from nilearn.mass_univariate._utils import (
            normalize_matrix_on_axis,
            orthonormalize_matrix,
            t_score_with_covars_and_normalized_design,
        )
        from nilearn.mass_univariate.permuted_least_squares import _compute_t_stat_threshold

        effect_files = _check_inputs(effect_files, design)
        weights = _weights(contrast, design.columns)
        masker = NiftiMasker(mask_img=finite_group_mask(effect_files, mask_img).img,
                             smoothing_fwhm=None, memory=Memory(None), verbose=0,
                             memory_level=1, standardize=None)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            masker.fit(effect_files[0])
            target_vars = masker.transform(effect_files)
        names = design.columns.tolist()
        column_mask = [bool(val) for val in weights]
        tested_vars = np.dot(design, weights)
        rest = [n for n, m in zip(names, column_mask, strict=True) if not m]
        confounding_vars = np.asarray(design[rest]) if rest else None

        # permuted_ols, model_intercept=True
        tested_vars = np.asanyarray(tested_vars)
        target_vars = np.asfortranarray(target_vars)
        if tested_vars.ndim == 1:
            tested_vars = np.atleast_2d(tested_vars).T
        n_samples, n_regressors = tested_vars.shape
        intercept_test = n_regressors == np.unique(tested_vars).size == 1
        model_intercept = True
        if confounding_vars is not None:
            constants = [x for x in range(confounding_vars.shape[1])
                         if np.unique(confounding_vars[:, x]).size == 1]
            if (intercept_test and len(constants) == 1) or len(constants) > 1:
                confounding_vars = np.delete(confounding_vars, constants, axis=1)
                if confounding_vars.size == 0:
                    confounding_vars = None
            if not intercept_test and len(constants) == 1:
                intercept_test = True
        if model_intercept and not intercept_test:
            ones = np.ones((n_samples, 1))
            confounding_vars = (ones if confounding_vars is None
                                else np.hstack((confounding_vars, ones)))
        covars = None
        with np.errstate(divide="ignore", invalid="ignore"):
            if confounding_vars is not None:
                covars = np.ascontiguousarray(orthonormalize_matrix(confounding_vars))
                targets = np.ascontiguousarray(normalize_matrix_on_axis(target_vars).T)
                beta = np.dot(targets, covars)
                targets = targets - np.dot(beta, covars.T)
                targets = normalize_matrix_on_axis(targets, axis=1)
                tested = normalize_matrix_on_axis(tested_vars.T, axis=1)
                beta = np.dot(tested, covars)
                tested = tested - np.dot(beta, covars.T)
                tested = normalize_matrix_on_axis(tested, axis=1).T.copy()
            else:
                targets = normalize_matrix_on_axis(target_vars).T
                tested = normalize_matrix_on_axis(tested_vars).copy()
            targets = np.ascontiguousarray(targets)
            tested = np.ascontiguousarray(tested)
            self.scores = t_score_with_covars_and_normalized_design(tested, targets.T, covars)
        self.masker = masker
        self.targets = targets              # (n_voxels, n_samples), C-contiguous
        self.tested = tested                # (n_samples, 1)
        self.covars = covars                # (n_samples, k) or None
        self.intercept_test = intercept_test
        self.n_samples = n_samples
        self.two_sided = bool(two_sided)
        self.threshold = threshold
        self.threshold_t = _compute_t_stat_threshold(threshold, two_sided, tested_vars,
                                                     confounding_vars)
        lost = 0 if covars is None else covars.shape[1]
        self.dof = targets.shape[1] - lost
        mask = np.asarray(masker.mask_img_.get_fdata()) != 0
        self.mask = mask
        where = np.nonzero(mask)
        lo = [max(int(w.min()) - 1, 0) if w.size else 0 for w in where]
        hi = [min(int(w.max()) + 2, s) if w.size else s for w, s in zip(where, mask.shape,
                                                                      strict=True)]
        self.box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        self.box_mask = mask[self.box]

    def volume(self, values):
        """Masked values as the cropped volume nilearn's labelling sees (exact copy)."""
        vol = np.zeros(self.box_mask.shape)
        vol[self.box_mask] = values
        return vol

    def t_max_from_beta(self, beta):
        """Max t (or |t|) without covariates: t is non-decreasing in the correlation."""
        with np.errstate(divide="ignore", invalid="ignore"):
            top = np.nanmax(beta)
            if self.two_sided:
                top = max(top, -np.nanmin(beta))
            b = np.array([[top]])
            t = b * np.sqrt((self.dof - 1.0) / (1 - b**2))
        return float(t[0, 0])

    def t_scores(self, tested, covars, cached=None):
        """nilearn's ``t_score_with_covars_and_normalized_design`` (same operations)."""
        beta = np.dot(self.targets, tested)
        if covars is None:
            rss = 1 - beta**2
        else:
            if cached is None:
                a2 = np.sum(np.dot(self.targets, covars) ** 2, 1)
                cached = 1 - a2[:, np.newaxis]
            rss = cached - beta**2
        np.divide(self.dof - 1.0, rss, out=rss)
        np.sqrt(rss, out=rss)
        return beta * rss, beta, cached


def sign_flip_test(design, weights) -> bool:
    """Whether the permutations of contrast ``weights`` over ``design`` (a DataFrame or an
    array) are sign flips rather than row shuffles, as nilearn's ``permuted_ols`` (and
    :func:`_problem`) decide: the tested column is constant, or exactly one of the columns
    the contrast does not weigh is (nilearn then flips signs too)."""
    values = np.asarray(design, dtype=float)
    weights = np.asarray(weights, dtype=float)
    if np.unique(values @ weights).size == 1:
        return True
    rest = values[:, weights == 0]
    return sum(np.unique(rest[:, j]).size == 1 for j in range(rest.shape[1])) == 1


def _file_key(item):
    if not isinstance(item, (str, Path)):
        return None
    stat = Path(item).stat()
    return (str(Path(item).resolve()), stat.st_mtime_ns, stat.st_size)


def _problem(effect_files, design, mask_img, contrast, two_sided, threshold) -> _Problem:
    """The prepared data, kept for the next call with the same files (one entry).

    Only inputs given as file paths (checked by path, modification time and size) are
    kept, so that chunks and their combination computed in one process read and
    mask the maps once.
    """
    effect_files = _check_inputs(effect_files, design)
    files = [_file_key(item) for item in [*effect_files, mask_img]]
    key = None
    if all(files):
        key = (tuple(files), tuple(map(str, design.columns)), tuple(map(str, design.index)),
               design.to_numpy(dtype=np.float64).tobytes(), repr(contrast), bool(two_sided),
               threshold)
        if key in _CACHE:
            return _CACHE[key]
    problem = _Problem(effect_files, design, mask_img, contrast, two_sided, threshold)
    _CACHE.clear()
    if key is not None:
        _CACHE[key] = problem
    return problem
