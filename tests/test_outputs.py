"""The output folder tells the truth: per-subject commits that replace, never mix, survive
signals and concurrent runs; interrupted runs exit cleanly and resume."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from glm_workflows.cli import main
from glm_workflows.core.analyses import analysis_record
from glm_workflows.core.naming import (
    DESCRIPTION_FILE,
    INDEX_FILE,
    PROVENANCE_FILE,
    STAGING_PREFIX,
    parse_output_name,
    report_page,
)
from glm_workflows.execution.interrupts import RunInterrupted, interrupts_raise
from glm_workflows.outputs.folders import (
    JOURNAL_PREFIX,
    LOCK_FILE,
    TRASH_PREFIX,
    OutputTransaction,
    replay_journal,
)
from glm_workflows.synthetic import write_tiny_bids

TASK = ["--task", "tiny"]
#: The analysis of the transactions staged by hand, and its record.
ANALYSIS = "task-x"
RECORD = analysis_record(ANALYSIS)


def snapshot(folder: Path) -> dict:
    """Every file under ``folder`` with its bytes (but the empty lock file of commits and
    the runs' log files in ``logs/``: a failed or interrupted run keeps its log)."""
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != LOCK_FILE
            and p.relative_to(folder).parts[0] != "logs"}


def leftovers(folder: Path) -> list[str]:
    """Staging folders, journals and replaced folders left in the output folder."""
    return [p.name for p in folder.iterdir()
            if p.name.startswith((STAGING_PREFIX, JOURNAL_PREFIX, TRASH_PREFIX))]


def cli(bids, out, work, *extra):
    """Command-line arguments for the tiny study (contrast a - b unless others given)."""
    contrasts = [] if "--contrast" in extra else ["--contrast", "aMinusB=a - b"]
    return ["--bids-dir", str(bids), *TASK, "--output-dir", str(out), "--work-dir", str(work),
            *contrasts, *extra]


@pytest.mark.slow
def test_rerun_replaces_the_subject_folder(tiny_bids_dir, tmp_path, capsys):
    """A rerun with other contrasts leaves only this run's contrasts in the subject's
    folder, report and summary, and one note counts the files removed; subjects the run
    does not cover are left alone."""
    out, work = tmp_path / "out", tmp_path / "work"
    assert main(cli(tiny_bids_dir, out, work, "--subject", "01", "02",
                    "--contrast", "aMinusB=a - b", "--contrast", "bOnly=b")) == 0
    other_subject = snapshot(out / "sub-02")
    gone = sorted(p for p in (out / "sub-01").iterdir()
                  if getattr(parse_output_name(p.name), "contrast", None) in ("aMinusB", "bOnly"))
    capsys.readouterr()
    assert main(cli(tiny_bids_dir, out, work, "--subject", "01",
                    "--contrast", "aOnly=a")) == 0
    captured = capsys.readouterr()
    printed = captured.out
    # the files of the contrasts left out are removed, and a note says so
    assert gone and not any(p.exists() for p in gone)
    note = [line for line in captured.err.splitlines() if "does not write" in line]
    assert len(note) == 1 and note[0].startswith(f"glm-workflows: note: {len(gone)} file(s) ")
    assert note[0].split("e.g. ")[1] in map(str, gone)
    parsed = [parse_output_name(p.name) for p in (out / "sub-01").iterdir()]
    assert {p.contrast for p in parsed if p is not None} == {None, "aOnly"}, parsed
    assert "contrast aOnly:" in printed and "aMinusB" not in printed and "bOnly" not in printed
    page = (out / report_page("01")).read_text()
    assert "aOnly" in page and "aMinusB" not in page and "bOnly" not in page
    assert snapshot(out / "sub-02") == other_subject
    listing = json.loads((out / PROVENANCE_FILE).read_text())["Subjects"]
    assert [item["Subject"] for item in listing] == ["01", "02"]
    assert "--contrast aOnly=a" in listing[0]["CommandLine"]
    assert f'href="{report_page("01")}"' in (out / INDEX_FILE).read_text()
    assert leftovers(out) == []


