"""The provenance record and the sidecars' provenance fields."""

import hashlib
import importlib.machinery
import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from glm_workflows.core.analyses import analysis_record
from glm_workflows.core.derivatives import software_versions
from glm_workflows.core.entities import bids_prefix
from glm_workflows.core.naming import INDEX_FILE, PROVENANCE_FILE, model_file, report_page
from glm_workflows.outputs.invocation import entry_point, invocation

#: The record of the analysis in each subject folder.
RECORD = analysis_record("task-auditory")


@pytest.mark.slow
def test_provenance_record(split_outputs, split_bids_dir):
    """Per subject: inputs with their sha256, every parameter, the graph, per-node timings,
    versions, the files written; at the root, the list of the subjects' records."""
    listing = json.loads((split_outputs / PROVENANCE_FILE).read_text())["Subjects"]
    assert [item["Record"] for item in listing] == [f"sub-01/{RECORD}", f"sub-02/{RECORD}"]
    assert [item["Analysis"] for item in listing] == ["task-auditory"] * 2
    records = {s: json.loads((split_outputs / f"sub-{s}" / RECORD).read_text())
               for s in ("01", "02")}
    assert [item["Date"] for item in listing] == [records[s]["GeneratedBy"]["Date"]
                                                  for s in ("01", "02")]
    record = records["02"]
    assert record["GeneratedBy"]["Name"] == "glm-workflows"
    assert "--plugin MultiProc" in record["GeneratedBy"]["CommandLine"]
    assert record["GeneratedBy"]["WallTimeSeconds"] > 0
    assert record["SoftwareVersions"] == software_versions()
    inputs = record["Inputs"]
    assert len(inputs) == 4  # 2 runs x (bold, events) of subject 02
    for item in inputs:
        with open(item["path"], "rb") as handle:
            assert item["sha256"] == hashlib.sha256(handle.read()).hexdigest()
    assert {(i["subject"], i["run"], i["role"]) for i in inputs} == {
        ("02", r, role) for r in ("1", "2") for role in ("bold", "events")}
    params = record["Parameters"]
    assert params["noise_model"] == "ar1" and params["hrf_model"] == "spm"
    assert params["height_control"] == "fdr" and params["alpha"] == 0.05
    assert params["plugin_args"] == {"n_procs": 2, "memory_gb": 8.0}
    assert [c["name"] for c in params["contrasts"]] == ["activeMinusRest", "effectsOfInterest"]
    nodes = {n["name"]: n for n in record["Nodes"]}
    fit = nodes["sub_02_task_auditory_run_2_wf.fit"]
    assert fit["status"] == "ran" and fit["seconds"] > 0 and fit["subject"] == "02"
    assert "sub_02_fixed_effects_wf.ffx_activeMinusRest" in nodes
    assert {n["subject"] for n in record["Nodes"]} == {"02"}
    graph = record["Graph"]
    assert "glm_workflows_wf.sub_02_fixed_effects_wf.ffx_activeMinusRest" in graph["Nodes"]
    run_wf = "glm_workflows_wf.sub_02_task_auditory_run_1_wf"
    assert [f"{run_wf}.fit", f"{run_wf}.estimate_activeMinusRest"] in graph["Edges"]
    assert not any("sub_01" in name for name in graph["Nodes"])
    assert record["Analysis"] == "task-auditory"
    assert record["Outputs"] == sorted(p.name for p in (split_outputs / "sub-02").iterdir()
                                       if p.name != RECORD)


@pytest.mark.slow
def test_sidecars_name_software_and_inputs(split_outputs, split_bids_dir):
    """Every JSON sidecar written carries Sources and SoftwareVersions."""
    sidecars = sorted(p for p in split_outputs.glob("sub-*/*.json")
                      if p.name != RECORD)
    # runs: design, model (diagnostics) + 2 contrasts x 2; subject: 2 contrasts x 2
    assert len(sidecars) == 2 * (2 * (2 + 2 * 2) + 2 * 2)
    for path in sidecars:
        content = json.loads(path.read_text())
        assert content["SoftwareVersions"]["nilearn"] == software_versions()["nilearn"]
        assert content["Sources"], path
    run_design = json.loads((split_outputs / "sub-01" / model_file(
        bids_prefix("01", "auditory", run="2"), "design_json")).read_text())
    # BIDS URIs into the raw dataset, which the folder's description links
    assert run_design["Sources"] == ["bids:raw:sub-01/func/sub-01_task-auditory_run-2_bold.nii.gz",
                                     "bids:raw:sub-01/func/sub-01_task-auditory_run-2_events.tsv"]
    links = json.loads((split_outputs / "dataset_description.json").read_text())["DatasetLinks"]
    assert links["raw"] == split_bids_dir.absolute().as_uri()


