"""One analysis never deletes another: analyses of several tasks share an output folder
(and the subject folders in it) with each other and with other tools' files; a run
replaces or deletes only what an earlier run of the same analysis recorded writing."""

import json
import shutil
from pathlib import Path

import nibabel as nb
import numpy as np
import pytest

from glm_workflows.cli import main
from glm_workflows.core.analyses import (
    analysis_label,
    analysis_record,
    parse_analysis,
    parse_analysis_record,
)
from glm_workflows.core.errors import InputError
from glm_workflows.core.naming import (
    GROUP_FOLDER,
    GROUP_REPORT,
    INDEX_FILE,
    PROVENANCE_FILE,
    contrast_file,
    group_file,
    group_stem,
    report_page,
)
from glm_workflows.outputs.folders import OutputTransaction
from glm_workflows.synthetic import write_tiny_bids

pytestmark = pytest.mark.slow  # several CLI analyses into one folder

SUBJECTS = ("01", "02")
TASKS = ("tiny", "other")
#: Files each analysis writes but whose content is not the same from run to run (dates,
#: command lines, what was cached), and the shared pages: compared by content instead.
UNSTABLE = {analysis_record(f"task-{task}") for task in TASKS}
#: What "another tool" put in the output folder: path -> content.
FOREIGN = {"sub-01/sub-01_task-tiny_desc-other_notes.txt": "another tool's notes",
           "sub-01/qc/sub-01_rating.tsv": "rating\n5\n", "README": "lab notes"}


