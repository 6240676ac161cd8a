"""Events, confounds and design matrices (no Nipype)."""

import re

import numpy as np
import pandas as pd
import pytest

from glm_workflows.core.design import HRF_COLUMN_SUFFIXES, first_level_design, make_design_matrix
from glm_workflows.core.errors import InputError
from glm_workflows.core.run_tables import (
    EventsWarning,
    check_repetition_time,
    load_design_matrix,
    read_confounds,
    read_events,
    save_design_matrix,
)
from glm_workflows.settings import DEFAULT_MODEL


def _model(**settings) -> dict:
    """The design settings first_level_design takes: the defaults but ``settings``."""
    return {**DEFAULT_MODEL.design(), **settings}


def _matrix(**settings) -> dict:
    """The settings make_design_matrix takes (no Run node): the defaults but ``settings``."""
    return {key: value for key, value in _model(**settings).items() if key != "run_node"}


SEED_COLUMNS = ["active", "rest", *[f"drift_{i}" for i in range(1, 9)], "constant"]


def test_design_equals_first_level_model(seed_design, nilearn_seed_model):
    """The design is exactly the one FirstLevelModel builds from the same events."""
    reference = nilearn_seed_model.design_matrices_[0]
    assert list(seed_design.columns) == SEED_COLUMNS == list(reference.columns)
    np.testing.assert_array_equal(seed_design.to_numpy(), reference.to_numpy())


def test_design_tsv_round_trip_is_exact(tmp_path, seed_design):
    """Writing and reading the TSV loses no bit."""
    save_design_matrix(seed_design, tmp_path / "matrix.tsv")
    back = load_design_matrix(tmp_path / "matrix.tsv")
    assert list(back.columns) == SEED_COLUMNS
    np.testing.assert_array_equal(back.to_numpy(), seed_design.to_numpy())


def _events(tmp_path, text):
    path = tmp_path / "events.tsv"
    path.write_text(text)
    return path


def test_events_without_required_columns(tmp_path):
    """A file lacking trial_type is refused, naming file and column."""
    path = _events(tmp_path, "onset\tduration\n0\t42\n")
    with pytest.raises(InputError, match=r"events\.tsv: missing column\(s\) trial_type"):
        read_events(path, 96, 7.0, 0.0)


@pytest.mark.parametrize("slice_time_ref, last_frame", [(0.0, 665.0), (0.5, 668.5)])
def test_events_after_the_last_frame_are_dropped(tmp_path, slice_time_ref, last_frame):
    """Onsets after frame_times[-1] = (n_scans - 1 + slice_time_ref) * TR are dropped with one
    warning; an onset at the last frame is kept."""
    path = _events(tmp_path, "onset\tduration\ttrial_type\n0\t42\trest\n"
                             f"{last_frame}\t42\tactive\n{last_frame + 0.5}\t42\tactive\n"
                             "671\t42\trest\n")
    with pytest.warns(EventsWarning) as caught:
        events = read_events(path, 96, 7.0, slice_time_ref)
    assert [str(w.message) for w in caught] == [
        f"{path}: 2 event(s) start after the last frame ({last_frame:g} s) and are dropped"]
    assert events["onset"].tolist() == [0.0, last_frame]


def test_condition_left_without_events_is_absent_from_the_run(tmp_path):
    """A condition whose events all start after the last frame is absent from the run:
    left out, and the warning names it."""
    path = _events(tmp_path, "onset\tduration\ttrial_type\n0\t42\trest\n700\t42\tactive\n")
    with pytest.warns(EventsWarning, match=r"condition\(s\) active left without events"):
        events = read_events(path, 96, 7.0, 0.0)
    assert events["trial_type"].tolist() == ["rest"]


@pytest.mark.parametrize("cell", ["inf", "-inf", "n/a"])
def test_events_non_finite_number(tmp_path, cell):
    """Infinite or missing onsets, durations and modulations are refused with their line."""
    path = _events(tmp_path, "onset\tduration\ttrial_type\tmodulation\n"
                             f"0\t42\trest\t1\n42\t42\tactive\t{cell}\n")
    with pytest.raises(InputError, match=r"column 'modulation' line 3: expected a finite "
                                         r"number, got (-?inf|n/a)"):
        read_events(path, 96, 7.0, 0.0)


def test_events_non_numeric_onset(tmp_path):
    """A non-numeric onset is refused with its line."""
    path = _events(tmp_path, "onset\tduration\ttrial_type\nsoon\t42\trest\n")
    with pytest.raises(InputError, match=r"column 'onset' line 2: expected a finite number, "
                                         r"got 'soon'"):
        read_events(path, 96, 7.0, 0.0)


