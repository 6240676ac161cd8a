"""And, Or, Not, Assign, Filter, Split, ToDense, Group on one run's variables, compared
with pybids's own transformations (``bids.modeling.transformations``, the version the
``test`` extra pins) on the same events, and with the examples of the specification's
validation data (bids-standard/variable-transform)."""

import warnings

import numpy as np
import pandas as pd
import pytest

from glm_workflows.core.errors import InputError
from glm_workflows.core.transform_checks import check_instructions
from glm_workflows.core.transform_query import QueryError, evaluate_query, parse_query
from glm_workflows.core.transformations import apply_transformations
from glm_workflows.core.variables import run_variables

T_R, N_SCANS = 2.0, 40
EVENTS = pd.DataFrame({
    "onset": [0.0, 10.3, 20.0, 33.1, 47.0, 60.5, 5.0, 71.2],
    "duration": [5.0, 0.0, 3.2, 5.0, 1.0, 0.0, 2.5, 4.0],
    "trial_type": list("abababab"),
    "cond": list("xxyyxyyx"),
    "modulation": [1.0, 2.0, 0.5, -1.0, 3.0, 1.5, 1.0, 0.25],
    "rt": [0.5, 0.0, 0.7, 0.9, 0.0, 1.1, 0.4, 0.6],
})


def _ours(instructions, events=EVENTS):
    """Our variables after the instructions (sparse as events, by name)."""
    from glm_workflows.core.transform_checks import check_instructions as check
    from glm_workflows.core.transformations import _TRANSFORMS
    from glm_workflows.core.variables import _Run, implied_levels

    checked = check(instructions)
    variables = implied_levels(run_variables(events), [n for a in checked
                                                       for n in a["input"]])
    times = np.arange(N_SCANS) * T_R
    groups: dict = {}
    for arguments in checked:
        run = _Run(variables, times, T_R, arguments["name"], {}, groups)
        _TRANSFORMS[arguments["name"]](run, run.expand(arguments["input"]), arguments)
    return variables


def _pybids(instructions, events=EVENTS):
    """pybids's variables after the same instructions (its own TransformerManager)."""
    bids_variables = pytest.importorskip("bids.variables")
    from bids.modeling.transformations import TransformerManager
    from bids.variables.entities import RunInfo

    info = RunInfo({"subject": "01", "run": 1, "task": "t"}, N_SCANS * T_R, T_R, "x.nii",
                   N_SCANS)
    variables = []
    for column in events.columns.drop(["onset", "duration"]):
        data = events[["onset", "duration"]].assign(amplitude=events[column].to_numpy())
        variables.append(bids_variables.SparseRunVariable(
            name=column, data=data, run_info=[info], source="events"))
    collection = bids_variables.BIDSRunVariableCollection(variables)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        TransformerManager().transform(collection, instructions)
    return {name: v.to_df(entities=False) for name, v in collection.variables.items()}


def _assert_same_events(ours, theirs):
    """Same events (onset, duration) and amplitudes; returns the max |difference|."""
    theirs = theirs.sort_values(["onset", "duration"], kind="stable").reset_index(drop=True)
    ours = ours.sort_values(["onset", "duration"], kind="stable").reset_index(drop=True)
    for column in ("onset", "duration"):
        np.testing.assert_array_equal(ours[column].to_numpy(dtype=float),
                                      theirs[column].to_numpy(dtype=float))
    difference = np.abs(ours["amplitude"].to_numpy(dtype=float)
                        - theirs["amplitude"].to_numpy(dtype=float))
    assert difference.max(initial=0.0) == 0.0
    return difference.max(initial=0.0)


PYBIDS_CASES = {
    "And": ([{"Name": "And", "Input": ["rt", "modulation"], "Output": "both"}], ["both"]),
    "Or": ([{"Name": "Factor", "Input": "trial_type"},
            {"Name": "Or", "Input": ["rt", "trial_type.a"], "Output": "either"}],
           ["either", "trial_type.b"]),
    "Not": ([{"Name": "Not", "Input": ["rt"], "Output": "no_rt"}], ["no_rt"]),
    "Not in place": ([{"Name": "Not", "Input": "rt"}], ["rt"]),
    "Assign": ([{"Name": "Assign", "Input": "rt", "Target": "modulation"}], ["modulation"]),
    "Assign duration": ([{"Name": "Assign", "Input": "rt", "Target": "modulation",
                          "TargetAttr": "duration", "Output": "m"}], ["m", "modulation"]),
    "Assign onset": ([{"Name": "Assign", "Input": "rt", "Target": "modulation",
                       "InputAttr": "onset", "Output": "m"}], ["m"]),
    "Filter": ([{"Name": "Filter", "Input": "modulation", "Query": "modulation > 0.5"}],
               ["modulation"]),
    "Filter by": ([{"Name": "Filter", "Input": "modulation", "By": "trial_type",
                    "Query": "trial_type == 'a' and not modulation < 0.75", "Output": "f"}],
                  ["f", "modulation"]),
    "Filter in": ([{"Name": "Filter", "Input": "rt", "By": "cond",
                    "Query": "cond in ('y', 'z') or rt >= 1"}], ["rt"]),
    "Split": ([{"Name": "Split", "Input": "modulation", "By": "trial_type"}],
              ["modulation.trial_type[a]", "modulation.trial_type[b]"]),
    "Split two": ([{"Name": "Split", "Input": "rt", "By": ["trial_type", "cond"]}],
                  [f"rt.trial_type[{t}].cond[{c}]" for c in "xy" for t in "ab"]),
}


