"""The participant and group levels apart (BIDS-App style), and the array submission's
plan, scripts and jobs without a cluster: tasks within the cluster's limits, flags passed
on unchanged, the jobs' own entry points run in-process, bad combinations refused."""

import json
import math
import os
import subprocess
import sys
from dataclasses import asdict

import nibabel as nb
import numpy as np
import pytest

from glm_workflows.cli import array_task, main
from glm_workflows.core.errors import InputError
from glm_workflows.core.naming import GROUP_FOLDER, group_file, group_stem
from glm_workflows.execution.cluster import (
    QUEUE_SHARE,
    ClusterLimits,
    JobSize,
    plan_tasks,
    sbatch_partition,
    split_arrays,
    task_size,
)
from glm_workflows.execution.slurm_array import Submission, submission_folder
from glm_workflows.synthetic import write_tiny_bids

SUBJECTS = ["01", "02", "03", "04"]
STUDY = ["--task", "tiny", "--contrast", "aMinusB=a - b"]
Z_MAP = "sub-{0}/sub-{0}_task-tiny_contrast-aMinusB_stat-z_statmap.nii.gz"


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    return write_tiny_bids(tmp_path_factory.mktemp("array") / "bids", SUBJECTS)


@pytest.fixture(scope="module")
def both_levels(study, tmp_path_factory):
    """One Linear run of both levels (the reference): its output folder."""
    root = tmp_path_factory.mktemp("both")
    assert main(["--bids-dir", str(study), *STUDY, "--group", "one-sample",
                 "--output-dir", str(root / "out"), "--work-dir", str(root / "work")]) == 0
    return root / "out"


def _same_map(path, reference):
    np.testing.assert_array_equal(nb.load(path).get_fdata(), nb.load(reference).get_fdata())


def _group_z(out):
    return out / GROUP_FOLDER / group_file(group_stem("tiny", "aMinusB"), "z_maps")


# ----------------------------------------------------------------------- the plan


@pytest.mark.parametrize("n, max_jobs, max_array", [(4, 10000, 1001), (10000, 10000, 1001),
                                                    (10000, 2000, 300), (2500, 10000, 1001)])
def test_tasks_fit_the_cluster_limits(n, max_jobs, max_array):
    """Every participant in exactly one task, in order; tasks + group job within
    QUEUE_SHARE of MaxJobCount, with the fewest participants per task that allows; every
    array below MaxArraySize."""
    labels = [f"{i:05d}" for i in range(n)]
    limits = ClusterLimits(max_array, max_jobs, "test")
    tasks = plan_tasks(labels, limits)
    assert [label for task in tasks for label in task] == labels
    budget = int(max_jobs * QUEUE_SHARE)
    assert len(tasks) + 1 <= budget
    per_task = len(tasks[0])
    assert per_task == max(1, math.ceil(n / (budget - 1)))
    arrays = split_arrays(len(tasks), max_array)
    assert all(count <= max_array for _, count in arrays)
    assert [offset for offset, _ in arrays] == list(range(0, len(tasks), max_array))
    assert sum(count for _, count in arrays) == len(tasks)


def test_ten_thousand_participants_at_slurm_defaults():
    """Slurm's defaults (MaxArraySize 1001, MaxJobCount 10,000): 3 participants per task,
    3,334 tasks in 4 arrays, 3,335 jobs in all."""
    tasks = plan_tasks([str(i) for i in range(10000)], ClusterLimits(1001, 10000, "test"))
    assert len(tasks) == math.ceil(10000 / 3) and len(tasks[0]) == 3
    assert len(split_arrays(len(tasks), 1001)) == 4


def test_too_few_participants_per_task_refused():
    with pytest.raises(InputError, match=r"--participants-per-task 1: 10000 array tasks .* "
                                         r"give at least 3"):
        plan_tasks([str(i) for i in range(10000)], ClusterLimits(1001, 10000, "test"), 1)


def test_task_size_from_node_estimates():
    """CPUs: one per run (capped by the node); memory: the largest nodes that many
    processes run at once, plus the process's own."""
    runs = [{"fit": 0.5, "light": 0.4}, {"fit": 1.5, "light": 0.4}, {"fit": 1.0}]
    size = task_size(runs, node_cpus=2)
    assert size == JobSize(2, 2.5)
    assert size.mem_mb == math.ceil((2.5 + 1.0) * 1024)
    assert task_size(runs, n_procs=1) == JobSize(1, 1.5)
    assert task_size(runs).cpus == 3


