"""AnalysisSpec: round trips, builders giving equal specs, refusals (milliseconds, no
pipeline run)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from glm_workflows.cli import spec_from_args
from glm_workflows.core.errors import InputError
from glm_workflows.core.stats_model_read import stats_model
from glm_workflows.settings import GroupSettings
from glm_workflows.spec.analysis import (
    AnalysisSpec,
    Contrast,
    Edge,
    GroupModel,
    InputSpec,
    MetaModel,
    NilearnDesign,
    Node,
    RunModel,
)
from glm_workflows.spec.from_model import read_model
from glm_workflows.spec.serialize import from_json, to_bids_stats_model, to_json

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "examples" / "models"
BIDS = ["--bids-dir", "/data/bids"]

FLAGS = {
    "seed": [],
    "seed-ols-inference": ["--noise-model", "ols", "--height-control", "none",
                           "--threshold", "2.5", "--two-sided"],
    "one-sample": [*BIDS, "--contrast", "aMinusB=a - b", "--group", "one-sample"],
    "two-sample": [*BIDS, "--contrast", "aMinusB=a - b", "--group", "two-sample",
                   "--group-column", "group"],
    "paired": [*BIDS, "--contrast", "a=a", "--contrast", "b=b", "--group", "paired",
               "--pair", "a,b"],
    "covariates": [*BIDS, "--contrast", "aMinusB=a - b", "--group", "one-sample",
                   "--group-covariates", "age,score", "--demean", "--group-contrast",
                   "age=age"],
    "permutations": [*BIDS, "--contrast", "aMinusB=a - b", "--group", "one-sample",
                     "--permutations", "99", "--seed", "3", "--tfce",
                     "--cluster-forming-p", "0.01"],
    "fmriprep": [*BIDS, "--derivatives", "/data/fmriprep", "--space", "MNI",
                 "--confounds-strategy", "scrubbing", "--fd-threshold", "0.4",
                 "--contrast", "x=2*a-b/3", "--f-contrast", "f=a,b", "--strict"],
    "files": ["--func", "/f/bold.nii", "--events", "/f/ev.tsv", "--tr", "2", "--subject",
              "07", "--drift-model", "polynomial", "--drift-order", "2"],
    "participants": [*BIDS, "--participant-label", "01", "02", "--session", "a"],
    "from-derivatives": ["--from-derivatives", "/out", *BIDS, "--group", "two-sample",
                         "--group-column", "g", "--contrast", "aMinusB",
                         "--contrast", "x=a - b"],
}


def _covariate_filter_model(tmp_path) -> Path:
    model = json.loads((MODELS / "three_level_smdl.json").read_text())
    model["Nodes"][0]["Contrasts"].append({"Name": "a_only", "ConditionList": ["trial_type.a"],
                                           "Weights": [1], "Test": "t"})
    model["Nodes"][2]["Model"]["X"] = [1, "age"]
    model["Edges"][1]["Filter"] = {"contrast": ["aMinusB"]}
    path = tmp_path / "covariate_smdl.json"
    path.write_text(json.dumps(model))
    return path


def _graph_models(tmp_path) -> list[Path]:
    """Graphs beyond one chain: Run -> Subject -> {Dataset, Dataset grouped by nothing};
    Run -> two Dataset nodes (one run per subject); the zoo's ds003 model; Run -> Session
    -> Subject -> Dataset, and with the graph's two Dataset nodes."""
    three = json.loads((MODELS / "graph_smdl.json").read_text())
    runs = json.loads((MODELS / "graph_smdl.json").read_text())
    runs["Nodes"].pop(1)
    runs["Nodes"][0]["GroupBy"] = ["subject"]
    runs["Edges"] = [{**edge, "Source": "run"} for edge in runs["Edges"][1:]]
    sessions = json.loads((MODELS / "graph_smdl.json").read_text())
    sessions["Nodes"].insert(1, {"Level": "Session", "Name": "session",
                                 "GroupBy": ["subject", "session", "contrast"],
                                 "Model": {"Type": "meta", "X": [1]},
                                 "DummyContrasts": {"Test": "t"}})
    sessions["Edges"] = [{"Source": "run", "Destination": "session"},
                         {"Source": "session", "Destination": "subject"},
                         *sessions["Edges"][1:]]
    paths = [MODELS / "session_smdl.json"]
    for name, model in (("graph", three), ("run_graph", runs), ("session_graph", sessions)):
        paths.append(tmp_path / f"{name}_smdl.json")
        paths[-1].write_text(json.dumps(model))
    ds003 = ROOT / "tests" / "data" / "model_zoo" / "model-ds003_smdl.json"
    return paths + ([ds003] if ds003.exists() else [])