@pytest.mark.parametrize("case", PYBIDS_CASES)
def test_equals_pybids(case):
    instructions, outputs = PYBIDS_CASES[case]
    theirs = _pybids(instructions)
    ours = _ours(instructions)
    assert sorted(ours) == sorted(theirs)
    for name in outputs:
        _assert_same_events(ours[name], theirs[name])


def test_level_named_with_equals_is_factor_level():
    """``face_type==famous`` (the model zoo's FaceRep files) is Factor's indicator."""
    factored = _ours([{"Name": "Factor", "Input": "trial_type"},
                      {"Name": "And", "Input": ["trial_type.a", "cond.x"], "Output": "ax"}],
                     EVENTS.assign(cond=EVENTS["cond"].map({"x": 1, "y": 2})).rename(
                         columns={"cond": "c"}).assign(**{"cond.x": (EVENTS["cond"] == "x")
                                                          .astype(float)}))
    implied = _ours([{"Name": "And", "Input": ["trial_type==a", "c==1"], "Output": "ax"}],
                    EVENTS.assign(c=EVENTS["cond"].map({"x": 1, "y": 2})))
    _assert_same_events(implied["ax"], factored["ax"])


def test_group_names_inputs():
    ours = _ours([{"Name": "Group", "Input": ["rt", "modulation"], "Output": "numbers"},
                  {"Name": "Not", "Input": "numbers", "OutputSuffix": "_not"}])
    assert "numbers" not in ours and {"rt_not", "modulation_not"} <= set(ours)


def test_to_dense_is_sampled_at_frame_times():
    design = apply_transformations([{"Name": "ToDense", "Input": "modulation",
                                     "Output": "dense"}],
                                   run_variables(EVENTS), t_r=T_R, n_scans=N_SCANS,
                                   slice_time_ref=0.0)
    np.testing.assert_array_equal(design["dense"], design["modulation"])


# ------------------------------------------------ the specification's examples


SPEC_TABLE = pd.DataFrame({"onset": np.arange(5.0), "duration": np.ones(5),
                           "sex_m": [1, 1, 0, 0, 0], "age_gt_twenty": [1, 0, 1, 0, 0]})


@pytest.mark.parametrize("instruction, expected", [
    ({"Name": "And", "Input": ["sex_m", "age_gt_twenty"], "Output": "men_gt_twenty"},
     [1, 0, 0, 0, 0]),
    ({"Name": "Or", "Input": ["sex_m", "age_gt_twenty"], "Output": "men_or_gt_twenty"},
     [1, 1, 1, 0, 0]),
    ({"Name": "Not", "Input": ["age_gt_twenty"], "Output": "ager_lt_twenty"},
     [0, 1, 0, 1, 1]),
])
def test_logical_spec_examples(instruction, expected):
    ours = _ours([instruction], SPEC_TABLE)
    np.testing.assert_array_equal(ours[instruction["Output"]]["amplitude"].astype(int),
                                  expected)


ASSIGN_TABLE = pd.DataFrame({"onset": [2.0, 4, 5, 8], "duration": [2.0, 2, 2, 2],
                             "response_time": [1.5, 2, 1.56, 2.1], "Face": [1, 1, 1, 1]})


def test_assign_spec_examples():
    plain = _ours([{"Name": "Assign", "Input": "response_time", "Target": "Face"}],
                  ASSIGN_TABLE)
    np.testing.assert_array_equal(plain["Face"]["amplitude"], [1.5, 2, 1.56, 2.1])
    onset = _ours([{"Name": "Assign", "Input": "response_time", "Target": "Face",
                    "Output": "new_face", "InputAttr": "onset"}], ASSIGN_TABLE)
    np.testing.assert_array_equal(onset["new_face"]["amplitude"], [2, 4, 5, 8])
    np.testing.assert_array_equal(onset["Face"]["amplitude"], [1, 1, 1, 1])
    duration = _ours([{"Name": "Assign", "Input": "response_time", "Target": "Face",
                       "TargetAttr": "duration"}], ASSIGN_TABLE)
    np.testing.assert_array_equal(duration["Face"]["duration"], [1.5, 2, 1.56, 2.1])
    np.testing.assert_array_equal(duration["Face"]["amplitude"], [1, 1, 1, 1])


# ------------------------------------------------ the query language, never executed