def add_task(bids: Path, task: str) -> Path:
    """A second task for every subject of a tiny study: its runs' images, with the
    conditions a and b swapped in the events (so its a - b maps are those of ``tiny``
    negated)."""
    for path in sorted(bids.rglob("*task-tiny*")):
        copy = path.with_name(path.name.replace("task-tiny", f"task-{task}"))
        if path.name.endswith("_events.tsv"):
            rows = [line.split("\t") for line in path.read_text().splitlines()]
            swap = {"a": "b", "b": "a"}
            copy.write_text("\n".join("\t".join([*row[:-1], swap.get(row[-1], row[-1])])
                                      for row in rows) + "\n")
        else:
            shutil.copyfile(path, copy)
    return bids


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Two subjects, tasks ``tiny`` and ``other``; and one work directory for the module
    (every run takes its computing nodes from it, so equal results are equal bytes)."""
    root = tmp_path_factory.mktemp("coexist")
    return add_task(write_tiny_bids(root / "bids", SUBJECTS), "other"), root / "work"


def run(study, task: str, out: Path, *extra) -> int:
    bids, work = study
    contrasts = [] if "--contrast" in extra else ["--contrast", "aMinusB=a - b"]
    return main(["--bids-dir", str(bids), "--task", task, "--output-dir", str(out),
                 "--work-dir", str(work), *contrasts, "--group", "one-sample", *extra])


@pytest.fixture(scope="module")
def alone(study, tmp_path_factory):
    """Each task analysed alone into a fresh folder: task -> folder."""
    folders = {}
    for task in TASKS:
        folders[task] = tmp_path_factory.mktemp(f"alone_{task}") / "out"
        assert run(study, task, folders[task]) == 0
    return folders


def analysis_files(folder: Path, task: str) -> dict:
    """The files the analysis of ``task`` wrote in ``folder`` (as its records list them,
    and the records themselves): relative path -> bytes."""
    files = {}
    for sub in [*(f"sub-{s}" for s in SUBJECTS), GROUP_FOLDER]:
        record = folder / sub / analysis_record(f"task-{task}")
        for name in [*json.loads(record.read_text())["Outputs"], record.name]:
            files[f"{sub}/{name}"] = (folder / sub / name).read_bytes()
    return files


def assert_intact(out: Path, alone: dict) -> None:
    """Every file of both analyses is in ``out`` as the analysis alone wrote it (records:
    the same outputs listed), and nothing else of this package is there."""
    expected = set()
    for task in TASKS:
        ours, reference = analysis_files(out, task), analysis_files(alone[task], task)
        assert sorted(ours) == sorted(reference), task
        for path, content in reference.items():
            if Path(path).name in UNSTABLE:
                assert json.loads(ours[path])["Outputs"] == json.loads(content)["Outputs"]
            else:
                assert ours[path] == content, path
        expected |= set(ours)
    present = {str(p.relative_to(out)) for sub in [*(f"sub-{s}" for s in SUBJECTS),
                                                   GROUP_FOLDER]
               for p in (out / sub).iterdir()}
    assert present - expected == {"sub-01/sub-01_task-tiny_desc-other_notes.txt", "sub-01/qc"}


def assert_foreign_files_kept(out: Path) -> None:
    for path, content in FOREIGN.items():
        assert (out / path).read_text() == content, path


def assert_both_listed(out: Path) -> None:
    """The subject pages, the index, the group page and the root provenance listing name
    both analyses."""
    for subject in SUBJECTS:
        page = (out / report_page(subject)).read_text()
        assert '<p id="analyses">Analyses: task-other, task-tiny</p>' in page
        for task in TASKS:
            assert f'id="sub-{subject}_task-{task}_contrast-aMinusB"' in page
            assert f'id="provenance-task-{task}"' in page
    index = (out / INDEX_FILE).read_text()
    assert all(f"task-other, task-tiny: sub-{s}_task-other, sub-{s}_task-tiny" in index
               for s in SUBJECTS)
    group_page = (out / GROUP_REPORT).read_text()
    assert all(group_stem(task, "aMinusB") in group_page for task in TASKS)
    listing = json.loads((out / PROVENANCE_FILE).read_text())
    assert [(e["Subject"], e["Analysis"]) for e in listing["Subjects"]] == [
        (s, f"task-{t}") for s in SUBJECTS for t in sorted(TASKS)]
    assert [e["Analysis"] for e in listing["Group"]] == ["task-other", "task-tiny"]


def add_foreign_files(out: Path) -> None:
    for path, content in FOREIGN.items():
        (out / path).parent.mkdir(parents=True, exist_ok=True)
        (out / path).write_text(content)


def effect(folder: Path, task: str, subject: str = "01") -> np.ndarray:
    prefix = f"sub-{subject}_task-{task}"
    return nb.load(folder / f"sub-{subject}" / contrast_file(
        prefix, "aMinusB", "effect_maps")).get_fdata()


def test_the_tasks_are_different_analyses(alone):
    """The second task's a - b effect is the first's negated (its events swap a and b),
    at both levels: the comparisons below tell the two analyses' files apart."""
    for subject in SUBJECTS:
        tiny = effect(alone["tiny"], "tiny", subject)
        assert np.abs(tiny).max() > 0
        np.testing.assert_allclose(effect(alone["other"], "other", subject), -tiny,
                                   atol=1e-10 * np.abs(tiny).max())
    groups = [nb.load(alone[task] / GROUP_FOLDER / group_file(
        group_stem(task, "aMinusB"), "effect_maps")).get_fdata() for task in TASKS]
    np.testing.assert_allclose(groups[1], -groups[0], atol=1e-10 * np.abs(groups[0]).max())


@pytest.mark.parametrize("order", [TASKS, TASKS[::-1]], ids="-then-".join)
def test_two_tasks_into_one_folder(study, alone, tmp_path, order):
    """Either order: both analyses complete and intact, another tool's files kept, every
    page and listing names both; then a rerun of the first changes none of that."""
    out = tmp_path / "out"
    out.mkdir()
    add_foreign_files(out)
    for task in order:
        assert run(study, task, out) == 0
    assert_intact(out, alone)
    assert_foreign_files_kept(out)
    assert_both_listed(out)
    assert run(study, order[0], out) == 0
    assert_intact(out, alone)
    assert_foreign_files_kept(out)
    assert_both_listed(out)


