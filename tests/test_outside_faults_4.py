"""Faults found by a fourth hunt from the outside (model files, fMRIPrep derivatives as
they are, reruns and folders, the Python route): each refused in one line before any
work, or run correctly."""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from glm_workflows.cli import main
from glm_workflows.synthetic import write_tiny_bids

TINY = ["--task", "tiny", "--contrast", "aMinusB=a - b"]
ROOT = Path(__file__).resolve().parents[1]


def _without_root_override() -> list[str]:
    """A command prefix under which file permissions apply (root bypasses them): none for
    another user, ``setpriv`` dropping the capabilities that override them for root."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv to run as root without CAP_DAC_OVERRIDE")
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}"]


def _digests(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and "logs" not in p.parts}


@pytest.mark.parametrize("locked", ["sub-01", "sub-01/notes"])
def test_a_read_only_subject_folder_is_refused_before_any_work(tmp_path, locked):
    """A subject folder (or a user's folder in it) that cannot be written: one line
    naming it, exit 2, the output folder untouched (was: the whole run, then the commit
    failing with "[Errno 13] Permission denied: '<file name>'", exit 1, the replaced
    folder and the commit journal left beside the new one)."""
    prefix = _without_root_override()
    study = write_tiny_bids(tmp_path / "bids", subjects=("01",), n_scans=40)
    out, work = tmp_path / "out", tmp_path / "work"
    argv = [str(study), str(out), "participant", *TINY, "-w", str(work)]
    assert main(argv) == 0
    (out / "sub-01" / "notes").mkdir()
    (out / "sub-01" / "notes" / "mine.txt").write_text("a user's file")
    before, names = _digests(out), sorted(p.name for p in out.iterdir())
    (out / locked).chmod(0o555)
    try:
        done = subprocess.run([*prefix, sys.executable, "-m", "glm_workflows.cli", *argv,
                               "--contrast", "bMinusA=b - a"], capture_output=True,
                              text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
                              check=False)
    finally:
        (out / locked).chmod(0o755)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        f"glm-workflows: error: {out / locked}: not writable (Permission denied); this run "
        "replaces sub-01/ when it ends, which needs every folder in it writable (fix the "
        "permissions or use another --output-dir)"]
    assert _digests(out) == before
    assert sorted(p.name for p in out.iterdir()) == names  # no journal, no replaced folder


def test_a_preprocessed_image_stored_as_nii_and_nii_gz_is_named_not_told_res_den(tmp_path,
                                                                                 refused):
    """fMRIPrep's bold as ``.nii.gz`` beside a stale ``.nii`` copy: the line says to keep
    one of the two (was: "choose one with --res / --den", which cannot choose between
    them)."""
    import nibabel as nb

    from glm_workflows.synthetic import write_fmriprep_derivatives

    study = write_tiny_bids(tmp_path / "bids", subjects=("01",), n_scans=40)
    fmriprep = write_fmriprep_derivatives(study, tmp_path / "fmriprep")
    gz = next((fmriprep / "sub-01" / "func").glob("*_desc-preproc_bold.nii.gz"))
    nb.save(nb.load(gz), gz.with_suffix(""))
    line = refused([str(study), str(tmp_path / "out"), "participant", *TINY,
                    "--derivatives", str(fmriprep), "-w", str(tmp_path / "work")])
    assert line == (f"glm-workflows: error: sub-01_task-tiny_bold.nii.gz: several preprocessed "
                    f"images match: {gz.with_suffix('')} and {gz}; the same image is stored as "
                    ".nii and .nii.gz: keep only one of the two files")
    assert not (tmp_path / "out").exists()
