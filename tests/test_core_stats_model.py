"""BIDS Stats Models: the example models load, and every bad input is one line with its
JSON path (no Nipype)."""

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from glm_workflows.core.errors import InputError
from glm_workflows.core.stats_model import ContrastSpec, EdgeSpec, HRFSpec, NodeSpec
from glm_workflows.core.stats_model_fields import convolved_variables
from glm_workflows.core.stats_model_read import load_stats_model, read_stats_model, stats_model
from glm_workflows.settings import DEFAULT_MODEL

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "models"

BASE = {
    "Name": "test",
    "BIDSModelVersion": "1.0.0",
    "Nodes": [
        {
            "Level": "Run",
            "Name": "run",
            "GroupBy": ["run", "subject"],
            "Transformations": {
                "Transformer": "pybids-transforms-v1",
                "Instructions": [{"Name": "Factor", "Input": ["trial_type"]}],
            },
            "Model": {
                "Type": "glm",
                "X": ["trial_type.active", "trial_type.rest", "motion_*", 1],
                "HRF": {"Variables": ["trial_type.active", "trial_type.rest"],
                        "Model": "spm"},
                "Options": {"HighPassFilterCutoffHz": 0.01},
            },
            "Contrasts": [
                {"Name": "activeMinusRest",
                 "ConditionList": ["trial_type.active", "trial_type.rest"],
                 "Weights": [1, -1], "Test": "t"},
            ],
        },
        {
            "Level": "Subject",
            "Name": "subject",
            "GroupBy": ["subject", "contrast"],
            "Model": {"Type": "meta", "X": [1]},
            "DummyContrasts": {"Test": "t"},
        },
        {
            "Level": "Dataset",
            "Name": "dataset",
            "GroupBy": ["contrast"],
            "Model": {"Type": "glm", "X": [1]},
            "DummyContrasts": {"Test": "t"},
        },
    ],
    "Edges": [
        {"Source": "run", "Destination": "subject"},
        {"Source": "subject", "Destination": "dataset"},
    ],
}


def _write(tmp_path, spec, name="model.json"):
    path = tmp_path / name
    path.write_text(spec if isinstance(spec, str) else json.dumps(spec))
    return path


def _refused(tmp_path, change, message):
    """The model BASE changed by ``change(spec)`` is refused with exactly ``message``."""
    spec = copy.deepcopy(BASE)
    change(spec)
    path = _write(tmp_path, spec)
    with pytest.raises(InputError) as caught:
        load_stats_model(path)
    assert str(caught.value) == f"{path}: {message}"
    assert "\n" not in str(caught.value)


# --------------------------------------------------------------------- good models


def test_base_model_loads(tmp_path):
    spec = load_stats_model(_write(tmp_path, BASE))
    assert spec == BASE
    model = stats_model(spec, "model.json")
    assert [n.name for n in model.nodes] == ["run", "subject", "dataset"]
    assert model.root.name == "run"
    run = model.node("run")
    assert run.hrf == HRFSpec(("trial_type.active", "trial_type.rest"), "spm")
    assert run.high_pass == 0.01
    assert run.x == ("trial_type.active", "trial_type.rest", "motion_*", 1)
    assert run.path == "model.json: Nodes[0]"
    assert model.inputs("subject") == (EdgeSpec("run", "subject"),)
    assert model.outputs("subject") == (EdgeSpec("subject", "dataset"),)


def test_auditory_example_is_the_seed_analysis():
    model = read_stats_model(EXAMPLES / "auditory_smdl.json")
    assert model.version == "1.0.0" and model.input == {"task": ["auditory"]}
    (run,) = model.nodes
    assert model.edges == ()
    assert (run.level, run.model_type) == ("Run", "glm")
    assert run.x == ("trial_type.active", "trial_type.rest", 1)
    assert run.hrf == HRFSpec(("trial_type.active", "trial_type.rest"),
                              DEFAULT_MODEL.hrf_model)
    # the command line's seed analysis: cosine drifts with its high-pass cut-off
    assert run.high_pass == DEFAULT_MODEL.high_pass == 1 / 160
    assert run.transformations == ({"Name": "Factor", "Input": ["trial_type"]},)
    t, f = run.contrasts
    assert t == ContrastSpec("activeMinusRest", ("trial_type.active", "trial_type.rest"),
                             ((1.0, -1.0),), "t")
    assert f.name == "effectsOfInterest" and f.test == "F"
    np.testing.assert_array_equal(f.matrix, np.eye(2))