def test_rerun_replaces_only_its_own_files(study, alone, tmp_path):
    """A rerun of one analysis with another contrast deletes that analysis' dropped
    contrast, in the subject and group folders, and nothing of the other analysis."""
    out = tmp_path / "out"
    out.mkdir()
    add_foreign_files(out)
    for task in TASKS:
        assert run(study, task, out) == 0
    other = analysis_files(out, "other")
    assert run(study, "tiny", out, "--contrast", "aOnly=a") == 0
    names = {p.name for sub in ("sub-01", "sub-02", GROUP_FOLDER) for p in (out / sub).iterdir()}
    assert not {n for n in names if "task-tiny" in n and "aMinusB" in n}
    assert contrast_file("sub-01_task-tiny", "aOnly", "z_maps") in names
    assert group_file(group_stem("tiny", "aOnly"), "z_maps") in names
    assert analysis_files(out, "other") == other
    assert_foreign_files_kept(out)
    assert run(study, "tiny", out) == 0  # back to the first contrast
    assert_intact(out, alone)
    assert_foreign_files_kept(out)


def test_group_level_alone_keeps_other_tasks(study, alone, tmp_path):
    """The group level alone (--analysis-level group) of one task, into a folder holding
    both: its own group files replaced (as the analysis' record says), the other's kept."""
    out = tmp_path / "out"
    for task in TASKS:
        assert run(study, task, out) == 0
    tiny_group = {k: v for k, v in analysis_files(out, "tiny").items()
                  if k.startswith(GROUP_FOLDER)}
    assert main(["--analysis-level", "group", "--task", "other", "--group", "one-sample",
                 "--output-dir", str(out), "--work-dir", str(study[1])]) == 0
    record = json.loads((out / GROUP_FOLDER / analysis_record("task-other")).read_text())
    assert record["Analysis"] == "task-other"
    assert record["Parameters"]["from_derivatives"] == str(out.absolute())
    assert {k: v for k, v in analysis_files(out, "tiny").items()
            if k.startswith(GROUP_FOLDER)} == tiny_group
    for task in TASKS:
        ours, theirs = (nb.load(folder / GROUP_FOLDER / group_file(
            group_stem(task, "aMinusB"), "z_maps")).get_fdata() for folder in (out, alone[task]))
        np.testing.assert_array_equal(ours, theirs)


def test_refuses_to_replace_what_it_did_not_write(study, tmp_path, capsys):
    """A file named as this analysis' output that no run of it recorded writing (another
    tool's, an older version's), or that another analysis (here: another space of the
    task) wrote: one line naming the file and whose it is, exit 2, before any work."""
    out, work = tmp_path / "out", tmp_path / "work"
    stray = out / "sub-02" / "sub-02_task-tiny_design.tsv"
    stray.parent.mkdir(parents=True)
    stray.write_text("not ours")
    bids = study[0]
    argv = ["--bids-dir", str(bids), "--task", "tiny", "--output-dir", str(out),
            "--work-dir", str(work), "--contrast", "aMinusB=a - b"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"glm-workflows: error: {stray}: analysis task-tiny would replace it, but "
                   "no run of it is recorded (another tool or an older glm-workflows wrote "
                   "it); move it away or use another --output-dir")
    assert stray.read_text() == "not ours" and not work.exists()
    stray.unlink()
    group_stray = out / GROUP_FOLDER / group_file(group_stem("tiny", "aMinusB"), "z_maps")
    group_stray.parent.mkdir()
    group_stray.write_text("not ours")
    assert main([*argv, "--group", "one-sample"]) == 2
    assert f"error: {group_stray}: analysis task-tiny would replace it" in \
        capsys.readouterr().err
    assert group_stray.read_text() == "not ours" and not work.exists()
    assert main([*argv, "--subject", "01"]) == 0
    capsys.readouterr()
    record = out / "sub-01" / analysis_record("task-tiny")
    record.rename(record.with_name(analysis_record("task-tiny_space-T1w")))
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert main([*argv, "--subject", "01"]) == 2
    assert "analysis task-tiny_space-T1w wrote it" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_commit_refuses_files_another_analysis_wrote_meanwhile(tmp_path):
    """The check is made again under the commit's lock: a file another analysis committed
    while this run worked stops the commit, and nothing changes."""
    out = tmp_path / "out"
    out.mkdir()
    slow = OutputTransaction(out)
    (slow.staging / "sub-01").mkdir()
    (slow.staging / "sub-01" / "sub-01_shared.txt").write_text("slow")
    fast = OutputTransaction(out)
    (fast.staging / "sub-01").mkdir()
    (fast.staging / "sub-01" / "sub-01_shared.txt").write_text("fast")
    fast.commit(["01"], lambda _: None, "task-fast")
    with pytest.raises(InputError, match="analysis task-fast wrote it"):
        slow.commit(["01"], lambda _: None, "task-slow")
    assert (out / "sub-01" / "sub-01_shared.txt").read_text() == "fast"
    assert sorted(p.name for p in (out / "sub-01").iterdir()) == [
        "sub-01_shared.txt", analysis_record("task-fast")]
    slow.discard()


