"""Multi-echo runs (refused raw, fitted once through fMRIPrep's combined output) and input
fallbacks (a computed mask: one warning line, recorded in the design sidecar and the
provenance), each map compared with nilearn's FirstLevelModel fitted here."""

import contextlib
import io
import json
import shutil
import warnings

import nibabel as nb
import numpy as np
import pandas as pd
import pytest
from nilearn.glm.first_level import FirstLevelModel
from nilearn.masking import compute_epi_mask

from glm_workflows.cli import main, spec_from_args
from glm_workflows.core.analyses import analysis_label, analysis_record
from glm_workflows.core.errors import InputError
from glm_workflows.core.naming import MODEL_OUTPUTS
from glm_workflows.inputs.bids import find_bids_runs
from glm_workflows.inputs.collect import collect_runs, fallback_lines
from glm_workflows.inputs.fmriprep import find_derivative_runs
from glm_workflows.synthetic import write_fmriprep_derivatives, write_multi_echo_bids

ECHO_TIMES = (0.015, 0.035, 0.055)
SPACE = "MNI152NLin2009cAsym"
PREFIX = "sub-01_task-tiny"
#: The run's outputs carry the space of the image analysed.
RUN_PREFIX = f"{PREFIX}_space-{SPACE}"
CONTRAST = ["--contrast", "aMinusB=a - b"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """``(raw, derivatives, derivatives without brain masks)`` of one multi-echo subject."""
    root = tmp_path_factory.mktemp("multi_echo")
    raw = write_multi_echo_bids(root / "raw", echo_times=ECHO_TIMES)
    derivatives = write_fmriprep_derivatives(raw, root / "fmriprep")
    no_mask = shutil.copytree(derivatives, root / "fmriprep_no_mask")
    for mask in no_mask.rglob("*_desc-brain_mask.nii.gz"):
        mask.unlink()
    return raw, derivatives, no_mask


def _cli(argv, out):
    """Run the command line into ``out`` (output and work folders): exit code, stderr."""
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        code = main([*argv, "--task", "tiny", *CONTRAST, "--output-dir", str(out / "out"),
                     "--work-dir", str(out / "work"), "--plugin", "Linear"])
    return code, stderr.getvalue()


@pytest.fixture(scope="module")
def fitted(study, tmp_path_factory):
    """The command line on the derivatives with masks and on those without:
    ``{"mask"|"no_mask": (code, stderr, output_dir)}``."""
    raw, derivatives, no_mask = study
    results = {}
    for name, folder in (("mask", derivatives), ("no_mask", no_mask)):
        out = tmp_path_factory.mktemp(name)
        code, stderr = _cli(["--bids-dir", str(raw), "--derivatives", str(folder)], out)
        results[name] = code, stderr, out / "out"
    return results


def _nilearn_z(bold, events, mask=None):
    """nilearn's z map of a - b, with the command line's defaults (computed mask if None)."""
    model = FirstLevelModel(t_r=2.0, mask_img=mask, noise_model="ar1", standardize=False,
                            hrf_model="spm", drift_model="cosine", high_pass=1 / 160,
                            slice_time_ref=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(str(bold), events=pd.read_csv(events, sep="\t"))
        return model.compute_contrast("a - b", output_type="z_score").get_fdata()


# --- finding the runs ----------------------------------------------------------------------

def test_raw_multi_echo_is_refused_in_one_line(study, tmp_path):
    """Raw echoes without a combined output: exit 2, one line naming the run and the way out,
    before any work."""
    raw, _, _ = study
    with pytest.raises(InputError, match="multi-echo raw run"):
        find_bids_runs(raw, "tiny")
    code, stderr = _cli(["--bids-dir", str(raw)], tmp_path)
    assert code == 2
    (line,) = stderr.strip().splitlines()
    assert line.startswith("glm-workflows: error: ")
    assert f"{PREFIX}_echo-1_bold.nii.gz: multi-echo raw run (echo-1, echo-2, echo-3)" in line
    assert "--derivatives" in line
    assert not (tmp_path / "work").exists()


def test_echoes_are_one_run_matched_to_the_combined_output(study):
    """One run per acquisition: the image without echo-, its mask and confounds, the raw
    events (no echo- entity), and a name without echo-."""
    raw, derivatives, _ = study
    (run,) = find_derivative_runs(raw, derivatives, "tiny")
    func = derivatives / "sub-01" / "func"
    assert run.bold_files == [str(func / f"{PREFIX}_space-{SPACE}_desc-preproc_bold.nii.gz")]
    assert run.mask_file == str(func / f"{PREFIX}_space-{SPACE}_desc-brain_mask.nii.gz")
    assert run.confounds_file == str(func / f"{PREFIX}_desc-confounds_timeseries.tsv")
    assert run.events_file == str(raw / "sub-01" / "func" / f"{PREFIX}_events.tsv")
    assert (run.prefix, run.entities, run.fallbacks.get("MaskSource")) == \
        (RUN_PREFIX, {"space": SPACE}, None)


def test_combined_output_is_the_weighted_mean_of_the_echoes(study):
    """The synthetic combined image is the echoes' mean weighted by TE exp(-TE / T2*)."""
    raw, derivatives, _ = study
    echoes = [nb.load(raw / "sub-01" / "func" / f"{PREFIX}_echo-{k}_bold.nii.gz").get_fdata()
              for k in (1, 2, 3)]
    weights = np.array(ECHO_TIMES) * np.exp(-np.array(ECHO_TIMES) / 0.04)
    expected = np.tensordot(weights / weights.sum(), np.stack(echoes), axes=1)
    combined = nb.load(derivatives / "sub-01" / "func"
                       / f"{PREFIX}_space-{SPACE}_desc-preproc_bold.nii.gz").get_fdata()
    np.testing.assert_allclose(combined, expected, rtol=1e-6, atol=1e-3)


def test_no_combined_output_says_what_was_searched_and_found(study, tmp_path):
    """Only the per-echo images: the message names the combined name searched and the
    echo- images found."""
    raw, derivatives, _ = study
    copy = shutil.copytree(derivatives, tmp_path / "fmriprep")
    next(copy.rglob(f"*_space-{SPACE}_desc-preproc_bold.nii.gz")).unlink()
    with pytest.raises(InputError) as info:
        find_derivative_runs(raw, copy, "tiny")
    message = str(info.value)
    assert "\n" not in message
    assert (f"searched {PREFIX}_space-*_desc-preproc_bold.nii[.gz] (echo-1, echo-2, echo-3 "
            "combined: no echo- entity)") in message
    assert message.endswith("found echo-1_desc-preproc, echo-2_desc-preproc, "
                            "echo-3_desc-preproc only")


def test_echoes_with_different_events_are_refused(study, tmp_path):
    """Per-echo events files must agree: the echoes are fitted as one run."""
    raw, derivatives, _ = study
    copy = shutil.copytree(raw, tmp_path / "raw")
    func = copy / "sub-01" / "func"
    events = pd.read_csv(func / f"{PREFIX}_events.tsv", sep="\t")
    for echo in (1, 2):
        events.assign(onset=events.onset + echo).to_csv(
            func / f"{PREFIX}_echo-{echo}_events.tsv", sep="\t", index=False)
    with pytest.raises(InputError, match=f"{PREFIX}_echo-2_events.tsv: events differ from "
                                         f"{PREFIX}_echo-1_events.tsv's"):
        find_derivative_runs(copy, derivatives, "tiny")


def test_mask_flag_replaces_the_computed_mask_and_its_warning(study):
    """--mask: the mask source is the file, and no fallback is left to warn about."""
    raw, derivatives, no_mask = study
    mask = next(derivatives.rglob("*_desc-brain_mask.nii.gz"))
    argv = ["--bids-dir", str(raw), "--derivatives", str(no_mask), "--task", "tiny"]
    (computed,) = collect_runs(spec_from_args(argv)[0])
    (given,) = collect_runs(spec_from_args([*argv, "--mask", str(mask)])[0])
    assert "MaskSource" in computed.fallbacks and "MaskSource" not in given.fallbacks
    assert given.sources["MaskSource"] == f"--mask {mask}"
    assert [line for line in fallback_lines([computed, computed]) if "desc-brain_mask" in line] \
        == [f"2 runs ({RUN_PREFIX}, {RUN_PREFIX}): {computed.fallbacks['MaskSource']} "
            "(recorded as MaskSource in the design sidecar)"]


# --- fitting -------------------------------------------------------------------------------

def test_one_fit_per_run_named_without_echo(fitted):
    """One set of maps, named after the run without echo-."""
    code, stderr, out = fitted["mask"]
    assert code == 0, stderr
    names = sorted(p.name for p in (out / "sub-01").iterdir())
    assert not any("echo-" in name for name in names)
    assert [n for n in names if n.endswith("_stat-z_statmap.nii.gz")] == [
        f"{RUN_PREFIX}_contrast-aMinusB_stat-z_statmap.nii.gz"]
    assert "desc-brain_mask" not in stderr  # fMRIPrep's mask was there


def test_z_map_equals_nilearn_on_the_combined_image(study, fitted):
    raw, derivatives, _ = study
    _, _, out = fitted["mask"]
    func = derivatives / "sub-01" / "func"
    expected = _nilearn_z(func / f"{PREFIX}_space-{SPACE}_desc-preproc_bold.nii.gz",
                          raw / "sub-01" / "func" / f"{PREFIX}_events.tsv",
                          func / f"{PREFIX}_space-{SPACE}_desc-brain_mask.nii.gz")
    ours = nb.load(out / "sub-01" / f"{RUN_PREFIX}_contrast-aMinusB_stat-z_statmap.nii.gz")
    assert np.count_nonzero(ours.get_fdata()) > 100
    np.testing.assert_allclose(ours.get_fdata(), expected, atol=1e-10, rtol=0)
    design = json.loads((out / "sub-01" / f"{RUN_PREFIX}_{MODEL_OUTPUTS['design_json']}")
                        .read_text())
    assert design["MaskSource"] == f"fmriprep desc-brain_mask {func}/{PREFIX}_space-{SPACE}" \
                                   "_desc-brain_mask.nii.gz"


def test_missing_mask_warns_once_and_is_recorded(fitted):
    """No desc-brain_mask: one warning line before the work, and the computed mask recorded
    as MaskSource in the design sidecar and the provenance record."""
    code, stderr, out = fitted["no_mask"]
    assert code == 0, stderr
    lines = [line for line in stderr.splitlines() if "desc-brain_mask" in line]
    assert lines == [f"glm-workflows: warning: {RUN_PREFIX}: no fMRIPrep desc-brain_mask in the "
                     f"image's space-{SPACE}: brain mask computed (nilearn compute_epi_mask of "
                     "the run, as FirstLevelModel) (recorded as MaskSource in the design "
                     "sidecar)"]
    computed = "computed (nilearn compute_epi_mask of the run, as FirstLevelModel)"
    design = json.loads((out / "sub-01" / f"{RUN_PREFIX}_{MODEL_OUTPUTS['design_json']}")
                        .read_text())
    assert design["MaskSource"] == computed
    record = analysis_record(analysis_label("tiny", "MNI152NLin2009cAsym"))
    (sources,) = json.loads((out / "sub-01" / record).read_text())["RunSources"]
    assert sources["run"] == RUN_PREFIX and sources["MaskSource"] == computed
    assert "MaskSource" in sources["Fallbacks"]


def test_maps_with_the_computed_mask_equal_nilearn(study, fitted):
    """The mask written is nilearn's compute_epi_mask of the combined run, and the z map
    equals FirstLevelModel's computing its own mask."""
    raw, _, no_mask = study
    _, _, out = fitted["no_mask"]
    bold = no_mask / "sub-01" / "func" / f"{PREFIX}_space-{SPACE}_desc-preproc_bold.nii.gz"
    mask = nb.load(out / "sub-01" / f"{RUN_PREFIX}_{MODEL_OUTPUTS['mask_file']}").get_fdata()
    np.testing.assert_array_equal(mask, compute_epi_mask(str(bold)).get_fdata())
    expected = _nilearn_z(bold, raw / "sub-01" / "func" / f"{PREFIX}_events.tsv")
    ours = nb.load(out / "sub-01" / f"{RUN_PREFIX}_contrast-aMinusB_stat-z_statmap.nii.gz")
    np.testing.assert_allclose(ours.get_fdata(), expected, atol=1e-10, rtol=0)
