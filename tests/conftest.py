"""Shared fixtures: the real SPM auditory data in ../shared/data, and one seed run."""

import os
from pathlib import Path

import numpy as np
import pytest

from glm_workflows.synthetic import write_tiny_bids

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
    from glm_workflows.core.design import make_design_matrix
    from glm_workflows.core.run_tables import read_events

    events = read_events(spm_events, 96, 7.0, 0.0)
    return make_design_matrix(events, 96, 7.0, hrf_model="spm", drift_model="cosine",
                              high_pass=1 / 160, drift_order=1, slice_time_ref=0.0)


@pytest.fixture(scope="session")
def nilearn_seed_model(seed_bold, spm_events):
    """nilearn's own FirstLevelModel fitted as in the seed tutorial (the reference)."""
    import pandas as pd
    from nilearn.glm.first_level import FirstLevelModel

    model = FirstLevelModel(t_r=7, noise_model="ar1", standardize=False, hrf_model="spm",
                            drift_model="cosine", high_pass=1 / 160)
    return model.fit(seed_bold, events=pd.read_csv(spm_events, sep="\t"))


def write_split_bids(root: Path, subjects=("01", "02")) -> Path:
    """A BIDS dataset of two subjects x two runs made from the real run's halves.

    Run 1 is scans 1-48 and run 2 scans 49-96 (each 4 rest/active cycles); subject
    02 has the halves the other way round. TR 7 s from a root sidecar.
    """
    import json

    import nibabel as nb
    import numpy as np
    import pandas as pd

    source = _require(BIDS_DIR / "sub-01" / "func")
    img = nb.load(source / "sub-01_task-auditory_bold.nii.gz")
    data = np.asanyarray(img.dataobj)
    events = pd.read_csv(source / "sub-01_task-auditory_events.tsv", sep="\t")
    halves = []
    for start in (0, 48):
        half = events[(events.onset >= start * 7) & (events.onset < (start + 48) * 7)].copy()
        half["onset"] -= start * 7
        halves.append((data[..., start:start + 48], half))
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(
        json.dumps({"Name": "MoAE split in runs", "BIDSVersion": "1.8.0"}))
    (root / "task-auditory_bold.json").write_text(json.dumps({"RepetitionTime": 7.0}))
    for number, subject in enumerate(subjects):
        func = root / f"sub-{subject}" / "func"
        func.mkdir(parents=True, exist_ok=True)
        order = halves if number % 2 == 0 else halves[::-1]
        for run, (run_data, run_events) in enumerate(order, start=1):
            stem = func / f"sub-{subject}_task-auditory_run-{run}"
            nb.Nifti1Image(run_data, img.affine, img.header).to_filename(f"{stem}_bold.nii.gz")
            run_events.to_csv(f"{stem}_events.tsv", sep="\t", index=False)
    return root


@pytest.fixture(scope="session")
def split_bids_dir(tmp_path_factory):
    """Two subjects x two runs (halves of the real run), see :func:`write_split_bids`."""
    return write_split_bids(tmp_path_factory.mktemp("split_bids") / "bids")


@pytest.fixture(scope="session")
def split_outputs(tmp_path_factory, split_bids_dir):
    """The CLI on two subjects x two runs with MultiProc(2): the derivatives folder."""
    from glm_workflows.cli import main

    root = tmp_path_factory.mktemp("split_run")
    out = root / "derivatives"
    code = main(["--bids-dir", str(split_bids_dir), "--task", "auditory", "--output-dir",
                 str(out), "--work-dir", str(root / "work"), "--plugin", "MultiProc",
                 "--n-procs", "2", "--mem-gb", "8"])
    assert code == 0
    return out


@pytest.fixture(scope="session")
def tiny_bids_dir(tmp_path_factory):
    """Three subjects of :func:`write_tiny_bids`."""
    return write_tiny_bids(tmp_path_factory.mktemp("tiny_bids") / "bids", ("01", "02", "03"))


@pytest.fixture(scope="session")
def seed_cli(tmp_path_factory, data_dir):
    """The seed analysis run once from the command line (in-process, default settings).

    Returns ``(root, argv, printed)``: ``root/out`` holds the derivatives (read them,
    never change them: copy the folder first), ``root/work`` the cache; ``argv`` runs
    the same analysis again; ``printed`` is what the first run printed.
    """
    import contextlib
    import io

    from glm_workflows.cli import main

    root = tmp_path_factory.mktemp("seed_cli")
    argv = ["--data-dir", str(data_dir), "--output-dir", str(root / "out"),
            "--work-dir", str(root / "work")]
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(argv) == 0
    return root, argv, printed.getvalue()