def test_analysis_labels():
    """Task, template (space, cohort, res, den) and model identify an analysis; its
    record's name gives it back."""
    assert analysis_label("rest") == "task-rest"
    label = analysis_label("rest", "MNI152NLin2009cAsym", "v2")
    assert label == "task-rest_space-MNI152NLin2009cAsym_model-v2"
    assert parse_analysis(label) == {"task": "rest", "space": "MNI152NLin2009cAsym",
                                     "cohort": None, "res": None, "den": None, "model": "v2"}
    label = analysis_label("rest", "fsLR", den="32k", res=None)
    assert label == "task-rest_space-fsLR_den-32k"
    assert parse_analysis(label)["den"] == "32k"
    assert parse_analysis_record(analysis_record(label)) == label
    assert parse_analysis_record(PROVENANCE_FILE) is None
    assert parse_analysis_record("sub-01_task-rest_provenance.json") is None
    with pytest.raises(InputError, match="space label"):
        analysis_label("rest", "MNI/2")


def test_seed_analysis_and_another_task_of_its_subject(seed_cli, study, alone, tmp_path):
    """The seed analysis (sub-01, task auditory) and task tiny of sub-01 in one folder, the
    seed first and rerun last: each subject-folder file as the analysis alone wrote it."""
    root, argv, _ = seed_cli
    out, work = tmp_path / "out", tmp_path / "seed_work"
    shutil.copytree(root / "out", out)
    shutil.copytree(root / "work", work)
    seed_record = analysis_record("task-auditory")

    def files(folder, record):
        names = json.loads((folder / "sub-01" / record).read_text())["Outputs"]
        return {name: (folder / "sub-01" / name).read_bytes() for name in names}

    seed = files(root / "out", seed_record)
    tiny = files(alone["tiny"], analysis_record("task-tiny"))
    assert main(["--bids-dir", str(study[0]), "--task", "tiny", "--subject", "01",
                 "--contrast", "aMinusB=a - b", "--output-dir", str(out),
                 "--work-dir", str(study[1])]) == 0
    assert files(out, seed_record) == seed
    assert files(out, analysis_record("task-tiny")) == tiny
    rerun = [*argv[:argv.index("--output-dir")], "--output-dir", str(out), "--work-dir",
             str(work)]
    assert main(rerun) == 0
    assert files(out, seed_record) == seed
    assert files(out, analysis_record("task-tiny")) == tiny
    assert sorted(p.name for p in (out / "sub-01").iterdir()) == sorted(
        [*seed, *tiny, seed_record, analysis_record("task-tiny")])
    page = (out / report_page("01")).read_text()
    assert '<p id="analyses">Analyses: task-auditory, task-tiny</p>' in page
    assert 'id="sub-01_task-auditory_contrast-activeMinusRest"' in page
    assert 'id="sub-01_task-tiny_contrast-aMinusB"' in page