def test_jobs_run_the_spec_the_levels_flags_give(tmp_path):
    """What a job runs is read from the submission's spec.json and execution.json: a task
    runs the spec ``--analysis-level participant --participant-label ...`` gives, the group
    job the one ``--analysis-level group`` gives (no command line rebuilt)."""
    from types import SimpleNamespace

    from glm_workflows.cli import spec_from_args
    from glm_workflows.execution.submit import (
        EXECUTION_FILE,
        SPEC_FILE,
        group_analysis,
        task_analysis,
    )

    out = str(tmp_path / "out")
    argv = ["--bids-dir", "ds", "--task", "tiny", "--contrast", "c1=-a + b", "--contrast",
            "c2=a", "--f-contrast", "eff=a,b", "--one-sided", "--alpha", "0.01",
            "--noise-model", "ols", "--participant-label", "01", "02", "03",
            "--group", "one-sample", "--tfce", "--permutations", "100",
            "--height-control", "fpr", "--hrf-model", "glover + derivative",
            "--output-dir", out]
    spec, execution = spec_from_args([*argv, "--slurm-array"])
    (tmp_path / SPEC_FILE).write_text(spec.to_json())
    (tmp_path / EXECUTION_FILE).write_text(json.dumps(asdict(execution)))
    job = {"Cpus": 2, "MemGB": 1.5}
    submission = SimpleNamespace(folder=tmp_path, output_dir=out, tasks=[["01", "02"], ["03"]],
                                 task_job=job, group_job=job,
                                 task_work_dir=lambda task: tmp_path / f"task-{task}")
    participant = ["--bids-dir", "ds", "--task", "tiny", "--contrast", "c1=-a + b",
                   "--contrast", "c2=a", "--f-contrast", "eff=a,b", "--one-sided", "--alpha",
                   "0.01", "--noise-model", "ols", "--height-control", "fpr", "--hrf-model",
                   "glover + derivative", "--output-dir", out]
    task_spec, task_execution = task_analysis(submission, 1)
    assert task_spec == spec_from_args([*participant, "--analysis-level", "participant",
                                        "--participant-label", "03"])[0]
    assert task_execution == spec_from_args([
        *participant, "--analysis-level", "participant", "--plugin", "MultiProc",
        "--n-procs", "2", "--mem-gb", "1.5", "--work-dir", str(tmp_path / "task-1")])[1]
    group_spec, group_execution = group_analysis(submission)
    assert group_spec == spec_from_args([
        "--task", "tiny", "--bids-dir", "ds", "--contrast", "c1=-a + b", "--contrast", "c2=a",
        "--one-sided", "--alpha", "0.01", "--participant-label", "01", "02", "03",
        "--group", "one-sample", "--tfce", "--permutations", "100", "--height-control",
        "fpr", "--analysis-level", "group", "--output-dir", out])[0]
    assert (group_execution.analysis_level, group_execution.n_procs) == ("group", 2)


# ----------------------------------------------------------------------- bad input


@pytest.mark.parametrize("extra, message", [
    (["--dry-run"], "--dry-run: only with --slurm-array"),
    (["--resubmit-failed"], "--resubmit-failed: only with --slurm-array"),
    (["--participants-per-task", "2"], "--participants-per-task: only with --slurm-array"),
    (["--slurm-array", "--plugin", "MultiProc"], "--plugin: not with --slurm-array"),
    (["--slurm-array", "--analysis-level", "participant"], "--slurm-array: submits both"),
    (["--analysis-level", "participant", "--group", "one-sample"],
     "--group: not with --analysis-level participant"),
    (["--analysis-level", "group"], "--analysis-level group: needs --group"),
    (["--slurm-array", "--resubmit-failed"], "no array submission here"),
    (["--slurm-array", "--dry-run", "--participants-per-task", "0"],
     "--participants-per-task: expected a number >= 1"),
    (["--slurm-array", "--dry-run", "--resubmit-failed"],
     "--dry-run: not with --resubmit-failed"),
    (["--slurm-array", "--mem-gb", "4"], "--mem-gb: not with --slurm-array"),
])
def test_bad_combinations_refused(study, tmp_path, capsys, extra, message):
    out = tmp_path / "out"
    code = main(["--bids-dir", str(study), *STUDY, "--output-dir", str(out),
                 "--work-dir", str(tmp_path / "work"), *extra])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (out / "sub-01").exists()


# ----------------------------------------------------------------------- the levels apart