def test_events_with_modulation(tmp_path):
    """A modulation column scales the regressor as in nilearn."""
    path = _events(tmp_path, "onset\tduration\ttrial_type\tmodulation\n"
                             "0\t42\tactive\t2\n84\t42\tactive\t2\n")
    events = read_events(path, 20, 7.0, 0.0)
    design = make_design_matrix(events, 20, 7.0, **_matrix(drift_model="none"))
    plain = make_design_matrix(events.drop(columns="modulation"), 20, 7.0,
                               **_matrix(drift_model="none"))
    np.testing.assert_allclose(design["active"], 2 * plain["active"])


@pytest.mark.parametrize("t_r", [0, -7, "abc", float("nan")])
def test_bad_repetition_time(t_r):
    """TR must be a positive number."""
    with pytest.raises(InputError, match="TR: expected a positive number of seconds"):
        check_repetition_time(t_r)


def test_confounds_become_regressors(tmp_path, spm_events):
    """Confound columns are appended to the design; a wrong row count is refused."""
    path = tmp_path / "confounds.tsv"
    pd.DataFrame({"motion_x": np.linspace(0, 1, 96)}).to_csv(path, sep="\t", index=False)
    design = make_design_matrix(read_events(spm_events, 96, 7.0, 0.0), 96, 7.0,
                                confounds=read_confounds(path, 96), **_matrix())
    assert "motion_x" in design.columns
    with pytest.raises(InputError, match=r"confounds\.tsv: 96 rows, expected one per scan \(90\)"):
        read_confounds(path, 90)


@pytest.mark.parametrize("cell, shown", [("inf", "inf"), ("-inf", "-inf"), ("n/a", "n/a")])
def test_confounds_must_be_finite(tmp_path, cell, shown):
    """A non-finite confound value is refused, naming its column and line."""
    path = tmp_path / "confounds.tsv"
    path.write_text("a\tb\n" + "".join(f"{i}\t{cell if i == 3 else i}\n" for i in range(6)))
    with pytest.raises(InputError, match=rf"confounds\.tsv: column 'b' line 5: expected a "
                                         rf"finite number, got {shown}$"):
        read_confounds(path, 6)


@pytest.mark.parametrize("hrf_model", HRF_COLUMN_SUFFIXES)
def test_condition_columns_are_nilearns(tmp_path, hrf_model):
    """The column names predicted for a condition are those nilearn makes."""
    from glm_workflows.core.design import _condition_columns

    events = pd.DataFrame({"onset": [0.0, 20.0], "duration": [5.0, 5.0],
                           "trial_type": ["b", "a"]})
    design = make_design_matrix(events, 30, 2.0,
                                **_matrix(hrf_model=hrf_model, drift_model="none"))
    assert [column for column, _ in _condition_columns(events, hrf_model)] == \
        list(design.columns[:-1])


def test_first_level_design_equals_nilearn_on_kept_events(tmp_path, spm_events):
    """The checked design is make_first_level_design_matrix of the events before the last
    frame, with one warning line for the dropped ones."""
    from nilearn.glm.first_level import make_first_level_design_matrix

    seed = pd.read_csv(spm_events, sep="\t")
    path = tmp_path / "events.tsv"
    late = pd.DataFrame({"onset": [666.0, 700.0], "duration": [42.0, 42.0],
                         "trial_type": ["rest", "active"]})
    pd.concat([seed, late]).to_csv(path, sep="\t", index=False)
    design, warnings = first_level_design(path, 96, 7.0, **_model(high_pass=1 / 160))
    assert warnings == [f"{path}: 2 event(s) start after the last frame (665 s) and are "
                        "dropped"]
    expected = make_first_level_design_matrix(np.arange(96) * 7.0, seed, hrf_model="spm",
                                              drift_model="cosine", high_pass=1 / 160)
    pd.testing.assert_frame_equal(design, expected)


def _confounds(tmp_path, **columns):
    path = tmp_path / "confounds.tsv"
    pd.DataFrame(columns).to_csv(path, sep="\t", index=False)
    return path


def test_collinear_confounds_are_allowed_but_not_their_contrasts(tmp_path, spm_events):
    """Confounds collinear with each other: the design is built; a contrast on them is not
    estimable, one on the conditions is."""
    ramp = np.linspace(-1, 1, 96)
    confounds = _confounds(tmp_path, m1=ramp, m2=-3 * ramp)
    design, _ = first_level_design(spm_events, 96, 7.0, confounds_file=confounds,
                                   contrasts=[("c", "t", ("active - rest",))], **_model())
    assert list(design.columns[:4]) == ["active", "rest", "m1", "m2"]
    with pytest.raises(InputError, match=r"^contrast x: not estimable: columns m1, m2 are "
                                         r"linearly dependent \(design of .*events\.tsv\)$"):
        first_level_design(spm_events, 96, 7.0, confounds_file=confounds,
                           contrasts=[("x", "t", ("m1 + m2",))], **_model())


