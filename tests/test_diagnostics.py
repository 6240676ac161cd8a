"""A run's fit diagnostics (issue 25 item 5): nilearn's R² and residuals on the SPM
auditory run, the whitening check against an independent computation on nilearn's
whitened residuals and calibrated on synthetic noise, and the cache of existing analyses
kept (the seed's nodes hash as before, the fit's new inputs aside: it writes the
diagnostics from the series it fitted)."""

import warnings
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd
import pytest
from nilearn.glm.first_level import FirstLevelModel
from scipy.stats import chi2

from glm_workflows.core.diagnostics import LAGS, FitDiagnostics, flagged_fraction
from glm_workflows.core.glm import fit_glm

TOLERANCE = 1e-10


def _diagnostics(bold, design, noise_model, residuals=False, mask_img=None):
    """The fit and its diagnostics, as the fit node computes them (while it fits)."""
    diagnostics = FitDiagnostics(noise_model, save_residuals=residuals)
    fit = fit_glm(bold, design, mask_img=mask_img, noise_model=noise_model,
                  smoothing_fwhm=None, observer=diagnostics)
    mask = nb.Nifti1Image(fit.mask.astype(np.uint8), fit.affine)
    return fit, mask, diagnostics.maps()


def _masked(img, mask):
    data = img.get_fdata()
    return data[mask] if data.ndim == 3 else data[mask].T  # (n_scans, n_voxels) for 4D