@pytest.mark.slow
def test_concurrent_participant_runs_share_an_output_folder(study, both_levels, tmp_path):
    """Two participant-level runs for different participants, at the same time, into one
    output folder: each writes its participants' derivatives and nothing else (besides
    dataset_description.json and index.html, which lists every subject's report); the maps
    equal the run of both levels. The group level then reads them."""
    out = tmp_path / "out"
    runs = [subprocess.Popen(
        [sys.executable, "-m", "glm_workflows.cli", "--bids-dir", str(study), *STUDY,
         "--analysis-level", "participant", "--participant-label", *labels,
         "--output-dir", str(out), "--work-dir", str(tmp_path / f"work{i}")],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for i, labels in enumerate((["01", "02"], ["03", "04"]))]
    for run in runs:
        printed, _ = run.communicate(timeout=300)
        assert run.returncode == 0, printed
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "dataset_description.json", "index.html", "logs",
        *(f"sub-{s}{ext}" for s in SUBJECTS for ext in ("", ".html"))]
    assert len(list((out / "logs").glob("task-tiny_*.log"))) == 2  # one per run
    for subject in SUBJECTS:
        _same_map(out / Z_MAP.format(subject), both_levels / Z_MAP.format(subject))
    assert main(["--bids-dir", str(study), "--task", "tiny", "--group", "one-sample",
                 "--analysis-level", "group", "--output-dir", str(out),
                 "--work-dir", str(tmp_path / "group")]) == 0
    _same_map(_group_z(out), _group_z(both_levels))
    assert (out / "index.html").exists()


@pytest.mark.slow
def test_array_jobs_run_in_process(study, both_levels, tmp_path, capsys, monkeypatch):
    """A dry run writes the scripts and the record and submits nothing; the jobs' entry
    points (what the scripts run) then give the outputs of the run of both levels. The
    group job refuses while a task has not finished, naming its participants."""
    monkeypatch.chdir(tmp_path)
    argv = ["--bids-dir", str(study), *STUDY, "--group", "one-sample", "--output-dir", "out",
            "--work-dir", "work", "--slurm-array", "--participants-per-task", "3",
            "--n-procs", "1", "--dry-run",
            "--plugin-args", '{"sbatch_args": "-p debug --time=00:10:00"}']
    assert main(argv) == 0
    printed = capsys.readouterr().out
    folder = submission_folder(tmp_path / "work", dry_run=True)
    assert not submission_folder(tmp_path / "work").exists()  # a real submission's folder
    assert "4 participant(s) in 2 task(s) of up to 3" in printed
    assert (f"sbatch --parsable --array=0-1 -p debug --time=00:10:00 "
            f"{folder / 'array-000.sh'}") in printed
    assert "--dependency=afterany:<array-000>" in printed
    submission = Submission.load(folder)
    assert submission.tasks == [["01", "02", "03"], ["04"]]
    assert submission.job_ids() == []  # nothing submitted
    script = (folder / "array-000.sh").read_text()
    assert "#SBATCH --cpus-per-task=1" in script and f"#SBATCH --chdir={tmp_path}" in script
    assert "-m glm_workflows.cli.array_task task" in script
    assert array_task.run_task(folder, 1) == 0
    assert array_task.run_group(folder) == 1
    err = capsys.readouterr().err
    assert "3 of 4 participant(s) did not finish: 01, 02, 03 (task(s) 0;" in err
    assert not (tmp_path / "out" / GROUP_FOLDER).exists()
    assert array_task.run_task(folder, 0) == 0
    assert array_task.run_group(folder) == 0
    for subject in SUBJECTS:
        _same_map(tmp_path / "out" / Z_MAP.format(subject), both_levels / Z_MAP.format(subject))
    _same_map(_group_z(tmp_path / "out"), _group_z(both_levels))
    assert json.loads((folder / "done" / "task-00000.json").read_text())["Participants"] == [
        "01", "02", "03"]
    assert os.path.exists(folder / "done" / "group.json")


