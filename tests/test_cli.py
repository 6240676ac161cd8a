"""The command line: seed run, BIDS input, cached rerun, and bad input."""

import shutil
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd
import pytest

from glm_workflows.cli import main
from glm_workflows.core.entities import bids_prefix
from glm_workflows.core.naming import contrast_file, model_file, report_page

PREFIX = bids_prefix("01", "auditory")
Z_MAP = contrast_file(PREFIX, "activeMinusRest", "z_maps")


def snapshot(folder: Path) -> dict:
    """Every file under ``folder`` with its size and modification time (but the runs'
    log files in ``logs/``: a failed run keeps its log)."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))
            if p.is_file() and p.relative_to(folder).parts[0] != "logs"}


@pytest.fixture(scope="module")
def cli_seed(seed_cli):
    """The seed analysis from the command line (run once per session): root and argv."""
    root, argv, _ = seed_cli
    return root, argv


def test_seed_from_command_line(seed_cli):
    """No input flag: the SPM auditory data under --data-dir, thresholds and tables printed."""
    root, _, printed = seed_cli
    assert "done    sub_01_task_auditory_wf.fit" in printed
    assert "contrast activeMinusRest: fdr alpha=0.05 -> z > 2.931, 5 cluster(s)" in printed
    assert "-63.0  -6.0 42.0  10.067573" in printed
    assert (root / "out" / "sub-01" / Z_MAP).exists()


def test_cached_rerun_from_command_line(cli_seed, capsys):
    """A second run checked by Nipype (``--recheck``; else nothing changed is answered from
    the run's stamp, tests/test_up_to_date.py) reports every node but the sinks as cached."""
    _, argv = cli_seed
    assert main([*argv, "--recheck"]) == 0
    printed = capsys.readouterr().out
    assert "(3 node(s) run, 9 cached)" in printed  # the model's and the contrasts' sinks
    assert "cached  sub_01_task_auditory_wf.fit" in printed


@pytest.mark.slow
def test_bids_input_gives_the_same_maps(cli_seed, bids_dir, tmp_path, capsys):
    """The BIDS copy (TR from its sidecar) gives the maps of the 96 Analyze scans."""
    root, _ = cli_seed
    assert main(["--bids-dir", str(bids_dir), "--task", "auditory", "--subject", "01",
                 "--output-dir", str(tmp_path / "out"), "--work-dir", str(tmp_path / "work")]) == 0
    from_bids = nb.load(tmp_path / "out" / "sub-01" / Z_MAP)
    from_files = nb.load(root / "out" / "sub-01" / Z_MAP)
    np.testing.assert_allclose(from_bids.affine, from_files.affine)
    np.testing.assert_allclose(from_bids.get_fdata(), from_files.get_fdata(), rtol=0, atol=1e-10)


@pytest.mark.slow
def test_file_list_input_with_own_contrast(cli_seed, spm_scans, spm_events, tmp_path, capsys):
    """--func/--events/--tr with a weight-vector contrast and fpr thresholding."""
    root, _ = cli_seed
    argv = ["--func", *spm_scans, "--events", spm_events, "--tr", "7", "--subject", "02",
            "--contrast", "byWeights=[1, -1, 0, 0, 0, 0, 0, 0, 0, 0, 0]",
            "--height-control", "fpr", "--alpha", "0.001",
            "--output-dir", str(tmp_path / "out"), "--work-dir", str(tmp_path / "work")]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "sub-02_task-auditory contrast byWeights: fpr alpha=0.001 -> z > 3.090" in printed
    by_weights = nb.load(tmp_path / "out" / "sub-02" /
                         contrast_file(bids_prefix("02", "auditory"), "byWeights", "z_maps"))
    by_expression = nb.load(root / "out" / "sub-01" / Z_MAP)
    np.testing.assert_array_equal(by_weights.get_fdata(), by_expression.get_fdata())


def _scan_copies(spm_scans, folder, count=4):
    """Copies of the first scans (header and data) to damage."""
    folder.mkdir()
    copies = []
    for scan in spm_scans[:count]:
        for ext in (".img", ".hdr"):
            shutil.copy(Path(scan).with_suffix(ext), folder)
        copies.append(str(folder / Path(scan).name))
    return copies


def _tsv(path: Path, table: dict) -> str:
    """Write ``table`` (column -> values) as a TSV file; return its path."""
    import pandas as pd

    pd.DataFrame(table).to_csv(path, sep="\t", index=False)
    return str(path)


def _design_cases(tmp, spm_scans, spm_events):
    """(argv changes, expected message) for designs and contrasts that cannot be estimated
    or would fail later: zero, collinear or colliding regressors, non-finite confounds,
    out-of-range model settings, no residual degrees of freedom, contrasts that cannot be
    parsed, estimated or written."""
    import pandas as pd

    from glm_workflows.core.design import make_design_matrix
    from glm_workflows.core.run_tables import read_events

    events = pd.read_csv(spm_events, sep="\t")
    active = make_design_matrix(read_events(spm_events, 96, 7.0, 0.0), 96, 7.0,
                                hrf_model="spm", drift_model="auto", high_pass=1 / 160,
                                drift_order=1, slice_time_ref=0.0)["active"].to_numpy()
    ramp = np.linspace(-1, 1, 96)
    zero_modulation = _tsv(tmp / "zero_modulation.tsv", {
        **events, "modulation": np.where(events["trial_type"] == "active", 0.0, 1.0)})
    at_last_frame = tmp / "at_last_frame.tsv"
    at_last_frame.write_text("onset\tduration\ttrial_type\n0\t42\trest\n665\t42\tactive\n")
    short = tmp / "short.tsv"
    short.write_text("onset\tduration\ttrial_type\n0\t14\trest\n14\t14\tactive\n")
    named = {name: tmp / f"{name}.tsv" for name in ("constant", "drift_1", "a_derivative")}
    for name, path in named.items():
        path.write_text(f"onset\tduration\ttrial_type\n0\t42\t{name}\n42\t42\ta\n")
    same = _tsv(tmp / "same.tsv", {"motion1": active})
    collinear = _tsv(tmp / "collinear.tsv", {"m1": ramp, "m2": 2 * ramp})
    infinite = ramp.copy()
    infinite[4] = np.inf
    base = ["--func", *spm_scans, "--events", spm_events, "--tr", "7"]
    long_sum = " + ".join(["active"] * 1000)
    return {
        "zero modulation": (
            ["--func", *spm_scans, "--events", zero_modulation, "--tr", "7"],
            "contrast activeMinusRest: not estimable: column 'active' is zero in every scan"),
        "zero condition unused": (
            ["--func", *spm_scans, "--events", zero_modulation, "--tr", "7",
             "--contrast", "r=rest"],
            "zero_modulation.tsv: condition 'active' cannot be estimated: column 'active' is "
            "zero in every scan"),
        "onset at last frame": (
            ["--func", *spm_scans, "--events", str(at_last_frame), "--tr", "7"],
            "column 'active' is zero in every scan"),
        "confound equals condition": (
            [*base, "--confounds", same],
            "contrast activeMinusRest: not estimable: columns active, motion1 are linearly "
            "dependent"),
        "confound equals unused condition": (
            [*base, "--confounds", same, "--contrast", "r=rest"],
            "condition 'active' cannot be estimated: columns active, motion1 are linearly "
            "dependent"),
        "contrast on collinear confounds": (
            [*base, "--confounds", collinear, "--contrast", "x=m1"],
            "contrast x: not estimable: columns m1, m2 are linearly dependent"),
        "condition named constant": (
            ["--func", *spm_scans, "--events", str(named["constant"]), "--tr", "7"],
            "constant.tsv: design column 'constant' would come from both condition 'constant' "
            "and the constant"),
        "condition named drift": (
            ["--func", *spm_scans, "--events", str(named["drift_1"]), "--tr", "7"],
            "drift_1.tsv: design column 'drift_1' would come from both condition 'drift_1' "
            "and the drift model"),
        "condition named derivative": (
            ["--func", *spm_scans, "--events", str(named["a_derivative"]), "--tr", "7",
             "--hrf-model", "spm + derivative"],
            "design column 'a_derivative' would come from both condition 'a' and condition "
            "'a_derivative'"),
        "confound named condition": (
            [*base, "--confounds", _tsv(tmp / "named.tsv", {"active": ramp})],
            "design column 'active' would come from both condition 'active' and confound "
            "column 'active' of"),
        "confound named constant": (
            [*base, "--confounds", _tsv(tmp / "constant_confound.tsv", {"constant": ramp})],
            "constant_confound.tsv: design column 'constant' would come from both confound "
            "column 'constant' and the constant"),
        "confound inf": (
            [*base, "--confounds", _tsv(tmp / "inf.tsv", {"m1": ramp, "m2": infinite})],
            "inf.tsv: column 'm2' line 6: expected a finite number, got inf"),
        "onset inf": (
            ["--func", *spm_scans, "--events",
             _tsv(tmp / "onset_inf.tsv", {**events, "onset": [*events["onset"][:-1], np.inf]}),
             "--tr", "7"],
            "onset_inf.tsv: column 'onset' line 17: expected a finite number, got inf"),
        "long expression unknown column": (
            [*base, "--contrast", f"x={long_sum} - resting"], "unknown column 'resting'"),
        "long expression constant": (
            [*base, "--contrast", f"x={long_sum} + 1"], "without a constant term"),
        "deeply nested expression": (
            [*base, "--contrast", "x=" + "-" * 5000 + "active"], "too deeply nested to parse"),
        "negative drift order": ([*base, "--drift-order", "-1"],
                                 "drift_order: expected an order >= 0, got -1"),
        "polynomial order": ([*base, "--drift-model", "polynomial", "--drift-order", "96"],
                             "drift_order: expected at most 95 for a run of 96 scans"),
        "slice time ref": ([*base, "--slice-time-ref", "1.5"],
                           "slice_time_ref: expected a number in [0, 1], got 1.5"),
        "hrf model": ([*base, "--hrf-model", "spm+derivative"], "hrf_model: expected one of"),
        "high pass": ([*base, "--high-pass", "0.1"], "high_pass: expected a frequency between"),
        "fewer scans than regressors": (
            ["--func", *spm_scans[:5], "--events", str(short), "--tr", "7",
             "--drift-model", "polynomial", "--drift-order", "4"],
            "short.tsv: the run has 5 scans for 7 regressors: no residual degrees of freedom"),
        "dependent F rows": ([*base, "--f-contrast", "x=active - rest, rest - active"],
                             "its 2 rows are linearly dependent (rank 1)"),
        "long contrast name": ([*base, "--contrast", "a" * 250 + "=active"],
                               "name too long: its output file names would have up to 321 "
                               "bytes"),
    }


def _bad_input_cases(tmp, spm_scans, spm_events, bids_dir):
    """(argv changes, expected message) for each kind of bad input."""
    scans = _scan_copies(spm_scans, tmp / "scans")
    corrupt = tmp / "corrupt.nii.gz"
    corrupt.write_bytes(b"\x1f\x8b not really gzip")
    small = tmp / "small.nii"
    nb.Nifti1Image(np.zeros((32, 32, 32), np.int16), np.eye(4)).to_filename(small)
    no_type = tmp / "no_type.tsv"
    no_type.write_text("onset\tduration\n0\t42\n")
    late = tmp / "late.tsv"
    late.write_text("onset\tduration\ttrial_type\n0\t42\trest\n1000\t42\tactive\n")
    text_onset = tmp / "text_onset.tsv"
    text_onset.write_text("onset\tduration\ttrial_type\nsoon\t42\trest\n")
    bids_bold = str(bids_dir / "sub-01" / "func" / "sub-01_task-auditory_bold.nii.gz")
    base = ["--func", *spm_scans, "--events", spm_events, "--tr", "7"]
    repeated_events = tmp / "repeated_events.tsv"
    repeated_events.write_text("onset\tduration\ttrial_type\tonset\n0\t42\trest\t1\n"
                               "42\t42\tactive\t2\n")
    repeated_confounds = tmp / "repeated_confounds.tsv"
    rng = np.random.default_rng(0)
    pd.DataFrame(rng.normal(size=(96, 3)), columns=["trans_x", "rot_x", "trans_x"]).to_csv(
        repeated_confounds, sep="\t", index=False)
    milliseconds = tmp / "milliseconds.tsv"
    events = pd.read_csv(spm_events, sep="\t")
    events.assign(onset=events["onset"] * 1000, duration=events["duration"] * 1000).to_csv(
        milliseconds, sep="\t", index=False)
    return {
        "onsets in milliseconds": (["--func", *spm_scans, "--events", str(milliseconds),
                                    "--tr", "7"],
                                   "contrast activeMinusRest: no run of the analysis can "
                                   "estimate it: condition(s) active absent from "
                                   "sub-01_task-auditory (every event starts after the run's "
                                   "last frame (665 s, first onset 42000 s; onsets in "
                                   "milliseconds?))"),
        "late condition": (["--func", *spm_scans, "--events", str(late), "--tr", "7"],
                           "contrast activeMinusRest: no run of the analysis can estimate "
                           "it: condition(s) active absent from sub-01_task-auditory (every "
                           "event starts after the run's last frame (665 s, first onset "
                           "1000 s))"),
        "events repeated column": (["--func", *spm_scans, "--events", str(repeated_events),
                                    "--tr", "7"],
                                   "repeated_events.tsv: column 'onset' appears 2 times in "
                                   "the header"),
        "confounds repeated column": ([*base, "--confounds", str(repeated_confounds)],
                                      "repeated_confounds.tsv: column 'trans_x' appears 2 "
                                      "times in the header"),
        "tr vs header": (["--func", bids_bold, "--events", spm_events, "--tr", "2"],
                         "sub-01_task-auditory_bold.nii.gz: the header says TR = 7 s but the "
                         "run's TR (--tr or the sidecar's RepetitionTime) is 2 s"),
        "onset not a number": (["--func", *spm_scans, "--events", str(text_onset), "--tr", "7"],
                               "text_onset.tsv"),
        "path in label": ([*base, "--subject", "../../etc"], "use letters and digits only"),
        "missing file": (["--func", str(tmp / "absent.img"), "--events", spm_events,
                          "--tr", "7"], "absent.img: file not found"),
        "corrupt image": (["--func", str(corrupt), "--events", spm_events, "--tr", "7"],
                          "corrupt.nii.gz: not a readable NIfTI/Analyze image"),
        "shapes differ": (["--func", *scans, str(small), "--events", spm_events, "--tr", "7"],
                          "small.nii: shape (32, 32, 32) differs from (64, 64, 64)"),
        "events columns": (["--func", *spm_scans, "--events", str(no_type), "--tr", "7"],
                           "no_type.tsv: missing column(s) trial_type"),
        "onset late": (["--func", *spm_scans, "--events", str(late), "--tr", "7", "--strict"],
                       "contrast activeMinusRest: condition(s) active absent from "
                       "sub-01_task-auditory (every event starts after the run's last frame "
                       "(665 s, first onset 1000 s)) (--strict)"),
        "unknown column": ([*base, "--contrast", "x=active - resting"],
                           "unknown column 'resting'; available columns: active, rest"),
        "vector length": ([*base, "--contrast", "x=[1, -1]"],
                          "2 weights for 11 design columns"),
        "tr zero": (["--func", *spm_scans, "--events", spm_events, "--tr", "0"],
                    "--tr: expected a positive number of seconds, got 0.0"),
        "tr negative": (["--func", *spm_scans, "--events", spm_events, "--tr", "-7"],
                        "--tr: expected a positive number of seconds, got -7.0"),
        "bad name": ([*base, "--contrast", "../x=active"], "use letters and digits only"),
        "code injection": ([*base, "--contrast", "x=__import__('os').system('echo hi')"],
                           "only column names, numbers and + - * / ( ) are allowed"),
        "no data offline": (["--data-dir", str(tmp / "empty")],
                            "SPM auditory data not found under"),
        **_design_cases(tmp, spm_scans, spm_events),
    }


CASES = ["onsets in milliseconds", "late condition", "events repeated column",
         "confounds repeated column", "tr vs header", "onset not a number", "path in label",
         "missing file", "corrupt image", "shapes differ", "events columns", "onset late",
         "unknown column", "vector length", "tr zero", "tr negative", "bad name",
         "code injection", "no data offline",
         "zero modulation", "zero condition unused", "onset at last frame",
         "confound equals condition", "confound equals unused condition",
         "contrast on collinear confounds", "condition named constant", "condition named drift",
         "condition named derivative", "confound named condition", "confound named constant",
         "confound inf", "onset inf", "long expression unknown column",
         "long expression constant", "deeply nested expression", "negative drift order",
         "polynomial order", "slice time ref", "hrf model", "high pass",
         "fewer scans than regressors", "dependent F rows", "long contrast name"]


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_and_touches_nothing(case, cli_seed, tmp_path, spm_scans,
                                                   spm_events, bids_dir, capsys):
    """Each bad input: exit code 2, one line naming the problem, earlier outputs untouched."""
    root, _ = cli_seed
    argv, message = _bad_input_cases(tmp_path, spm_scans, spm_events, bids_dir)[case]
    output_dir = root / "out"
    before = snapshot(output_dir)
    assert main([*argv, "--output-dir", str(output_dir), "--work-dir", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("glm-workflows: error: ")
    assert message in err[-1]
    assert len([line for line in err if line.startswith("glm-workflows")]) == 1
    assert snapshot(output_dir) == before
    assert not (tmp_path / "w").exists(), "no work may start on bad input"


def test_unexpected_error_in_validation_is_one_line(monkeypatch, tmp_path, spm_scans,
                                                    spm_events, capsys):
    """Whatever a run's validation meets (here a failure inside the design) is one line
    naming the run's events file and the exception, exit 2, before any work."""
    def broken(*args, **kwargs):
        raise RuntimeError("something\nunexpected")

    monkeypatch.setattr("glm_workflows.core.design.first_level_design", broken)
    assert main(["--func", *spm_scans, "--events", spm_events, "--tr", "7", "--output-dir",
                 str(tmp_path / "out"), "--work-dir", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"glm-workflows: error: {spm_events}: cannot be checked "
                   "(RuntimeError: something unexpected)"]
    assert not (tmp_path / "w").exists()


@pytest.mark.slow
def test_events_after_the_last_frame_are_dropped_with_one_warning(spm_scans, spm_events,
                                                                  tmp_path, capsys):
    """Slice-time reference 0.5: the last frame is at (96 - 1 + 0.5) * 7 = 668.5 s, so an
    event at 667 s is kept and one at 670 s (before 96 * 7 = 672 s) dropped with one warning
    line; the run succeeds and its design is nilearn's on the kept events."""
    import pandas as pd
    from nilearn.glm.first_level import make_first_level_design_matrix

    seed = pd.read_csv(spm_events, sep="\t")
    kept = pd.concat([seed, pd.DataFrame({"onset": [667.0], "duration": [42.0],
                                          "trial_type": ["rest"]})], ignore_index=True)
    events = tmp_path / "events.tsv"
    pd.concat([kept, pd.DataFrame({"onset": [670.0], "duration": [42.0],
                                   "trial_type": ["active"]})]).to_csv(events, sep="\t",
                                                                       index=False)
    out = tmp_path / "out"
    assert main(["--func", *spm_scans, "--events", str(events), "--tr", "7",
                 "--slice-time-ref", "0.5", "--contrast", "activeMinusRest=active - rest",
                 "--output-dir", str(out), "--work-dir", str(tmp_path / "work")]) == 0
    err = capsys.readouterr().err.splitlines()
    assert [line for line in err if line.startswith("glm-workflows")] == [
        f"glm-workflows: warning: {events}: 1 event(s) start after the last frame (668.5 s) "
        "and are dropped"]
    expected = make_first_level_design_matrix(
        np.linspace(0.5 * 7, 95.5 * 7, 96), kept, hrf_model="spm", drift_model="cosine",
        high_pass=1 / 160)
    design = pd.read_csv(out / "sub-01" / model_file(PREFIX, "design_file"), sep="\t",
                         float_precision="round_trip")
    assert list(design.columns) == list(expected.columns)
    np.testing.assert_array_equal(design.to_numpy(), expected.to_numpy())


def test_failing_node_is_reported_with_crash_file(cli_seed, tmp_path, spm_scans, spm_events,
                                                  capsys):
    """Gzipped scan data cut short, its last four bytes gzip's record of the whole size (the
    checks before any work read that record and pass it), fails in a node: exit 1, node
    and crash file named. (A file merely cut short is refused before any work.)"""
    root, _ = cli_seed
    scans = _scan_copies(spm_scans, tmp_path / "scans", count=96)
    truncated = Path(scans[2]).with_suffix(".nii.gz")  # the scan as one gzipped file
    nb.save(nb.Nifti1Image(np.asanyarray(nb.load(scans[2]).dataobj), nb.load(scans[2]).affine),
            truncated)
    whole = truncated.read_bytes()
    truncated.write_bytes(whole[:1000] + whole[-4:])  # gzip's last 4 bytes: the inflated size
    scans[2] = str(truncated)
    output_dir = root / "out"
    before = snapshot(output_dir)
    code = main(["--func", *scans, "--events", spm_events, "--tr", "7",
                 "--output-dir", str(output_dir), "--work-dir", str(tmp_path / "work")])
    assert code == 1
    err = capsys.readouterr().err
    assert "error: node glm_workflows_wf.sub_01_task_auditory_wf.concatenate failed" in err
    assert "crash file: " in err and str(tmp_path / "work" / "crash") in err
    assert snapshot(output_dir) == before


@pytest.mark.slow
def test_multiproc_gives_the_linear_maps(cli_seed, data_dir, tmp_path, capsys):
    """Two processes (MultiProc) produce the same maps and tables as the Linear run."""
    root, _ = cli_seed
    assert main(["--data-dir", str(data_dir), "--plugin", "MultiProc", "--n-procs", "2",
                 "--output-dir", str(tmp_path / "out"), "--work-dir", str(tmp_path / "work")]) == 0
    assert "(12 node(s) run, 0 cached)" in capsys.readouterr().out
    for name in (Z_MAP, contrast_file(PREFIX, "effectsOfInterest", "z_maps")):
        np.testing.assert_array_equal(nb.load(tmp_path / "out" / "sub-01" / name).get_fdata(),
                                      nb.load(root / "out" / "sub-01" / name).get_fdata())
    table = contrast_file(PREFIX, "activeMinusRest", "cluster_tables")
    assert (tmp_path / "out" / "sub-01" / table).read_text() == \
        (root / "out" / "sub-01" / table).read_text()


def test_output_dir_that_is_a_file_is_refused(tmp_path, spm_scans, spm_events, capsys):
    """An output directory that cannot be created is refused before any work."""
    blocker = tmp_path / "a_file"
    blocker.write_text("keep me")
    code = main(["--func", *spm_scans, "--events", spm_events, "--tr", "7",
                 "--output-dir", str(blocker / "out"), "--work-dir", str(tmp_path / "w")])
    assert code == 2
    assert str(blocker) in capsys.readouterr().err
    assert blocker.read_text() == "keep me" and not (tmp_path / "w").exists()


def _independent_threshold(flags, z, mask):
    """The height threshold the flags ask for, from the z map in the mask (None: fdr finds
    no discovery), computed with nilearn's fdr_threshold or scipy, not by the workflow."""
    from nilearn.glm import fdr_threshold
    from scipy.stats import norm

    options = dict(zip(flags[::2], flags[1::2], strict=True))
    control, alpha = options.get("--height-control", "fdr"), float(options.get("--alpha", 0.05))
    threshold = (fdr_threshold(z[mask], alpha) if control == "fdr"
                 else norm.isf(alpha / mask.sum()))
    return None if np.isinf(threshold) else float(threshold)


@pytest.mark.slow
@pytest.mark.parametrize("flags, summary, report_line", [
    (["--height-control", "fdr", "--alpha", "1e-30"],
     "fdr alpha=1e-30 -> no voxel survives", "no voxel survives FDR q &lt; 1e-30."),
    (["--height-control", "bonferroni", "--alpha", "1e-30"],
     "bonferroni alpha=1e-30 -> z > {threshold:.3f}, no voxel survives",
     "no voxel survives Bonferroni-corrected p &lt; 1e-30."),
    (["--cluster-threshold", "100000"],
     "fdr alpha=0.05 -> z > {threshold:.3f}, no voxel survives",
     "no voxel survives FDR q &lt; 0.05 with clusters ≥ 100000 voxels."),
], ids=["fdr-without-discovery", "bonferroni-above-maximum", "extent-removes-every-cluster"])
def test_nothing_survives_is_a_result(flags, summary, report_line, data_dir, tmp_path, capsys):
    """No voxel survives: exit 0, every thresholded map all zeros and every table a header
    without rows; the sidecar, the printed summary and the report say so."""
    import json

    out = tmp_path / "out"
    assert main(["--data-dir", str(data_dir), *flags, "--output-dir", str(out),
                 "--work-dir", str(tmp_path / "work")]) == 0
    folder = out / "sub-01"
    z = nb.load(folder / Z_MAP).get_fdata()
    mask = nb.load(folder / model_file(PREFIX, "mask_file")).get_fdata() != 0
    for contrast in ("activeMinusRest", "effectsOfInterest"):
        thresholded = nb.load(folder / contrast_file(PREFIX, contrast, "thresholded_maps"))
        assert thresholded.shape == z.shape and not thresholded.get_fdata().any()
        assert (folder / contrast_file(PREFIX, contrast, "cluster_tables")).read_text() == \
            "Cluster ID\tX\tY\tZ\tPeak Stat\tCluster Size (mm3)\n"
        for figure in ("thresholded_figures", "ortho_figures"):
            assert (folder / contrast_file(PREFIX, contrast, figure)).stat().st_size
    settings = json.loads(
        (folder / contrast_file(PREFIX, "activeMinusRest", "threshold_jsons")).read_text())
    threshold = _independent_threshold(flags, z, mask)
    assert settings["NoSurvivingVoxels"] is True
    assert settings["Threshold"] == (None if threshold is None else pytest.approx(threshold))
    if threshold is not None:  # voxels pass the height threshold only if the extent is at fault
        assert (z[mask] >= threshold).any() == ("with clusters" in report_line)
    printed = capsys.readouterr().out
    assert f"{PREFIX} contrast activeMinusRest: {summary.format(threshold=threshold)}\n" in printed
    report = (out / report_page("01")).read_text(encoding="utf-8")
    assert f'<p class="note no-survivors">Result: {report_line}</p>' in report
    assert 'id="clusters-' not in report


@pytest.mark.slow
def test_table_lists_only_clusters_left_in_the_map(data_dir, tmp_path, capsys):
    """A cluster extent above the table's minimum (40 > 20 voxels): the table lists exactly
    the clusters of the thresholded map, the connected components of z >= threshold (faces
    connectivity, as nilearn) of at least 40 voxels."""
    import json

    import pandas as pd
    from scipy import ndimage

    out = tmp_path / "out"
    assert main(["--data-dir", str(data_dir), "--cluster-threshold", "40", "--output-dir",
                 str(out), "--work-dir", str(tmp_path / "work")]) == 0
    folder = out / "sub-01"
    threshold = json.loads(
        (folder / contrast_file(PREFIX, "activeMinusRest", "threshold_jsons")).read_text())
    z_img = nb.load(folder / Z_MAP)
    labels, _ = ndimage.label(z_img.get_fdata() >= threshold["Threshold"])
    sizes = np.bincount(labels.ravel())[1:]
    voxel_mm3 = float(np.prod(z_img.header.get_zooms()[:3]))
    expected = sorted(float(size * voxel_mm3) for size in sizes[sizes >= 40])
    assert sizes[(sizes >= 20) & (sizes < 40)].size > 0, "no 20..39-voxel cluster to leave out"
    table = pd.read_csv(folder / contrast_file(PREFIX, "activeMinusRest", "cluster_tables"),
                        sep="\t")
    assert sorted(table["Cluster Size (mm3)"].dropna().tolist()) == expected
    thresholded = nb.load(
        folder / contrast_file(PREFIX, "activeMinusRest", "thresholded_maps")).get_fdata()
    kept = np.bincount(ndimage.label(thresholded != 0)[0].ravel())[1:]
    assert sorted(float(size * voxel_mm3) for size in kept) == expected


@pytest.mark.slow
def test_nothing_survives_at_the_subject_level(split_bids_dir, tmp_path, capsys):
    """Two runs combined by fixed effects, a cluster extent no cluster reaches: the runs'
    and the subject's maps are empty, their tables have no row, and the run exits 0."""
    import json

    out = tmp_path / "out"
    assert main(["--bids-dir", str(split_bids_dir), "--task", "auditory", "--subject", "01",
                 "--cluster-threshold", "100000", "--output-dir", str(out),
                 "--work-dir", str(tmp_path / "work")]) == 0
    printed = capsys.readouterr().out
    for run in (None, "1", "2"):
        prefix = bids_prefix("01", "auditory", run=run)
        path = {output: out / "sub-01" / contrast_file(prefix, "activeMinusRest", output)
                for output in ("thresholded_maps", "cluster_tables", "threshold_jsons", "z_maps")}
        assert not nb.load(path["thresholded_maps"]).get_fdata().any()
        assert path["cluster_tables"].read_text().count("\n") == 1
        settings = json.loads(path["threshold_jsons"].read_text())
        assert settings["NoSurvivingVoxels"] is True and settings["Threshold"] > 0
        z = nb.load(path["z_maps"]).get_fdata()
        assert (z >= settings["Threshold"]).any(), "voxels pass the height threshold"
        assert (f"{prefix} contrast activeMinusRest: fdr alpha=0.05 -> "
                f"z > {settings['Threshold']:.3f}, no voxel survives") in printed
    report = (out / report_page("01")).read_text(encoding="utf-8")
    assert report.count("no voxel survives FDR q &lt; 0.05 with clusters ≥ 100000 voxels") == 6


@pytest.mark.parametrize("flags, message", [
    (["--participants-per-task", "0", "--slurm-array"],
     "--participants-per-task: expected a number >= 1, got 0"),
    (["--group", "one-sample", "--permutations", "-1"],
     "--permutations: expected a number >= 0, got -1"),
    (["--group", "one-sample", "--permutation-chunks", "0"],
     "--permutation-chunks: expected a number >= 1, got 0"),
    (["--group", "one-sample", "--cluster-forming-p", "2"],
     "--cluster-forming-p: expected a p value in (0, 1), got 2.0"),
    (["--min-kept-volumes", "0"], "--min-kept-volumes: expected a number >= 1, got 0"),
    (["--table-min-cluster-size", "-1"],
     "--table-min-cluster-size: expected a number >= 0, got -1"),
    (["--n-procs", "0"], "--n-procs: expected a positive number, got 0"),
    (["--alpha", "2"], "alpha"),
])
def test_flag_values_are_checked_before_any_data_is_read(tmp_path, capsys, flags, message):
    """Values wrong whatever the data are refused first: the study folder does not even
    exist, and no work or output folder is made."""
    argv = ["--bids-dir", str(tmp_path / "absent"), "--task", "x", *flags,
            "--output-dir", str(tmp_path / "out"), "--work-dir", str(tmp_path / "w")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("glm-workflows: error: ") and message in err[0]
    assert not (tmp_path / "w").exists() and not (tmp_path / "out").exists()