@pytest.mark.parametrize("noise_model", ["ar1", "ols"])
def test_r_square_residuals_and_whitening_check_equal_nilearn(seed_bold, seed_design,
                                                              noise_model):
    """On the SPM auditory run, with the same design and mask: R² equals nilearn's
    ``r_square_`` and the residuals its ``residuals_`` (<= 1e-10); the whitening check
    equals numpy's Ljung-Box on nilearn's whitened residuals, each lag's autocorrelation
    taken relative to its white-noise expectation for nilearn's whitened design."""
    fit, mask_img, ours = _diagnostics(seed_bold, seed_design, noise_model, residuals=True)
    model = FirstLevelModel(t_r=7, noise_model=noise_model, standardize=False,
                            mask_img=mask_img, minimize_memory=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(seed_bold, design_matrices=seed_design)
    mask = fit.mask
    r_square = model.r_square_[0]
    r_square = nb.Nifti1Image(r_square.get_fdata()[..., 0], r_square.affine) \
        if r_square.ndim == 4 else r_square
    assert np.abs(_masked(r_square, mask) - ours["r_square"]).max() <= TOLERANCE
    assert np.abs(_masked(model.residuals_[0], mask) - ours["residuals"]).max() <= TOLERANCE

    # the whitening check, from nilearn's whitened residuals and design (mask order)
    labels = model.labels_[0]
    n_scans = seed_design.shape[0]
    r = np.empty((LAGS, mask.sum()))
    for label, result in model.results_[0].items():
        e = result.whitened_residuals - result.whitened_residuals.mean(axis=0)
        forming = np.eye(n_scans) - result.whitened_design @ np.linalg.pinv(
            result.whitened_design)
        centred = forming - forming.mean(axis=0)  # M = C R; E[e e'] ~ M M'
        for k in range(1, LAGS + 1):
            expected = np.sum(centred[k:] * centred[:-k]) / np.sum(centred * centred)
            r[k - 1, labels == label] = (e[k:] * e[:-k]).sum(0) / (e * e).sum(0) - expected
    q = n_scans * (n_scans + 2) * sum(r[k - 1] ** 2 / (n_scans - k)
                                      for k in range(1, LAGS + 1))
    p = chi2.sf(q, LAGS - 1 if noise_model == "ar1" else LAGS)
    assert np.abs(ours["autocorrelation"] - r).max() <= TOLERANCE
    assert np.abs(ours["ljung_box"] - q).max() <= TOLERANCE * q.max()
    assert np.abs(ours["ljung_box_p"] - p).max() <= TOLERANCE
    assert flagged_fraction(ours["ljung_box_p"]) == np.mean(p < 0.05)


def test_ols_r_square_of_a_chunk_of_one_voxel_equals_nilearn(monkeypatch):
    """An integer run's OLS R² is taken over its float32 data, whose sums depend on the
    array's layout: a last chunk of a single voxel (65 voxels in chunks of 32) still gives
    nilearn's ``r_square_`` (numpy would sum one column alone in another order)."""
    from glm_workflows.core import noise_bins

    rng = np.random.default_rng(0)
    n_scans = 40
    mask = np.zeros((6, 6, 6), bool)
    mask.flat[:65] = True
    bold = nb.Nifti1Image((1000 + 30 * rng.standard_normal((6, 6, 6, n_scans))).astype(np.int16),
                          np.eye(4))
    mask_img = nb.Nifti1Image(mask.astype(np.uint8), np.eye(4))
    design = pd.DataFrame({"task": np.sin(np.arange(n_scans) / 3), "constant": 1.0})
    monkeypatch.setattr(noise_bins, "CHUNK_VOXELS", 32)
    _, _, ours = _diagnostics(bold, design, "ols", mask_img=mask_img)
    model = FirstLevelModel(noise_model="ols", standardize=False, mask_img=mask_img,
                            minimize_memory=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(bold, design_matrices=design)
    r_square = model.r_square_[0].get_fdata()
    theirs = (r_square[..., 0] if r_square.ndim == 4 else r_square)[mask]
    assert np.abs(ours["r_square"] - theirs).max() <= TOLERANCE * theirs.max()


# ----------------------------------------------------------------- calibration, synthetic


N_SCANS, SHAPE = 150, (12, 12, 8)


def _synthetic_run(phi: float, seed: int):
    """AR(1) noise of coefficient ``phi`` (0: white) around 1000, float32, every voxel in
    the mask; a block design, three cosine drifts and the constant."""
    rng = np.random.default_rng(seed)
    n_voxels = int(np.prod(SHAPE))
    innovations = rng.standard_normal((N_SCANS, n_voxels))
    noise = np.empty_like(innovations)
    noise[0] = innovations[0] / np.sqrt(1 - phi**2)
    for t in range(1, N_SCANS):
        noise[t] = phi * noise[t - 1] + innovations[t]
    data = (1000 + 5 * noise).T.reshape(*SHAPE, N_SCANS).astype(np.float32)
    t = np.arange(N_SCANS)
    design = pd.DataFrame({"task": ((t // 10) % 2).astype(float),
                           **{f"cosine{k}": np.cos(np.pi * k * (t + 0.5) / N_SCANS)
                              for k in (1, 2, 3)},
                           "constant": np.ones(N_SCANS)})
    mask = nb.Nifti1Image(np.ones(SHAPE, np.uint8), np.eye(4))
    return nb.Nifti1Image(data, np.eye(4)), design, mask


@pytest.mark.parametrize("phi, noise_model, low, high", [
    (0.0, "ols", 0.03, 0.075),            # white noise: the nominal 5 %
    (0.0, "ar1", 0.03, 0.075),
    (0.0, "ar1-corrected", 0.03, 0.075),
    (0.4, "ols", 0.9, 1.0),               # AR(1) noise left unwhitened: nearly all flagged
    (0.4, "ar1", 0.03, 0.085),            # ... whitened: near nominal again
    (0.4, "ar1-corrected", 0.03, 0.075),
])
def test_whitening_check_is_calibrated(phi, noise_model, low, high):
    bold, design, mask = _synthetic_run(phi, seed=1)
    _, _, maps = _diagnostics(bold, design, noise_model, mask_img=mask)
    assert low <= flagged_fraction(maps["ljung_box_p"]) <= high


# --------------------------------------------------------------- the cache of the seed kept

#: The seed's node input hashes on the commit before the diagnostics (9102c04), for ar1
#: (the default) and ols: every existing node hashes as before, but for the fit's new
#: inputs, ``save_mean`` and ``save_diagnostics`` (the fit writes the mean image and the
#: diagnostics: there is no mean node or diagnostics node any more),
#: and the design's, ``tables_digest`` (a digest of the events and confounds bytes, so that
#: an edit keeping size and modification time is not served from the cache), without
#: which they hash as before.
_AR1_HASHES = {
    "inference_activeMinusRest_wf.table": "189e2a19cf56252f90c9324ad056c779",
    "inference_activeMinusRest_wf.threshold": "da93ba13c707bc397eba9a913bf47da8",
    "inference_effectsOfInterest_wf.table": "189e2a19cf56252f90c9324ad056c779",
    "inference_effectsOfInterest_wf.threshold": "da93ba13c707bc397eba9a913bf47da8",
    "sub_01_task_auditory_wf.concatenate": "d751713988987e9331980363e24189ce",
    "sub_01_task_auditory_wf.design": "7bb0dc51794a9cd80e5cb7acc3b7d511",
    "sub_01_task_auditory_wf.estimate_activeMinusRest": "5aa29ddf20eda4156f691c6011667221",
    "sub_01_task_auditory_wf.estimate_effectsOfInterest": "43736a8d1bb75c51dfecab31ea960e6b",
    "sub_01_task_auditory_wf.fit": "61e46e43fa616ad6247d72c218cf4c44",
}
SEED_HASHES = [
    ([], _AR1_HASHES),
    # ols: only the fit node's inputs differ
    (["--noise-model", "ols"],
     {**_AR1_HASHES, "sub_01_task_auditory_wf.fit": "bef917cdec731299d0c5445e55f7d0b4"}),
]


@pytest.mark.parametrize("argv, expected", SEED_HASHES)
def test_existing_nodes_keep_their_hashes(data_dir, tmp_path, argv, expected):
    """The fit writes the diagnostics from the series it fitted (the run is read once):
    every node of the seed hashes what it hashed before. The fit's inputs are those of
    before plus ``save_mean=True`` and ``save_diagnostics=True`` and the design's plus
    ``tables_digest`` (so an existing work directory recomputes from the design once);
    the mean and diagnostics nodes are gone, and the sink takes the diagnostics from the
    fit."""
    import copy
    import hashlib

    from nipype.interfaces.base import Undefined

    from glm_workflows.cli import spec_from_args
    from glm_workflows.execution.prepare import prepare
    from glm_workflows.workflows.study import init_analysis_wf

    workflow = init_analysis_wf(prepare(*spec_from_args(
        ["--data-dir", str(data_dir), "--output-dir", str(tmp_path / "out"),
         "--work-dir", str(tmp_path / "work"), *argv])))
    nodes = {node.fullname: node for node in workflow._get_all_nodes()}
    fit_inputs = copy.deepcopy(nodes["sub_01_task_auditory_wf.fit"].inputs)
    hashed = fit_inputs.get_hashval(hash_method="content")[0]
    assert ("save_mean", True) in hashed and ("save_diagnostics", True) in hashed
    assert "save_residuals" not in dict(hashed)  # off: undefined
    fit_inputs.save_mean = fit_inputs.save_diagnostics = Undefined
    hashes = {name: node.inputs.get_hashval(hash_method="content")[1]
              for name, node in nodes.items()}
    hashes["sub_01_task_auditory_wf.fit"] = fit_inputs.get_hashval(hash_method="content")[1]
    design_inputs = copy.deepcopy(nodes["sub_01_task_auditory_wf.design"].inputs)
    events = Path(nodes["sub_01_task_auditory_wf.inputnode"].inputs.events_file).read_bytes()
    assert design_inputs.tables_digest == hashlib.sha1(events + b"\0").hexdigest()
    design_inputs.tables_digest = Undefined
    hashes["sub_01_task_auditory_wf.design"] = design_inputs.get_hashval(
        hash_method="content")[1]
    assert {name: hashes[name] for name in expected} == expected
    run_nodes = {name.split(".")[-1] for name in nodes if name.startswith("sub_01_task")}
    assert "diagnostics" not in run_nodes and "mean" not in run_nodes
    run_wf = workflow.get_node("sub_01_task_auditory_wf")
    fit, sink = run_wf.get_node("fit"), run_wf.get_node("sink")
    assert ("diagnostics_json", "model_json") in run_wf._graph.get_edge_data(
        fit, sink)["connect"]
