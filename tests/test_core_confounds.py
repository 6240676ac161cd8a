"""Confound selection from fMRIPrep outputs, checked against nilearn's own loaders."""

import re
import shutil
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

from glm_workflows.core import confounds as confounds_module
from glm_workflows.core.confounds import (
    CONFOUND_STRATEGIES,
    censoring_summary,
    check_confound_options,
    select_confounds,
    strategy_options,
)
from glm_workflows.core.design import cosine_columns
from glm_workflows.core.errors import InputError

N_SCANS = 30  # volumes nilearn's fake fMRIPrep runs have


@pytest.fixture(scope="module")
def fake_func_dir(tmp_path_factory):
    """The func/ folder of a one-run fMRIPrep-like dataset made by nilearn."""
    from nilearn._utils.data_gen import create_fake_bids_dataset

    bids = create_fake_bids_dataset(
        base_dir=tmp_path_factory.mktemp("bids"), n_sub=1, n_ses=0, tasks=["main"],
        n_runs=[1], with_derivatives=True, with_confounds=True, spaces=["MNI"], n_voxels=2)
    return bids / "derivatives" / "sub-01" / "func"


@pytest.fixture
def run(tmp_path, fake_func_dir):
    """(bold, confounds TSV) of a private copy of the fake run, free to modify."""
    func = tmp_path / "func"
    shutil.copytree(fake_func_dir, func)
    bold = func / "sub-01_task-main_run-01_space-MNI_desc-preproc_bold.nii.gz"
    tsv = func / "sub-01_task-main_run-01_desc-confounds_timeseries.tsv"
    assert bold.is_file() and tsv.is_file()
    return bold, tsv


def _edit_tsv(tsv, **columns):
    """Overwrite (or add) columns of the confounds TSV, writing n/a as fMRIPrep does."""
    table = pd.read_csv(tsv, sep="\t")
    new = {name: values for name, values in columns.items() if name not in table}
    for name, values in columns.items():
        if name in table:
            table[name] = values
    table = pd.concat([table, pd.DataFrame(new)], axis=1)
    table.to_csv(tsv, sep="\t", index=False, na_rep="n/a")


def _spiky(tsv):
    """FD spikes at volumes 10 and 13, a DVARS spike at 25 (volume 0 is non-steady)."""
    table = pd.read_csv(tsv, sep="\t")
    fd = table["framewise_displacement"].to_numpy().copy()
    dvars = table["std_dvars"].to_numpy().copy()
    fd[[10, 13]] = 2.0
    dvars[25] = 5.0
    _edit_tsv(tsv, framewise_displacement=fd, std_dvars=dvars)


# ---------------------------------------------------------------- option table


def test_strategy_options_follow_nilearn_presets():
    from nilearn.interfaces.fmriprep.load_confounds_strategy import preset_strategies

    table = strategy_options()
    assert tuple(table) == CONFOUND_STRATEGIES == ("simple", "scrubbing", "compcor")
    for name, options in table.items():
        assert set(options) == set(preset_strategies[name]) - {"strategy"}
    assert set(table["scrubbing"]) >= {"fd_threshold", "std_dvars_threshold", "scrub"}
    assert {"compcor", "n_compcor"} <= set(table["compcor"])
    assert "wm_csf" not in table["compcor"]
    assert all({"global_signal", "demean", "motion"} <= set(o) for o in table.values())
    assert confounds_module.STRATEGY_OPTIONS == table