def _specs(tmp_path):
    """(id, spec, selection) over flags and model files."""
    found = []
    for name, argv in FLAGS.items():
        spec, _ = spec_from_args(argv)
        inputs = spec.inputs
        selection = {"bids_dir": inputs.bids_dir, "derivatives": inputs.derivatives,
                     "from_derivatives": inputs.from_derivatives, "space": inputs.space,
                     "files": inputs.files, "sessions": inputs.sessions}
        found.append((name, spec, selection))
    zoo = sorted((ROOT / "tests" / "data" / "model_zoo").glob("model-ds0005_altered_*"))
    assert zoo  # the FSL-style group models: Dataset transformations, F contrasts
    for path in (MODELS / "auditory_smdl.json", MODELS / "three_level_smdl.json",
                 _covariate_filter_model(tmp_path), *_graph_models(tmp_path), *zoo):
        selection = {"bids_dir": "/data/bids"}
        found.append((path.name, read_model(path, **selection), selection))
    return found


def test_json_round_trip_and_hash(tmp_path):
    for name, spec, _ in _specs(tmp_path):
        again = from_json(to_json(spec))
        assert again == spec, name
        assert hash(again) == hash(spec), name
        assert AnalysisSpec.from_json(spec.to_json()) == spec
        assert again.source == spec.source  # not compared, but kept


def test_bids_stats_model_round_trip(tmp_path):
    for name, spec, selection in _specs(tmp_path):
        model = to_bids_stats_model(spec)
        stats_model(json.loads(json.dumps(model)), name)  # the schema and our checks
        path = tmp_path / f"{name}_smdl.json"
        path.write_text(json.dumps(model))
        assert read_model(path, **selection) == spec, name


def test_flag_settings_without_a_bids_field_go_to_the_software_entry():
    spec, _ = spec_from_args(FLAGS["permutations"] + ["--noise-model", "ols"])
    model = to_bids_stats_model(spec)
    run, dataset = model["Nodes"][0], model["Nodes"][2]
    assert run["Model"]["Software"]["glm-workflows"]["NoiseModel"] == "ols"
    assert run["Model"]["Software"]["glm-workflows"]["Design"]["drift_model"] == "auto"
    assert dataset["Model"]["Software"]["glm-workflows"]["Group"] == {
        "model": "one-sample", "permutations": 99, "seed": 3, "tfce": True,
        "cluster_forming_p": 0.01}


def test_model_flag_and_read_model_give_equal_specs():
    for path in ("auditory_smdl.json", "three_level_smdl.json"):
        spec, _ = spec_from_args([*BIDS, "--model", str(MODELS / path)])
        assert spec == read_model(MODELS / path, bids_dir="/data/bids")
        assert hash(spec) == hash(read_model(MODELS / path, bids_dir="/data/bids"))


def test_model_flag_overrides_inputs_and_settings():
    spec, _ = spec_from_args([*BIDS, "--model", str(MODELS / "three_level_smdl.json"),
                              "--participant-label", "02", "--noise-model", "ols",
                              "--permutations", "50"])
    assert spec.inputs.subjects == ("02",) and spec.inputs.task == "tiny"
    assert spec.model_settings().noise_model == "ols"
    assert spec.group_settings().permutations == 50
    participant, _ = spec_from_args([*BIDS, "--model", str(MODELS / "three_level_smdl.json"),
                                     "--analysis-level", "participant"])
    assert participant.dataset_node is None and len(participant.edges) == 1


def _run_free(spec):
    """The spec with the Run node's design and contrast rows left out."""
    run = spec.run_node
    return (spec.inputs, spec.inference, spec.subject_node, spec.dataset_node, spec.edges,
            [(c.name, c.test) for c in run.contrasts], run.model.noise_model,
            run.model.confounds, run.name, run.group_by)


