"""Two resolutions of one space (fMRIPrep's ``space-X_res-1`` and ``space-X_res-2`` images)
into one output folder: two analyses, each with its own record and group outputs, so the
second keeps the first's files byte for byte (it deleted them: both were "task, space");
the group level alone chooses one with ``--res``; a folder an earlier glm-workflows wrote
(its record named without ``res``) is taken over by the same analysis' rerun."""

import hashlib
import json
import shutil

import nibabel as nb
import numpy as np
import pandas as pd
import pytest
from nilearn.glm.second_level import SecondLevelModel
from nilearn.masking import intersect_masks

from glm_workflows.cli import main
from glm_workflows.core.analyses import (
    analysis_label,
    analysis_record,
    legacy_analysis,
    names_its_template,
)
from glm_workflows.core.naming import GROUP_FOLDER, group_file, group_stem
from glm_workflows.synthetic import write_fmriprep_derivatives, write_tiny_bids

SPACE = "MNI152NLin2009cAsym"
RESOLUTIONS = ("1", "2")
SUBJECTS = ("01", "02", "03")
CONTRAST = ["--contrast", "aMinusB=a - b"]


def _digests(folder):
    return {p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.suffix != ".html"
            and p.name not in ("provenance.json", "dataset_description.json")
            and "logs" not in p.parts}


def _participant(raw, fmriprep, out, work, res, *extra):
    return main([str(raw), str(out), "participant", "--derivatives", str(fmriprep),
                 "--task", "tiny", "--space", SPACE, "--res", res, *CONTRAST, "-w", str(work),
                 "-q", *extra])


def _group(raw, out, work, *extra):
    return main([str(raw), str(out), "group", "--task", "tiny",
                 "--group", "one-sample", "-w", str(work), "-q", *extra])


def _z(folder, subject, res):
    return nb.load(folder / f"sub-{subject}" / f"sub-{subject}_task-tiny_space-{SPACE}_res-{res}"
                   "_contrast-aMinusB_stat-z_statmap.nii.gz").get_fdata()


@pytest.fixture(scope="module")
def resolutions(tmp_path_factory):
    """The study; its fMRIPrep images at res-1 and at res-2 (other noise: other maps); the
    output folder after res-1's participant level (digests kept), then res-2's."""
    root = tmp_path_factory.mktemp("resolutions")
    raw = write_tiny_bids(root / "raw", SUBJECTS, n_scans=40)
    fmriprep = write_fmriprep_derivatives(raw, root / "fmriprep", space=SPACE)
    rng = np.random.default_rng(0)
    for path in sorted(fmriprep.rglob(f"*_space-{SPACE}_*")):
        for res in RESOLUTIONS:
            target = path.with_name(path.name.replace(f"_space-{SPACE}_",
                                                      f"_space-{SPACE}_res-{res}_"))
            shutil.copy(path, target)
            if res == "2" and target.name.endswith("_desc-preproc_bold.nii.gz"):
                image = nb.load(target)
                data = image.get_fdata(dtype=np.float32)
                noisy = data + rng.normal(0, 5, data.shape).astype(np.float32)
                nb.save(nb.Nifti1Image(noisy, image.affine, image.header), target)
        path.unlink()
    out = root / "out"
    digests = {}
    for res in RESOLUTIONS:
        assert _participant(raw, fmriprep, out, root / "work", res) == 0
        digests[res] = _digests(out)
    return raw, fmriprep, out, digests


def test_the_second_resolution_keeps_the_first_ones_files(resolutions):
    _, _, out, digests = resolutions
    first, second = digests["1"], digests["2"]
    assert first and all(second.get(path) == digest for path, digest in first.items())
    for subject in SUBJECTS:
        for res in RESOLUTIONS:
            label = analysis_label("tiny", SPACE, res=res)
            assert label == f"task-tiny_space-{SPACE}_res-{res}"
            outputs = json.loads((out / f"sub-{subject}" / analysis_record(label)).read_text())
            assert outputs["Outputs"] and all(f"_res-{res}_" in name
                                              for name in outputs["Outputs"])


def test_each_resolution_equals_nilearn(resolutions, tiny_nilearn_z):
    """Each resolution's run z map is nilearn's FirstLevelModel of that resolution's image."""
    raw, fmriprep, out, _ = resolutions
    func = fmriprep / "sub-01" / "func"
    maps = {}
    for res in RESOLUTIONS:
        bold = next(func.glob(f"*_res-{res}_desc-preproc_bold.nii.gz"))
        mask = next(func.glob(f"*_res-{res}_desc-brain_mask.nii.gz"))
        expected = tiny_nilearn_z(raw, "01", bold, mask)
        maps[res] = _z(out, "01", res)
        np.testing.assert_allclose(maps[res], expected, atol=1e-6, rtol=0)
    assert not np.allclose(maps["1"], maps["2"])  # two analyses, not one map twice