def test_import_does_not_load_nilearn():
    code = ("import sys, glm_workflows.core.confounds; "
            "print(any(m.startswith('nilearn.interfaces') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


# ------------------------------------------------------------ refused options


@pytest.mark.parametrize(("strategy", "options", "message"), [
    ("simple", {"fd_threshold": 0.3},
     "--fd-threshold: does not apply to --confounds-strategy simple "
     "(it applies to: scrubbing)"),
    ("simple", {"n_compcor": 3}, "--n-compcor: does not apply to --confounds-strategy simple"),
    ("compcor", {"wm_csf": "basic"},
     "--wm-csf: does not apply to --confounds-strategy compcor "
     "(it applies to: simple, scrubbing)"),
    ("scrubbing", {"compcor": "temporal"}, "--compcor: does not apply"),
    (None, {"std_dvars_threshold": 2.0}, "--std-dvars-threshold: needs --confounds-strategy"),
    (None, {"motion": "basic"}, "--motion: needs --confounds-strategy"),
    ("ica_aroma", {}, "--confounds-strategy: expected one of simple, scrubbing, compcor"),
    ("simple", {"high_pass": True}, "--high-pass: not a confound option"),
])
def test_options_that_do_not_apply_are_refused(strategy, options, message):
    with pytest.raises(InputError, match=f"^{re.escape(message)}"):
        check_confound_options(strategy, (), options)


@pytest.mark.parametrize(("strategy", "name", "value"), [
    ("simple", "motion", "everything"),
    ("scrubbing", "wm_csf", "basic+"),
    ("compcor", "global_signal", True),
    ("compcor", "compcor", "anat"),
    ("compcor", "n_compcor", 0),
    ("compcor", "n_compcor", -2),
    ("compcor", "n_compcor", 2.5),
    ("compcor", "n_compcor", "some"),
    ("scrubbing", "fd_threshold", 0),
    ("scrubbing", "fd_threshold", -0.5),
    ("scrubbing", "std_dvars_threshold", float("nan")),
    ("scrubbing", "std_dvars_threshold", "high"),
    ("scrubbing", "scrub", -1),
    ("scrubbing", "scrub", 1.5),
    ("scrubbing", "scrub", True),
    ("simple", "demean", "yes"),
])
def test_bad_values_are_refused(strategy, name, value):
    flag = "--" + name.replace("_", "-")
    with pytest.raises(InputError, match=f"^{flag}: expected") as info:
        check_confound_options(strategy, (), {name: value})
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("strategy", "options"), [
    ("scrubbing", {"fd_threshold": 0.2, "std_dvars_threshold": 3, "scrub": 0}),
    ("scrubbing", {"fd_threshold": "0.2", "scrub": "5"}),  # as text, from a command line
    ("compcor", {"n_compcor": "all", "compcor": "temporal_anat_separated"}),
    ("compcor", {"n_compcor": 3, "global_signal": "full", "demean": False}),
    ("simple", {"motion": "derivatives", "wm_csf": "power2", "fd_threshold": None}),
    (None, {"demean": False, "scrub": None}),
])
def test_good_options_pass(strategy, options):
    check_confound_options(strategy, (), options)


def test_strategy_and_columns_are_refused_together(run):
    bold, tsv = run
    with pytest.raises(InputError, match="^--confounds-strategy and --confounds-columns: "
                                         "choose one"):
        select_confounds(bold, tsv, strategy="simple", columns=["trans_*"])


def test_option_without_strategy_is_refused_with_columns(run):
    bold, tsv = run
    with pytest.raises(InputError, match="^--fd-threshold: needs --confounds-strategy"):
        select_confounds(bold, tsv, columns=["trans_*"], fd_threshold=0.5)


def test_options_are_checked_before_any_file_is_read(tmp_path):
    missing = tmp_path / "sub-01_task-x_desc-preproc_bold.nii.gz"
    with pytest.raises(InputError, match="^--scrub: expected"):
        select_confounds(missing, tmp_path / "nowhere.tsv", strategy="scrubbing", scrub=-3)


def test_no_strategy_no_columns_gives_nothing(run):
    bold, tsv = run
    assert select_confounds(bold, tsv) == (None, None)
    assert select_confounds(bold, tsv, demean=False, n_scans=N_SCANS) == (None, None)


# ------------------------------------------------------------ strategies


@pytest.mark.parametrize(("strategy", "options"), [
    ("simple", {}),
    ("simple", {"motion": "basic", "wm_csf": "full", "global_signal": "derivatives"}),
    ("simple", {"demean": False}),
    ("scrubbing", {}),
    ("scrubbing", {"fd_threshold": 0.5, "std_dvars_threshold": 10.0, "scrub": 0}),
    ("scrubbing", {"fd_threshold": 0.5, "std_dvars_threshold": 1.5, "scrub": 5}),
    ("compcor", {}),
    ("compcor", {"compcor": "temporal_anat_combined", "n_compcor": 3}),
    ("compcor", {"compcor": "anat_separated", "n_compcor": 2, "global_signal": "basic"}),
])
def test_strategy_equals_nilearn(run, strategy, options):
    from nilearn.interfaces.fmriprep import load_confounds_strategy

    bold, tsv = run
    _spiky(tsv)
    confounds, sample_mask = select_confounds(bold, tsv, strategy=strategy, n_scans=N_SCANS,
                                              **options)
    expected, expected_mask = load_confounds_strategy(str(bold), strategy, **options)
    pd.testing.assert_frame_equal(confounds, expected)
    assert np.array_equal(sample_mask, expected_mask)
    assert len(confounds) == N_SCANS
    assert cosine_columns(confounds.columns)  # every preset has high_pass


