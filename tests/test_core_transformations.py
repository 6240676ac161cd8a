"""pybids-transforms-v1 on one run's variables; Convolve equals nilearn's design
(no Nipype)."""

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from glm_workflows.core.errors import InputError
from glm_workflows.core.run_tables import read_events
from glm_workflows.core.stats_model import HRFSpec
from glm_workflows.core.stats_model_read import read_stats_model
from glm_workflows.core.transform_checks import check_instructions
from glm_workflows.core.transformations import apply_transformations
from glm_workflows.core.variables import implied_levels, run_variables

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "models"
T_R, N_SCANS = 2.0, 40
EVENTS = pd.DataFrame({
    "onset": [0.0, 10.3, 20.0, 33.1, 47.0, 60.5, 5.0, 71.2],
    "duration": [5.0, 0.0, 3.2, 5.0, 1.0, 0.0, 2.5, 4.0],
    "trial_type": ["a", "b", "a", "b", "a", "b", "a", "b"],
    "modulation": [1.0, 2.0, 0.5, -1.0, 3.0, 1.5, 1.0, 0.25],
})
HRF_CASES = ["spm", "glover", "spm + derivative", "spm + derivative + dispersion",
             "glover + derivative", "glover + derivative + dispersion", "fir"]
FIR_DELAYS = [0, 1, 3]


def _nilearn_design(events, hrf_model, slice_time_ref):
    from nilearn.glm.first_level import make_first_level_design_matrix

    times = (np.arange(N_SCANS) + slice_time_ref) * T_R
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        design = make_first_level_design_matrix(
            times, events, hrf_model=hrf_model, drift_model=None,
            fir_delays=FIR_DELAYS if hrf_model == "fir" else None)
    return design.drop(columns="constant")


def _confounds():
    rng = np.random.default_rng(0)
    return pd.DataFrame({"motion_x": rng.normal(size=N_SCANS),
                         "motion_y": rng.normal(size=N_SCANS),
                         "csf": rng.normal(size=N_SCANS)})


def _apply(instructions, events=EVENTS, confounds=None, **kwargs):
    settings = dict(t_r=T_R, n_scans=N_SCANS, slice_time_ref=0.0)
    settings.update(kwargs)
    return apply_transformations(instructions, run_variables(events, confounds), **settings)


def _refused(instructions, message, events=EVENTS, confounds=None, **kwargs):
    with pytest.raises(InputError) as caught:
        _apply(instructions, events, confounds, **kwargs)
    assert str(caught.value) == message


# --------------------------------------------------------------------- Convolve


@pytest.mark.parametrize("slice_time_ref", [0.0, 0.5])
@pytest.mark.parametrize("modulated", [False, True])
@pytest.mark.parametrize("hrf_model", HRF_CASES)
def test_convolve_equals_nilearn(hrf_model, modulated, slice_time_ref):
    """Factor, (Product with the modulation,) Convolve: nilearn's condition columns."""
    events = EVENTS if modulated else EVENTS.drop(columns="modulation")
    reference = _nilearn_design(events, hrf_model, slice_time_ref)
    instructions = [{"Name": "Factor", "Input": "trial_type", "Sep": "_"}]
    if modulated:
        instructions += [{"Name": "Product", "Input": [f"trial_type_{c}", "modulation"],
                          "Output": c} for c in "ab"]
    else:
        instructions.append({"Name": "Rename", "Input": ["trial_type_a", "trial_type_b"],
                             "Output": ["a", "b"]})
    convolve = {"Name": "Convolve", "Input": ["a", "b"], "Model": hrf_model}
    if hrf_model == "fir":
        convolve["FirDelays"] = FIR_DELAYS
    design = _apply(instructions + [convolve], events, slice_time_ref=slice_time_ref)
    columns = list(reference.columns)
    assert list(design.columns)[-len(columns):] == columns
    np.testing.assert_allclose(design.index, reference.index, rtol=0, atol=1e-12)
    assert np.abs(design[columns].to_numpy() - reference.to_numpy()).max() <= 1e-10