def test_the_group_level_alone_chooses_a_resolution(resolutions, tmp_path, capsys):
    """Without --res: one line naming the resolutions; with it: that resolution's group
    maps, equal to nilearn's SecondLevelModel on its subject maps, named with res-, beside
    the other resolution's."""
    raw, _, built, _ = resolutions
    out = tmp_path / "out"
    shutil.copytree(built, out)
    assert _group(raw, out, tmp_path / "work") == 2
    assert "several resolutions (1, 2); choose one with --res" in capsys.readouterr().err
    assert not (out / GROUP_FOLDER).exists()
    for res in RESOLUTIONS:
        assert _group(raw, out, tmp_path / "work", "--res", res) == 0
        printed = capsys.readouterr().out  # this run's group results, not the other's
        assert f"res-{res}_contrast-aMinusB" in printed
        assert f"res-{3 - int(res)}_contrast" not in printed
    for res in RESOLUTIONS:
        folders = [out / f"sub-{s}" for s in SUBJECTS]
        prefix = f"_task-tiny_space-{SPACE}_res-{res}"
        effects = [str(f / f"{f.name}{prefix}_contrast-aMinusB_stat-effect_statmap.nii.gz")
                   for f in folders]
        mask = intersect_masks([str(f / f"{f.name}{prefix}_desc-brain_mask.nii.gz")
                                for f in folders], threshold=1)
        theirs = SecondLevelModel(mask_img=mask).fit(
            effects, design_matrix=pd.DataFrame({"intercept": np.ones(len(effects))})
        ).compute_contrast("intercept", output_type="z_score").get_fdata()
        stem = group_stem("tiny", "aMinusB", space=SPACE, res=res)
        assert stem == f"task-tiny_space-{SPACE}_res-{res}_contrast-aMinusB"
        ours = nb.load(out / GROUP_FOLDER / group_file(stem, "z_maps")).get_fdata()
        np.testing.assert_allclose(ours, theirs, rtol=1e-10, atol=1e-10)
        assert (out / GROUP_FOLDER / analysis_record(analysis_label("tiny", SPACE, res=res))
                ).exists()


def test_a_folder_of_an_earlier_version_is_taken_over_by_the_same_analysis(resolutions,
                                                                            tmp_path):
    """Records named ``task-<T>_space-<S>`` for res-2 outputs (glm-workflows before the
    resolution was part of an analysis): res-2's rerun replaces them and their record
    (same files, today's record), res-1's run leaves them alone."""
    raw, fmriprep, built, _ = resolutions
    out = tmp_path / "out"
    shutil.copytree(built, out)
    new, old = analysis_label("tiny", SPACE, res="2"), analysis_label("tiny", SPACE)
    assert legacy_analysis(new) == old and legacy_analysis(old) is None
    for subject in SUBJECTS:
        folder = out / f"sub-{subject}"
        (folder / analysis_record(analysis_label("tiny", SPACE, res="1"))).unlink()
        for name in [p.name for p in folder.iterdir() if "_res-1_" in p.name]:
            (folder / name).unlink()
        (folder / analysis_record(new)).rename(folder / analysis_record(old))
    before = _digests(out)
    assert _participant(raw, fmriprep, out, tmp_path / "work", "2", "--recheck") == 0
    after = _digests(out)
    for subject in SUBJECTS:
        folder = out / f"sub-{subject}"
        assert not (folder / analysis_record(old)).exists()
        recorded = json.loads((folder / analysis_record(new)).read_text())["Outputs"]
        assert {p.name for p in folder.iterdir()} == {*recorded, analysis_record(new)}
        np.testing.assert_array_equal(_z(out, subject, "2"), _z(built, subject, "2"))
    assert {p for p in before if "provenance" not in p.name} == \
        {p for p in after if "provenance" not in p.name}


