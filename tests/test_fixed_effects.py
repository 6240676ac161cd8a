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

from glm_workflows.core.naming import bids_prefix, contrast_file


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
