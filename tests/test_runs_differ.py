"""Runs that differ: a contrast naming a condition absent from a run is skipped there (or
refused with --strict) and the subject's fixed effects combine the runs that have it."""

import contextlib
import io
import warnings

import nibabel as nb
import numpy as np
import pandas as pd
import pytest
from nilearn.glm.contrasts import compute_fixed_effects
from nilearn.masking import intersect_masks
from scipy.stats import norm

from glm_workflows.cli import main
from glm_workflows.core.entities import bids_prefix
from glm_workflows.core.naming import contrast_file, model_file
from glm_workflows.synthetic import write_tiny_bids

pytestmark = pytest.mark.slow  # CLI runs of two-run studies

N_SCANS, T_R = 60, 2.0
CONTRASTS = ["--contrast", "aMinusB=a - b", "--contrast", "aOnly=a"]
WARNING = ("contrast aMinusB: condition(s) b absent from sub-01_task-tiny_run-2; "
           "skipped for this run")


def write_two_run_study(root, events_of, subjects=("01", "02")):
    """:func:`write_tiny_bids` with each subject's run as ``run-1`` and ``run-2`` (same
    bold, a symlink), the events of run ``r`` of subject ``s`` being
    ``events_of(s, r, tiny_events)``."""
    bids = write_tiny_bids(root, subjects)
    for subject in subjects:
        func = bids / f"sub-{subject}" / "func"
        single = func / f"sub-{subject}_task-tiny"
        events = pd.read_csv(f"{single}_events.tsv", sep="\t")
        (func / f"{single.name}_events.tsv").unlink()
        (func / f"{single.name}_bold.nii.gz").rename(
            func / f"sub-{subject}_task-tiny_run-1_bold.nii.gz")
        (func / f"sub-{subject}_task-tiny_run-2_bold.nii.gz").symlink_to(
            f"sub-{subject}_task-tiny_run-1_bold.nii.gz")
        for run in (1, 2):
            events_of(subject, run, events.copy()).to_csv(
                func / f"sub-{subject}_task-tiny_run-{run}_events.tsv", sep="\t", index=False)
    return bids


def run_cli(bids, root, *extra):
    """``main`` on ``bids`` (task tiny, Linear): exit code and what it printed on stderr."""
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        code = main(["--bids-dir", str(bids), "--task", "tiny", "--output-dir", str(root / "out"),
                     "--work-dir", str(root / "work"), "--plugin", "Linear", *extra])
    return code, stderr.getvalue()


def only_a_in_sub01_run2(subject, run, events):
    return events[events.trial_type == "a"] if (subject, run) == ("01", 2) else events


@pytest.fixture(scope="module")
def differ_bids(tmp_path_factory):
    """Two subjects x two runs; sub-01 run-2 has condition a only."""
    return write_two_run_study(tmp_path_factory.mktemp("differ") / "bids", only_a_in_sub01_run2)


@pytest.fixture(scope="module")
def differ_run(tmp_path_factory, differ_bids):
    """The CLI on :func:`differ_bids` with aMinusB and aOnly: (code, stderr, out folder)."""
    root = tmp_path_factory.mktemp("differ_run")
    code, stderr = run_cli(differ_bids, root, *CONTRASTS)
    return code, stderr, root / "out"


# --- independent expectations -------------------------------------------------------------

def run_prefix(subject, run):
    return bids_prefix(subject, "tiny", run=str(run))


def run_dof(out, subject, run) -> float:
    """Residual dof of a run's OLS/AR(1) fit: scans - rank of its design matrix."""
    design = pd.read_csv(out / f"sub-{subject}" / model_file(run_prefix(subject, run),
                                                             "design_file"), sep="\t")
    assert len(design) == N_SCANS
    return float(N_SCANS - np.linalg.matrix_rank(design.to_numpy()))