def test_a_file_carries_its_analysis_template():
    """Entity by entity, whatever their places in the names: a cohort's subject names have
    it before the task, a hemisphere's GIFTI its ``hemi-`` before the space."""
    label = analysis_label("tiny", "fsLR", den="32k")
    assert names_its_template(
        "sub-01_task-tiny_hemi-L_space-fsLR_den-32k_contrast-a_stat-z_statmap.func.gii", label)
    assert names_its_template("task-tiny_hemi-R_space-fsLR_den-32k_contrast-a_stat-z_statmap"
                              ".func.gii", label)
    assert not names_its_template(
        "sub-01_task-tiny_space-fsLR_den-91k_contrast-a_stat-z_statmap.dscalar.nii", label)
    assert names_its_template(
        "sub-01_cohort-1_task-rest_space-X_res-2_contrast-a_stat-z_statmap.nii.gz",
        analysis_label("rest", "X", cohort="1", res="2"))
    assert not names_its_template("sub-01_task-tiny_space-X_desc-mean_bold.nii.gz",
                                  analysis_label("tiny", "X", res="2"))
    assert not names_its_template("sub-01_task-tiny_desc-mean_bold.nii.gz",
                                  analysis_label("tiny"))


def test_the_array_group_job_reads_its_resolution(resolutions, tmp_path):
    """A ``--slurm-array`` submission's group job (the group level alone on the output
    folder) reads the maps of the submission's --space/--res, not every resolution there
    (it was refused: several resolutions, or spaces, in the folder). Its analysis is run
    here as the job runs it."""
    from dataclasses import asdict
    from types import SimpleNamespace

    from glm_workflows.cli import spec_from_args
    from glm_workflows.execution.analysis import run_analysis
    from glm_workflows.execution.submit import EXECUTION_FILE, SPEC_FILE, group_analysis

    raw, fmriprep, built, _ = resolutions
    out = tmp_path / "out"
    shutil.copytree(built, out)
    spec, execution = spec_from_args([
        "--bids-dir", str(raw), "--derivatives", str(fmriprep), "--task", "tiny",
        "--space", SPACE, "--res", "2", *CONTRAST, "--group", "one-sample",
        "--output-dir", str(out), "--slurm-array"])
    (tmp_path / SPEC_FILE).write_text(spec.to_json())
    (tmp_path / EXECUTION_FILE).write_text(json.dumps(asdict(execution)))
    job = {"Cpus": 1, "MemGB": 1.0}
    submission = SimpleNamespace(folder=tmp_path, output_dir=str(out), tasks=[list(SUBJECTS)],
                                 task_job=job, group_job=job)
    group_spec, group_execution = group_analysis(submission)
    assert (group_spec.inputs.space, group_spec.inputs.res) == (SPACE, "2")
    assert run_analysis(group_spec, group_execution) == 0
    stem = group_stem("tiny", "aMinusB", space=SPACE, res="2")
    assert (out / GROUP_FOLDER / group_file(stem, "z_maps")).exists()
    assert not list((out / GROUP_FOLDER).glob("*_res-1_*"))


def test_the_group_level_alone_takes_the_plain_space_beside_a_resolution(resolutions,
                                                                         tmp_path):
    """Maps of ``space-S`` (an image without ``res-``) beside those of ``space-S_res-2``:
    ``--space S`` reads the plain ones (there was no way to choose them), ``--res 02`` the
    res-2 ones (labels compare as numbers, as at the participant level)."""
    raw, fmriprep, built, _ = resolutions
    out, plain = tmp_path / "out", tmp_path / "plain"
    shutil.copytree(built, out)
    for path in fmriprep.rglob(f"*_space-{SPACE}_res-2_*"):
        target = plain / path.relative_to(fmriprep).parent / path.name.replace("_res-2", "")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    for path in fmriprep.rglob("*_desc-confounds_timeseries.*"):
        shutil.copy(path, plain / path.relative_to(fmriprep))
    assert main([str(raw), str(out), "participant", "--derivatives", str(plain), "--task",
                 "tiny", "--space", SPACE, *CONTRAST, "-w", str(tmp_path / "work"), "-q"]) == 0
    assert _group(raw, out, tmp_path / "work", "--space", SPACE) == 0
    assert _group(raw, out, tmp_path / "work", "--space", SPACE, "--res", "02") == 0
    for res in (None, "2"):
        stem = group_stem("tiny", "aMinusB", space=SPACE, res=res)
        ours = nb.load(out / GROUP_FOLDER / group_file(stem, "z_maps")).get_fdata()
        sidecar = json.loads((out / GROUP_FOLDER / group_file(stem, "contrast_jsons"))
                             .read_text())
        assert all((f"_res-{res}_" in source) == bool(res) for source in sidecar["Sources"])
        assert np.isfinite(ours).any()
    # the plain maps are the res-2 images renamed: the same numbers, two analyses
    np.testing.assert_array_equal(
        nb.load(out / GROUP_FOLDER / group_file(group_stem("tiny", "aMinusB", space=SPACE),
                                                "z_maps")).get_fdata(),
        nb.load(out / GROUP_FOLDER / group_file(group_stem("tiny", "aMinusB", space=SPACE,
                                                           res="2"), "z_maps")).get_fdata())


