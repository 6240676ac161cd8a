"""The command line: seed run, BIDS input, cached rerun, and bad input."""

import shutil
from pathlib import Path

import nibabel as nb
import numpy as np
import pytest

from glm_workflows.cli import main

PREFIX = "sub-01_task-auditory"
Z_MAP = f"{PREFIX}_contrast-activeMinusRest_stat-z_statmap.nii.gz"


def snapshot(folder: Path) -> dict:
    """Every file under ``folder`` with its size and modification time."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def cli_seed(tmp_path_factory, data_dir):
    """The seed analysis from the command line with default settings."""
    root = tmp_path_factory.mktemp("cli")
    argv = ["--data-dir", str(data_dir), "--output-dir", str(root / "out"),
            "--work-dir", str(root / "work")]
    return root, argv


def test_seed_from_command_line(cli_seed, capsys):
    """No input flag: the SPM auditory data under --data-dir, thresholds and tables printed."""
    root, argv = cli_seed
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "done    sub_01_task_auditory_wf.fit" in printed
    assert "contrast activeMinusRest: fdr alpha=0.05 -> z > 2.931, 5 cluster(s)" in printed
    assert "-63.0  -6.0 42.0  10.067573" in printed
    assert (root / "out" / "sub-01" / Z_MAP).exists()


def test_cached_rerun_from_command_line(cli_seed, capsys):
    """An identical second run reports every node but the sink as cached."""
    _, argv = cli_seed
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "(1 node(s) run, 12 cached)" in printed
    assert "cached  sub_01_task_auditory_wf.fit" in printed


def test_bids_input_gives_the_same_maps(cli_seed, bids_dir, tmp_path, capsys):
    """The BIDS copy (TR from its sidecar) gives the maps of the 96 Analyze scans."""
    root, _ = cli_seed
    assert main(["--bids-dir", str(bids_dir), "--task", "auditory", "--subject", "01",
                 "--output-dir", str(tmp_path / "out"), "--work-dir", str(tmp_path / "work")]) == 0
    from_bids = nb.load(tmp_path / "out" / "sub-01" / Z_MAP)
    from_files = nb.load(root / "out" / "sub-01" / Z_MAP)
    np.testing.assert_allclose(from_bids.affine, from_files.affine)
    np.testing.assert_allclose(from_bids.get_fdata(), from_files.get_fdata(), rtol=0, atol=1e-10)


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
                         "sub-02_task-auditory_contrast-byWeights_stat-z_statmap.nii.gz")
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
    return {
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
        "onset late": (["--func", *spm_scans, "--events", str(late), "--tr", "7"],
                       "late.tsv: onset 1000 s is beyond the end of the run"),
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
    }


CASES = ["tr vs header", "onset not a number", "path in label",
         "missing file", "corrupt image", "shapes differ", "events columns", "onset late",
         "unknown column", "vector length", "tr zero", "tr negative", "bad name",
         "code injection", "no data offline"]


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


def test_failing_node_is_reported_with_crash_file(cli_seed, tmp_path, spm_scans, spm_events,
                                                  capsys):
    """Scan data cut short (header intact) fails in a node: exit 1, node and crash file named."""
    root, _ = cli_seed
    scans = _scan_copies(spm_scans, tmp_path / "scans", count=96)
    truncated = Path(scans[2]).with_suffix(".img")
    truncated.write_bytes(truncated.read_bytes()[:1000])
    output_dir = root / "out"
    before = snapshot(output_dir)
    code = main(["--func", *scans, "--events", spm_events, "--tr", "7",
                 "--output-dir", str(output_dir), "--work-dir", str(tmp_path / "work")])
    assert code == 1
    err = capsys.readouterr().err
    assert "error: node glm_workflows_wf.sub_01_task_auditory_wf.concatenate failed" in err
    assert "crash file: " in err and str(tmp_path / "work" / "crash") in err
    assert snapshot(output_dir) == before


def test_multiproc_gives_the_linear_maps(cli_seed, data_dir, tmp_path, capsys):
    """Two processes (MultiProc) produce the same maps and tables as the Linear run."""
    root, _ = cli_seed
    assert main(["--data-dir", str(data_dir), "--plugin", "MultiProc", "--n-procs", "2",
                 "--output-dir", str(tmp_path / "out"), "--work-dir", str(tmp_path / "work")]) == 0
    assert "(13 node(s) run, 0 cached)" in capsys.readouterr().out
    for name in (Z_MAP, f"{PREFIX}_contrast-effectsOfInterest_stat-z_statmap.nii.gz"):
        np.testing.assert_array_equal(nb.load(tmp_path / "out" / "sub-01" / name).get_fdata(),
                                      nb.load(root / "out" / "sub-01" / name).get_fdata())
    table = f"{PREFIX}_contrast-activeMinusRest_clusters.tsv"
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
