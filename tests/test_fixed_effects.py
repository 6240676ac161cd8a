"""Several subjects and runs: per-run models and per-subject fixed effects equal nilearn's."""

import json
import warnings

import nibabel as nb
import numpy as np
import pandas as pd
import pytest
from nilearn.glm.contrasts import compute_fixed_effects
from nilearn.glm.first_level import FirstLevelModel
from nilearn.masking import intersect_masks

from glm_workflows.core.entities import bids_prefix
from glm_workflows.core.naming import contrast_file

pytestmark = pytest.mark.slow  # CLI runs of two subjects x two runs


def _nilearn_run_contrasts(split_bids_dir, subject, run):
    stem = split_bids_dir / f"sub-{subject}" / "func" / f"sub-{subject}_task-auditory_run-{run}"
    model = FirstLevelModel(t_r=7, noise_model="ar1", standardize=False, hrf_model="spm",
                            drift_model="cosine", high_pass=1 / 160, minimize_memory=False)
    model.fit(f"{stem}_bold.nii.gz", events=pd.read_csv(f"{stem}_events.tsv", sep="\t"))
    maps = model.compute_contrast("active - rest", output_type="all")
    dof = model.results_[0][next(iter(model.results_[0]))].df_residuals
    return maps, model.masker_.mask_img_, dof


@pytest.mark.parametrize("subject", ["01", "02"])
def test_fixed_effects_equal_nilearn(split_outputs, split_bids_dir, subject):
    """The subject's active - rest z map is nilearn's compute_fixed_effects of nilearn's
    per-run contrasts (in the intersection of the run masks), to 1e-10."""
    runs = [_nilearn_run_contrasts(split_bids_dir, subject, run) for run in (1, 2)]
    mask = intersect_masks([r[1] for r in runs], threshold=1, connected=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        effect, variance, _, z_map = compute_fixed_effects(
            [r[0]["effect_size"] for r in runs], [r[0]["effect_variance"] for r in runs],
            mask=mask, dofs=[r[2] for r in runs])
    path = {output: split_outputs / f"sub-{subject}" / contrast_file(
        bids_prefix(subject, "auditory"), "activeMinusRest", output)
        for output in ("z_maps", "effect_maps", "variance_maps", "contrast_jsons")}
    ours = nb.load(path["z_maps"]).get_fdata()
    np.testing.assert_allclose(ours, z_map.get_fdata(), atol=1e-10)
    np.testing.assert_allclose(nb.load(path["effect_maps"]).get_fdata(),
                               effect.get_fdata(), atol=1e-10)
    np.testing.assert_allclose(nb.load(path["variance_maps"]).get_fdata(),
                               variance.get_fdata(), atol=1e-10)
    sidecar = json.loads(path["contrast_jsons"].read_text())
    assert sidecar["DegreesOfFreedom"] == sum(r[2] for r in runs) == 2 * (48 - 7)
    assert sidecar["FixedEffectsOf"] == [bids_prefix(subject, "auditory", run=run)
                                         for run in ("1", "2")]


def test_subject_tables_and_thresholds(split_outputs):
    """Both subjects' combined maps go through the same threshold and table steps; the
    two subjects have the same data in the other run order, so the same results."""
    tables = {}
    for subject in ("01", "02"):
        folder, prefix = split_outputs / f"sub-{subject}", bids_prefix(subject, "auditory")
        settings = json.loads(
            (folder / contrast_file(prefix, "activeMinusRest", "threshold_jsons")).read_text())
        assert settings["HeightControl"] == "fdr" and settings["Alpha"] == 0.05
        tables[subject] = pd.read_csv(
            folder / contrast_file(prefix, "activeMinusRest", "cluster_tables"), sep="\t")
        peak = tables[subject].iloc[0]
        assert (peak["X"], peak["Y"], peak["Z"]) in {(-63.0, -6.0, 42.0), (60.0, 0.0, 36.0)}
        assert peak["Peak Stat"] > 8
    pd.testing.assert_frame_equal(tables["01"], tables["02"])
    for run in (1, 2):  # run-level results are written too, with the run entity
        assert (split_outputs / "sub-01" / contrast_file(
            bids_prefix("01", "auditory", run=run), "activeMinusRest", "cluster_tables")).exists()


def test_every_factory_builds_a_valid_graph(tmp_path, split_bids_dir):
    """The inference, fixed-effects and study factories give graphs whose connections are
    valid (flattened, nothing run), with one branch per contrast at the subject level."""
    from glm_workflows.inputs.bids import find_bids_runs
    from glm_workflows.settings import SEED_CONTRASTS
    from glm_workflows.workflows.fixed_effects import init_fixed_effects_wf
    from glm_workflows.workflows.inference import init_inference_wf
    from glm_workflows.workflows.study import init_glm_wf

    init_inference_wf()._create_flat_graph()
    init_fixed_effects_wf(run_labels=["a", "b"], contrasts=SEED_CONTRASTS,
                          output_dir=str(tmp_path), subject="01",
                          task="auditory")._create_flat_graph()
    study = init_glm_wf(find_bids_runs(split_bids_dir, "auditory"), output_dir=tmp_path)
    names = {node.fullname.split(".", 1)[1] for node in study._create_flat_graph().nodes()}
    for subject in ("01", "02"):
        for contrast, _, _ in SEED_CONTRASTS:
            assert {f"sub_{subject}_fixed_effects_wf.ffx_{contrast}",
                    f"sub_{subject}_fixed_effects_wf.inference_{contrast}_wf.threshold",
                    f"sub_{subject}_fixed_effects_wf.sink_{contrast}"} <= names


def test_added_contrast_runs_only_its_branch_at_every_level(split_bids_dir, tmp_path):
    """One subject, two runs: adding a contrast computes only that contrast's branch in
    each run and in the subject's fixed effects (read from Nipype's records); every other
    computing node is taken from the cache, and only the sinks copy again."""
    from glm_workflows.execution.plugins import run_workflow
    from glm_workflows.inputs.bids import find_bids_runs
    from glm_workflows.settings import SEED_CONTRASTS
    from glm_workflows.workflows.study import init_glm_wf

    runs = find_bids_runs(split_bids_dir, "auditory", subjects=["01"])
    first = init_glm_wf(runs, output_dir=tmp_path / "out")
    run_workflow(first, work_dir=tmp_path / "work", printer=lambda line: None)
    contrasts = [*SEED_CONTRASTS, ("restMinusActive", "t", ("rest - active",))]
    second = init_glm_wf(runs, output_dir=tmp_path / "out", contrasts=contrasts)
    records = run_workflow(second, work_dir=tmp_path / "work", printer=lambda line: None)
    ran = {r.name for r in records if not r.cached}
    computing = {name for name in ran if ".sink" not in name and ".merge_" not in name}
    run_wfs = [f"sub_01_task_auditory_run_{run}_wf" for run in (1, 2)]
    assert computing == {
        *(f"{wf}.estimate_restMinusActive" for wf in run_wfs),
        *(f"{wf}.inference_restMinusActive_wf.{node}" for wf in run_wfs
          for node in ("threshold", "table")),
        "sub_01_fixed_effects_wf.ffx_restMinusActive",
        *(f"sub_01_fixed_effects_wf.inference_restMinusActive_wf.{node}"
          for node in ("threshold", "table")),
    }
    z_pos, z_neg = (nb.load(tmp_path / "out" / "sub-01" / contrast_file(
        bids_prefix("01", "auditory"), name, "z_maps")).get_fdata()
        for name in ("activeMinusRest", "restMinusActive"))
    np.testing.assert_allclose(z_neg, -z_pos, atol=1e-6)