@pytest.mark.parametrize(("options", "censored"), [
    ({}, [0, 10, 11, 12, 13, 25, 26, 27, 28, 29]),  # nilearn's defaults: 0.5 mm, 1.5, 5
    ({"scrub": 0}, [0, 10, 13, 25]),
    ({"std_dvars_threshold": 10, "scrub": 0}, [0, 10, 13]),
    ({"fd_threshold": 5.0, "std_dvars_threshold": 10}, [0]),
    ({"fd_threshold": 5.0, "scrub": 5}, [0, 25, 26, 27, 28, 29]),  # 4 volumes after 25
    ({"fd_threshold": 5.0, "scrub": 4}, [0, 25]),
])
def test_scrubbing_censors_the_expected_volumes(run, options, censored):
    bold, tsv = run
    _spiky(tsv)
    _, sample_mask = select_confounds(bold, tsv, strategy="scrubbing", **options)
    assert censoring_summary(sample_mask, N_SCANS) == censored
    assert sorted([*censored, *sample_mask.tolist()]) == list(range(N_SCANS))


def test_compcor_number_of_components(run):
    bold, tsv = run
    confounds, _ = select_confounds(bold, tsv, strategy="compcor",
                                    compcor="temporal", n_compcor="2")
    assert [c for c in confounds if "comp_cor" in c] == ["t_comp_cor_00", "t_comp_cor_01"]


def test_strategy_with_the_wrong_number_of_rows(run):
    bold, tsv = run
    with pytest.raises(InputError, match=rf"^{re.escape(str(tsv))}: 30 rows, expected one per "
                                         r"volume of the run \(32\)"):
        select_confounds(bold, tsv, strategy="simple", n_scans=32)


def test_nilearn_errors_become_one_line(run):
    bold, tsv = run
    table = pd.read_csv(tsv, sep="\t")
    table.drop(columns=["trans_x", "framewise_displacement"]).to_csv(
        tsv, sep="\t", index=False, na_rep="n/a")
    with pytest.raises(InputError, match=rf"^{re.escape(str(tsv))}: --confounds-strategy simple: "
                                         ".*trans_x") as info:
        select_confounds(bold, tsv, strategy="simple")
    assert "\n" not in str(info.value)
    table.drop(columns=["framewise_displacement"]).to_csv(tsv, sep="\t", index=False,
                                                          na_rep="n/a")
    with pytest.raises(InputError, match="scrubbing: missing column 'framewise_displacement'"):
        select_confounds(bold, tsv, strategy="scrubbing")


def test_text_in_a_column_the_strategy_reads_is_named(run):
    """Text in a motion column: nilearn's loader fails with a TypeError of numpy's; the
    refusal names the confounds file and the column instead."""
    bold, tsv = run
    table = pd.read_csv(tsv, sep="\t")
    table["trans_y"] = table["trans_y"].astype(object)
    table.loc[5, "trans_y"] = "abc"
    table.to_csv(tsv, sep="\t", index=False, na_rep="n/a")
    with pytest.raises(InputError, match=rf"^{re.escape(str(tsv))}: --confounds-strategy simple: "
                                         r"column\(s\) trans_y must be numeric \(or n/a\)$"):
        select_confounds(bold, tsv, strategy="simple")


def test_a_confounds_json_that_does_not_parse_is_named(run):
    """compcor reads the confounds TSV's JSON sidecar: a broken one is named (the line
    named the TSV, with json's message alone)."""
    bold, tsv = run
    sidecar = tsv.with_suffix(".json")
    assert sidecar.is_file()
    sidecar.write_text("{bad")
    with pytest.raises(InputError, match=rf"^{re.escape(str(sidecar))}: not valid JSON "
                                         r"\(Expecting property name .*, line 1\)$"):
        select_confounds(bold, tsv, strategy="compcor")