@pytest.mark.parametrize("slice_time_ref", [0.0, 0.5])
@pytest.mark.parametrize("hrf_model", HRF_CASES)
def test_model_hrf_equals_nilearn(hrf_model, slice_time_ref):
    """Model.HRF convolves after the instructions, with BIDS names for the columns."""
    reference = _nilearn_design(EVENTS.drop(columns="modulation"), hrf_model, slice_time_ref)
    hrf = HRFSpec(("trial_type.*",), hrf_model,
                  tuple(FIR_DELAYS) if hrf_model == "fir" else None)
    design = _apply([{"Name": "Factor", "Input": ["trial_type"]}], slice_time_ref=slice_time_ref,
                    hrf=hrf)
    for column in reference.columns:
        ours = design[column.replace("a", "trial_type.a", 1) if column.startswith("a")
                      else column.replace("b", "trial_type.b", 1)]
        assert np.abs(ours.to_numpy() - reference[column].to_numpy()).max() <= 1e-10


def test_convolve_derivative_arguments():
    """pybids's Derivative/Dispersion flags name nilearn's models."""
    reference = _nilearn_design(EVENTS.drop(columns="modulation"),
                                "glover + derivative + dispersion", 0.0)
    design = _apply([{"Name": "Factor", "Input": ["trial_type"]},
                     {"Name": "Convolve", "Input": ["trial_type.a"], "Model": "glover",
                      "Derivative": True, "Dispersion": True}])
    assert [c for c in design if c.startswith("trial_type.a")] == [
        "trial_type.a", "trial_type.a_derivative", "trial_type.a_dispersion"]
    np.testing.assert_array_equal(design["trial_type.a_dispersion"], reference["a_dispersion"])


def test_auditory_example_reproduces_seed_design(spm_events, seed_design):
    """The example model's run node gives the seed design's condition columns."""
    node = read_stats_model(EXAMPLES / "auditory_smdl.json").nodes[0]
    events = read_events(spm_events, 96, 7.0, 0.0)
    design = apply_transformations(node.transformations, run_variables(events), t_r=7.0,
                                   n_scans=96, slice_time_ref=0.0, path_prefix=node.path,
                                   hrf=node.hrf)
    for condition in ("active", "rest"):
        np.testing.assert_array_equal(design[f"trial_type.{condition}"],
                                      seed_design[condition])


def test_convolve_dense_variable():
    """A dense variable convolves as events of one TR at each frame time."""
    from nilearn.glm.first_level.hemodynamic_models import compute_regressor

    confounds = _confounds()
    design = _apply([{"Name": "Convolve", "Input": "csf", "Output": "csf_hrf"}],
                    confounds=confounds)
    times = np.arange(N_SCANS) * T_R
    expected = compute_regressor(
        np.vstack([times, np.full(N_SCANS, T_R), confounds["csf"]]), "spm", times,
        oversampling=50, min_onset=-24)[0][:, 0]
    np.testing.assert_array_equal(design["csf_hrf"], expected)
    assert "csf" not in design


# --------------------------------------------------------------------- other transformations


def test_factor_indicators():
    variables = run_variables(EVENTS)
    design = apply_transformations([{"Name": "Factor", "Input": "trial_type"}], variables,
                                   t_r=T_R, n_scans=N_SCANS, slice_time_ref=0.0)
    assert list(design.columns) == ["trial_type.a", "trial_type.b", "modulation"]
    # a box-car at the frame times: event a at [0, 5) covers frames 0, 2, 4 s
    np.testing.assert_array_equal(design["trial_type.a"].to_numpy()[:4], [1, 1, 1, 1])
    assert design["trial_type.a"].to_numpy()[3] == 1.0  # 6 s: the event at 5 s, 2.5 s long
    assert set(variables) == {"trial_type", "modulation"}  # input not changed


def test_factor_constraints():
    mean_zero = _apply([{"Name": "Factor", "Input": "trial_type", "Constraint": "mean_zero"},
                        {"Name": "Convolve", "Input": "trial_type.b", "Model": "fir"}])
    assert "trial_type.a" not in mean_zero
    drop_one = _apply([{"Name": "Factor", "Input": "trial_type", "Constraint": "drop_one",
                        "RefLevel": "b"}])
    assert "trial_type.b" not in drop_one and "trial_type.a" in drop_one


