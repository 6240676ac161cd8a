"""Permutation chunks combined: the null distribution and the corrected p-value maps,
equal to nilearn's ``non_parametric_inference`` run with ``n_jobs=1``
(:mod:`.permutations`)."""

from __future__ import annotations

import warnings

import numpy as np

from .errors import InputError
from .group import _INT64_WARNING
from .mesh_permutations import MeshSpace, cluster_measures, mesh_tfce
from .permutation_problem import _problem


def _concatenate(chunks, n_perm, keys):
    chunks = sorted(chunks, key=lambda c: int(c["start"]))
    position = 0
    for chunk in chunks:
        if int(chunk["start"]) != position:
            raise InputError(f"permutation chunks: permutation {position} is "
                             f"{'missing' if int(chunk['start']) > position else 'repeated'}; "
                             "expected chunks covering 0..n_perm-1 once")
        position = int(chunk["stop"])
    if position != n_perm:
        raise InputError(f"permutation chunks cover 0..{position - 1}; expected "
                         f"0..{n_perm - 1} (n_perm={n_perm})")
    out = {}
    for key in keys:
        if any(key not in c for c in chunks):
            raise InputError(f"permutation chunks: '{key}' missing; compute the chunks "
                             "with the same threshold and tfce options")
        out[key] = np.concatenate([np.asarray(c[key], dtype=np.float64) for c in chunks])
    return out


def _ranks(h0, original):
    """nilearn's ``sum over permutations of (h0 < original)``, as float."""
    ranks = np.searchsorted(np.sort(h0), original, side="left").astype(np.float64)
    ranks[np.isnan(original)] = 0.0
    return ranks


def combine_permutations(effect_files, design, mask_img, contrast, chunks, *, n_perm,
                         two_sided=False, threshold=None, tfce=False, layout=None) -> dict:
    """nilearn's ``non_parametric_inference`` output from chunks of null statistics.

    Parameters
    ----------
    effect_files, design, mask_img, contrast
        As for :func:`permutation_chunk`.
    chunks : sequence of dict
        :func:`permutation_chunk` results covering ``0..n_perm-1`` once, in any order.
    n_perm, two_sided, threshold, tfce, layout
        As given to every chunk (``layout``: surface maps, clusters and TFCE on the mesh,
        :func:`_mesh_outputs`).

    Returns
    -------
    maps : dict of nibabel images
        ``t`` and ``logp_max_t``; with ``threshold`` also ``size``, ``logp_max_size``,
        ``mass``, ``logp_max_mass``; with ``tfce`` also ``tfce`` and ``logp_max_tfce``.
    """
    from nibabel import Nifti1Image
    from nilearn.masking import apply_mask
    from nilearn.mass_univariate._utils import calculate_tfce
    from nilearn.mass_univariate.permuted_least_squares import (
        _prepare_output_permuted_ols,
        _update_outputs_for_tfce,
    )
    from scipy.ndimage import generate_binary_structure

    keys = ["max_t"]
    if threshold is not None:
        keys += ["max_size", "max_mass"]
    if tfce:
        keys += ["max_tfce"]
    null = _concatenate(chunks, n_perm, keys)
    problem = _problem(effect_files, design, mask_img, contrast, two_sided, threshold)
    masker = problem.masker
    scores = problem.scores  # (n_voxels, 1)
    n_voxels = scores.shape[0]
    bin_struct = generate_binary_structure(3, 1)
    original = np.fabs(scores[:, 0]) if two_sided else scores[:, 0]
    ranks = _ranks(null["max_t"], original)[np.newaxis]
    vfwe_pvals = (n_perm + 1 - ranks) / float(1 + n_perm)
    outputs = {"t": scores.T, "logp_max_t": -np.log10(vfwe_pvals),
               "h0_max_t": null["max_t"][np.newaxis]}
    if layout is not None and (tfce or threshold is not None):
        outputs.update(_mesh_outputs(problem, layout, null, n_perm, tfce, threshold))
    elif tfce:
        scores_4d = masker.inverse_transform(scores.T).get_fdata()
        tfce_original = calculate_tfce(scores_4d, bin_struct=bin_struct,
                                       two_sided_test=two_sided)
        tfce_original = apply_mask(Nifti1Image(tfce_original, masker.mask_img_.affine,
                                               masker.mask_img_.header),
                                   masker.mask_img_).T
        tfce_ranks = _ranks(null["max_tfce"], np.fabs(tfce_original[:, 0]))[np.newaxis]
        outputs = _update_outputs_for_tfce(outputs, True, tfce_original,
                                           [null["max_tfce"][np.newaxis]], 1, n_voxels,
                                           [tfce_ranks], n_perm)
    if threshold is not None and layout is None:
        with warnings.catch_warnings():
            # nilearn builds its cluster-size map from int64 counts (np.unique's) and
            # warns that it stores them as int32: no argument avoids it. The same values
            # are then cast to int32 here, as nilearn's own output stores them.
            warnings.filterwarnings("ignore", message=_INT64_WARNING, category=UserWarning)
            outputs = _prepare_output_permuted_ols(
                outputs, vfwe_pvals, scores, 1, threshold, [null["max_size"][np.newaxis]],
                [null["max_mass"][np.newaxis]], masker, problem.threshold_t, bin_struct,
                two_sided)
        outputs["size"] = outputs["size"].astype(np.int32)  # what nilearn stores of it
    maps = {"t": masker.inverse_transform(np.ravel(outputs["t"])),
            "logp_max_t": masker.inverse_transform(np.ravel(outputs["logp_max_t"]))}
    if tfce:
        maps["tfce"] = masker.inverse_transform(np.ravel(outputs["tfce"]))
        maps["logp_max_tfce"] = masker.inverse_transform(np.ravel(outputs["logp_max_tfce"]))
    if threshold is not None:
        for key in ("size", "logp_max_size", "mass", "logp_max_mass"):
            maps[key] = masker.inverse_transform(np.ravel(outputs[key]))
    return maps


def _mesh_outputs(problem, layout, null, n_perm, tfce, threshold) -> dict:
    """The TFCE and cluster outputs of surface maps, on the mesh, as nilearn computes them
    on a grid: TFCE's p from the rank of ``|TFCE|`` among the null maxima; each vertex of
    a cluster gets the cluster's size (vertices) or mass and their p (nilearn's
    ``null_to_p``, 'larger'), the background size 0, mass 0."""
    from nilearn.mass_univariate._utils import null_to_p

    space = MeshSpace(problem.mask, layout)
    scores = problem.scores[:, 0]
    out = {}
    if tfce:
        original = mesh_tfce(scores, space, problem.two_sided)
        ranks = _ranks(null["max_tfce"], np.fabs(original))
        out["tfce"] = original[np.newaxis]
        out["logp_max_tfce"] = -np.log10((n_perm + 1 - ranks) / float(1 + n_perm))[np.newaxis]
    if threshold is not None:
        labels, sizes, masses = cluster_measures(scores, space, problem.threshold_t,
                                                 problem.two_sided)
        for metric, values in (("size", sizes), ("mass", masses)):
            p_values = null_to_p(values.astype(np.float64), null[f"max_{metric}"], "larger")
            out[metric] = values[labels][np.newaxis]
            out[f"logp_max_{metric}"] = -np.log10(p_values[labels])[np.newaxis]
        out["size"] = out["size"].astype(np.int32)
    return out
