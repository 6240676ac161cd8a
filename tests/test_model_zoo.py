"""Published BIDS Stats Models (bids-standard/model-zoo, copied into tests/data/model_zoo)
run as the field writes them, equal to nilearn.

The SPM MoAE models name ``trial_type.listening`` without a ``Factor`` (bidspm's
convention); they run on the MoAE data as bids-examples has it (``listening`` blocks)."""

import shutil
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd
import pytest

from glm_workflows.cli import main

ZOO = Path(__file__).resolve().parent / "data" / "model_zoo"
T_R, N_SCANS, HIGH_PASS = 7.0, 96, 0.008
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def moae_listening(bids_dir, tmp_path_factory):
    """The MoAE BIDS run with bids-examples' trial type (``listening``, not ``active``)."""
    root = tmp_path_factory.mktemp("moae") / "bids"
    shutil.copytree(bids_dir, root)
    for events in root.glob("sub-*/func/*_events.tsv"):
        table = pd.read_csv(events, sep="\t")
        table["trial_type"] = table["trial_type"].replace({"active": "listening"})
        events.chmod(0o644)
        table.to_csv(events, sep="\t", index=False)
    return root


@pytest.fixture(scope="module")
def nilearn_listening(moae_listening):
    """nilearn's z map of ``listening`` for the design the models describe: the
    listening blocks convolved with SPM's HRF, cosine drifts at 0.008 Hz, intercept."""
    from nilearn.glm.first_level import FirstLevelModel, make_first_level_design_matrix

    func = moae_listening / "sub-01" / "func"
    events = pd.read_csv(next(func.glob("*_events.tsv")), sep="\t")
    design = make_first_level_design_matrix(
        np.arange(N_SCANS) * T_R, events[events.trial_type == "listening"],
        hrf_model="spm", drift_model="cosine", high_pass=HIGH_PASS)
    model = FirstLevelModel(t_r=T_R, noise_model="ar1", minimize_memory=False)
    model.fit(str(next(func.glob("*_bold.nii*"))), design_matrices=[design])
    return model.compute_contrast("listening", output_type="z_score").get_fdata()


@pytest.mark.parametrize("model_file, contrast", [
    ("model-MoAE_smdl.json", "trialTypeListening"),
    ("model-MoAE-desc-fitlins_smdl.json", "listening"),
])
def test_moae_models_equal_nilearn(moae_listening, nilearn_listening, tmp_path,
                                   model_file, contrast):
    out = tmp_path / "out"
    assert main(["--bids-dir", str(moae_listening), "--model", str(ZOO / model_file),
                 "--output-dir", str(out), "--work-dir", str(tmp_path / "work")]) == 0
    ours = nb.load(out / "sub-01" /
                   f"sub-01_task-auditory_contrast-{contrast}_stat-z_statmap.nii.gz")
    np.testing.assert_allclose(ours.get_fdata(), nilearn_listening, rtol=1e-10, atol=1e-10)