def test_factor_mean_zero_values():
    events = EVENTS.assign(trial_type=["a", "b", "c", "a", "b", "c", "a", "b"])
    variables = run_variables(events)
    design = apply_transformations(
        [{"Name": "Factor", "Input": "trial_type", "Constraint": "mean_zero"},
         {"Name": "Copy", "Input": ["trial_type.b"], "Output": ["copy"]}],
        variables, t_r=T_R, n_scans=N_SCANS, slice_time_ref=0.0)
    assert "trial_type.a" not in design
    # the amplitudes: 1 for b, -1/2 for the reference level a, 0 for c; the first event
    # (a, 0-5 s) covers frame 0
    assert design["copy"].iloc[0] == -0.5


def test_scale_formula():
    confounds = _confounds()
    design = _apply([{"Name": "Scale", "Input": ["motion_*"]}], confounds=confounds)
    for column in ("motion_x", "motion_y"):
        x = confounds[column].to_numpy()
        np.testing.assert_allclose(design[column], (x - x.mean()) / x.std(ddof=1),
                                   rtol=0, atol=1e-14)
    np.testing.assert_array_equal(design["csf"], confounds["csf"])


def test_scale_event_amplitudes():
    """Sparse variables scale over their events (as pybids)."""
    design = _apply([{"Name": "Scale", "Input": "modulation", "Rescale": False,
                      "Output": "centered"},
                     {"Name": "Convolve", "Input": "centered", "Model": "fir"}])
    assert "modulation" in design and "centered_delay_0" in design
    m = EVENTS["modulation"].to_numpy()
    variables = run_variables(EVENTS.assign(modulation=m - m.mean()))
    expected = apply_transformations([{"Name": "Convolve", "Input": "modulation",
                                       "Model": "fir"}], variables, t_r=T_R, n_scans=N_SCANS,
                                     slice_time_ref=0.0)
    np.testing.assert_allclose(design["centered_delay_0"], expected["modulation_delay_0"],
                               rtol=0, atol=1e-14)


def test_scale_replace_na():
    confounds = _confounds()
    confounds.loc[0, "csf"] = np.nan
    design = _apply([{"Name": "Scale", "Input": "csf", "ReplaceNa": "after"}],
                    confounds=confounds)
    x = confounds["csf"].to_numpy()[1:]
    assert design["csf"].iloc[0] == 0.0
    np.testing.assert_allclose(design["csf"].to_numpy()[1:], (x - x.mean()) / x.std(ddof=1),
                               rtol=0, atol=1e-14)


def test_scale_constant_refused():
    confounds = _confounds().assign(csf=3.0)
    _refused([{"Name": "Scale", "Input": "csf"}],
             "Transformations.Instructions[0] (Scale): cannot scale 'csf': all its values are "
             "3 (set ReplaceNa to 'after' for a column of zeros)", confounds=confounds)


def test_demean():
    confounds = _confounds()
    design = _apply([{"Name": "Demean", "Input": "csf", "OutputSuffix": "_dm"}],
                    confounds=confounds)
    x = confounds["csf"].to_numpy()
    np.testing.assert_allclose(design["csf_dm"], x - x.mean(), rtol=0, atol=1e-15)


def test_threshold():
    confounds = pd.DataFrame({"x": np.linspace(-3, 3, N_SCANS)})
    x = confounds["x"].to_numpy()
    above = _apply([{"Name": "Threshold", "Input": "x", "Threshold": 1.0}],
                   confounds=confounds)["x"]
    np.testing.assert_array_equal(above, np.where(x >= 1, x, 0))
    unsigned = _apply([{"Name": "Threshold", "Input": "x", "Threshold": -1.0,
                        "Signed": False, "Binarize": True}], confounds=confounds)["x"]
    np.testing.assert_array_equal(unsigned, (np.abs(x) >= 1).astype(float))
    below = _apply([{"Name": "Threshold", "Input": "x", "Threshold": 0.5, "Above": False}],
                   confounds=confounds)["x"]
    np.testing.assert_array_equal(below, np.where(x <= 0.5, x, 0))


def test_replace_and_dropna():
    events = EVENTS.assign(rt=[0.5, np.nan, 0.7, 0.9, np.nan, 1.1, 0.4, 0.6])
    design = _apply([{"Name": "Replace", "Input": "trial_type", "Replace": {"a": "x"}},
                     {"Name": "Factor", "Input": "trial_type"},
                     {"Name": "DropNA", "Input": "rt"},
                     {"Name": "Convolve", "Input": "rt", "Model": "spm"}], events)
    assert "trial_type.x" in design and "trial_type.a" not in design
    kept = events.dropna(subset=["rt"]).assign(trial_type="rt", modulation=lambda e: e["rt"])
    reference = _nilearn_design(kept[["onset", "duration", "trial_type", "modulation"]],
                                "spm", 0.0)
    np.testing.assert_array_equal(design["rt"], reference["rt"])