@pytest.fixture(scope="session")
def fmriprep_moae(tmp_path_factory, bids_dir):
    """fMRIPrep-like derivatives of the MoAE BIDS run: ``(raw_dir, derivatives_dir)``.

    Written by :func:`glm_workflows.synthetic.write_fmriprep_derivatives` (read them,
    never change them: copy the folder first).
    """
    from glm_workflows.synthetic import write_fmriprep_derivatives

    out = tmp_path_factory.mktemp("fmriprep_moae") / "fmriprep"
    return bids_dir, write_fmriprep_derivatives(bids_dir, out)


#: Node states in which a job can be given to the cluster (``completing``: a cancelled job
#: of another test file, run in the other test process, is still being cleaned up).
USABLE_NODE_STATES = ("idle", "mixed", "alloc", "completing")
#: How long a reachable cluster may show no usable node before its tests fail or skip.
SLURM_WAIT_S = 120


def _slurm_cluster_ready() -> tuple[bool, str]:
    """Whether ``sinfo`` answers with a usable node, and its last answer; a controller that
    answers but whose node is in another state (e.g. being cleaned up) is asked again for
    up to :data:`SLURM_WAIT_S` seconds."""
    import shutil
    import subprocess
    import time

    if shutil.which("sinfo") is None:
        return False, "no sinfo"
    deadline = time.monotonic() + SLURM_WAIT_S
    while True:
        state = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True)
        answer = " ".join((state.stdout + state.stderr).split())
        if state.returncode != 0:  # no controller: no cluster
            return False, answer
        if any(s.startswith(USABLE_NODE_STATES) for s in state.stdout.split()):
            return True, answer
        if time.monotonic() > deadline:
            return False, answer
        time.sleep(2)


@pytest.fixture(scope="session")
def slurm_cluster():
    """A running SLURM cluster (``.ci/slurm-up.sh`` starts one): skip without one, fail in
    CI."""
    ready, answer = _slurm_cluster_ready()
    if not ready:
        message = f"no SLURM cluster (sinfo: {answer}): start one with .ci/slurm-up.sh"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def refused(capsys):
    """``refused(argv)``: run the command line on ``argv``, check that it exits with 2
    and prints exactly one line, ``glm-workflows: error: ...``, and return that line."""
    from glm_workflows.cli import main

    def run(argv) -> str:
        assert main(argv) == 2
        err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(err) == 1, err
        assert err[0].startswith("glm-workflows: error: ")
        return err[0]

    return run


def _face_rings(faces, seed: int, rings: int) -> list[int]:
    """The vertices within ``rings`` edges of ``seed`` (a breadth-first walk of faces)."""
    neighbours: dict = {}
    for a, b, c in np.asarray(faces).tolist():
        for u, v in ((a, b), (b, c), (c, a)):
            neighbours.setdefault(u, set()).add(v)
            neighbours.setdefault(v, set()).add(u)
    patch = {seed}
    for _ in range(rings):
        patch |= {w for v in patch for w in neighbours[v]}
    return sorted(patch)


@pytest.fixture(scope="session")
def face_rings():
    """``face_rings(faces, seed, rings)``: the vertices within ``rings`` edges of vertex
    ``seed`` of a mesh's faces, walked independently of the project's mesh code."""
    return _face_rings


def _tiny_nilearn_z(raw: Path, subject: str, bold, mask, contrast: str = "a - b"):
    """nilearn's z map of a tiny study's run (``write_tiny_bids``: its events and TR) fitted
    by FirstLevelModel on ``bold`` in ``mask``, with the project's defaults (AR(1), SPM HRF,
    cosine drifts at 1/160 Hz)."""
    import json

    import pandas as pd
    from nilearn.glm.first_level import FirstLevelModel

    events = pd.read_csv(next((raw / f"sub-{subject}" / "func").glob("*_events.tsv")),
                         sep="\t")
    t_r = json.loads(next(raw.glob("*_bold.json")).read_text())["RepetitionTime"]
    model = FirstLevelModel(t_r=t_r, mask_img=str(mask), noise_model="ar1",
                            drift_model="cosine", high_pass=1 / 160, hrf_model="spm",
                            minimize_memory=False).fit(str(bold), events)
    return model.compute_contrast(contrast, output_type="z_score").get_fdata()


@pytest.fixture(scope="session")
def tiny_nilearn_z():
    """``tiny_nilearn_z(raw, subject, bold, mask[, contrast])``: nilearn's z map of a tiny
    study's run (the reference of the fMRIPrep-image tests)."""
    return _tiny_nilearn_z
