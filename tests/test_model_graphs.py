"""Model graphs beyond one chain (issue 24 item 3): a node feeding several nodes, several
Dataset nodes, and a Dataset node grouped by nothing (``GroupBy: []``, the incoming
contrasts a variable: a row per (subject, contrast) map, each contrast an indicator
column), run through the CLI on a synthetic study and compared with nilearn's
SecondLevelModel fitted on the same subject maps, its design built here with pandas."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd
import pytest

from glm_workflows.core.errors import InputError
from glm_workflows.spec.from_model import read_model, spec_from_dict

ROOT = Path(__file__).resolve().parents[1]
SUBJECTS = [f"{i:02d}" for i in range(1, 7)]


def graph_model() -> dict:
    """examples/models/graph_smdl.json: Run -> Subject -> {Dataset one-sample of aMinusB,
    Dataset F-test over the a and b maps (GroupBy [])}."""
    return json.loads((ROOT / "examples" / "models" / "graph_smdl.json").read_text())


def test_graph_spec_reads_and_names_its_nodes():
    spec = spec_from_dict(graph_model(), "graph.json", bids_dir="/data")
    first, pooled = spec.dataset_nodes
    assert spec.group_inputs(first) == ("aMinusB",)
    assert spec.group_inputs(pooled) == ("trialTypeA", "trialTypeB")
    assert spec.pooled(pooled) and not spec.pooled(first)
    assert pooled.model.group.covariates == ("trial_type.a", "trial_type.b")


@pytest.mark.parametrize("mutate, message", [
    (lambda m: m["Nodes"][3]["Model"].update(X=["trial_type.a", "trial_type.c"])
     or m["Nodes"][3].update(Contrasts=[{"Name": "c", "ConditionList": ["trial_type.c"],
                                         "Weights": [1], "Test": "t"}]),
     "graph.json: Nodes[3].Model.X[1]: 'trial_type.c' is no contrast arriving at this "
     "node (GroupBy [] makes each incoming contrast a variable; arriving: trialTypeA, "
     "trialTypeB)"),
    (lambda m: m["Nodes"][3].update(Name="F test") or m["Nodes"][2].update(Name="F-test")
     or m["Edges"][1].update(Destination="F-test") or m["Edges"][2].update(
         Destination="F test"),
     "graph.json: Nodes[3].Name: 'F test' and 'F-test' both become the BIDS label 'FTest' "
     "(node-FTest); rename one"),
    (lambda m: m["Edges"].append({"Source": "dataset", "Destination": "F-test"}),
     "graph.json: Edges: Dataset node 'F-test' is fed by subject, dataset; expected one "
     "edge from the Subject node 'subject' (Run -> [Session ->] [Subject ->] Dataset "
     "nodes)"),
    (lambda m: m["Edges"].append({"Source": "F-test", "Destination": "nowhere"}),
     "graph.json: Edges[3].Destination: no node named 'nowhere' (nodes: run, subject, "
     "dataset, F-test)"),
    (lambda m: m["Edges"].extend([{"Source": "F-test", "Destination": "dataset"},
                                  {"Source": "dataset", "Destination": "F-test"}]),
     "graph.json: Edges: the edges make a cycle through F-test, dataset"),
    (lambda m: m["Nodes"][3]["Contrasts"][1].update(ConditionList=["trial_type.a", "age"]),
     "graph.json: Nodes[3].Contrasts[1].ConditionList[1]: 'age' is not in Model.X "
     "(trial_type.a, trial_type.b)"),
])
def test_bad_graphs_are_refused_in_one_line(mutate, message):
    model = graph_model()
    mutate(model)
    with pytest.raises(InputError) as raised:
        spec_from_dict(model, "graph.json", bids_dir="/data")
    assert str(raised.value) == message


def test_graph_round_trips(tmp_path):
    from glm_workflows.spec.serialize import from_json, to_bids_stats_model, to_json

    spec = spec_from_dict(graph_model(), "graph.json", bids_dir="/data")
    path = tmp_path / "graph_smdl.json"
    path.write_text(json.dumps(to_bids_stats_model(spec)))
    assert read_model(path, bids_dir="/data") == spec
    assert from_json(to_json(spec)) == spec


# --------------------------------------------------------------------- through the CLI


@pytest.fixture(scope="module")
def graph_run(tmp_path_factory):
    from glm_workflows.cli import main
    from glm_workflows.synthetic import write_tiny_bids

    root = tmp_path_factory.mktemp("graph")
    bids = write_tiny_bids(root / "bids", subjects=SUBJECTS, runs=2)
    model = root / "graph_smdl.json"
    model.write_text(json.dumps(graph_model()))
    out = root / "out"
    assert main(["--bids-dir", str(bids), "--model", str(model), "--output-dir", str(out),
                 "--work-dir", str(root / "work")]) == 0
    return out


def _subject_map(out, subject, contrast):
    return str(out / f"sub-{subject}" / f"sub-{subject}_task-tiny_contrast-{contrast}"
                                        "_stat-effect_statmap.nii.gz")


def _group_mask(out):
    from nilearn.masking import intersect_masks

    return intersect_masks([str(out / f"sub-{s}" / f"sub-{s}_task-tiny_desc-brain_mask.nii.gz")
                            for s in SUBJECTS], threshold=1)


def _max_dz(ours_path, model, weights, test) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = model.compute_contrast(np.asarray(weights, dtype=float),
                                        second_level_stat_type=test, output_type="z_score")
    ours = nb.load(ours_path).get_fdata()
    assert np.isfinite(ours).all()
    return float(np.abs(ours - theirs.get_fdata()).max())


@pytest.mark.slow
def test_several_dataset_nodes_equal_nilearn(graph_run):
    """The first Dataset node keeps today's names (group/task-tiny_contrast-aMinusB_*);
    the pooled node's are task-tiny_node-FTest_contrast-<G>_*: z maps equal
    SecondLevelModel's (measured max |dz|: 0 for each)."""
    from nilearn.glm.second_level import SecondLevelModel

    out, mask = graph_run, _group_mask(graph_run)
    group = out / "group"
    one_sample = SecondLevelModel(mask_img=mask).fit(
        [_subject_map(out, s, "aMinusB") for s in SUBJECTS],
        design_matrix=pd.DataFrame({"intercept": np.ones(len(SUBJECTS))}))
    worst = {"aMinusB": _max_dz(group / "task-tiny_contrast-aMinusB_stat-z_statmap.nii.gz",
                                one_sample, [1], "t")}
    rows = [(s, c) for s in SUBJECTS for c in ("trialTypeA", "trialTypeB")]
    design = pd.DataFrame({"trial_type.a": [float(c == "trialTypeA") for _, c in rows],
                           "trial_type.b": [float(c == "trialTypeB") for _, c in rows]})
    pooled = SecondLevelModel(mask_img=mask).fit([_subject_map(out, s, c) for s, c in rows],
                                                 design_matrix=design)
    worst["anyCondition"] = _max_dz(
        group / "task-tiny_node-FTest_contrast-anyCondition_stat-z_statmap.nii.gz", pooled,
        [[1, 0], [0, 1]], "F")
    worst["aGtB"] = _max_dz(group / "task-tiny_node-FTest_contrast-aGtB_stat-z_statmap.nii.gz",
                            pooled, [1, -1], "t")
    print(f"graph model, Dataset nodes: max |dz| = {worst}")
    assert max(worst.values()) < 1e-6
    assert not list(group.glob("task-tiny_contrast-trialType*"))  # filtered out
    report = (out / "group.html").read_text()
    assert "node FTest: task tiny, contrast anyCondition" in report