def test_replace_duration():
    design = _apply([{"Name": "Factor", "Input": "trial_type"},
                     {"Name": "Replace", "Input": "trial_type.b", "Replace": {"0.0": 1.0},
                      "Attribute": "duration"},
                     {"Name": "Convolve", "Input": "trial_type.b"}])
    events = EVENTS.assign(duration=np.where(EVENTS["duration"] == 0, 1.0, EVENTS["duration"]))
    reference = _nilearn_design(events.drop(columns="modulation"), "spm", 0.0)
    np.testing.assert_array_equal(design["trial_type.b"], reference["b"])


def test_replace_na_value():
    confounds = _confounds()
    confounds.loc[3, "csf"] = np.nan
    design = _apply([{"Name": "Replace", "Input": "csf", "Replace": {"n/a": 0}}],
                    confounds=confounds)
    assert design["csf"].iloc[3] == 0.0


def test_rename_copy_select_delete():
    design = _apply([{"Name": "Copy", "Input": "csf", "Output": "csf2"},
                     {"Name": "Rename", "Input": "motion_x", "Output": "mx"},
                     {"Name": "Delete", "Input": "motion_y"},
                     {"Name": "Select", "Input": ["mx", "csf*"]}], confounds=_confounds())
    assert list(design.columns) == ["mx", "csf", "csf2"]
    np.testing.assert_array_equal(design["csf2"], design["csf"])


def test_product_and_sum_dense():
    confounds = _confounds()
    design = _apply([{"Name": "Product", "Input": ["motion_x", "motion_y"], "Output": "xy"},
                     {"Name": "Sum", "Input": ["motion_x", "motion_y"], "Output": "s",
                      "Weights": [2, -1]}], confounds=confounds)
    np.testing.assert_array_equal(design["xy"], confounds["motion_x"] * confounds["motion_y"])
    np.testing.assert_allclose(design["s"], 2 * confounds["motion_x"] - confounds["motion_y"],
                               rtol=0, atol=1e-15)


def test_product_events_with_scans_is_dense():
    """An event variable with a dense one: the events' box-car times the values."""
    confounds = _confounds()
    design = _apply([{"Name": "Factor", "Input": "trial_type"},
                     {"Name": "Product", "Input": ["trial_type.a", "csf"], "Output": "p"}],
                    confounds=confounds)
    np.testing.assert_array_equal(design["p"],
                                  design["trial_type.a"].to_numpy() * confounds["csf"].to_numpy())


def test_orthogonalize():
    confounds = _confounds()
    design = _apply([{"Name": "Orthogonalize", "Input": "csf", "Other": ["motion_x", "motion_y"],
                      "Output": "csf_orth"}], confounds=confounds)
    y = confounds["csf"].to_numpy()
    x = confounds[["motion_x", "motion_y"]].to_numpy()
    x_centered = x - x.mean(axis=0)
    beta = np.linalg.solve(x_centered.T @ x_centered, x_centered.T @ (y - y.mean()))
    np.testing.assert_allclose(design["csf_orth"], y - x @ beta, rtol=0, atol=1e-12)
    residual = design["csf_orth"].to_numpy()
    assert np.abs((residual - residual.mean()) @ x_centered).max() < 1e-10


def test_lag():
    confounds = pd.DataFrame({"x": np.arange(N_SCANS, dtype=float) ** 2})
    x = confounds["x"].to_numpy()
    lagged = _apply([{"Name": "Lag", "Input": "x", "Order": 0}], confounds=confounds)["x"]
    np.testing.assert_array_equal(lagged, np.r_[x[0], x[:-1]])
    diff = _apply([{"Name": "Lag", "Input": "x", "Order": 0, "Difference": True,
                    "Output": "dx"}], confounds=confounds)["dx"]
    np.testing.assert_array_equal(diff, np.r_[0.0, np.diff(x)])
    ahead = _apply([{"Name": "Lag", "Input": "x", "Shift": -1, "Order": 0,
                     "Mode": "constant", "Constant": -1.0}], confounds=confounds)["x"]
    np.testing.assert_array_equal(ahead, np.r_[x[1:], -1.0])