@pytest.mark.parametrize("flags, model", [
    ([], "auditory_smdl.json"),
    ([*BIDS, "--task", "tiny", "--contrast", "aMinusB=a - b", "--group", "one-sample"],
     "three_level_smdl.json"),
])
def test_flags_and_the_equivalent_model_file_agree(flags, model):
    """Equal but for how the design is written (nilearn's flags vs the node's X): the
    maps' equality is tests/test_stats_models.py's end-to-end witness."""
    from_flags, _ = spec_from_args(flags)
    selection = {"bids_dir": from_flags.inputs.bids_dir}
    from_model = read_model(MODELS / model, **selection)
    if from_model.subject_node is None:  # the Run node alone: one run per subject
        from_flags = replace(from_flags, nodes=from_flags.nodes[:1], edges=())
    assert _run_free(from_flags) == _run_free(from_model)
    flags_settings, model_settings = from_flags.model_settings(), from_model.model_settings()
    assert (flags_settings.hrf_model, flags_settings.noise_model) == \
        (model_settings.hrf_model, model_settings.noise_model)
    assert flags_settings.high_pass == model_settings.high_pass


def test_edge_filter_and_covariates_from_a_model(tmp_path):
    spec = read_model(_covariate_filter_model(tmp_path), bids_dir="/data/bids")
    assert spec.group_inputs() == ("aMinusB",)
    group = spec.group_settings(chunks=4)
    assert group.covariates == ("age",) and group.inputs == ("aMinusB",) and group.chunks == 4
    flags, _ = spec_from_args([*BIDS, "--task", "tiny", "--contrast", "aMinusB=a - b",
                               "--contrast", "aOnly=a", "--group", "one-sample",
                               "--group-covariates", "age", "--group-contrast",
                               "intercept=intercept", "--group-contrast", "age=age"])
    assert flags.dataset_node == spec.dataset_node


def test_read_model_alone_uses_the_model_input_and_the_defaults():
    spec = read_model(MODELS / "three_level_smdl.json")
    assert spec.inputs.kind == "spm_auditory" and spec.inputs.task == "tiny"
    assert [n.level for n in spec.nodes] == ["Run", "Subject", "Dataset"]
    assert spec.contrasts() == [("aMinusB", "t", ("trial_type.a - trial_type.b",))]
    assert '"Path": ' in spec.model_settings().run_node


def test_accessors_and_with_subjects():
    spec, execution = spec_from_args([*FLAGS["one-sample"], "--n-procs", "2",
                                      "--permutation-chunks", "3", "--plugin", "MultiProc"])
    assert spec.contrasts() == [("aMinusB", "t", ("a - b",))]
    assert spec.group_settings(execution.permutation_chunks).chunks == 3
    assert execution.plugin_arguments() == {"n_procs": 2}
    assert spec.confounds.strategy is None and not spec.strict and not spec.runs_are_subjects
    narrowed = spec.with_subjects(["01"])
    assert narrowed.inputs.subjects == ("01",) and narrowed != spec
    assert narrowed.with_subjects(None) == spec


def test_name_description_and_source_are_not_compared():
    spec, _ = spec_from_args(FLAGS["one-sample"])
    other = replace(spec, source="elsewhere.json", name="x", description="y")
    assert other == spec and hash(other) == hash(spec)


def _seed_nodes(**run):
    return (Node("Run", "run", RunModel(**run), group_by=("run", "subject"),
                 contrasts=(Contrast("c", "t", ("a - b",)),)),
            Node("Subject", "subject", MetaModel(), group_by=("subject", "contrast")))


def test_python_builder_equals_the_flags():
    spec, _ = spec_from_args(["--contrast", "c=a - b"])
    nodes = _seed_nodes()
    built = AnalysisSpec(InputSpec(), nodes, (Edge("run", "subject"),))
    assert built == spec


