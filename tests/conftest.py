"""Shared fixtures: the real SPM auditory data in ../shared/data, and one seed run."""

import os
from pathlib import Path

import pytest

os.environ.setdefault("NIPYPE_NO_ET", "1")

DATA_DIR = Path(os.environ.get("GLM_WORKFLOWS_TEST_DATA",
                               Path(__file__).resolve().parents[2] / "shared" / "data"))
SPM_DIR = DATA_DIR / "spm_auditory" / "sub001" / "fM00223"
BIDS_DIR = DATA_DIR / "moae_bids"


def _require(path: Path) -> Path:
    if not path.exists():
        raise FileNotFoundError(
            f"test data missing: {path}; the tests read the SPM auditory data from "
            "../shared/data beside the checkout (or $GLM_WORKFLOWS_TEST_DATA)")
    return path


@pytest.fixture(scope="session")
def data_dir():
    """Folder holding spm_auditory/ and moae_bids/."""
    return _require(DATA_DIR)


@pytest.fixture(scope="session")
def spm_scans():
    """The 96 Analyze/NIfTI-pair scans, in order."""
    scans = sorted(str(p) for p in _require(SPM_DIR).glob("fM00223_*.img"))
    assert len(scans) == 96
    return scans


@pytest.fixture(scope="session")
def spm_events():
    """The events.tsv of the SPM auditory run."""
    return str(_require(SPM_DIR / "fM00223_events.tsv"))


@pytest.fixture(scope="session")
def bids_dir():
    """The same run as a BIDS dataset."""
    return _require(BIDS_DIR)


@pytest.fixture(scope="session")
def seed_bold(spm_scans):
    """The 96 scans concatenated (a 4D image in memory)."""
    from glm_workflows.core.images import concatenate_images

    return concatenate_images(spm_scans)


@pytest.fixture(scope="session")
def seed_design(spm_events):
    """The seed's design matrix."""
    from glm_workflows.core.design import make_design_matrix, read_events

    events = read_events(spm_events, 96, 7.0)
    return make_design_matrix(events, 96, 7.0, hrf_model="spm", drift_model="cosine",
                              high_pass=1 / 160)


@pytest.fixture(scope="session")
def nilearn_seed_model(seed_bold, spm_events):
    """nilearn's own FirstLevelModel fitted as in the seed tutorial (the reference)."""
    import pandas as pd
    from nilearn.glm.first_level import FirstLevelModel

    model = FirstLevelModel(t_r=7, noise_model="ar1", standardize=False, hrf_model="spm",
                            drift_model="cosine", high_pass=1 / 160)
    return model.fit(seed_bold, events=pd.read_csv(spm_events, sep="\t"))