def test_categorical_left_out_of_design():
    design = _apply([])
    assert list(design.columns) == ["modulation"]
    np.testing.assert_array_equal(design.index, np.arange(N_SCANS) * T_R)


def test_check_instructions_snake_case():
    (checked,) = check_instructions([{"Name": "Convolve", "Input": "a", "FirDelays": [0, 1],
                                      "Model": "fir"}])
    assert checked == {"name": "Convolve", "input": ["a"], "fir_delays": [0, 1],
                       "model": "fir"}


# --------------------------------------------------------------------- refused


def test_missing_variable():
    _refused([{"Name": "Factor", "Input": "trial_type"},
              {"Name": "Demean", "Input": "modulation"},
              {"Name": "Scale", "Input": "foo"}],
             "Nodes[0].Transformations.Instructions[2] (Scale): no variable 'foo' "
             "(available: trial_type.a, trial_type.b, modulation)",
             path_prefix="Nodes[0]")


def test_glob_without_match():
    """A categorical column is listed with its levels, as a model names them."""
    _refused([{"Name": "Scale", "Input": "motion_*"}],
             "Transformations.Instructions[0] (Scale): no variable matches 'motion_*' "
             "(available: trial_type (levels trial_type.a, trial_type.b), modulation)")


def test_categorical_refused():
    _refused([{"Name": "Scale", "Input": "trial_type"}],
             "Transformations.Instructions[0] (Scale): variable 'trial_type' is categorical "
             "(not numbers); split it into indicators with Factor first")


def test_output_required():
    _refused([{"Name": "Product", "Input": ["modulation", "modulation"]}],
             "Transformations.Instructions[0] (Product).Output: required (the name of the "
             "new variable)")


def test_output_count():
    _refused([{"Name": "Scale", "Input": ["modulation"], "Output": ["a", "b"]}],
             "Transformations.Instructions[0] (Scale).Output: 2 name(s) for 1 input "
             "variable(s)")


def test_argument_type():
    _refused([{"Name": "Threshold", "Input": "modulation", "Threshold": "1"}],
             "Transformations.Instructions[0] (Threshold).Threshold: expected a number, "
             "got '1'")


def test_missing_input():
    _refused([{"Name": "Demean", "Output": "x"}],
             "Transformations.Instructions[0] (Demean).Input: required (the variables to "
             "transform)")


def test_dispersion_without_derivative():
    _refused([{"Name": "Convolve", "Input": "modulation", "Dispersion": True}],
             "Transformations.Instructions[0] (Convolve).Dispersion: needs Derivative true "
             "(nilearn models the dispersion derivative with the time derivative)")


def test_unknown_convolve_model():
    _refused([{"Name": "Convolve", "Input": "modulation", "Model": "afni"}],
             "Transformations.Instructions[0] (Convolve).Model: expected one of spm, spm + "
             "derivative, spm + derivative + dispersion, glover, glover + derivative, glover + "
             "derivative + dispersion, fir, got 'afni'")


def test_convolved_twice_at_run_time():
    _refused([{"Name": "Factor", "Input": "trial_type"},
              {"Name": "Convolve", "Input": "trial_type.*"}],
             "Model.HRF: variable 'trial_type.a' is already convolved (by "
             "Transformations.Instructions[1] (Convolve))",
             hrf=HRFSpec(("trial_type.a",), "spm"))


def test_convolve_missing_values():
    events = EVENTS.assign(rt=[0.5, np.nan, 0.7, 0.9, np.nan, 1.1, 0.4, 0.6])
    _refused([{"Name": "Convolve", "Input": "rt"}],
             "Transformations.Instructions[0] (Convolve): variable 'rt' has missing (n/a) "
             "values; drop them with DropNA or replace them first", events=events)


def test_dropna_on_scans_refused():
    _refused([{"Name": "DropNA", "Input": "csf"}],
             "Transformations.Instructions[0] (DropNA): 'csf' is sampled at scans: DropNA "
             "would drop scans; use Replace or Scale's ReplaceNa", confounds=_confounds())


def test_ref_level_missing():
    _refused([{"Name": "Factor", "Input": "trial_type", "Constraint": "drop_one",
               "RefLevel": "c"}],
             "Transformations.Instructions[0] (Factor): RefLevel 'c' is not a level of "
             "'trial_type' (levels: a, b)")