@pytest.mark.slow
def test_cli_writes_reports_and_index(split_outputs):
    """The command line writes one report per subject, with its fixed effects and the
    provenance of this run, and an index linking them."""
    index = (split_outputs / INDEX_FILE).read_text()
    assert all(f'href="{report_page(s)}"' in index for s in ("01", "02"))
    for subject in ("01", "02"):
        record = json.loads((split_outputs / f"sub-{subject}" / RECORD).read_text())
        page = (split_outputs / report_page(subject)).read_text()
        assert "Fixed effects over runs" in page
        assert f"sub-{subject}_task-auditory_run-2" in page
        assert record["GeneratedBy"]["Date"] in page
    # no staging folder, journal or replaced folder left; only the commit lock
    assert [p.name for p in split_outputs.glob(".glm-workflows*")] == [".glm-workflows.lock"]


@pytest.mark.slow
def test_recorded_command_line_runs_again(tmp_path):
    """The recorded command line is the one run (entry point, arguments with spaces and a
    quote) and, pasted in the recorded working directory, runs the same analysis (relative
    paths included): its computing nodes come from the cache (``--recheck``: else nothing
    changed is answered from the run's stamp, tests/test_up_to_date.py)."""
    from glm_workflows.synthetic import write_tiny_bids

    write_tiny_bids(tmp_path / "bids", ("01",))
    script = str(Path(__file__).resolve().parents[1] / "run_workflow.py")
    out = tmp_path / "it's out"
    command = [sys.executable, script, "--bids-dir", "bids", "--task", "tiny",
               "--contrast", "aMinusB=a - b", "--output-dir", out.name, "--work-dir", "work",
               "--plugin", "Linear"]
    first = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    tiny_record = analysis_record("task-tiny")
    record = json.loads((out / "sub-01" / tiny_record).read_text())
    generated = record["GeneratedBy"]
    assert shlex.split(generated["CommandLine"]) == command
    assert generated["WorkingDirectory"] == str(tmp_path)
    listing = json.loads((out / PROVENANCE_FILE).read_text())["Subjects"]
    assert listing[0]["CommandLine"] == generated["CommandLine"]
    assert listing[0]["WorkingDirectory"] == str(tmp_path)

    again = subprocess.run(generated["CommandLine"] + " --recheck", shell=True,
                           cwd=generated["WorkingDirectory"], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    rerun = json.loads((out / "sub-01" / tiny_record).read_text())
    assert rerun["GeneratedBy"]["CommandLine"] == generated["CommandLine"] + " --recheck"
    computing = [n for n in rerun["Nodes"] if not n["name"].split(".")[-1].startswith("sink")]
    assert {node["status"] for node in computing} == {"cached"}  # sinks write a new staging


@pytest.fixture
def main_module(monkeypatch):
    """``__main__`` as a script's (no module spec), to be changed by the test."""
    main = sys.modules["__main__"]
    monkeypatch.setattr(main, "__spec__", None, raising=False)
    return main


def test_entry_point_is_the_one_run(main_module, monkeypatch, tmp_path):
    """``python -m``, a ``.py`` script as given, a console script by name when the PATH
    finds it (else its path); arguments given in-process run through ``glm-workflows``."""
    monkeypatch.setattr(sys, "argv", ["run_workflow.py", "--task", "a b"])
    assert entry_point() == [sys.executable, "run_workflow.py"]
    assert invocation() == [sys.executable, "run_workflow.py", "--task", "a b"]
    assert invocation(["--task", "x"]) == ["glm-workflows", "--task", "x"]

    monkeypatch.setattr(main_module, "__spec__",
                        importlib.machinery.ModuleSpec("glm_workflows.cli", None))
    assert entry_point() == [sys.executable, "-m", "glm_workflows.cli"]

    monkeypatch.setattr(main_module, "__spec__", None)
    script = tmp_path / "bin" / "glm-workflows"
    script.parent.mkdir()
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    monkeypatch.setattr(sys, "argv", [str(script), "--task", "x"])
    monkeypatch.setenv("PATH", str(script.parent))
    assert entry_point() == ["glm-workflows"]
    monkeypatch.setenv("PATH", str(tmp_path))
    assert entry_point() == [str(script)]
    monkeypatch.setattr(sys, "argv", ["-c"])
    assert entry_point() == ["glm-workflows"]