def expected_fixed_effects(out, subject, contrast, runs):
    """nilearn's compute_fixed_effects of our run-level maps of ``runs``, in the
    intersection of the masks of every run of the subject: effect, variance, t, z, p."""
    folder = out / f"sub-{subject}"
    masks = [folder / model_file(run_prefix(subject, r), "mask_file") for r in (1, 2)]
    mask = intersect_masks([str(m) for m in masks], threshold=1, connected=False)
    effects = [str(folder / contrast_file(run_prefix(subject, r), contrast, "effect_maps"))
               for r in runs]
    variances = [str(folder / contrast_file(run_prefix(subject, r), contrast, "variance_maps"))
                 for r in runs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        effect, variance, stat, z_map = compute_fixed_effects(
            effects, variances, mask=mask, precision_weighted=False,
            dofs=[run_dof(out, subject, r) for r in runs])
    inside = mask.get_fdata() > 0
    p_values = np.zeros(inside.shape)
    p_values[inside] = norm.sf(z_map.get_fdata()[inside])
    return {"effect_maps": effect.get_fdata(), "variance_maps": variance.get_fdata(),
            "stat_maps": stat.get_fdata(), "z_maps": z_map.get_fdata(), "p_maps": p_values,
            "mask": inside}


def assert_subject_maps(out, subject, contrast, runs):
    expected = expected_fixed_effects(out, subject, contrast, runs)
    folder, prefix = out / f"sub-{subject}", bids_prefix(subject, "tiny")
    ours_mask = nb.load(folder / model_file(prefix, "mask_file")).get_fdata() > 0
    np.testing.assert_array_equal(ours_mask, expected["mask"])
    assert expected["mask"].sum() > 100
    for output in ("effect_maps", "variance_maps", "stat_maps", "z_maps", "p_maps"):
        ours = nb.load(folder / contrast_file(prefix, contrast, output, stat_type="t")).get_fdata()
        np.testing.assert_allclose(ours, expected[output], atol=1e-10, rtol=0,
                                   err_msg=f"sub-{subject} {contrast} {output}")
    sidecar = pd.read_json(folder / contrast_file(prefix, contrast, "contrast_jsons"),
                           typ="series")
    assert list(sidecar["FixedEffectsOf"]) == [run_prefix(subject, r) for r in runs]
    # the runs' published effect and variance maps, as BIDS URIs of this folder
    assert list(sidecar["Sources"]) == [
        f"bids::sub-{subject}/{contrast_file(run_prefix(subject, r), contrast, output)}"
        for r in runs for output in ("effect_maps", "variance_maps")]
    assert all((out / uri.removeprefix("bids::")).is_file() for uri in sidecar["Sources"])
    assert sidecar["DegreesOfFreedom"] == sum(run_dof(out, subject, r) for r in runs)


# --- default: skip with a warning -----------------------------------------------------------

def test_default_skips_the_run_with_one_warning(differ_run):
    code, stderr, out = differ_run
    assert code == 0, stderr
    lines = [line for line in stderr.splitlines() if "absent from" in line]
    assert lines == [f"glm-workflows: warning: {WARNING}"], stderr
    folder = out / "sub-01"
    for output in ("effect_maps", "z_maps", "contrast_jsons"):
        assert not (folder / contrast_file(run_prefix("01", 2), "aMinusB", output)).exists()
        assert (folder / contrast_file(run_prefix("01", 1), "aMinusB", output)).exists()
    assert not list(folder.glob(f"{run_prefix('01', 2)}_contrast-aMinusB_*"))
    for subject in ("01", "02"):
        for run in (1, 2):
            assert (out / f"sub-{subject}" / contrast_file(run_prefix(subject, run), "aOnly",
                                                           "z_maps")).exists()
    for run in (1, 2):
        assert (out / "sub-02" / contrast_file(run_prefix("02", run), "aMinusB",
                                               "z_maps")).exists()
    design = pd.read_csv(folder / model_file(run_prefix("01", 2), "design_file"), sep="\t")
    assert "b" not in design.columns and "a" in design.columns


def test_one_run_left_is_that_runs_fixed_effects(differ_run):
    """sub-01's aMinusB: compute_fixed_effects of run-1 alone, i.e. run-1's effect and
    variance in the intersection of the two runs' masks."""
    _, _, out = differ_run
    assert_subject_maps(out, "01", "aMinusB", [1])
    folder = out / "sub-01"
    expected = expected_fixed_effects(out, "01", "aMinusB", [1])
    inside = expected["mask"]
    for output in ("effect_maps", "variance_maps"):
        run_map = nb.load(folder / contrast_file(run_prefix("01", 1), "aMinusB",
                                                 output)).get_fdata()
        ours = nb.load(folder / contrast_file(bids_prefix("01", "tiny"), "aMinusB",
                                              output)).get_fdata()
        np.testing.assert_allclose(ours[inside], run_map[inside], atol=1e-10, rtol=0)


@pytest.mark.parametrize(("subject", "contrast"),
                         [("01", "aOnly"), ("02", "aOnly"), ("02", "aMinusB")])
def test_runs_with_the_contrast_are_combined(differ_run, subject, contrast):
    _, _, out = differ_run
    assert_subject_maps(out, subject, contrast, [1, 2])


# --- --strict and typos: refused before any work ------------------------------------------

def test_strict_refuses_the_run(differ_bids, tmp_path):
    code, stderr = run_cli(differ_bids, tmp_path, *CONTRASTS, "--strict")
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "aMinusB" in lines[0] and "sub-01_task-tiny_run-2" in lines[0]
    assert lines[0].startswith("glm-workflows: error: ")
    assert not (tmp_path / "out").exists() and not (tmp_path / "work").exists()


def test_strict_events_after_the_last_frame(tmp_path):
    """b's only events start after the last frame of sub-01 run-2: absent there."""
    def late_b(subject, run, events):
        if run == 2:
            events.loc[events.trial_type == "b", "onset"] = N_SCANS * T_R + 10
        return events

    bids = write_two_run_study(tmp_path / "bids", late_b, subjects=("01",))
    code, stderr = run_cli(bids, tmp_path, *CONTRASTS, "--strict")
    assert code == 2
    assert stderr.strip().splitlines() == [
        "glm-workflows: error: contrast aMinusB: condition(s) b absent from "
        f"sub-01_task-tiny_run-2 (every event starts after the run's last frame "
        f"({(N_SCANS - 1) * T_R:g} s, first onset {N_SCANS * T_R + 10:g} s)) (--strict)"]
    assert not (tmp_path / "out").exists() and not (tmp_path / "work").exists()


@pytest.mark.parametrize("strict", [[], ["--strict"]])
def test_condition_in_no_run_is_a_typo(differ_bids, tmp_path, strict):
    code, stderr = run_cli(differ_bids, tmp_path, "--contrast", "x=a - c", *strict)
    assert code == 2
    assert "unknown column 'c'" in stderr
    assert "skipped" not in stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "work").exists()