@pytest.mark.slow
def test_concurrent_runs_for_different_subjects(tiny_bids_dir, tmp_path):
    """Two runs for different subjects into one folder, at the same time, both complete
    and both end up listed in the shared root files."""
    out, work = tmp_path / "out", tmp_path / "work"
    procs = [subprocess.Popen([sys.executable, "-m", "glm_workflows.cli",
                               *cli(tiny_bids_dir, out, work, "--subject", subject)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for subject in ("01", "02")]
    outputs = [proc.communicate(timeout=600)[0] for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    reference, ref_work = tmp_path / "reference", tmp_path / "ref_work"
    assert main(cli(tiny_bids_dir, reference, ref_work, "--subject", "01", "02")) == 0
    for subject in ("01", "02"):
        ours = sorted(p.name for p in (out / f"sub-{subject}").iterdir())
        assert ours == sorted(p.name for p in (reference / f"sub-{subject}").iterdir())
        assert (out / report_page(subject)).exists()
    listing = json.loads((out / PROVENANCE_FILE).read_text())["Subjects"]
    assert [item["Subject"] for item in listing] == ["01", "02"]
    index = (out / INDEX_FILE).read_text()
    assert all(f'href="{report_page(s)}"' in index for s in ("01", "02"))
    assert json.loads((out / DESCRIPTION_FILE).read_text())["DatasetType"] == "derivative"
    assert leftovers(out) == []


def _stage(transaction: OutputTransaction, subject: str, content: str) -> None:
    folder = transaction.staging / f"sub-{subject}"
    folder.mkdir()
    (folder / f"sub-{subject}_{content}.txt").write_text(content)
    (transaction.staging / report_page(subject)).write_text(content)


def test_commit_holds_signals_back(tmp_path):
    """SIGTERM arriving during a commit is delivered only once every swap is done."""
    out = tmp_path / "out"
    out.mkdir()
    old = OutputTransaction(out)
    _stage(old, "01", "old")
    old.commit(["01"], lambda _: None, ANALYSIS)
    new = OutputTransaction(out)
    _stage(new, "01", "new")

    def root_files(_):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)  # a signal not held back would interrupt here

    with pytest.raises(RunInterrupted), interrupts_raise():
        new.commit(["01"], root_files, ANALYSIS)
    assert sorted(p.name for p in (out / "sub-01").iterdir()) == ["sub-01_new.txt", RECORD]
    assert (out / report_page("01")).read_text() == "new"
    assert leftovers(out) == []


def test_commit_cut_short_is_finished_by_the_next_run(tmp_path, monkeypatch):
    """A commit that died between two renames is completed by the next run in the folder:
    the subject's folder is the new one, whole, and nothing is left over."""
    out = tmp_path / "out"
    out.mkdir()
    first = OutputTransaction(out)
    _stage(first, "01", "old")
    _stage(first, "02", "old")
    first.commit(["01", "02"], lambda _: None, ANALYSIS)
    second = OutputTransaction(out)
    _stage(second, "01", "new")
    _stage(second, "02", "new")
    real_rename = os.rename

    def dying_rename(source, target):
        if Path(source) == second.staging / "sub-02":  # the old sub-02 is already aside
            raise KeyboardInterrupt("power cut")
        real_rename(source, target)

    monkeypatch.setattr(os, "rename", dying_rename)
    with pytest.raises(KeyboardInterrupt):
        second.commit(["01", "02"], lambda _: None, ANALYSIS)
    monkeypatch.setattr(os, "rename", real_rename)
    assert not (out / "sub-02").exists()  # the state the crash left
    OutputTransaction(out).discard()  # any next run in this folder
    for subject in ("01", "02"):
        assert sorted(p.name for p in (out / f"sub-{subject}").iterdir()) == \
            [f"sub-{subject}_new.txt", RECORD]
    assert leftovers(out) == []


def test_journal_replay_is_idempotent(tmp_path):
    """Replaying a finished swap again changes nothing."""
    staged, target, trash = tmp_path / "staged", tmp_path / "target", tmp_path / "trash"
    staged.mkdir()
    (staged / "new").write_text("new")
    journal = tmp_path / "journal.json"
    entry = {"Staging": str(tmp_path / "staging"),
             "Swaps": [[str(staged), str(target), str(trash)]]}
    journal.write_text(json.dumps(entry))
    replay_journal(journal)
    journal.write_text(json.dumps(entry))
    replay_journal(journal)
    assert [p.name for p in target.iterdir()] == ["new"] and not trash.exists()


def _start_and_wait_for_a_fit(argv, work):
    proc = subprocess.Popen([sys.executable, "-m", "glm_workflows.cli", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if list(work.glob("glm_workflows_wf/*/fit/result_fit.pklz")):
            return proc
        time.sleep(0.01)
    proc.kill()
    pytest.fail("no fit finished in time")


@pytest.fixture(scope="module")
def larger_tiny_bids(tmp_path_factory):
    """Twelve tiny subjects: enough work left after the first fit to be interrupted."""
    return write_tiny_bids(tmp_path_factory.mktemp("tiny12") / "bids",
                           [f"{index:02d}" for index in range(1, 13)])


@pytest.mark.slow
@pytest.mark.parametrize(("how", "plugin"), [("ctrl-c", "MultiProc"), ("ctrl-c", "Linear"),
                                           ("sigterm", "MultiProc")])
def test_interrupted_run_exits_cleanly_and_resumes(how, plugin, larger_tiny_bids, tmp_path):
    """Ctrl-C (SIGINT to the whole process group, MultiProc workers included) or SIGTERM:
    one line saying the run was interrupted and can be resumed, exit 130 / 143, no
    traceback, the output folder as it was; the rerun takes finished nodes from the cache."""
    out, work = tmp_path / "out", tmp_path / "work"
    out.mkdir()
    (out / "keep.txt").write_text("earlier results")
    before = snapshot(out)
    argv = cli(larger_tiny_bids, out, work, "--plugin", plugin,
               *(["--n-procs", "2"] if plugin == "MultiProc" else []))
    proc = _start_and_wait_for_a_fit(argv, work)
    if how == "ctrl-c":
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == (130 if how == "ctrl-c" else 143), stderr
    assert "Traceback" not in stdout + stderr, stderr
    errors = [line for line in stderr.splitlines() if line.strip()]
    assert len(errors) == 1, stderr
    signame = "SIGINT" if how == "ctrl-c" else "SIGTERM"
    assert errors[0].startswith(f"glm-workflows: interrupted ({signame})")
    assert "run the same command again to resume" in errors[0]
    assert snapshot(out) == before
    assert leftovers(out) == []
    rerun = subprocess.run([sys.executable, "-m", "glm_workflows.cli", *argv],
                           capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert "  cached  " in rerun.stdout and "_wf.fit" in rerun.stdout


def test_settings_that_fail_later_are_refused(tiny_bids_dir, tmp_path, capsys):
    """A work directory that cannot be created, a --mem-gb below the largest node's
    estimate: one line, exit 2, before any work."""
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert main(cli(tiny_bids_dir, tmp_path / "out", blocker / "work")) == 2
    assert f"--work-dir {blocker / 'work'}: {blocker} is a file" in capsys.readouterr().err
    assert main(cli(tiny_bids_dir, tmp_path / "out", tmp_path / "work", "--plugin",
                    "MultiProc", "--mem-gb", "0.01")) == 2
    assert "--mem-gb 0.01: the largest node needs an estimated" in capsys.readouterr().err
    assert not (tmp_path / "work").exists()