def test_strategy_refuses_another_confounds_file(run, tmp_path):
    bold, tsv = run
    other = tmp_path / "other_confounds.tsv"
    shutil.copy(tsv, other)
    with pytest.raises(InputError, match=rf"^{re.escape(str(other))}: .*beside"):
        select_confounds(bold, other, strategy="simple")
    confounds, _ = select_confounds(bold, None, strategy="simple")  # nilearn finds it
    assert len(confounds) == N_SCANS


def test_every_volume_censored_is_refused(run):
    """One error, without nilearn's RuntimeWarning printed above the refusal's line."""
    bold, tsv = run
    with warnings.catch_warnings(), pytest.raises(InputError, match="every volume is censored"):
        warnings.simplefilter("error")
        select_confounds(bold, tsv, strategy="scrubbing", fd_threshold=1e-6,
                         std_dvars_threshold=1e-6)


# ---------------------------------------------------------------- columns


def test_star_matches_derivatives_brackets_do_not(run):
    bold, tsv = run
    table = pd.read_csv(tsv, sep="\t")
    star, _ = select_confounds(bold, tsv, columns=["trans_*"])
    assert "trans_x_derivative1" in star.columns
    assert list(star.columns) == [c for c in table.columns if c.startswith("trans_")]
    assert len(star.columns) == 12
    brackets, _ = select_confounds(bold, tsv, columns=["trans_[xyz]"])
    assert list(brackets.columns) == ["trans_x", "trans_y", "trans_z"]


def test_columns_in_tsv_order_not_pattern_order(run):
    bold, tsv = run
    confounds, _ = select_confounds(bold, tsv, columns=["rot_z", "csf", "trans_x"])
    assert list(confounds.columns) == ["csf", "trans_x", "rot_z"]


def test_motion_columns_equal_nilearn_motion_full(run):
    from nilearn.interfaces.fmriprep import load_confounds

    bold, tsv = run
    confounds, sample_mask = select_confounds(bold, tsv, columns=["trans_*", "rot_*"],
                                              n_scans=N_SCANS)
    expected, expected_mask = load_confounds(str(bold), strategy=("motion",), motion="full")
    assert sorted(confounds.columns) == list(expected.columns)  # nilearn sorts by name
    pd.testing.assert_frame_equal(confounds, expected[confounds.columns])
    assert np.array_equal(sample_mask, expected_mask)
    assert np.array_equal(sample_mask, np.arange(1, N_SCANS))  # volume 0: non-steady


def test_first_row_filled_and_demeaned_over_kept_volumes(run):
    bold, tsv = run
    values = np.arange(N_SCANS, dtype=float) ** 2
    values[0] = np.nan
    # volume 0 is flagged already; flag volume 1 in a second column
    _edit_tsv(tsv, my_derivative1=values, non_steady_state_outlier01=np.eye(N_SCANS)[1])
    assert "n/a" in tsv.read_text().splitlines()[1]

    filled = values.copy()
    filled[0] = values[1]
    kept = np.arange(2, N_SCANS)
    confounds, sample_mask = select_confounds(bold, tsv, columns=["my_derivative1"])
    assert list(confounds.columns) == ["my_derivative1"]
    np.testing.assert_array_equal(sample_mask, kept)
    np.testing.assert_allclose(confounds["my_derivative1"], filled - filled[kept].mean())

    raw, _ = select_confounds(bold, tsv, columns=["my_derivative1"], demean=False)
    np.testing.assert_array_equal(raw["my_derivative1"], filled)


def test_non_steady_state_columns_become_the_sample_mask(run):
    bold, tsv = run
    table = pd.read_csv(tsv, sep="\t")
    steady = [c for c in table if "non_steady_state" in c]
    assert steady == ["non_steady_state_outlier00"]
    _edit_tsv(tsv, non_steady_state_outlier01=np.eye(N_SCANS)[1],
              non_steady_state_outlier02=np.eye(N_SCANS)[2])
    confounds, sample_mask = select_confounds(bold, tsv, columns=["csf", "non_steady*"])
    assert list(confounds.columns) == ["csf"]
    assert censoring_summary(sample_mask, N_SCANS) == [0, 1, 2]
    np.testing.assert_allclose(confounds["csf"].to_numpy()[3:].mean(), 0, atol=1e-9)


