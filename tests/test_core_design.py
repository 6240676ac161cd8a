"""Events, confounds and design matrices (no Nipype)."""

import numpy as np
import pandas as pd
import pytest

from glm_workflows.core.design import (
    check_repetition_time,
    load_design_matrix,
    make_design_matrix,
    read_confounds,
    read_events,
    save_design_matrix,
)
from glm_workflows.core.errors import InputError

SEED_COLUMNS = ["active", "rest", *[f"drift_{i}" for i in range(1, 9)], "constant"]


def test_design_equals_first_level_model(seed_design, nilearn_seed_model):
    """The design is exactly the one FirstLevelModel builds from the same events."""
    reference = nilearn_seed_model.design_matrices_[0]
    assert list(seed_design.columns) == SEED_COLUMNS == list(reference.columns)
    np.testing.assert_array_equal(seed_design.to_numpy(), reference.to_numpy())


def test_design_tsv_round_trip_is_exact(tmp_path, seed_design):
    """Writing and reading the TSV loses no bit."""
    save_design_matrix(seed_design, tmp_path / "design.tsv")
    back = load_design_matrix(tmp_path / "design.tsv")
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
        read_events(path, 96, 7.0)


def test_events_onset_beyond_run(tmp_path):
    """An onset after the last scan is refused with the run length."""
    path = _events(tmp_path, "onset\tduration\ttrial_type\n0\t42\trest\n700\t42\tactive\n")
    with pytest.raises(InputError, match=r"onset 700 s is beyond the end of the run "
                                         r"\(96 scans x TR 7 s = 672 s\)"):
        read_events(path, 96, 7.0)


def test_events_non_numeric_onset(tmp_path):
    """A non-numeric onset is refused with its line."""
    path = _events(tmp_path, "onset\tduration\ttrial_type\nsoon\t42\trest\n")
    with pytest.raises(InputError, match=r"column 'onset' line 2: expected a number"):
        read_events(path, 96, 7.0)


def test_events_with_modulation(tmp_path):
    """A modulation column scales the regressor as in nilearn."""
    path = _events(tmp_path, "onset\tduration\ttrial_type\tmodulation\n"
                             "0\t42\tactive\t2\n84\t42\tactive\t2\n")
    events = read_events(path, 20, 7.0)
    design = make_design_matrix(events, 20, 7.0, drift_model="none")
    plain = make_design_matrix(events.drop(columns="modulation"), 20, 7.0, drift_model="none")
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
    design = make_design_matrix(read_events(spm_events, 96, 7.0), 96, 7.0,
                                confounds=read_confounds(path, 96))
    assert "motion_x" in design.columns
    with pytest.raises(InputError, match=r"confounds\.tsv: 96 rows, expected one per scan \(90\)"):
        read_confounds(path, 90)