def test_condition_collinear_with_a_confound_is_refused(tmp_path, spm_events, seed_design):
    """A confound equal to a condition: refused whether or not a contrast uses it."""
    confounds = _confounds(tmp_path, motion=seed_design["active"].to_numpy())
    with pytest.raises(InputError, match=r"events\.tsv: condition 'active' cannot be "
                                         r"estimated: columns active, motion are linearly "
                                         r"dependent$"):
        first_level_design(spm_events, 96, 7.0, confounds_file=confounds,
                           **_model(high_pass=1 / 160))


@pytest.mark.parametrize("events, confounds, message", [
    ("constant", None, "design column 'constant' would come from both condition 'constant' "
                       "and the constant; rename condition 'constant'"),
    ("drift_2", None, "design column 'drift_2' would come from both condition 'drift_2' and "
                      "the drift model"),
    ("rest", {"active": 1}, "design column 'active' would come from both condition 'active' "
                            "and confound column 'active' of"),
    ("rest", {"drift_1": 1}, "confounds.tsv: design column 'drift_1' would come from both "
                             "confound column 'drift_1' and the drift model"),
])
def test_column_names_must_not_collide(tmp_path, events, confounds, message):
    """Two regressors with one name (condition, confound, drift, constant) are refused."""
    path = _events(tmp_path, f"onset\tduration\ttrial_type\n0\t10\t{events}\n"
                             "30\t10\tactive\n")
    confounds_file = (_confounds(tmp_path, **{k: np.linspace(0, v, 40)
                                              for k, v in confounds.items()})
                      if confounds else None)
    with pytest.raises(InputError, match=re.escape(message)):
        first_level_design(path, 40, 2.0, confounds_file=confounds_file,
                           **_model(high_pass=0.02))


def test_fewer_scans_than_regressors_is_refused(tmp_path):
    """n_scans <= n_regressors leaves no residual degrees of freedom."""
    path = _events(tmp_path, "onset\tduration\ttrial_type\n0\t4\ta\n4\t4\tb\n")
    with pytest.raises(InputError, match=r"the run has 5 scans for 7 regressors: no residual "
                                         r"degrees of freedom"):
        first_level_design(path, 5, 2.0, **_model(drift_model="polynomial", drift_order=4))


@pytest.mark.parametrize("settings, message", [
    (dict(drift_order=-1), "drift_order: expected an order >= 0, got -1"),
    (dict(drift_model="polynomial", drift_order=20), "drift_order: expected at most 19"),
    (dict(slice_time_ref=-0.1), "slice_time_ref: expected a number in [0, 1]"),
    (dict(slice_time_ref=float("nan")), "slice_time_ref: expected a number in [0, 1]"),
    (dict(hrf_model="spm+derivative"), "hrf_model: expected one of"),
    (dict(high_pass=float("nan")), "high_pass: expected a frequency"),
])
def test_out_of_range_model_settings(tmp_path, settings, message):
    """Settings nilearn would reject or fail on are refused, naming the setting."""
    path = _events(tmp_path, "onset\tduration\ttrial_type\n0\t4\ta\n")
    with pytest.raises(InputError, match=re.escape(message)):
        first_level_design(path, 20, 2.0, **_model(**settings))


def test_conditions_of_a_run_count_only_uncensored_frames(tmp_path):
    """A condition whose every event falls in censored frames is absent from the run;
    an impulse counts if the frame at or just after its onset is kept (TR 2 s)."""
    from glm_workflows.core.run_tables import run_conditions

    path = _events(tmp_path, "onset\tduration\ttrial_type\n0\t4\ta\n10\t4\tb\n21\t0\tc\n")
    # frames at 0, 2, ..., 38 s; censor 10-12 s (volumes 5, 6) and 22 s (volume 11)
    kept = [v for v in range(20) if v not in (5, 6, 11)]
    assert run_conditions(path, 20, 2.0, 0.0) == {"a", "b", "c"}
    assert run_conditions(path, 20, 2.0, 0.0, sample_mask=kept) == {"a"}
    assert run_conditions(path, 20, 2.0, 0.0, sample_mask=[*kept, 11]) == {"a", "c"}