REFUSED = [
    (["--group-column", "g"], "--group-column: needs --group"),
    ([*BIDS, "--group", "two-sample"],
     "--group two-sample: needs --group-column COLUMN (participants.tsv)"),
    ([*BIDS, "--group", "one-sample", "--group-column", "g"],
     "--group-column: only with --group two-sample"),
    ([*BIDS, "--contrast", "a=a", "--group", "paired", "--pair", "a,z"],
     "--pair: expected two different first-level t contrasts A,B among a; got 'a,z'"),
    ([*BIDS, "--group", "one-sample", "--pair", "a,b"], "--pair: only with --group paired"),
    (["--group", "one-sample", "--group-covariates", "age"],
     "--group-column/--group-covariates: need --bids-dir (its participants.tsv)"),
    ([*BIDS, "--group", "one-sample", "--permutations", "5"],
     "permutations: 5 give p >= 1/6; at least 19 are needed for alpha 0.05"),
    ([*BIDS, "--group", "one-sample", "--demean"],
     "--demean: needs --group-covariates (it demeans them; nothing else of the group design "
     "is demeaned)"),
    ([*BIDS, "--group", "one-sample", "--cluster-forming-p", "2"],
     "--cluster-forming-p: expected a p value in (0, 1), got 2.0"),
    (["--contrast", "x=a", "--contrast", "x=b"], "--contrast: name(s) used twice: x"),
    (["--func", "a.nii", *BIDS], "give either --bids-dir or --func, not both"),
    (["--func", "a.nii"], "--func needs --events and --tr"),
    (["--derivatives", "/f"], "--derivatives needs --bids-dir (the raw dataset: events, "
                              "sidecars)"),
    (["--space", "MNI"], "--space: needs --derivatives"),
    ([*BIDS, "--confounds-strategy", "simple"],
     "--confounds-strategy: needs fMRIPrep outputs (--bids-dir with --derivatives)"),
    (["--from-derivatives", "/o"], "--from-derivatives: needs --group (it runs only the "
                                   "group level)"),
    (["--from-derivatives", "/o", "--group", "one-sample", "--mask", "m.nii"],
     "--mask: not with --from-derivatives (the subject maps are read as they were written)"),
    (["--model", str(MODELS / "auditory_smdl.json"), "--contrast", "a=a"],
     "--contrast: not with --model (the model file sets it)"),
    (["--table-min-cluster-size", "-1"], "--table-min-cluster-size: expected a number >= 0, "
                                         "got -1"),
]


@pytest.mark.parametrize("argv, message", REFUSED)
def test_refusals_are_one_line_input_errors(argv, message):
    with pytest.raises(InputError) as raised:
        spec_from_args(argv)
    assert str(raised.value) == message


def test_the_group_level_alone_takes_the_maps_template():
    """--space, --res and --den choose among the subject maps' templates (not refused as
    first-level inputs with --from-derivatives)."""
    spec, _ = spec_from_args(["--from-derivatives", "/o", "--group", "one-sample",
                              "--space", "MNI152NLin2009cAsym", "--res", "2", "--den", "1"])
    assert (spec.inputs.space, spec.inputs.res, spec.inputs.den) == \
        ("MNI152NLin2009cAsym", "2", "1")


def test_the_spec_refuses_what_the_flags_refuse_when_built_in_python():
    nodes = _seed_nodes()
    with pytest.raises(InputError, match="^--group two-sample: needs --group-column"):
        AnalysisSpec(InputSpec(bids_dir="/d"), (*nodes, Node(
            "Dataset", "dataset", GroupModel(GroupSettings(model="two-sample")),
            group_by=("contrast",))),
            (Edge("run", "subject"), Edge("subject", "dataset")))
    with pytest.raises(InputError, match=r"^node 's'.GroupBy: expected \['subject', "
                                         r"'session', 'contrast'\] \(each session's runs\) "
                                         r"or \['subject', 'contrast'\] \(each subject's\), "
                                         r"got \[\]"):
        Node("Session", "s", MetaModel())
    with pytest.raises(InputError, match="^--noise-model: expected one of"):
        _seed_nodes(noise_model="ar7")
    with pytest.raises(InputError, match="hrf_model: expected one of"):
        _seed_nodes(design=NilearnDesign(hrf_model="nope"))
    with pytest.raises(InputError,
                       match=r"Edges: expected run -> subject \(Run -> \[Session ->\] "
                             r"\[Subject ->\] Dataset"):
        AnalysisSpec(InputSpec(), nodes, ())
    with pytest.raises(InputError, match="Edges Filter: no first-level t contrast 'z'"):
        AnalysisSpec(InputSpec(), (*nodes, Node(
            "Dataset", "dataset", GroupModel(GroupSettings(model="one-sample")),
            group_by=("contrast",))), (Edge("run", "subject", (("contrast", ("z",)),)),
                                       Edge("subject", "dataset")))


def test_the_package_root_is_lazy_and_the_spec_needs_no_nipype():
    code = ("import sys, glm_workflows; assert 'glm_workflows.spec' not in sys.modules; "
            "glm_workflows.read_model; import glm_workflows.spec.serialize; "
            "assert not [m for m in sys.modules if m.split('.')[0] in "
            "('nipype', 'argparse') or m == 'glm_workflows.cli']; "
            "glm_workflows.AnalysisSpec")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