def test_no_sample_mask_without_non_steady_state_columns(run):
    bold, tsv = run
    pd.read_csv(tsv, sep="\t").drop(columns=["non_steady_state_outlier00"]).to_csv(
        tsv, sep="\t", index=False, na_rep="n/a")
    confounds, sample_mask = select_confounds(bold, tsv, columns=["csf"])
    assert sample_mask is None
    assert censoring_summary(sample_mask, N_SCANS) == []
    np.testing.assert_allclose(confounds["csf"].mean(), 0, atol=1e-9)


def test_columns_without_a_bold_next_to_them(tmp_path, run):
    _, tsv = run
    own = tmp_path / "my_confounds.tsv"
    shutil.copy(tsv, own)
    confounds, sample_mask = select_confounds(None, own, columns=["cosine*"])
    assert list(confounds.columns) == ["cosine00", "cosine01", "cosine02", "cosine03"]
    assert cosine_columns(confounds.columns)
    assert censoring_summary(sample_mask, N_SCANS) == [0]


def test_pattern_matching_nothing_is_refused(run):
    bold, tsv = run
    message = f"--confounds-columns 'motion_*': matches no column of {tsv}; columns: csf, "
    with pytest.raises(InputError, match="^" + re.escape(message)) as info:
        select_confounds(bold, tsv, columns=["trans_x", "motion_*"])
    assert "(189 in all)" in str(info.value)


@pytest.mark.parametrize("n_scans", [29, 31])
def test_columns_with_the_wrong_number_of_rows(run, n_scans):
    bold, tsv = run
    with pytest.raises(InputError, match=rf"^{re.escape(str(tsv))}: 30 rows, expected one per "
                                         rf"volume of the run \({n_scans}\)"):
        select_confounds(bold, tsv, columns=["trans_x"], n_scans=n_scans)


def test_columns_refuse_text_and_later_na(run):
    bold, tsv = run
    _edit_tsv(tsv, label=["a"] * N_SCANS)
    with pytest.raises(InputError, match=r"column\(s\) label must be numeric"):
        select_confounds(bold, tsv, columns=["label"])
    gappy = np.ones(N_SCANS)
    gappy[7] = np.nan
    _edit_tsv(tsv, gappy=gappy)
    with pytest.raises(InputError, match=r"n/a values beyond the first row in column\(s\) "
                                         "gappy"):
        select_confounds(bold, tsv, columns=["gappy"])


def test_columns_unreadable_file(tmp_path):
    with pytest.raises(InputError, match="nowhere.tsv: confounds file not found"):
        select_confounds(None, tmp_path / "nowhere.tsv", columns=["csf"])
    camel = tmp_path / "old_confounds.tsv"
    camel.write_text("WhiteMatter\tGlobalSignal\n1\t2\n3\t4\n")
    with pytest.raises(InputError, match="old_confounds.tsv: not a readable fMRIPrep "
                                         "confounds file .*camel case"):
        select_confounds(None, camel, columns=["*"])


# ---------------------------------------------------------------- helpers


def test_cosine_columns():
    assert cosine_columns(["trans_x", "cosine"]) == []
    assert cosine_columns(["trans_x", "cosine07", "cosine_x"]) == ["cosine07"]
def test_censoring_summary():
    assert censoring_summary(None, 5) == []
    assert censoring_summary(np.array([1, 2, 4]), 6) == [0, 3, 5]
    assert all(type(i) is int for i in censoring_summary(np.array([1]), 3))


@pytest.mark.parametrize("how", [dict(strategy="simple"), dict(columns=("trans_*",))])
def test_repeated_column_names_are_refused(run, how):
    """A confounds header naming a column twice (pandas would rename the second
    ``trans_x.1``, and ``trans_*`` would take it) is refused, naming file and column, on
    both the strategy and the column-pattern routes."""
    bold, tsv = run
    lines = tsv.read_text().splitlines()
    header = lines[0].split("\t")
    header[header.index("rot_x")] = "trans_x"
    tsv.write_text("\n".join(["\t".join(header), *lines[1:]]) + "\n")
    with pytest.raises(InputError, match=rf"{re.escape(str(tsv))}: column 'trans_x' appears "
                                         r"2 times in the header"):
        select_confounds(bold, tsv, **how)
