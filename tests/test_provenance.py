"""The provenance record and the sidecars' provenance fields."""

import hashlib
import json

from glm_workflows.core.derivatives import software_versions
from glm_workflows.core.naming import (
    INDEX_FILE,
    PROVENANCE_FILE,
    analysis_record,
    bids_prefix,
    model_file,
    report_page,
)

#: The record of the analysis in each subject folder.
RECORD = analysis_record("task-auditory")


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


def test_sidecars_name_software_and_inputs(split_outputs, split_bids_dir):
    """Every JSON sidecar written carries Sources and SoftwareVersions."""
    sidecars = sorted(p for p in split_outputs.glob("sub-*/*.json")
                      if p.name != RECORD)
    assert len(sidecars) == 2 * (2 * (1 + 2 * 2) + 2 * 2)  # runs: design + 2x2; subject: 2x2
    for path in sidecars:
        content = json.loads(path.read_text())
        assert content["SoftwareVersions"]["nilearn"] == software_versions()["nilearn"]
        assert content["Sources"], path
    run_design = json.loads((split_outputs / "sub-01" / model_file(
        bids_prefix("01", "auditory", run="2"), "design_json")).read_text())
    func = split_bids_dir / "sub-01" / "func"
    assert run_design["Sources"] == [str(func / "sub-01_task-auditory_run-2_bold.nii.gz"),
                                     str(func / "sub-01_task-auditory_run-2_events.tsv")]


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