# --- designs with different columns ------------------------------------------------------------

def extra_c_in_run2(subject, run, events):
    """Run 2 has a third condition c (the last block); sub-02 has no b anywhere, and
    its run-2 b events start after the last frame."""
    if run == 2:
        events = pd.concat([events, pd.DataFrame(
            {"onset": [100.0], "duration": [10.0], "trial_type": ["c"]})], ignore_index=True)
    if subject == "02":
        if run == 1:
            events = events[events.trial_type != "b"]
        else:
            events.loc[events.trial_type == "b", "onset"] = N_SCANS * T_R + 10
    return events


@pytest.fixture(scope="module")
def columns_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("columns")
    bids = write_two_run_study(root / "bids", extra_c_in_run2)
    code, stderr = run_cli(bids, root, *CONTRASTS)
    return code, stderr, root / "out"


def test_different_columns_combine_by_contrast_name(columns_run):
    code, stderr, out = columns_run
    assert code == 0, stderr
    columns = [list(pd.read_csv(out / "sub-01" / model_file(run_prefix("01", r), "design_file"),
                                sep="\t").columns) for r in (1, 2)]
    assert "c" not in columns[0] and "c" in columns[1]
    assert columns[0][:2] == columns[1][:2] == ["a", "b"]
    for contrast in ("aMinusB", "aOnly"):
        assert_subject_maps(out, "01", contrast, [1, 2])


def test_subject_without_the_contrast_has_no_subject_map(columns_run):
    """sub-02 has b in no acquired frame: aMinusB is skipped in both runs (two warnings)
    and sub-02 has no aMinusB map at any level; its aOnly is combined as usual."""
    code, stderr, out = columns_run
    assert code == 0, stderr
    lines = [line for line in stderr.splitlines() if "skipped for this run" in line]
    late = (f" (every event starts after the run's last frame ({(N_SCANS - 1) * T_R:g} s, "
            f"first onset {N_SCANS * T_R + 10:g} s))")
    assert lines == [f"glm-workflows: warning: contrast aMinusB: condition(s) b absent from "
                     f"sub-02_task-tiny_run-{r}{late if r == 2 else ''}; skipped for this run"
                     for r in (1, 2)]
    assert "sub-02_task-tiny_run-2_events.tsv: 2 event(s) start after the last frame" in stderr
    assert not list((out / "sub-02").glob("*_contrast-aMinusB_*"))
    assert_subject_maps(out, "02", "aOnly", [1, 2])
