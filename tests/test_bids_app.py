"""The command line as a BIDS App's (issue 25, item 3): ``glm-workflows bids_dir
output_dir {participant,group}`` equal to the flag form, fMRIPrep's spellings, --version,
one-line usage errors, any Nipype plugin, -q/-v/-vv and the run's log file in
``<output-dir>/logs/``, and ``--bids-filter-file``."""

import contextlib
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from glm_workflows import __version__
from glm_workflows.cli import main, spec_from_args
from glm_workflows.core.bids_filter import ENTITIES, QUERIES, normalize_filters
from glm_workflows.core.errors import InputError
from glm_workflows.execution.plugins import nipype_plugins
from glm_workflows.inputs.collect import collect_runs
from glm_workflows.settings import PLUGINS, ExecutionSettings
from glm_workflows.spec.analysis import AnalysisSpec, InputSpec
from glm_workflows.spec.from_model import read_model
from glm_workflows.spec.serialize import to_bids_stats_model
from glm_workflows.synthetic import write_fmriprep_derivatives, write_tiny_bids

MODELS = Path(__file__).resolve().parents[1] / "examples" / "models"
TINY = ["--task", "tiny", "--contrast", "aMinusB=a - b"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Two subjects x two runs of the tiny synthetic study."""
    return write_tiny_bids(tmp_path_factory.mktemp("bids_app") / "bids", runs=2)


@pytest.fixture(scope="module")
def fmriprep(study, tmp_path_factory):
    """fMRIPrep-like derivatives of ``study`` in two spaces."""
    out = tmp_path_factory.mktemp("bids_app_fmriprep") / "fmriprep"
    write_fmriprep_derivatives(study, out, space="MNI152NLin2009cAsym")
    write_fmriprep_derivatives(study, out, space="T1w")
    return out


def _filter_file(folder: Path, content, name="filter.json") -> Path:
    path = folder / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


# ------------------------------------------------------------- the BIDS-App call


@pytest.mark.parametrize("extra", [
    ["participant", *TINY],
    ["group", "--task", "tiny", "--group", "one-sample"],
    [*TINY, "--participant-label", "01"],  # no level: both
    ["participant", "--derivatives", "FMRIPREP", *TINY, "--space", "T1w"],  # FitLins' form
    ["participant", "--model", str(MODELS / "auditory_smdl.json")],
])
def test_positional_and_flag_forms_give_equal_specs(extra):
    """``bids_dir output_dir level`` is ``--bids-dir --output-dir --analysis-level``: the
    same spec and execution settings; bids_dir stays the raw dataset with --derivatives."""
    level = [extra[0]] if extra[0] in ("participant", "group") else []
    rest = extra[len(level):]
    positional = spec_from_args(["/data/raw", "/data/out", *level, *rest])
    flags = spec_from_args(["--bids-dir", "/data/raw", "--output-dir", "/data/out",
                            *(["--analysis-level", *level] if level else []), *rest])
    assert positional == flags
    spec, execution = positional
    assert execution.output_dir == "/data/out"
    assert execution.analysis_level == (level[0] if level else None)
    assert spec.inputs.bids_dir == ("/data/raw" if level != ["group"] else None) or \
        spec.inputs.from_derivatives == "/data/out"
    # options before the positional arguments ("--" ends a list such as
    # --participant-label's), or flags repeating them, change nothing
    assert spec_from_args([*rest, "--", "/data/raw", "/data/out", *level]) == flags
    assert spec_from_args(["/data/raw", "/data/out", *level, *rest,
                           "--output-dir", "/data/out"]) == flags
    same = spec_from_args(["/data/raw", "/data/out/", *level, *rest, "--output-dir",
                           "/data/out"])  # one folder spelt two ways: not a conflict
    assert Path(same[1].output_dir) == Path("/data/out")


@pytest.mark.parametrize(("argv", "flag"), [
    (["/a", "/out", "--output-dir", "/other"], "--output-dir /other"),
    (["/a", "/out", "participant", "--analysis-level", "group"],
     "--analysis-level group"),
    (["/a", "--bids-dir", "/b"], "--bids-dir /b"),
])
def test_a_positional_and_its_flag_that_differ_are_refused(argv, flag, tmp_path, refused):
    line = refused([*argv, "-w", str(tmp_path / "w")])
    assert line.startswith(f"glm-workflows: error: {flag}: the positional ")
    assert not (tmp_path / "w").exists()


def test_fmriprep_spellings_are_aliases():
    reference = spec_from_args(["--n-procs", "3", "--work-dir", "cache"])
    for argv in (["--n-cpus", "3", "-w", "cache"], ["--nprocs", "3", "-w", "cache"]):
        assert spec_from_args(argv) == reference
    assert reference[1].n_procs == 3 and reference[1].work_dir == "cache"


def test_version(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out == f"glm-workflows {__version__}\n"


@pytest.mark.parametrize(("argv", "message"), [
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--noise-model", "ar9"], "argument --noise-model: invalid choice: 'ar9' (choose from "
                               "'ar1', 'ols', 'ar1-corrected', 'ar2-corrected')"),
    (["/a", "/b", "everything"], "argument analysis_level: invalid choice: 'everything' "
                                 "(choose from 'participant', 'group')"),
    (["-q", "-v"], "argument -v/--verbose: not allowed with argument -q/--quiet"),
    (["--n-cpus", "two"], "argument --n-procs/--n-cpus/--nprocs: invalid int value: 'two'"),
])
def test_a_usage_error_is_one_line_and_a_hint(argv, message, capsys):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err == f"glm-workflows: error: {message} (see glm-workflows --help)\n"


def test_usage_error_from_the_console_script_is_one_line():
    done = subprocess.run([sys.executable, "-m", "glm_workflows.cli", "--bogus"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "glm-workflows: error: unrecognized arguments: --bogus (see glm-workflows --help)"]


@pytest.mark.parametrize(("argv", "level"), [([], 0), (["-q"], -1), (["--quiet"], -1),
                                             (["-v"], 1), (["-vv"], 2), (["-v", "-v"], 2),
                                             (["--verbose"], 1)])
def test_verbosity_flags(argv, level):
    assert spec_from_args(argv)[1].verbosity == level
    assert ExecutionSettings().verbosity == 0


# ------------------------------------------------------------------------ plugins


def test_every_nipype_plugin_is_accepted_with_its_arguments_unchanged():
    assert set(PLUGINS) <= set(nipype_plugins())
    assert {"SGE", "PBS", "LSF", "Condor", "IPython", "LegacyMultiProc"} <= \
        set(nipype_plugins())
    arguments = {"qsub_args": "-q short -l h_vmem=4G", "max_jobs": 7}
    for plugin in nipype_plugins():
        if plugin == "SLURMGraph" or plugin in PLUGINS:
            continue
        _, execution = spec_from_args(["--plugin", plugin, "--plugin-args",
                                       json.dumps(arguments)])
        assert execution.plugin == plugin
        assert execution.plugin_arguments() == arguments


def test_an_unknown_plugin_is_one_line_listing_nipypes(tmp_path, refused):
    line = refused(["--plugin", "Sge", "-w", str(tmp_path / "w")])
    assert line == ("glm-workflows: error: --plugin Sge: not a Nipype plugin (Nipype's: "
                    + ", ".join(nipype_plugins()) + ")")
    assert not (tmp_path / "w").exists()


# ------------------------------------------------------------------ filter files


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "not valid JSON (Expecting property name enclosed in double quotes, line 1)"),
    ("[1, 2]", 'expected a JSON object of queries (e.g. {"bold": {"session": "01"}}), got list'),
    ({"boldd": {"run": 1}}, f"unknown query 'boldd' (known: {', '.join(QUERIES)})"),
    ({"bold": {"sub": "01"}}, f"bold.sub: unknown entity (known: {', '.join(ENTITIES)})"),
    ({"bold": ["run"]}, "bold: expected an object of entities, got list"),
    ({"bold": {"run": 1.5}}, "bold.run: expected a label, a number, null or \"*\", got 1.5"),
    ({"bold": {"session": "0-1"}}, "bold.session label '0-1': use letters and digits only"),
    ({"bold": {"run": []}}, "bold.run: an empty list selects nothing"),
    ({"bold": {"space": "T1w"}}, "bold.space: selects fMRIPrep images, only with --derivatives"),
])
def test_a_bad_filter_file_is_one_line_naming_it(content, message, study, tmp_path, refused):
    path = _filter_file(tmp_path, content)
    out, work = tmp_path / "out", tmp_path / "w"
    line = refused([str(study), str(out), "participant", *TINY, "-w", str(work),
                    "--bids-filter-file", str(path)])
    assert line == f"glm-workflows: error: --bids-filter-file {path}: {message}"
    assert not out.exists() and not work.exists()


def test_a_filter_file_that_is_missing_or_out_of_place(study, tmp_path, refused):
    missing = tmp_path / "nope.json"
    assert f"--bids-filter-file {missing}: cannot be read" in refused(
        [str(study), str(tmp_path / "o"), *TINY, "--bids-filter-file", str(missing)])
    path = _filter_file(tmp_path, {"bold": {"run": 1}})
    assert refused(["--bids-filter-file", str(path)]).endswith(
        "--bids-filter-file: needs --bids-dir (it selects BIDS runs)")
    assert refused([str(study), str(tmp_path / "o"), "group", "--task", "tiny",
                    "--group", "one-sample", "--bids-filter-file", str(path)]).endswith(
        "--bids-filter-file: not with --analysis-level group "
        "(the subject maps are read as they were written)")


def _runs(study, content, tmp_path, *extra):
    path = _filter_file(tmp_path, content)
    spec, _ = spec_from_args([str(study), str(tmp_path / "out"), *TINY, *extra,
                              "--bids-filter-file", str(path)])
    return [run.prefix for run in collect_runs(spec)]


def test_the_bold_query_selects_the_raw_runs(study, tmp_path):
    """Values as labels or numbers (run 1 is run-1), lists as any of them, null as absent,
    "*" as present; combined with --participant-label; fMRIPrep's other queries select
    nothing here."""
    everything = ["sub-01_task-tiny_run-1", "sub-01_task-tiny_run-2",
                  "sub-02_task-tiny_run-1", "sub-02_task-tiny_run-2"]
    assert _runs(study, {"bold": {"run": [2]}}, tmp_path) == everything[1::2]
    assert _runs(study, {"bold": {"subject": "02", "run": "01"}}, tmp_path) == everything[2:3]
    assert _runs(study, {"bold": {"run": [1, 2], "acquisition": None, "task": "tiny"},
                         "t1w": {"session": "x"}}, tmp_path) == everything
    assert _runs(study, {"bold": {"run": "*"}}, tmp_path) == everything
    assert _runs(study, {"bold": {"run": 1}}, tmp_path, "--participant-label", "02") == \
        everything[2:3]
    with pytest.raises(InputError, match=r"no task-tiny run of the 4 selected matches the "
                                         r"--bids-filter-file bold query \(session present\)"):
        _runs(study, {"bold": {"session": "*"}}, tmp_path)


def test_the_bold_query_selects_the_fmriprep_images(study, fmriprep, tmp_path):
    """Its raw entities choose the raw runs, its space the images chosen for them (as
    --space would)."""
    path = _filter_file(tmp_path, {"bold": {"space": "T1w", "run": 2, "subject": "01"}})
    spec, _ = spec_from_args([str(study), str(tmp_path / "o"), *TINY, "--derivatives",
                              str(fmriprep), "--bids-filter-file", str(path)])
    runs = collect_runs(spec)
    assert [(run.prefix, run.space) for run in runs] == \
        [("sub-01_task-tiny_run-2_space-T1w", "T1w")]
    assert Path(runs[0].bold_files[0]).name == \
        "sub-01_task-tiny_run-2_space-T1w_desc-preproc_bold.nii.gz"
    flags, _ = spec_from_args([str(study), str(tmp_path / "o"), *TINY, "--derivatives",
                               str(fmriprep), "--space", "T1w", "--participant-label", "01",
                               "--run", "2"])
    assert [run.bold_files for run in collect_runs(flags)] == [run.bold_files for run in runs]
    with pytest.raises(InputError, match="several spaces"):  # without the filter
        collect_runs(spec_from_args([str(study), "o", *TINY, "--derivatives",
                                     str(fmriprep)])[0])


def test_the_filters_are_part_of_the_spec_and_round_trip(study, tmp_path):
    path = _filter_file(tmp_path, {"bold": {"run": [2, 1], "session": None}})
    spec, _ = spec_from_args([str(study), str(tmp_path / "o"), *TINY,
                              "--bids-filter-file", str(path)])
    assert spec.inputs.bids_filters == (("bold", (("run", ("2", "1")),
                                                  ("session", (None,)))),)
    assert spec != spec_from_args([str(study), str(tmp_path / "o"), *TINY])[0]
    assert AnalysisSpec.from_json(spec.to_json()) == spec
    model = tmp_path / "model_smdl.json"  # the selection, as --run, is not in the model file
    model.write_text(json.dumps(to_bids_stats_model(spec)))
    assert read_model(model, bids_dir=str(study), bids_filters=spec.inputs.bids_filters) == spec
    with pytest.raises(InputError, match="inputs.bids_filters: expected normalized filters"):
        InputSpec(bids_dir="/d", bids_filters=(("bold", (("run", ("01", 2)),)),))
    with pytest.raises(InputError, match="inputs.bids_filters: bold.space: selects fMRIPrep"):
        InputSpec(bids_dir="/d", bids_filters=normalize_filters({"bold": {"space": "T1w"}},
                                                                "f"))


# ------------------------------------------------- real runs: console and log file


def _main(argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def quiet_run(study, tmp_path_factory):
    """The BIDS-App call, quiet, on sub-01's run 1 (a filter file): its folder, argv and
    what it printed."""
    root = tmp_path_factory.mktemp("bids_app_run")
    path = _filter_file(root, {"bold": {"subject": "01", "run": 1}})
    argv = [str(study), str(root / "out"), "participant", *TINY, "-w", str(root / "work"),
            "--bids-filter-file", str(path)]
    code, out, err = _main([*argv, "-q"])
    assert code == 0, err
    return root, argv, out, err


def _logs(out: Path) -> list[Path]:
    return sorted((out / "logs").glob("task-tiny_*.log"))


@pytest.mark.slow
def test_quiet_prints_the_results_and_the_log_has_everything(quiet_run):
    root, _, out, err = quiet_run
    assert err == ""
    assert "done    " not in out and "Running " not in out
    lines = out.splitlines()
    assert lines[0].startswith("Finished in ")  # the first line printed: no blank one before
    assert "contrast aMinusB: fdr alpha=0.05 -> " in out
    (log,) = _logs(root / "out")
    assert lines[-1] == f"Log: {log}"
    text = log.read_text()
    assert text.startswith(f"glm-workflows {__version__}, started ")
    assert "Running 1 run(s), 1 contrast(s), plugin Linear" in text
    assert "  done    sub_01_task_tiny_run_1_wf.fit (" in text
    assert out.strip() in text  # and every line the console showed
    assert sorted(p.name for p in (root / "out").iterdir() if not p.name.startswith(".")) \
        == ["dataset_description.json", "index.html", "logs", "sub-01", "sub-01.html"]
    assert not list((root / "out" / "sub-01").glob("*run-2*"))


@pytest.mark.slow
def test_default_and_verbose_runs_each_get_their_own_log(quiet_run):
    """Default: today's progress lines; -v: Nipype's workflow log too (console and log);
    each run a new log file, the earlier ones kept."""
    root, argv, _, _ = quiet_run
    code, out, _ = _main(argv)
    assert code == 0
    assert "cached  sub_01_task_tiny_run_1_wf.fit" in out and "nipype" not in out
    code, verbose, _ = _main([*argv, "-v"])
    assert code == 0
    assert "nipype.workflow INFO" in verbose
    logs = _logs(root / "out")
    assert len(logs) == 3
    assert "nipype.workflow INFO" in logs[-1].read_text()
    assert "nipype.workflow" not in logs[0].read_text() + logs[1].read_text()


@pytest.mark.slow
def test_a_failed_run_keeps_its_log_and_bad_input_writes_none(quiet_run, study, tmp_path):
    root, argv, _, _ = quiet_run
    out = root / "out"
    before = _logs(out)
    code, _, err = _main([*argv[:-1], str(tmp_path / "missing.json")])
    assert code == 2 and _logs(out) == before  # refused before any work: no log
    broken = tmp_path / "bids"
    shutil.copytree(study, broken)
    bold = broken / "sub-01" / "func" / "sub-01_task-tiny_run-1_bold.nii.gz"
    whole = bold.read_bytes()  # data cut short, ending in gzip's record of the whole size
    bold.write_bytes(whole[:2000] + whole[-4:])  # (read before any work): fails in a node
    code, printed, err = _main([str(broken), str(out), "participant", *TINY,
                                "-w", str(tmp_path / "work"), "--bids-filter-file",
                                argv[-1]])
    assert code == 1, err
    (log,) = sorted(set(_logs(out)) - set(before))
    assert printed.strip().splitlines()[-1] == f"Log: {log}"
    errors = [line for line in err.splitlines() if line.startswith("glm-workflows: error")]
    assert errors and all(line in log.read_text() for line in errors)
    assert "  FAILED " in log.read_text()


@pytest.mark.slow
def test_another_nipype_plugin_runs_with_its_arguments(quiet_run, study, tmp_path):
    """LegacyMultiProc (none of the four handled here) runs by name with --plugin-args as
    given, recorded so, and gives the Linear run's maps (the filter's runs, by flags)."""
    import nibabel as nb
    import numpy as np

    root, _, _, _ = quiet_run
    out = tmp_path / "out"
    code, _, err = _main([str(study), str(out), "participant", *TINY, "-w",
                          str(tmp_path / "work"), "--participant-label", "01", "--run", "1",
                          "--plugin", "LegacyMultiProc", "--plugin-args", '{"n_procs": 2}'])
    assert code == 0, err
    record = json.loads((out / "sub-01" / "task-tiny_provenance.json").read_text())
    assert record["Parameters"]["plugin"] == "LegacyMultiProc"
    assert record["Parameters"]["plugin_args"] == {"n_procs": 2}
    maps = sorted((out / "sub-01").glob("*_stat-z_statmap.nii.gz"))
    assert maps
    for path in maps:
        np.testing.assert_array_equal(nb.load(path).get_fdata(),
                                      nb.load(root / "out" / "sub-01" / path.name).get_fdata())


@pytest.mark.parametrize("flag", [["--smoothing-fwhm", "6"], ["--noise-model", "ols"],
                                  ["--confounds-strategy", "simple"], ["--save-residuals"],
                                  ["--high-pass", "0.01"]])
def test_first_level_model_flags_are_refused_at_the_group_level_alone(tmp_path, capsys, flag):
    """The group level reads the subject maps as written: a first-level model flag there
    would change nothing, so it is one line, exit 2, not silently ignored."""
    from glm_workflows.cli.parser import FIRST_LEVEL_GROUPS, build_parser, first_level_model_flags

    assert len(first_level_model_flags(build_parser())) > 15  # both groups found by title
    assert FIRST_LEVEL_GROUPS[0] == "model"
    code = main([str(tmp_path / "ds"), str(tmp_path / "out"), "group", "--task", "tiny",
                 "--group", "one-sample", *flag])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [f"glm-workflows: error: {flag[0]}: not with --analysis-level "
                                 "group (the subject maps are read as they were written)"]
    assert not (tmp_path / "out").exists()