def test_runs_of_one_analysis_in_two_resolutions_are_refused(resolutions, tmp_path, refused):
    """sub-01 with a res-1 image only, the others with res-2 only (fMRIPrep's image is
    chosen per run): one line before any work; the analysis would have been labelled by
    the first run's resolution and claimed the others' files under it."""
    raw, fmriprep, _, _ = resolutions
    mixed = tmp_path / "fmriprep"
    shutil.copytree(fmriprep, mixed)
    for path in mixed.rglob("*_res-*"):
        if ("_res-2_" in path.name) == path.name.startswith("sub-01_"):
            path.unlink()
    line = refused([str(raw), str(tmp_path / "out"), "participant", "--derivatives",
                    str(mixed), "--task", "tiny", "--space", SPACE, *CONTRAST,
                    "-w", str(tmp_path / "work")])
    assert line == (f"glm-workflows: error: sub-02_task-tiny_space-{SPACE}_res-2: its image's "
                    f"res is 2, that of sub-01_task-tiny_space-{SPACE}_res-1 1; the runs of one "
                    "analysis share their res (choose one with --res)")
    assert not (tmp_path / "out").exists()


def test_the_report_keeps_resolutions_apart():
    """A plain space's subject level combines its own runs, not a res-2 analysis' runs;
    the page groups results by session and template."""
    from glm_workflows.report.reading import group_prefixes, runs_combined

    prefixes = ["sub-01_task-t_space-S", "sub-01_task-t_run-1_space-S",
                "sub-01_task-t_run-2_space-S", "sub-01_task-t_space-S_res-2",
                "sub-01_task-t_run-1_space-S_res-2", "sub-01_task-t_run-2_space-S_res-2"]
    assert runs_combined("sub-01_task-t_space-S", prefixes) == ["1", "2"]
    assert runs_combined("sub-01_task-t_space-S_res-2", prefixes) == ["1", "2"]
    assert group_prefixes(prefixes) == {(None, "S"): prefixes[:3],
                                        (None, "S_res-2"): prefixes[3:]}


@pytest.mark.slow  # a dry run reads the cluster's limits (scontrol)
def test_the_array_group_job_reads_the_template_its_tasks_found(resolutions, tmp_path,
                                                                monkeypatch):
    """A ``--slurm-array`` submission without ``--res`` whose runs have res-2 images (the
    only ones in its fMRIPrep folder), into a folder that also holds plain-space results:
    its group job reads the res-2 maps (the template its tasks' runs have, recorded at
    submission), not the plain ones an unset ``--res`` would choose."""
    from glm_workflows.cli import array_task
    from glm_workflows.execution.slurm_array import submission_folder

    raw, fmriprep, built, _ = resolutions
    out, res2, plain = tmp_path / "out", tmp_path / "res2", tmp_path / "plain"
    shutil.copytree(built, out)
    for path in fmriprep.rglob("*"):
        if path.is_file() and "_res-1_" not in path.name:
            for folder, name in ((res2, path.name), (plain, path.name.replace("_res-2", ""))):
                target = folder / path.relative_to(fmriprep).parent / name
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, target)
    assert main([str(raw), str(out), "participant", "--derivatives", str(plain), "--task",
                 "tiny", "--space", SPACE, *CONTRAST, "-w", str(tmp_path / "w0"), "-q"]) == 0
    monkeypatch.chdir(tmp_path)
    assert main(["--bids-dir", str(raw), "--derivatives", str(res2), "--task", "tiny",
                 "--space", SPACE, *CONTRAST, "--group", "one-sample", "--output-dir",
                 str(out), "--work-dir", "work", "--slurm-array", "--participants-per-task",
                 "3", "--n-procs", "1", "--dry-run"]) == 0
    folder = submission_folder(tmp_path / "work", dry_run=True)
    assert array_task.run_task(folder, 0) == 0
    assert array_task.run_group(folder) == 0
    record = json.loads((out / GROUP_FOLDER / analysis_record(
        analysis_label("tiny", SPACE, res="2"))).read_text())
    assert all("_res-2_" in name for name in record["Outputs"])
    assert not (out / GROUP_FOLDER / group_file(group_stem("tiny", "aMinusB", space=SPACE),
                                                "z_maps")).exists()