def test_three_level_example():
    model = read_stats_model(EXAMPLES / "three_level_smdl.json")
    assert [(n.level, n.model_type) for n in model.nodes] == [
        ("Run", "glm"), ("Subject", "meta"), ("Dataset", "glm")]
    assert model.edges == (EdgeSpec("run", "subject"), EdgeSpec("subject", "dataset"))
    subject, dataset = model.nodes[1:]
    assert subject.group_by == ("subject", "contrast")
    assert dataset.x == (1,)
    assert dataset.expanded_contrasts() == (
        ContrastSpec("intercept", (1,), ((1.0,),), "t"),)


def test_implicit_edges_chain_the_nodes(tmp_path):
    spec = copy.deepcopy(BASE)
    del spec["Edges"]
    model = stats_model(load_stats_model(_write(tmp_path, spec)))
    assert model.edges == (EdgeSpec("run", "subject"), EdgeSpec("subject", "dataset"))


def test_edge_filter_kept(tmp_path):
    spec = copy.deepcopy(BASE)
    spec["Edges"][1]["Filter"] = {"contrast": ["activeMinusRest"]}
    model = stats_model(load_stats_model(_write(tmp_path, spec)))
    assert model.edges[1].filter == {"contrast": ("activeMinusRest",)}


def test_fraction_weights_and_f_rows(tmp_path):
    spec = copy.deepcopy(BASE)
    spec["Nodes"][0]["Contrasts"] = [
        {"Name": "third", "ConditionList": ["trial_type.active", "trial_type.rest"],
         "Weights": ["1/3", "-2/3"], "Test": "t"},
        {"Name": "both", "ConditionList": ["trial_type.active", "trial_type.rest", 1],
         "Weights": [[1, 0, 0], [0, 1, 0]], "Test": "F"},
        {"Name": "motion", "ConditionList": ["motion_x"], "Weights": [1], "Test": "pass"},
    ]
    third, both, motion = stats_model(load_stats_model(_write(tmp_path, spec))).nodes[0] \
        .contrasts
    assert third.weights == ((1 / 3, -2 / 3),)
    assert both.matrix.shape == (2, 3)
    assert motion.conditions == ("motion_x",)


def test_dummy_contrasts_expand(tmp_path):
    spec = copy.deepcopy(BASE)
    spec["Nodes"][0]["DummyContrasts"] = {"Test": "t"}
    run = stats_model(load_stats_model(_write(tmp_path, spec))).nodes[0]
    names = [c.name for c in run.expanded_contrasts(columns=["motion_x", "motion_y", "a"])]
    assert names == ["activeMinusRest", "trial_type.active", "trial_type.rest", "motion_x",
                     "motion_y", "intercept"]


def test_hrf_models_map_to_nilearn(tmp_path):
    spec = copy.deepcopy(BASE)
    spec["Nodes"][0]["Model"]["HRF"]["Model"] = "SPM + Derivative"
    assert stats_model(load_stats_model(_write(tmp_path, spec))).nodes[0].hrf.model \
        == "spm + derivative"
    spec["Nodes"][0]["Model"]["HRF"].update(Model="fir", Parameters={"fir_delays": [0, 1, 2]})
    hrf = stats_model(load_stats_model(_write(tmp_path, spec))).nodes[0].hrf
    assert (hrf.model, hrf.fir_delays) == ("fir", (0, 1, 2))


def test_convolved_variables(tmp_path):
    node = NodeSpec("run", "Run", (), "glm", ("a", "b"), hrf=HRFSpec(("b",), "spm"),
                    transformations=({"Name": "Convolve", "Input": ["a"]},),
                    path="m.json: Nodes[0]")
    assert convolved_variables(node) == ("a", "b")


# --------------------------------------------------------------------- unreadable files


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match=r"model.json: model file not found$"):
        load_stats_model(tmp_path / "model.json")


