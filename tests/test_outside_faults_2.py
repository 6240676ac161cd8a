"""Faults found by a second hunt from the outside (fMRIPrep derivatives, model files, the
group level, reruns): each refused in one line before any work, or run correctly."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from glm_workflows.cli import main
from glm_workflows.core.exchangeability import subject_relabellings_warning
from glm_workflows.synthetic import (
    write_fmriprep_derivatives,
    write_participants,
    write_tiny_bids,
)

TINY = ["--task", "tiny", "--contrast", "aMinusB=a - b"]


@pytest.mark.parametrize("n", [3, 4, 5, 6])
def test_sign_flips_of_too_few_subjects_are_named(n):
    """An intercept test flips signs: 2**n distinct relabellings, at least 1/alpha needed
    (20 for 0.05), however many permutations are drawn."""
    design = pd.DataFrame({"intercept": np.ones(n)})
    line = subject_relabellings_warning(design, [1.0], alpha=0.05)
    if 2 ** n < 20:
        assert line.startswith(f"{n} subjects allow only {2 ** n} distinct sign flips: ")
    else:
        assert line is None


@pytest.mark.parametrize("sizes", [(4, 2), (3, 3), (5, 1), (4, 3)])
def test_shuffles_of_two_groups_count_the_distinct_labellings(sizes):
    """A two-sample test shuffles the group labels: C(n, n1) distinct orders."""
    first, second = sizes
    design = pd.DataFrame({"g1": [1.0] * first + [0.0] * second,
                           "g2": [0.0] * first + [1.0] * second})
    count = math.comb(first + second, first)
    line = subject_relabellings_warning(design, [1.0, -1.0], alpha=0.05)
    if count < 20:
        assert f"only {count} distinct orders of the tested column" in line
    else:
        assert line is None


@pytest.mark.slow
def test_permutations_of_four_subjects_are_warned_before_any_work(tmp_path, capsys):
    """Four subjects give 16 sign flips: the smallest FWE p-value is about 1/16 whatever
    ``--permutations`` says, so the FWE map cannot reach 0.05; one warning line says so
    before the run, whose smallest voxel-level FWE p-value is indeed above 1/20."""
    import nibabel as nb

    subjects = ("01", "02", "03", "04")
    study = write_tiny_bids(tmp_path / "bids", subjects=subjects, n_scans=40)
    write_participants(study, subjects)
    out = tmp_path / "out"
    assert main([str(study), str(out), *TINY, "--group", "one-sample", "--permutations", "99",
                 "-w", str(tmp_path / "work")]) == 0
    err = capsys.readouterr().err.splitlines()
    lines = [line for line in err if "distinct sign flips" in line]
    assert lines == ["glm-workflows: warning: --permutations (group contrast aMinusB): 4 "
                     "subjects allow only 16 distinct sign flips: the permutation p-values "
                     "are at least about 1/16, so no voxel can reach FWE alpha 0.05 (20 "
                     "needed)"]
    logp = nb.load(out / "group" / "task-tiny_contrast-aMinusB_stat-logp_desc-voxelFWE"
                               "_statmap.nii.gz").get_fdata()
    assert 10 ** -logp.max() > 1 / 20


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_a_work_dir_that_cannot_be_created_is_refused_before_the_output_folder(tmp_path, refused):
    """``-w`` where no folder can be made (``/proc``: ``os.access`` says writable to root):
    one line naming it, not a traceback from the design checks' mkdir, and no output
    folder left behind."""
    study = write_tiny_bids(tmp_path / "bids", subjects=("01",), n_scans=40)
    line = refused([str(study), str(tmp_path / "out"), "participant", *TINY,
                    "-w", "/proc/glm-workflows-work"])
    assert line.startswith("glm-workflows: error: --work-dir /proc/glm-workflows-work: /proc "
                           "is not writable")
    assert not (tmp_path / "out").exists()


def test_one_run_in_two_derivatives_folders_is_not_told_to_choose_a_resolution(tmp_path,
                                                                                refused):
    """Two ``--derivatives`` folders holding the same image name: the line names both and
    says to give one folder (``--res``/``--den`` could not choose between them)."""
    study = write_tiny_bids(tmp_path / "bids", subjects=("01",), n_scans=40)
    first = write_fmriprep_derivatives(study, tmp_path / "fmriprep")
    second = write_fmriprep_derivatives(study, tmp_path / "fmriprep-copy")
    line = refused([str(study), str(tmp_path / "out"), "participant", *TINY, "--derivatives",
                    str(first), str(second), "-w", str(tmp_path / "work")])
    name = "sub-01_task-tiny_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz"
    assert f"{first / 'sub-01' / 'func' / name} and {second / 'sub-01' / 'func' / name}" in line
    assert line.endswith("one image in several --derivatives folders: give only one of them")


@pytest.mark.parametrize(("space", "flags"), [
    ("MNI152NLin2009cAsym:res-2", "--space MNI152NLin2009cAsym --res 2"),
    ("fsaverage:den-10k", "--space fsaverage --den 10k"),
])
def test_fmriprep_output_space_syntax_is_told_the_flags(space, flags, tmp_path, refused):
    """fMRIPrep's ``--output-spaces`` form given to ``--space``: one line with the flags
    that select the same images (was: "use letters and digits only")."""
    study = write_tiny_bids(tmp_path / "bids", subjects=("01",), n_scans=40)
    line = refused([str(study), str(tmp_path / "out"), "participant", *TINY, "--derivatives",
                    str(study), "--space", space, "-w", str(tmp_path / "work")])
    assert line == (f"glm-workflows: error: --space {space}: fMRIPrep's TEMPLATE:ENTITY-LABEL "
                    f"form of an output space; give them apart: {flags}")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("times", [[0.0, 0.5, 1.0, 3.5], [-0.5, 0.5, 1.0, 1.5]])
def test_slice_times_outside_the_tr_are_refused(times):
    """A SliceTiming list whose middle lies inside the TR but a slice outside it (a slice
    acquired after the next volume started, or before its own): refused, not averaged
    into a reference."""
    from glm_workflows.core.errors import InputError
    from glm_workflows.inputs.runs import slice_time_reference

    with pytest.raises(InputError, match=rf"^x\.json: SliceTiming: expected seconds from 0 "
                                         rf"to below the TR \(2\.0\), got {min(times)} to "
                                         rf"{max(times)}$"):
        slice_time_reference({"SliceTiming": times}, 2.0, "x.json")


def test_a_repetition_time_in_milliseconds_names_the_sidecar(tmp_path, refused):
    """RepetitionTime 2000 (milliseconds where BIDS wants seconds): one line naming the
    sidecar and the likely unit (was: a high-pass frequency above a Nyquist frequency of
    0.00025 Hz, naming neither the TR nor its file)."""
    import json

    study = write_tiny_bids(tmp_path / "bids", subjects=("01",), n_scans=40)
    sidecar = study / "task-tiny_bold.json"
    sidecar.write_text(json.dumps({"RepetitionTime": 2000}))
    line = refused([str(study), str(tmp_path / "out"), "participant", *TINY,
                    "-w", str(tmp_path / "work")])
    assert line == (f"glm-workflows: error: {sidecar.name}: RepetitionTime: expected seconds, "
                    "got 2000 (more than 100 s: milliseconds?)")


def test_a_model_without_contrasts_says_no_map_is_made(tmp_path, capsys):
    """A Run node with neither Contrasts nor DummyContrasts (as pybids accepts): the runs are
    fitted and one warning line says that no contrast map is made (was: exit 0, no map,
    nothing said)."""
    import json

    study = write_tiny_bids(tmp_path / "bids", subjects=("01",), n_scans=40)
    model = tmp_path / "model_smdl.json"
    model.write_text(json.dumps({
        "Name": "no contrasts", "BIDSModelVersion": "1.0.0", "Input": {"task": ["tiny"]},
        "Nodes": [{"Level": "Run", "Name": "run", "GroupBy": ["run", "subject"],
                   "Transformations": {"Transformer": "pybids-transforms-v1",
                                       "Instructions": [{"Name": "Factor",
                                                         "Input": ["trial_type"]}]},
                   "Model": {"Type": "glm", "X": ["trial_type.a", "trial_type.b", 1]}}]}))
    out = tmp_path / "out"
    assert main(["--bids-dir", str(study), "--model", str(model), "--output-dir", str(out),
                 "-w", str(tmp_path / "work")]) == 0
    err = capsys.readouterr().err.splitlines()
    assert (f"glm-workflows: warning: {model}: the Run node has no Contrasts or "
            "DummyContrasts: the runs are fitted, but no contrast map is made at any node") in err
    assert not list(out.rglob("*contrast-*"))
    assert list(out.rglob("*_stat-rsquared_statmap.nii.gz"))


@pytest.mark.slow
def test_a_pair_naming_a_contrast_the_maps_lack_is_refused_at_the_group_level(tmp_path,
                                                                              capsys, refused):
    """``group --group paired --pair A,B`` where the subject maps have no contrast B: one
    line listing the contrasts found (was: a KeyError traceback); the right pair runs."""
    subjects = ("01", "02", "03")
    study = write_tiny_bids(tmp_path / "bids", subjects=subjects, n_scans=40)
    out, work = tmp_path / "out", str(tmp_path / "work")
    assert main([str(study), str(out), "participant", "--task", "tiny", "--contrast", "aOnly=a",
                 "--contrast", "bOnly=b", "-q", "-w", work]) == 0
    capsys.readouterr()
    line = refused([str(study), str(out), "group", "--task", "tiny", "--group", "paired",
                    "--pair", "aOnly,cOnly", "-w", work])
    assert line == ("glm-workflows: error: --pair: expected two different first-level t "
                    f"contrasts A,B among aOnly, bOnly (the maps in {out}); got 'aOnly,cOnly'")
    assert main([str(study), str(out), "group", "--task", "tiny", "--group", "paired",
                 "--pair", "aOnly,bOnly", "-q", "-w", work]) == 0
    assert (out / "group" / "task-tiny_contrast-aOnlyMinusbOnly_stat-z_statmap.nii.gz").exists()


def _same_size_and_times(path: Path, text: str) -> None:
    """Rewrite ``path`` in place (same inode) with ``text`` of the same length, then give it
    back its modification time, as ``cp -p``, ``rsync -a`` or ``touch -r`` do."""
    import os

    before = path.stat()
    assert len(text.encode()) == before.st_size
    with open(path, "r+", encoding="utf-8") as handle:
        handle.write(text)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size,
                                                                before.st_mtime_ns,
                                                                before.st_ino)


@pytest.mark.slow
def test_an_events_edit_keeping_size_and_modification_time_is_not_served_from_cache(
        tmp_path, capsys):
    """Swap the a and b labels of an events file in place, keeping its size and modification
    time: the rerun's z map equals a fresh run's on the edited file (was: "Up to date", and
    even with --recheck the design came from Nipype's cache, which hashes files by size and
    modification time: the old map, silently)."""
    import nibabel as nb

    study = write_tiny_bids(tmp_path / "bids", subjects=("01",), n_scans=40)
    events = study / "sub-01" / "func" / "sub-01_task-tiny_events.tsv"
    out, work = tmp_path / "out", str(tmp_path / "work")
    argv = [str(study), str(out), "participant", *TINY, "-q"]
    assert main([*argv, "-w", work]) == 0
    z_name = "sub-01/sub-01_task-tiny_contrast-aMinusB_stat-z_statmap.nii.gz"
    before = nb.load(out / z_name).get_fdata()
    swapped = events.read_text().replace("\ta\n", "\tX\n").replace("\tb\n", "\ta\n") \
        .replace("\tX\n", "\tb\n")
    _same_size_and_times(events, swapped)
    assert main([*argv, "-w", work]) == 0
    rerun = nb.load(out / z_name).get_fdata()
    fresh_out = tmp_path / "fresh"
    assert main([str(study), str(fresh_out), "participant", *TINY, "-q",
                 "-w", str(tmp_path / "fresh-work")]) == 0
    fresh = nb.load(fresh_out / z_name).get_fdata()
    assert not np.allclose(fresh, before)  # the edit changes the map
    np.testing.assert_array_equal(rerun, fresh)


@pytest.mark.slow
def test_a_participants_edit_keeping_size_and_modification_time_reruns_the_group_model(
        tmp_path, capsys):
    """A covariate corrected in participants.tsv, in place, with the file's size and
    modification time kept: the group design has the new value (was: the cached model)."""
    subjects = ("01", "02", "03", "04")
    study = write_tiny_bids(tmp_path / "bids", subjects=subjects, n_scans=40)
    participants = write_participants(study, subjects)
    out, work = tmp_path / "out", str(tmp_path / "work")
    group = [str(study), str(out), "group", "--task", "tiny", "--group", "one-sample",
             "--group-covariates", "age", "-q", "-w", work]
    assert main([str(study), str(out), "participant", *TINY, "-q", "-w", work]) == 0
    assert main(group) == 0
    table = pd.read_csv(participants, sep="\t")
    old, new = int(table.age[0]), (int(table.age[0]) + 10 - 20) % 40 + 20  # two digits
    table.loc[0, "age"] = new
    text = table.to_csv(sep="\t", index=False)
    assert text != participants.read_text()
    _same_size_and_times(participants, text)
    assert main(group) == 0
    design = pd.read_csv(out / "group" / "task-tiny_contrast-aMinusB_design.tsv", sep="\t")
    assert design.age.tolist() == table.age.tolist() and new != old


@pytest.mark.parametrize("group", [False, True])
def test_runs_combined_on_different_grids_are_refused_before_any_fit(group, tmp_path, refused):
    """A subject's second run (or, with a group level, another subject's run) on a shifted
    grid: one line naming both images before any fit (was: every run fitted, then the
    fixed-effects or group node failed on nilearn's field-of-view check)."""
    import nibabel as nb

    study = write_tiny_bids(tmp_path / "bids", subjects=("01", "02", "03"), n_scans=40,
                            runs=1 if group else 2)
    moved = study / "sub-02" / "func" / ("sub-02_task-tiny_bold.nii.gz" if group
                                         else "sub-02_task-tiny_run-2_bold.nii.gz")
    img = nb.load(moved)
    affine = img.affine.copy()
    affine[:3, 3] += 1.5
    nb.Nifti1Image(np.asarray(img.dataobj), affine, img.header).to_filename(moved)
    extra = ["--group", "one-sample"] if group else []
    line = refused([str(study), str(tmp_path / "out"), *TINY, *extra,
                    "-w", str(tmp_path / "work")])
    reference = study / "sub-01" / "func" / "sub-01_task-tiny_bold.nii.gz" if group else \
        study / "sub-02" / "func" / "sub-02_task-tiny_run-1_bold.nii.gz"
    assert line.startswith(f"glm-workflows: error: {moved}: not on the grid of {reference} "
                           "(its affine differs by up to 1.5); ")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("outside", [0.1, None])
def test_a_mask_that_is_not_two_values_with_zero_outside_is_refused(outside, tmp_path):
    """A probability map given as a mask (background 0.1, or many values): refused as
    nilearn's ``load_mask_img`` refuses it, not taken as "anything above 0" (the whole
    field of view for a 0.1 background); 0 and 255 is a mask."""
    import nibabel as nb
    from nilearn.masking import load_mask_img

    from glm_workflows.core.errors import InputError
    from glm_workflows.core.images import check_mask_grid

    rng = np.random.default_rng(0)
    inside = np.zeros((6, 7, 5), dtype=bool)
    inside[1:5, 2:6, 1:4] = True
    values = np.where(inside, 0.7, outside) if outside is not None else \
        np.where(inside, rng.uniform(0.2, 1, inside.shape), 0)
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    run = nb.Nifti1Image(np.zeros((6, 7, 5, 4), dtype=np.float32), affine)
    path = tmp_path / "mask.nii.gz"
    nb.Nifti1Image(values.astype(np.float32), affine).to_filename(path)
    with pytest.raises(ValueError):
        load_mask_img(str(path))  # nilearn refuses it too
    with pytest.raises(InputError, match=rf"^{path}: \d+ mask values \(.* to .*\); expected 0 "
                                         "outside and one value inside"):
        check_mask_grid(nb.load(path), run)
    nb.Nifti1Image((inside * 255).astype(np.uint8), affine).to_filename(path)
    np.testing.assert_array_equal(check_mask_grid(nb.load(path), run),
                                  np.asarray(load_mask_img(str(path))[0]).astype(bool))


@pytest.mark.slow
def test_maps_of_a_subject_participants_tsv_no_longer_lists_are_named(tmp_path, capsys):
    """The group level over an output folder holding a subject since dropped from the
    study (its participants.tsv row removed): the subject still enters a one-sample model
    (its maps are read as written), and one warning line says so (was: silent)."""
    subjects = ("01", "02", "03")
    study = write_tiny_bids(tmp_path / "bids", subjects=subjects, n_scans=40)
    participants = write_participants(study, subjects)
    out, work = tmp_path / "out", str(tmp_path / "work")
    assert main([str(study), str(out), "participant", *TINY, "-q", "-w", work]) == 0
    table = pd.read_csv(participants, sep="\t")
    table[table.participant_id != "sub-03"].to_csv(participants, sep="\t", index=False)
    capsys.readouterr()
    assert main([str(study), str(out), "group", "--task", "tiny", "--group", "one-sample",
                 "-q", "-w", work]) == 0
    err = capsys.readouterr().err.splitlines()
    assert (f"glm-workflows: warning: {participants}: sub-03 not listed, but {out} holds "
            "their maps: they enter the group model (choose subjects with "
            "--participant-label)") in err
    design = pd.read_csv(out / "group" / "task-tiny_contrast-aMinusB_design.tsv", sep="\t",
                         dtype=str)
    assert design.participant_id.tolist() == ["01", "02", "03"]
