"""The provenance record and the sidecars' provenance fields."""

import hashlib
import json

from glm_workflows.core.derivatives import software_versions


def test_provenance_record(split_outputs, split_bids_dir):
    """Inputs with their sha256, every parameter, the graph, per-node timings, versions."""
    record = json.loads((split_outputs / "provenance.json").read_text())
    assert record["GeneratedBy"]["Name"] == "glm-workflows"
    assert "--plugin MultiProc" in record["GeneratedBy"]["CommandLine"]
    assert record["GeneratedBy"]["WallTimeSeconds"] > 0
    assert record["SoftwareVersions"] == software_versions()
    inputs = record["Inputs"]
    assert len(inputs) == 8  # 2 subjects x 2 runs x (bold, events)
    for item in inputs:
        with open(item["path"], "rb") as handle:
            assert item["sha256"] == hashlib.sha256(handle.read()).hexdigest()
    assert {(i["subject"], i["run"], i["role"]) for i in inputs} == {
        (s, r, role) for s in ("01", "02") for r in ("1", "2") for role in ("bold", "events")}
    params = record["Parameters"]
    assert params["noise_model"] == "ar1" and params["hrf_model"] == "spm"
    assert params["height_control"] == "fdr" and params["alpha"] == 0.05
    assert params["plugin_args"] == {"n_procs": 2, "memory_gb": 8.0}
    assert [c["name"] for c in params["contrasts"]] == ["activeMinusRest", "effectsOfInterest"]
    nodes = {n["name"]: n for n in record["Nodes"]}
    fit = nodes["sub_02_task_auditory_run_2_wf.fit"]
    assert fit["status"] == "ran" and fit["seconds"] > 0 and fit["subject"] == "02"
    assert "sub_01_fixed_effects_wf.ffx" in nodes
    graph = record["Graph"]
    assert "glm_workflows_wf.sub_01_fixed_effects_wf.ffx" in graph["Nodes"]
    assert ["glm_workflows_wf.sub_01_task_auditory_run_1_wf.fit",
            "glm_workflows_wf.sub_01_task_auditory_run_1_wf.estimate"] in graph["Edges"]


def test_sidecars_name_software_and_inputs(split_outputs, split_bids_dir):
    """Every JSON sidecar written carries Sources and SoftwareVersions."""
    sidecars = sorted(split_outputs.glob("sub-*/*.json"))
    assert len(sidecars) == 2 * (2 * (1 + 2 * 2) + 2 * 2)  # runs: design + 2x2; subject: 2x2
    for path in sidecars:
        content = json.loads(path.read_text())
        assert content["SoftwareVersions"]["nilearn"] == software_versions()["nilearn"]
        assert content["Sources"], path
    run_design = json.loads((split_outputs / "sub-01" /
                             "sub-01_task-auditory_run-2_design.json").read_text())
    func = split_bids_dir / "sub-01" / "func"
    assert run_design["Sources"] == [str(func / "sub-01_task-auditory_run-2_bold.nii.gz"),
                                     str(func / "sub-01_task-auditory_run-2_events.tsv")]


def test_cli_writes_reports_and_index(split_outputs):
    """The command line writes one report per subject, with its fixed effects and the
    provenance of this run, and an index linking them."""
    index = (split_outputs / "index.html").read_text()
    assert 'href="sub-01.html"' in index and 'href="sub-02.html"' in index
    record = json.loads((split_outputs / "provenance.json").read_text())
    for subject in ("01", "02"):
        page = (split_outputs / f"sub-{subject}.html").read_text()
        assert "Fixed effects over runs" in page
        assert f"sub-{subject}_task-auditory_run-2" in page
        assert record["GeneratedBy"]["Date"] in page
    assert not (split_outputs / ".glm-workflows-pending").exists()
