"""Faults found by running the command line from the outside on real layouts: a run given
as one 3D image, an output folder among the raw data, and the non-finite-samples warning
of a fit run by the workflow (Nipype set the fit's unconnected ``warnings`` Undefined)."""

from pathlib import Path

import nibabel as nb
import numpy as np
import pytest
from nilearn.masking import compute_epi_mask

from glm_workflows.cli import main
from glm_workflows.synthetic import write_tiny_bids

TINY = ["--task", "tiny", "--contrast", "aMinusB=a - b"]


def _files(root: Path) -> set:
    return {p.relative_to(root) for p in root.rglob("*")}


def test_a_3d_image_given_as_a_run_is_refused_naming_it(tmp_path, refused):
    """A BIDS run whose bold file holds one 3D volume: one line naming the image and its
    shape (not a design error naming the events file), nothing written."""
    study = write_tiny_bids(tmp_path / "bids")
    bold = study / "sub-01" / "func" / "sub-01_task-tiny_bold.nii.gz"
    img = nb.load(bold)
    nb.Nifti1Image(np.asarray(img.dataobj)[..., 0], img.affine).to_filename(bold)
    line = refused([str(study), str(tmp_path / "out"), "participant", *TINY,
                    "-w", str(tmp_path / "work")])
    assert f"{bold}: a 3D image {img.shape[:3]}" in line
    assert "4D image" in line
    assert not (tmp_path / "out").exists() and not (tmp_path / "work").exists()


@pytest.mark.parametrize("where", [".", "sub-01/glm"])
def test_an_output_folder_among_the_raw_data_is_refused(where, tmp_path, refused):
    """The BIDS folder itself, or a folder inside one of its subjects, as the output folder:
    one line naming it, and the raw dataset left as it was."""
    study = write_tiny_bids(tmp_path / "bids")
    before = _files(study)
    output = study / where
    line = refused([str(study), str(output), "participant", *TINY,
                    "-w", str(tmp_path / "work")])
    assert line.startswith(f"glm-workflows: error: --output-dir {output}: is ")
    assert str(study / "derivatives" / "glm") in line
    assert _files(study) == before


@pytest.mark.slow
def test_an_output_folder_under_derivatives_is_accepted(tmp_path, capsys):
    """``BIDS_DIR/derivatives/glm``, the usual place, runs."""
    study = write_tiny_bids(tmp_path / "bids", subjects=("01",))
    output = study / "derivatives" / "glm"
    assert main([str(study), str(output), "participant", *TINY, "-q",
                 "-w", str(tmp_path / "work")]) == 0, capsys.readouterr().err
    assert (output / "sub-01" / "sub-01_task-tiny_contrast-aMinusB_stat-z_statmap.nii.gz").exists()