@pytest.mark.parametrize("text, message", [
    ('{"Name": "x",\n "Nodes": [}', "not valid JSON (line 2 column 12: Expecting value)"),
    ('{"Name": "x", "Name": "y"}', "not valid JSON: key 'Name' given twice in one object"),
    ('{"Name": NaN}', "not valid JSON: NaN is not a JSON number"),
    ("[1, 2]", "expected a JSON object (a BIDS Stats Model), got a list"),
])
def test_not_a_json_model(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(InputError) as caught:
        load_stats_model(path)
    assert str(caught.value) == f"{path}: {message}"


# --------------------------------------------------------------------- schema errors


def test_schema_missing_field(tmp_path):
    _refused(tmp_path, lambda s: s["Nodes"][1]["Model"].pop("X"),
             "Nodes[1].Model.X: field required")


def test_schema_bad_level(tmp_path):
    _refused(tmp_path, lambda s: s["Nodes"][0].update(Level="run"),
             "Nodes[0].Level: input should be 'Run', 'Session', 'Subject' or 'Dataset' "
             "(got 'run')")


def test_schema_bad_model_type(tmp_path):
    _refused(tmp_path, lambda s: s["Nodes"][2]["Model"].update(Type="GLM"),
             "Nodes[2].Model.Type: input should be 'glm' or 'meta' (got 'GLM')")


def test_schema_bad_test(tmp_path):
    _refused(tmp_path, lambda s: s["Nodes"][0]["Contrasts"][0].update(Test="FEMA"),
             "Nodes[0].Contrasts[0].Test: input should be 'pass', 't' or 'F' (got 'FEMA')")


def test_schema_bad_x_entry(tmp_path):
    _refused(tmp_path, lambda s: s["Nodes"][2]["Model"].update(X=[2]),
             "Nodes[2].Model.X[0]: input should be 1 or a valid string (got 2)")


def test_schema_bad_weight(tmp_path):
    _refused(tmp_path, lambda s: s["Nodes"][0]["Contrasts"][0].update(Weights=[[1, None]]),
             "Nodes[0].Contrasts[0].Weights[0][1]: input should be a valid integer or a "
             "valid number or a valid string (got null)")


def test_schema_missing_name(tmp_path):
    _refused(tmp_path, lambda s: s.pop("Name"), "Name: field required")


# --------------------------------------------------------------------- stricter checks


def test_unknown_top_level_key(tmp_path):
    _refused(tmp_path, lambda s: s.update(Nodez=[]),
             "Nodez: unknown key (allowed here: BIDSModelVersion, Description, Edges, "
             "Input, Name, Nodes)")


def test_unknown_option_key(tmp_path):
    _refused(tmp_path,
             lambda s: s["Nodes"][0]["Model"]["Options"].update(HighPassFilterCutoff=0.01),
             "Nodes[0].Model.Options.HighPassFilterCutoff: unknown key (allowed here: "
             "Aggregate, Description, HighPassFilterCutoffHz, LowPassFilterCutoffHz, Mask, "
             "ReplaceVariables)")


def test_unknown_contrast_key(tmp_path):
    _refused(tmp_path, lambda s: s["Nodes"][0]["Contrasts"][0].update(Type="t"),
             "Nodes[0].Contrasts[0].Type: unknown key (allowed here: ConditionList, "
             "Description, Name, Test, Weights)")


def test_high_pass_wrong_type(tmp_path):
    _refused(tmp_path,
             lambda s: s["Nodes"][0]["Model"]["Options"].update(HighPassFilterCutoffHz="0.01"),
             "Nodes[0].Model.Options.HighPassFilterCutoffHz: expected a number (Hz), "
             "got '0.01'")


def test_high_pass_not_positive(tmp_path):
    _refused(tmp_path,
             lambda s: s["Nodes"][0]["Model"]["Options"].update(HighPassFilterCutoffHz=0),
             "Nodes[0].Model.Options.HighPassFilterCutoffHz: expected a frequency > 0 Hz, "
             "got 0")


def test_high_pass_above_run_level(tmp_path):
    _refused(tmp_path,
             lambda s: s["Nodes"][1]["Model"].update(Options={"HighPassFilterCutoffHz": 0.01}),
             "Nodes[1].Model.Options.HighPassFilterCutoffHz: a high-pass filter applies to "
             "Run-level time series only")


def test_low_pass_refused(tmp_path):
    _refused(tmp_path,
             lambda s: s["Nodes"][0]["Model"]["Options"].update(LowPassFilterCutoffHz=0.1),
             "Nodes[0].Model.Options.LowPassFilterCutoffHz: low-pass filtering is not "
             "supported (remove it; the GLM models temporal autocorrelation instead)")


def test_formula_refused(tmp_path):
    _refused(tmp_path, lambda s: s["Nodes"][0]["Model"].update(Formula="1 + age"),
             "Nodes[0].Model.Formula: formulas are supported at Dataset nodes only; list "
             "the design columns in X")
    _refused(tmp_path, lambda s: s["Nodes"][2]["Model"].update(Formula="1 + age"),
             "Nodes[2].Model.Formula: term 'age': expected Model.X names joined by ':' (an "
             "interaction), C(name) of an X name (its levels), '0' or '1' (formulas of sums "
             "of such terms are supported)")
    _refused(tmp_path, lambda s: s["Nodes"][2]["Model"].update(X=[1, "a"], Formula="a * a"),
             "Nodes[2].Model.Formula: term 'a * a': expected Model.X names joined by ':' "
             "(an interaction), C(name) of an X name (its levels), '0' or '1' (formulas of "
             "sums of such terms are supported)")


def test_dataset_formula_gives_the_design_columns(tmp_path):
    spec = copy.deepcopy(BASE)
    spec["Nodes"][2]["Model"].update(X=["g.1", "g.2", "s.M"],
                                     Formula="~ 0 + g.1:s.M + g.2 :s.M+g.2")
    spec["Nodes"][2]["Contrasts"] = [{"Name": "x", "ConditionList": ["g.1:s.M", "g.2"],
                                      "Weights": [1, -1], "Test": "t"}]
    del spec["Nodes"][2]["DummyContrasts"]
    model = read_stats_model(_write(tmp_path, spec))
    assert model.nodes[2].x == ("g.1:s.M", "g.2:s.M", "g.2")
    spec["Nodes"][2]["Model"]["Formula"] = "g.1:s.M"
    spec["Nodes"][2]["Contrasts"][0].update(ConditionList=[1], Weights=[1])
    assert read_stats_model(_write(tmp_path, spec)).nodes[2].x == (1, "g.1:s.M")


def test_version(tmp_path):
    _refused(tmp_path, lambda s: s.update(BIDSModelVersion="2.0"),
             "BIDSModelVersion: expected '1.0.0', got '2.0'")


def test_no_run_node(tmp_path):
    def change(spec):
        del spec["Nodes"][0]
        del spec["Edges"][0]
    _refused(tmp_path, change, "Nodes: no Run node (the run-level model the data enter; "
             "add a node with Level 'Run')")


def test_run_node_meta(tmp_path):
    _refused(tmp_path, lambda s: s["Nodes"][0]["Model"].update(Type="meta"),
             "Nodes[0].Model.Type: a Run node models time series: expected 'glm', got 'meta'")


def test_duplicate_node_names(tmp_path):
    _refused(tmp_path, lambda s: s["Nodes"][2].update(Name="subject"),
             "Nodes[2].Name: node name 'subject' already names Nodes[1]")


def test_edge_to_missing_node(tmp_path):
    _refused(tmp_path, lambda s: s["Edges"][0].update(Destination="subjectX"),
             "Edges[0].Destination: no node named 'subjectX' (nodes: run, subject, dataset)")


def test_edge_down_levels(tmp_path):
    _refused(tmp_path, lambda s: s["Edges"][1].update(Source="dataset", Destination="subject"),
             "Edges[1]: from Dataset node 'dataset' down to Subject node 'subject' (edges go "
             "up: Run, Session, Subject, Dataset)")


def test_implicit_edges_down_levels(tmp_path):
    def change(spec):
        del spec["Edges"]
        spec["Nodes"][1], spec["Nodes"][2] = spec["Nodes"][2], spec["Nodes"][1]
    _refused(tmp_path, change,
             "Nodes[2]: from Dataset node 'dataset' down to Subject node 'subject' (edges go "
             "up: Run, Session, Subject, Dataset); without Edges, the nodes are chained in "
             "their order")


def test_edge_to_itself(tmp_path):
    _refused(tmp_path, lambda s: s["Edges"].append({"Source": "run", "Destination": "run"}),
             "Edges[2]: node 'run' connected to itself")


def test_repeated_edge(tmp_path):
    _refused(tmp_path, lambda s: s["Edges"].append({"Source": "run", "Destination": "subject"}),
             "Edges[2]: repeats Edges[0] (run -> subject)")


def test_two_roots(tmp_path):
    _refused(tmp_path, lambda s: s["Edges"].pop(0),
             "Edges: 2 nodes have no input edge (run, subject); a model has one root node")


def test_cycle(tmp_path):
    def change(spec):
        spec["Nodes"].append(copy.deepcopy(spec["Nodes"][1]))
        spec["Nodes"][3]["Name"] = "subject2"
        spec["Edges"] += [{"Source": "subject", "Destination": "subject2"},
                          {"Source": "subject2", "Destination": "subject"}]
    _refused(tmp_path, change, "Edges: the edges make a cycle through subject, subject2")


def test_weights_count(tmp_path):
    _refused(tmp_path, lambda s: s["Nodes"][0]["Contrasts"][0].update(Weights=[1, -1, 0]),
             "Nodes[0].Contrasts[0].Weights: 3 weights for 2 conditions")


def test_f_row_length(tmp_path):
    _refused(tmp_path, lambda s: s["Nodes"][0]["Contrasts"][0].update(
        Weights=[[1, 0], [0, 1, 0]], Test="F"),
        "Nodes[0].Contrasts[0].Weights[1]: 3 weights for 2 conditions")


def test_t_with_matrix(tmp_path):
    _refused(tmp_path, lambda s: s["Nodes"][0]["Contrasts"][0].update(Weights=[[1, -1]]),
             "Nodes[0].Contrasts[0].Weights: a t contrast has one row of weights (a 1-D "
             "list); only F contrasts take a matrix")


def test_bad_fraction(tmp_path):
    _refused(tmp_path, lambda s: s["Nodes"][0]["Contrasts"][0].update(Weights=["1/0", -1]),
             "Nodes[0].Contrasts[0].Weights[0]: expected a number or a fraction such as "
             "'1/3', got '1/0'")


def test_zero_weights(tmp_path):
    _refused(tmp_path, lambda s: s["Nodes"][0]["Contrasts"][0].update(Weights=[0, 0]),
             "Nodes[0].Contrasts[0].Weights: all weights are zero")


def test_condition_not_in_x(tmp_path):
    _refused(tmp_path, lambda s: s["Nodes"][0]["Contrasts"][0].update(
        ConditionList=["trial_type.active", "trial_type.rst"]),
        "Nodes[0].Contrasts[0].ConditionList[1]: 'trial_type.rst' is not in Model.X "
        "(trial_type.active, trial_type.rest, motion_*, 1)")


def test_intercept_not_in_x(tmp_path):
    def change(spec):
        spec["Nodes"][0]["Model"]["X"].remove(1)
        spec["Nodes"][0]["Contrasts"][0].update(ConditionList=[1], Weights=[1])
    _refused(tmp_path, change, "Nodes[0].Contrasts[0].ConditionList[0]: 1 is not in Model.X "
             "(trial_type.active, trial_type.rest, motion_*)")


def test_duplicate_contrast_name(tmp_path):
    _refused(tmp_path, lambda s: s["Nodes"][0]["Contrasts"].append(
        copy.deepcopy(s["Nodes"][0]["Contrasts"][0])),
        "Nodes[0].Contrasts[1].Name: contrast 'activeMinusRest' already defined by "
        "Nodes[0].Contrasts[0]")


def test_dummy_contrast_not_in_x(tmp_path):
    _refused(tmp_path, lambda s: s["Nodes"][2]["DummyContrasts"].update(Contrasts=["age"]),
             "Nodes[2].DummyContrasts.Contrasts[0]: 'age' is not in Model.X (1)")


def test_duplicate_x(tmp_path):
    _refused(tmp_path, lambda s: s["Nodes"][2]["Model"]["X"].append(1),
             "Nodes[2].Model.X[1]: 1 is listed twice")


def test_hrf_model_unknown(tmp_path):
    _refused(tmp_path, lambda s: s["Nodes"][0]["Model"]["HRF"].update(Model="DoubleGamma"),
             "Nodes[0].Model.HRF.Model: expected one of spm, spm + derivative, spm + "
             "derivative + dispersion, glover, glover + derivative, glover + derivative + "
             "dispersion, fir (nilearn's models), got 'DoubleGamma'")


def test_hrf_model_afni(tmp_path):
    _refused(tmp_path, lambda s: s["Nodes"][0]["Model"]["HRF"].update(Model="afni"),
             "Nodes[0].Model.HRF.Model: expected one of spm, spm + derivative, spm + "
             "derivative + dispersion, glover, glover + derivative, glover + derivative + "
             "dispersion, fir (nilearn's models), got 'afni'")


def test_hrf_fir_without_delays(tmp_path):
    _refused(tmp_path, lambda s: s["Nodes"][0]["Model"]["HRF"].update(Model="fir"),
             "Nodes[0].Model.HRF.Parameters: Model 'fir' needs Parameters.fir_delays (the "
             "delays, in scans)")


def test_hrf_unknown_parameter(tmp_path):
    _refused(tmp_path, lambda s: s["Nodes"][0]["Model"]["HRF"].update(
        Parameters={"time_length": 32}),
        "Nodes[0].Model.HRF.Parameters.time_length: unknown parameter (allowed: none for "
        "Model 'spm')")


def test_hrf_variable_not_in_x(tmp_path):
    _refused(tmp_path, lambda s: s["Nodes"][0]["Model"]["HRF"]["Variables"].append("rt"),
             "Nodes[0].Model.HRF.Variables[2]: 'rt' is not in Model.X (trial_type.active, "
             "trial_type.rest, motion_*, 1)")


def test_hrf_above_run_level(tmp_path):
    _refused(tmp_path, lambda s: s["Nodes"][2]["Model"].update(
        HRF={"Variables": [], "Model": "spm"}),
        "Nodes[2].Model.HRF: only a Run-level glm node convolves (time series)")


def test_convolved_twice(tmp_path):
    _refused(tmp_path, lambda s: s["Nodes"][0]["Transformations"]["Instructions"].append(
        {"Name": "Convolve", "Input": ["trial_type.active"], "Model": "spm"}),
        "Nodes[0]: variable 'trial_type.active' convolved twice "
        "(Transformations.Instructions[1] Convolve and Model.HRF)")


def test_unknown_transformation(tmp_path):
    _refused(tmp_path, lambda s: s["Nodes"][0]["Transformations"]["Instructions"].append(
        {"Name": "Frobnicate", "Input": ["x"]}),
        "Nodes[0].Transformations.Instructions[1].Name: expected one of Factor, Convolve, "
        "Scale, Demean, Replace, DropNA, Threshold, Rename, Copy, Select, Delete, Product, "
        "Sum, Orthogonalize, Lag, And, Or, Not, Assign, Filter, Split, ToDense, Group, got "
        "'Frobnicate'")


def test_unknown_transformation_argument(tmp_path):
    _refused(tmp_path, lambda s: s["Nodes"][0]["Transformations"]["Instructions"].append(
        {"Name": "Scale", "Input": ["rt"], "Demaen": False}),
        "Nodes[0].Transformations.Instructions[1] (Scale).Demaen: unknown argument "
        "(allowed: Input, Demean, Rescale, ReplaceNa, Output, OutputPrefix, OutputSuffix)")


def test_transformations_at_a_subject_node_without_a_design(tmp_path):
    """Transformations need a design to feed (a Session or Subject node with Model.X)."""
    from glm_workflows.spec.from_model import read_model

    spec = copy.deepcopy(BASE)
    spec["Nodes"][1].update(Transformations={"Transformer": "pybids-transforms-v1",
                                             "Instructions": [{"Name": "Copy", "Input": "run",
                                                               "Output": "r"}]})
    path = _write(tmp_path, spec)
    with pytest.raises(InputError) as caught:
        read_model(path, bids_dir="/data")
    assert str(caught.value) == (f"{path}: Nodes[1].Transformations: a node without a design "
                                 "(Model.X [1]) has nothing to transform")


def test_dataset_transformations_of_time_refused(tmp_path):
    _refused(tmp_path, lambda s: s["Nodes"][2].update(
        Transformations={"Transformer": "pybids-transforms-v1", "Instructions": [
            {"Name": "Convolve", "Input": ["age"]}]}),
        "Nodes[2].Transformations.Instructions[0].Name: Convolve transforms a run's time "
        "series (or drops rows); on a table of subjects expected one of Factor, Scale, "
        "Demean, Replace, Threshold, Rename, Copy, Select, Delete, Product, Sum, "
        "Orthogonalize, And, Or, Not, Group")


def test_dataset_transformations_read(tmp_path):
    spec = copy.deepcopy(BASE)
    instructions = [{"Name": "Demean", "Input": "age", "Output": "age_dm"}]
    spec["Nodes"][2]["Transformations"] = {"Transformer": "pybids-transforms-v1",
                                           "Instructions": instructions}
    spec["Nodes"][2]["Model"]["X"] = [1, "age_dm"]
    model = read_stats_model(_write(tmp_path, spec))
    assert model.nodes[2].transformations == tuple(instructions)


def test_bad_transformer(tmp_path):
    _refused(tmp_path, lambda s: s["Nodes"][0]["Transformations"].update(Transformer="fsl"),
             "Nodes[0].Transformations.Transformer: input should be 'pybids-transforms-v1' "
             "(got 'fsl')")