def test_query_language():
    columns = {"RT": pd.Series([0.2, 0.6, np.nan, 1.5]),
               "trial_type": pd.Series(["word", "face", "word", "word"])}
    cases = {"RT > 0.5": [0, 1, 0, 1], "trial_type == 'word'": [1, 0, 1, 1],
             "trial_type != 'word' or RT > 1": [0, 1, 0, 1],
             "(RT > 0.1) & (trial_type == 'word')": [1, 0, 0, 1],
             "0.5 < RT <= 1.5": [0, 1, 0, 1], "not RT < 1": [0, 0, 1, 1],
             "~(RT < 1)": [0, 0, 1, 1], "RT != 0.2": [0, 1, 1, 1],
             "trial_type in ('face',)": [0, 1, 0, 0], "RT >= -1": [1, 1, 0, 1]}
    for query, expected in cases.items():
        np.testing.assert_array_equal(evaluate_query(parse_query(query), columns),
                                      np.asarray(expected, dtype=bool), err_msg=query)


@pytest.mark.parametrize("query, reason", [
    ("__import__('os').system('true')", "is not supported"),
    ("RT.__class__ == 1", "is not supported"),
    ("RT + 1 > 2", "arithmetic"),
    ("RT > 0.5 & RT < 2", "in parentheses"),
    ("@x > 1", "not a valid expression"),
    ("RT", None),
    ("'text'", "alone is not a condition"),
    ("RT in foo", "takes a list of constants"),
    ("lambda: 1", "is not supported"),
])
def test_query_refused(query, reason):
    if reason is None:
        parse_query(query)  # a variable alone: its truth, as pandas's query
        return
    with pytest.raises(QueryError, match=reason):
        parse_query(query)


# ------------------------------------------------ refused, before any data


@pytest.mark.parametrize("instruction, message", [
    ({"Name": "Filter", "Input": "rt", "Query": "RT + 1 > 2"},
     "Transformations.Instructions[0] (Filter).Query: arithmetic ('RT + 1') is not "
     "supported; compare variables with constants, got 'RT + 1 > 2'"),
    ({"Name": "Filter", "Input": "rt", "Query": "trial_type == 'a'"},
     "Transformations.Instructions[0] (Filter).Query: unknown name 'trial_type' (the query "
     "may name the Input and By variables: rt)"),
    ({"Name": "Filter", "Input": "rt"},
     "Transformations.Instructions[0] (Filter).Query: required (the condition events must "
     "meet, e.g. \"RT > 0.5\")"),
    ({"Name": "Assign", "Input": "rt"},
     "Transformations.Instructions[0] (Assign).Target: required (the variable whose copy "
     "takes the input's values)"),
    ({"Name": "Split", "Input": "rt", "Output": "x", "By": "cond"},
     "Transformations.Instructions[0] (Split).Output: unknown argument (allowed: Input, By)"),
    ({"Name": "And", "Input": ["rt", "modulation"]},
     "Transformations.Instructions[0] (And).Output: required (the name of the new "
     "variable)"),
    ({"Name": "Resample", "Input": "rt", "SamplingRate": 1},
     "Transformations.Instructions[0].Name: Resample is not supported: a run's dense "
     "variables are sampled at the scans here (the design's grid); resampling them "
     "elsewhere could not enter the design (remove it)"),
    ({"Name": "ToDense", "Input": "rt", "SamplingRate": 10},
     "Transformations.Instructions[0] (ToDense).SamplingRate: not supported: events are "
     "made dense at the frame times here (the design's grid); remove SamplingRate"),
    ({"Name": "Assign", "Input": "rt", "Target": "cond", "TargetAttr": "value"},
     "Transformations.Instructions[0] (Assign).TargetAttr: expected one of 'amplitude', "
     "'onset', 'duration', got 'value'"),
])
def test_refused_before_data(instruction, message):
    with pytest.raises(InputError) as caught:
        check_instructions([instruction])
    assert str(caught.value) == message


def test_names_any_case():
    (checked,) = check_instructions([{"Name": "AND", "Input": ["a", "b"], "Output": "c"}])
    assert checked["name"] == "And"


def test_missing_values_in_logical_refused():
    events = EVENTS.assign(rt=[0.5, np.nan, 0.7, 0.9, np.nan, 1.1, 0.4, 0.6])
    with pytest.raises(InputError) as caught:
        apply_transformations([{"Name": "And", "Input": ["rt", "modulation"], "Output": "x"}],
                              run_variables(events), t_r=T_R, n_scans=N_SCANS,
                              slice_time_ref=0.0)
    assert str(caught.value) == (
        "Transformations.Instructions[0] (And): variable 'rt' is n/a at event(s) at "
        "onset(s) 10.3, 47 s: And has no rule for missing values (pybids counts them "
        "true, the specification's examples false); replace them first, e.g. Replace "
        "{\"n/a\": 0}")


def test_filter_by_other_events_refused():
    events = EVENTS.copy()
    variables = run_variables(events)
    variables["other"] = variables["rt"].iloc[:4].reset_index(drop=True)
    with pytest.raises(InputError, match="are not the same events as 'rt'"):
        apply_transformations([{"Name": "Filter", "Input": "rt", "By": "other",
                                "Query": "other > 0"}], variables, t_r=T_R,
                              n_scans=N_SCANS, slice_time_ref=0.0)