def test_sum_weights_count():
    _refused([{"Name": "Sum", "Input": ["motion_*"], "Output": "s", "Weights": [1, 2, 3]}],
             "Transformations.Instructions[0] (Sum): 3 Weights for 2 variables "
             "(motion_x, motion_y)", confounds=_confounds())


def test_confound_length():
    with pytest.raises(InputError, match=r"^run: variable 'motion_x' has 40 values for 41 scans$"):
        _apply([], confounds=_confounds(), n_scans=41)


def test_levels_named_without_factor_equal_factor():
    """``trial_type.a`` named in Convolve, HRF.Variables or X without a Factor (bidspm's
    convention, the model zoo's MoAE models) gives the columns an explicit Factor gives
    (pybids' convention); n/a rows are 0 as Factor makes them."""
    events = EVENTS.assign(trial_type=EVENTS["trial_type"].where(EVENTS.index != 3, None))
    convolve = {"Name": "Convolve", "Input": ["trial_type.a", "trial_type.b"], "Model": "spm"}
    explicit = _apply([{"Name": "Factor", "Input": "trial_type"}, convolve], events)
    implied = _apply([convolve], events)
    pd.testing.assert_frame_equal(implied[explicit.columns], explicit)
    by_hrf = _apply([], events, hrf=HRFSpec(variables=("trial_type.a", "trial_type.b"),
                                            model="spm"))
    pd.testing.assert_frame_equal(by_hrf[explicit.columns], explicit)
    unconvolved = _apply([], events, x=["trial_type.b", 1])
    factored = _apply([{"Name": "Factor", "Input": "trial_type"}], events)
    np.testing.assert_array_equal(unconvolved["trial_type.b"], factored["trial_type.b"])


def test_levels_named_without_factor_are_those_the_instructions_leave():
    """A level named in HRF.Variables or X without a Factor is taken from the column as the
    instructions left it: after ``Replace a -> c``, ``trial_type.c`` is the replaced
    events' column, nilearn's design of the events with ``c`` for ``a``, and
    ``trial_type.a`` is no variable any more (it was taken from the events before the
    Replace, silently)."""
    replace = {"Name": "Replace", "Input": ["trial_type"], "Replace": {"a": "c"}}
    renamed = EVENTS.assign(trial_type=EVENTS["trial_type"].replace({"a": "c"}))
    ours = _apply([replace], hrf=HRFSpec(variables=("trial_type.c", "trial_type.b"),
                                         model="spm"), x=["trial_type.c", "trial_type.b"])
    theirs = _nilearn_design(renamed.drop(columns="modulation"), "spm", 0.0)
    np.testing.assert_allclose(ours[["trial_type.c", "trial_type.b"]].to_numpy(),
                               theirs[["c", "b"]].to_numpy(), atol=1e-12)
    with pytest.raises(InputError, match=r"^Model.HRF: no variable 'trial_type.a'"):
        _apply([replace], hrf=HRFSpec(variables=("trial_type.a", "trial_type.b"),
                                      model="spm"), x=["trial_type.a", "trial_type.b"])
    # an instruction that passes the levels along without touching their column (Select,
    # which drops it) keeps them as they were
    hrf = HRFSpec(variables=("trial_type.a", "trial_type.b"), model="spm")
    selected = _apply([{"Name": "Select", "Input": ["trial_type.a", "trial_type.b"]}],
                      hrf=hrf, x=["trial_type.a", "trial_type.b"])
    pd.testing.assert_frame_equal(selected, _apply([], hrf=hrf, x=["trial_type.a",
                                  "trial_type.b"])[["trial_type.a", "trial_type.b"]])
    # a Factor after the Replace: its columns, as before
    factored = _apply([replace, {"Name": "Factor", "Input": "trial_type"}],
                      x=["trial_type.c", "trial_type.b"])
    np.testing.assert_array_equal(factored["trial_type.c"],
                                  _apply([replace], x=["trial_type.c"])["trial_type.c"])


def test_implied_levels_only_for_levels_of_categorical_columns():
    variables = run_variables(EVENTS)
    names = ["trial_type.c", "modulation.1", "trial_type.*", "nothing.a", 1]
    assert list(implied_levels(variables, names)) == list(variables)
    implied = implied_levels(variables, ["trial_type.b"])
    assert list(implied) == ["trial_type", "trial_type.b", "modulation"]