def test_parallel_validation_equals_the_sequential_one(tmp_path):
    """Large studies are checked in forked processes: same results and warnings, in run
    order, and the first failing run's error (not the first process's to finish)."""
    from dataclasses import replace

    from glm_workflows.inputs.bids import find_bids_runs
    from glm_workflows.inputs.checks import validate_runs
    from glm_workflows.settings import DEFAULT_MODEL

    labels = [f"{i:02d}" for i in range(1, 9)]
    study = write_tiny_bids(tmp_path / "bids", labels)
    for index, label in enumerate(labels):  # a design of its own for each run
        events = study / f"sub-{label}" / "func" / f"sub-{label}_task-tiny_events.tsv"
        lines = events.read_text().splitlines()
        events.write_text("\n".join([*lines, f"{150 + index}\t5.0\ta", "200\t1.0\tb"]) + "\n")
    runs = find_bids_runs(study, "tiny")
    models = [DEFAULT_MODEL.design()] * len(runs)
    contrasts = [("aMinusB", "t", ("a - b",))]
    options = dict(output_dir=tmp_path / "out", confounds=None, min_kept_volumes=10,
                   strict=False)

    def check(candidates, **parallel):
        warnings, checks = [], {}
        results = validate_runs(candidates, models, contrasts, design_checks=checks,
                                warnings=warnings, **options, **parallel)
        return results, warnings, checks

    sequential = check(runs, n_procs=1)
    parallel = check(runs, n_procs=2, parallel_from=1)
    assert parallel == sequential
    assert len(sequential[1]) == len(runs)  # each run: its late event dropped, in order
    assert [line.split(":")[0] for line in sequential[1]] == [
        str(run.events_file) for run in runs]
    broken = list(runs)
    for index in (5, 7):  # both in the second process's share: the first is reported
        bad = tmp_path / f"bad{index}_events.tsv"
        bad.write_text("onset\tduration\n1\t2\n")
        broken[index] = replace(runs[index], events_file=str(bad))
    with pytest.raises(InputError, match="bad5_events.tsv"):
        check(broken, n_procs=2, parallel_from=1)


@pytest.mark.slow
def test_group_level_of_multi_run_participants_checks_the_expression(tmp_path):
    """Fixed-effects sidecars record the contrast's rows, so the group level read from the
    output folder checks ``--contrast NAME=EXPR`` for subjects with several runs too."""
    study = write_tiny_bids(tmp_path / "bids", ["01", "02"], runs=2)
    out = tmp_path / "out"
    assert main(["--bids-dir", str(study), *STUDY, "--analysis-level", "participant",
                 "--output-dir", str(out), "--work-dir", str(tmp_path / "work")]) == 0
    sidecar = json.loads((out / "sub-01" / "sub-01_task-tiny_contrast-aMinusB_statmap.json")
                         .read_text())
    assert sidecar["ContrastRows"] == ["a - b"] and len(sidecar["FixedEffectsOf"]) == 2
    group = ["--bids-dir", str(study), "--task", "tiny", "--group", "one-sample",
             "--analysis-level", "group", "--output-dir", str(out),
             "--work-dir", str(tmp_path / "group")]
    assert main([*group, "--contrast", "aMinusB=a - b"]) == 0
    assert main([*group, "--contrast", "aMinusB=b - a"]) == 2


def test_participant_level_skips_a_condition_absent_from_its_runs(tmp_path, capsys):
    """A participant whose runs lack a condition that other participants have: its
    contrast is skipped with a warning, as in a run of the whole study, also when this
    participant is the only one selected (an array task, say); a name no participant has
    is still refused as a typo."""
    study = write_tiny_bids(tmp_path / "bids", ["01", "02"])
    events = study / "sub-02" / "func" / "sub-02_task-tiny_events.tsv"
    lines = events.read_text().splitlines()
    events.write_text("\n".join([lines[0], *(ln for ln in lines[1:] if ln.endswith("a"))])
                      + "\n")
    argv = ["--bids-dir", str(study), "--task", "tiny", "--contrast", "aMinusB=a - b",
            "--contrast", "aOnly=a", "--analysis-level", "participant",
            "--participant-label", "02", "--output-dir", str(tmp_path / "out"),
            "--work-dir", str(tmp_path / "work")]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "contrast aMinusB: condition(s) b absent from sub-02_task-tiny; skipped" in err
    assert (tmp_path / "out" / "sub-02" /
            "sub-02_task-tiny_contrast-aOnly_stat-z_statmap.nii.gz").exists()
    assert main([*argv[:4], "--contrast", "aMinusC=a - c", *argv[8:]]) == 2
    assert "unknown column 'c'" in capsys.readouterr().err


@pytest.mark.parametrize("args, partition", [
    (["-p", "short", "-t", "1:00:00"], "short"), (["--partition=gpu"], "gpu"),
    (["-t", "5", "--partition", "long"], "long"), (["-pdebug"], "debug"), (["-t", "5"], None),
])
def test_the_partition_of_the_sbatch_options(args, partition):
    """The node sizes a job is checked against are those of the partition it asks for."""
    assert sbatch_partition(args) == partition