@pytest.mark.slow
def test_non_finite_samples_are_reported_by_a_workflow_run(tmp_path, capsys):
    """NaN samples in a run: the warning line the docs promise is printed by the command
    line (a fit node of the workflow, cached or not), its counts those of nilearn's EPI mask
    of the run."""
    study = write_tiny_bids(tmp_path / "bids", subjects=("01",))
    bold = study / "sub-01" / "func" / "sub-01_task-tiny_bold.nii.gz"
    img = nb.load(bold)
    data = np.asarray(img.dataobj).copy()
    data[6, 7, 6, [3, 9]] = np.nan
    data[5, 7, 6, 9] = np.inf
    data[0, 0, 0, 20] = np.nan  # background
    img = nb.Nifti1Image(data, img.affine)
    img.to_filename(bold)
    mask = compute_epi_mask(img).get_fdata().astype(bool)
    bad = ~np.isfinite(data[mask])  # (voxels of the mask, volumes)
    n_voxels, n_volumes = int(bad.any(axis=1).sum()), int(bad.any(axis=0).sum())
    assert n_voxels >= 1
    expected = (f"{n_voxels} voxel(s) of the mask in {n_volumes} volume(s) had non-finite "
                "samples (NaN/Inf); set to 0, as nilearn does")
    argv = [str(study), str(tmp_path / "out"), "participant", *TINY,
            "-w", str(tmp_path / "work")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"warning: sub_01_task_tiny_wf.fit: sub-01_task-tiny: {expected}" in out
    assert main([*argv, "--recheck"]) == 0  # the fit cached: its warning still printed
    out = capsys.readouterr().out
    assert "cached  sub_01_task_tiny_wf.fit" in out and expected in out


def test_the_group_level_before_the_participant_level_says_so(tmp_path, refused):
    """``BIDS_DIR OUTPUT_DIR group`` with no participant-level outputs yet: the line says
    the maps are read from OUTPUT_DIR and that the participant level comes first."""
    study = write_tiny_bids(tmp_path / "bids", subjects=("01",))
    line = refused([str(study), str(tmp_path / "out"), "group", "--task", "tiny",
                    "--group", "one-sample", "-w", str(tmp_path / "work")])
    assert f"{tmp_path / 'out'}: folder not found" in line
    assert "run the participant level first" in line


def test_an_uncompressed_run_cut_short_is_refused_before_any_work(tmp_path, refused):
    """A ``.nii`` copy cut short (its header whole): one line from the file's size, before
    the workflow (it was a failed fit node, exit 1)."""
    study = write_tiny_bids(tmp_path / "bids")
    gz = study / "sub-01" / "func" / "sub-01_task-tiny_bold.nii.gz"
    img = nb.load(gz)
    bold = gz.with_suffix("")  # .nii
    nb.Nifti1Image(img.get_fdata().astype(np.float32), img.affine).to_filename(bold)
    gz.unlink()
    full = 352 + int(np.prod(img.shape)) * 4  # NIfTI-1: a 352-byte header, then float32
    assert bold.stat().st_size == full
    bold.write_bytes(bold.read_bytes()[:full // 2])
    line = refused([str(study), str(tmp_path / "out"), "participant", *TINY,
                    "-w", str(tmp_path / "work")])
    assert line == (f"glm-workflows: error: {bold}: {full // 2} bytes, but its header (shape "
                    f"{img.shape}, float32) needs {full}: the file is cut short")
    assert not (tmp_path / "work").exists()


def test_a_gzipped_run_cut_short_is_refused_before_any_work(tmp_path, refused):
    """A ``.nii.gz`` cut short: its last bytes are compressed data, not gzip's record of the
    inflated size, and inflating it ends early: one line before the workflow (it was a
    failed fit node, exit 1, after the other runs' fits)."""
    study = write_tiny_bids(tmp_path / "bids", ("01", "02"))
    bold = study / "sub-02" / "func" / "sub-02_task-tiny_bold.nii.gz"
    bold.write_bytes(bold.read_bytes()[:bold.stat().st_size // 2])
    line = refused([str(study), str(tmp_path / "out"), "participant", *TINY,
                    "-w", str(tmp_path / "work")])
    assert line.startswith(f"glm-workflows: error: {bold}: cannot be inflated (")
    assert line.endswith("): the file is cut short or damaged")
    assert not (tmp_path / "work").exists()


@pytest.mark.slow
def test_gzipped_runs_of_several_members_or_trailing_bytes_are_read(tmp_path):
    """gzip's size record is the last member's (or counts bytes after the data): such
    files are inflated to check them and accepted (nibabel reads the plain file's data)."""
    import gzip

    study = write_tiny_bids(tmp_path / "bids", ("01", "02"))
    for subject, bytes_of in (("01", lambda raw: gzip.compress(raw[:4000])
                               + gzip.compress(raw[4000:])),
                              ("02", lambda raw: gzip.compress(raw + b"\0" * 16))):
        bold = study / f"sub-{subject}" / "func" / f"sub-{subject}_task-tiny_bold.nii.gz"
        plain = tmp_path / f"plain-{subject}.nii"
        plain.write_bytes(gzip.decompress(bold.read_bytes()))
        bold.write_bytes(bytes_of(plain.read_bytes()))
        assert np.array_equal(np.asanyarray(nb.load(bold).dataobj),
                              np.asanyarray(nb.load(plain).dataobj))
    assert main([str(study), str(tmp_path / "out"), "participant", *TINY,
                 "-w", str(tmp_path / "work")]) == 0


def test_the_raw_dataset_given_as_derivatives_is_named_so(tmp_path, refused):
    """``--derivatives BIDS_DIR`` (the raw dataset): the line says it found the raw run and
    what --derivatives takes (it said 'found no other entity only')."""
    study = write_tiny_bids(tmp_path / "bids", subjects=("01",))
    line = refused([str(study), str(tmp_path / "out"), "participant", *TINY,
                    "--derivatives", str(study), "-w", str(tmp_path / "work")])
    assert line.endswith("found only the raw run itself (--derivatives takes fMRIPrep's "
                         "output folder, not the raw dataset)")


@pytest.mark.parametrize("name", ["sub-01_task-tiny_bold.nii.gz", "sub-01_task-tiny_events.tsv"])
def test_a_broken_symbolic_link_is_named_so(name, tmp_path, refused):
    """A DataLad dataset whose content was not fetched: its files are broken symbolic links;
    the line says so (it said only 'file not found' of a file the user sees listed)."""
    study = write_tiny_bids(tmp_path / "bids", subjects=("01",))
    path = study / "sub-01" / "func" / name
    path.unlink()
    target = "../../.git/annex/objects/Xq/7z/MD5E-s1--d41d8.nii.gz/MD5E-s1--d41d8.nii.gz"
    path.symlink_to(target)
    line = refused([str(study), str(tmp_path / "out"), "participant", *TINY,
                    "-w", str(tmp_path / "work")])
    assert line.startswith(f"glm-workflows: error: {path}: ")
    assert f"not found: a broken symbolic link (to {target})" in line


def test_a_broken_symbolic_link_given_as_a_file_is_named_so(tmp_path, refused):
    """The same for runs given as files (``--func``): every reader of a missing input names
    a broken link as one."""
    study = write_tiny_bids(tmp_path / "bids", subjects=("01",))
    func = study / "sub-01" / "func"
    link = tmp_path / "bold.nii.gz"
    link.symlink_to(tmp_path / "not-fetched.nii.gz")
    line = refused(["--func", str(link), "--events", str(func / "sub-01_task-tiny_events.tsv"),
                    "--tr", "2", "--output-dir", str(tmp_path / "out"),
                    "--work-dir", str(tmp_path / "work")])
    assert line == (f"glm-workflows: error: {link}: file not found: a broken symbolic link "
                    f"(to {tmp_path / 'not-fetched.nii.gz'}), its content is not here (a "
                    "DataLad dataset: `datalad get` it)")


def test_a_group_design_with_no_degree_of_freedom_is_refused_before_any_work(tmp_path, refused):
    """Two subjects, an intercept and a covariate: no residual degree of freedom. Refused in
    one line before the first level runs (it ran, nilearn divided by zero and the group maps
    were non-finite, exit 0)."""
    study = write_tiny_bids(tmp_path / "bids")
    (study / "participants.tsv").write_text("participant_id\tage\nsub-01\t24\nsub-02\t31\n")
    line = refused([str(study), str(tmp_path / "out"), *TINY, "--group", "one-sample",
                    "--group-covariates", "age", "--group-contrast", "ageEffect=age",
                    "-w", str(tmp_path / "work")])
    assert line == ("glm-workflows: error: group design: 2 subjects for 2 columns (intercept, "
                    "age); no degree of freedom left (a group model needs more subjects than "
                    "columns)")
    assert not (tmp_path / "out").exists() and not (tmp_path / "work").exists()


def test_positional_arguments_after_a_label_list_are_refused(tmp_path, refused):
    """``--participant-label 01 BIDS_DIR OUT participant``: argparse takes the positional
    arguments as labels; one line says so before any data is looked for (it then looked for
    the seed's SPM auditory data and tried to download it)."""
    study = write_tiny_bids(tmp_path / "bids", subjects=("01",))
    line = refused(["--participant-label", "01", str(study), str(tmp_path / "out"),
                    "participant", *TINY])
    assert line.startswith(f"glm-workflows: error: --participant-label 01 {study} "
                           f"{tmp_path / 'out'} participant: ends with the analysis level")
    assert "put BIDS_DIR OUTPUT_DIR LEVEL first" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_console_closed_early_does_not_stop_the_run(tmp_path):
    """``glm-workflows ... | head -1``: the reader goes away after the first line. The run
    goes on and publishes its outputs, exit 0, its log whole (it failed with a
    BrokenPipeError traceback, exit 1, no outputs); so does an up-to-date rerun's replay."""
    import subprocess
    import sys

    study = write_tiny_bids(tmp_path / "bids", subjects=("01",))
    out = tmp_path / "out"
    process = subprocess.Popen(
        [sys.executable, "-m", "glm_workflows.cli", str(study), str(out), "participant",
         *TINY, "-w", str(tmp_path / "work")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = process.stdout.readline()
    process.stdout.close()  # as `head -1` does
    stderr = process.stderr.read()
    assert process.wait(timeout=300) == 0, stderr
    assert first.startswith("Running 1 run(s)")
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr
    assert (out / "sub-01" / "sub-01_task-tiny_contrast-aMinusB_stat-z_statmap.nii.gz").exists()
    (log,) = (out / "logs").glob("task-tiny_*.log")
    assert "sub-01_task-tiny contrast aMinusB: fdr alpha=0.05" in log.read_text()
    # the same command again replays the recorded results ("Up to date", no new log), its
    # reader gone before the first line: no traceback either
    again = subprocess.Popen(process.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    again.stdout.close()
    stderr = again.stderr.read()
    assert again.wait(timeout=300) == 0, stderr
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr
    assert list((out / "logs").glob("task-tiny_*.log")) == [log]


def test_default_contrasts_a_study_lacks_are_named_as_the_defaults(tmp_path, refused):
    """A BIDS study run without --contrast gets the seed analysis' contrasts; when its
    events lack their columns the line says they are the defaults and how to name the
    study's own, and nothing is written."""
    study = write_tiny_bids(tmp_path / "bids")
    line = refused([str(study), str(tmp_path / "out"), "participant", "--task", "tiny",
                    "-w", str(tmp_path / "work")])
    assert "unknown column 'active'" in line
    assert line.endswith("(activeMinusRest and effectsOfInterest are the default contrasts, "
                         "the seed analysis'; name this study's with --contrast NAME=EXPR, "
                         "--f-contrast or --model)")
    assert not (tmp_path / "out").exists() and not (tmp_path / "work").exists()


@pytest.mark.parametrize("value", [0, -2])
def test_a_repetition_time_not_positive_names_the_sidecar_it_came_from(value, tmp_path, refused):
    """RepetitionTime 0 or negative in the dataset's inherited sidecar: the line names that
    sidecar (the file to fix), not the run's image."""
    import json

    study = write_tiny_bids(tmp_path / "bids")
    sidecar = study / "task-tiny_bold.json"
    sidecar.write_text(json.dumps({**json.loads(sidecar.read_text()), "RepetitionTime": value}))
    line = refused([str(study), str(tmp_path / "out"), "participant", *TINY,
                    "-w", str(tmp_path / "work")])
    assert line == (f"glm-workflows: error: {sidecar.name}: RepetitionTime: expected a "
                    f"positive number of seconds, got {value}")
