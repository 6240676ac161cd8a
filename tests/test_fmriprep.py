"""fMRIPrep studies through the command line: derivatives, brain masks, nilearn's confound
strategies and censored volumes, each run's maps equal to nilearn's FirstLevelModel fed by
``load_confounds_strategy`` with the same settings."""

import json

import nibabel as nb
import numpy as np
import pandas as pd
import pytest
from nilearn.glm.first_level import FirstLevelModel
from nilearn.interfaces.fmriprep import load_confounds_strategy

from glm_workflows.cli import main
from glm_workflows.core.naming import MODEL_OUTPUTS

PREFIX = "sub-01_task-auditory"
#: The outputs carry the space of the fMRIPrep image analysed (the fixture's).
OUT_PREFIX = f"{PREFIX}_space-MNI152NLin2009cAsym"

#: (strategy, options): without and with censoring (scrubbing by FD and std DVARS).
CASES = {
    "simple": ("simple", {"motion": "basic", "wm_csf": "basic"}),
    "scrubbing": ("scrubbing", {"motion": "basic", "wm_csf": "basic", "fd_threshold": 0.5,
                                "std_dvars_threshold": 1.5, "scrub": 0}),
}


def _flags(options: dict) -> list:
    return [item for name, value in options.items()
            for item in (f"--{name.replace('_', '-')}", str(value))]


@pytest.fixture(scope="module", params=list(CASES))
def fmriprep_run(request, fmriprep_moae, tmp_path_factory):
    """The CLI on the fMRIPrep-like MoAE derivatives with one strategy:
    ``(case, output_dir, preproc_bold, brain_mask, events)``."""
    raw, derivatives = fmriprep_moae
    strategy, options = CASES[request.param]
    tmp = tmp_path_factory.mktemp(request.param)
    argv = ["--bids-dir", str(raw), "--derivatives", str(derivatives), "--task", "auditory",
            "--confounds-strategy", strategy, *_flags(options),
            "--output-dir", str(tmp / "out"), "--work-dir", str(tmp / "work")]
    assert main(argv) == 0
    func = derivatives / "sub-01" / "func"
    bold = next(func.glob("*_desc-preproc_bold.nii.gz"))
    mask = next(func.glob("*_desc-brain_mask.nii.gz"))
    events = raw / "sub-01" / "func" / f"{PREFIX}_events.tsv"
    return request.param, tmp / "out", bold, mask, events


@pytest.mark.slow
def test_maps_equal_nilearn_with_its_confounds_and_sample_masks(fmriprep_run):
    """z, t, effect and variance maps of both contrasts equal FirstLevelModel's fed by
    load_confounds_strategy (same confounds, same sample mask, fMRIPrep's brain mask, no
    drift of our own: the confounds hold fMRIPrep's cosines) to 1e-10."""
    case, out, bold, mask, events = fmriprep_run
    strategy, options = CASES[case]
    confounds, sample_mask = load_confounds_strategy(str(bold), strategy, **options)
    if case == "scrubbing":
        assert sample_mask is not None and len(sample_mask) < 96  # volumes were censored
    model = FirstLevelModel(t_r=7.0, mask_img=str(mask), noise_model="ar1", hrf_model="spm",
                            drift_model=None, slice_time_ref=0.0, standardize=False)
    model.fit(str(bold), events=pd.read_csv(events, sep="\t"), confounds=confounds,
              sample_masks=None if sample_mask is None else [sample_mask])
    folder = out / "sub-01"
    for name, rows in (("activeMinusRest", "active - rest"),
                       ("effectsOfInterest", np.eye(len(model.design_matrices_[0].columns))[
                           [list(model.design_matrices_[0].columns).index(c)
                            for c in ("active", "rest")]])):
        stat_type = "t" if isinstance(rows, str) else "F"
        theirs = model.compute_contrast(rows, stat_type=stat_type, output_type="all")
        for ours_name, their_name in (("z", "z_score"), ("effect", "effect_size"),
                                      ("variance", "effect_variance")):
            ours = nb.load(folder / f"{OUT_PREFIX}_contrast-{name}_stat-{ours_name}_statmap.nii.gz")
            np.testing.assert_allclose(ours.get_fdata(), theirs[their_name].get_fdata(),
                                       rtol=1e-10, atol=1e-10, err_msg=f"{case} {name}")


@pytest.mark.slow
def test_design_sidecar_lists_confounds_and_censored_volumes(fmriprep_run):
    """The design sidecar says which confound columns and which censored volumes (the
    complement of nilearn's sample mask), and that the design has no drift of its own."""
    case, out, bold, _, _ = fmriprep_run
    strategy, options = CASES[case]
    confounds, sample_mask = load_confounds_strategy(str(bold), strategy, **options)
    sidecar = json.loads((out / "sub-01" / f"{OUT_PREFIX}_{MODEL_OUTPUTS['design_json']}")
                         .read_text())
    assert sidecar["ConfoundsStrategy"] == strategy
    assert sorted(sidecar["ConfoundColumns"]) == sorted(confounds.columns)
    expected = [] if sample_mask is None else sorted(set(range(96)) - set(sample_mask))
    assert sidecar["CensoredVolumes"] == expected
    assert sidecar["NumberOfKeptVolumes"] == 96 - len(expected)
    assert sidecar["DriftModel"] == "none"
    assert sidecar["CosineConfounds"] == sorted(c for c in confounds if c.startswith("cosine"))


@pytest.fixture(scope="module")
def small_mask(tmp_path_factory):
    """A mask on another grid than the MoAE run's."""
    path = tmp_path_factory.mktemp("mask") / "small_mask.nii.gz"
    nb.Nifti1Image(np.ones((8, 8, 8), np.uint8), np.eye(4)).to_filename(path)
    return path


@pytest.mark.parametrize("extra, message", [
    (["--space", "T1w"], "T1w"),
    (["--mask", "SMALL_MASK"], "small_mask.nii.gz: mask shape (8, 8, 8) does not match"),
    (["--confounds-strategy", "simple", "--fd-threshold", "0.5"],
     "--fd-threshold: does not apply to --confounds-strategy simple"),
    (["--confounds-columns", "nothing_*"], "nothing_*"),
    (["--confounds-strategy", "scrubbing", "--min-kept-volumes", "95"],
     "volumes kept after censoring, fewer than --min-kept-volumes 95"),
    (["--confounds-strategy", "scrubbing", "--fd-threshold", "0.0001",
      "--std-dvars-threshold", "0.0001"], "every volume"),
])
def test_bad_fmriprep_input_is_one_line_before_any_work(fmriprep_moae, small_mask, tmp_path,
                                                        capsys, extra, message):
    """Bad fMRIPrep selections: exit 2, one line naming the field, no work directory."""
    raw, derivatives = fmriprep_moae
    extra = [str(small_mask) if item == "SMALL_MASK" else item for item in extra]
    argv = ["--bids-dir", str(raw), "--derivatives", str(derivatives), "--task", "auditory",
            *extra, "--output-dir", str(tmp_path / "out"), "--work-dir", str(tmp_path / "w")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("glm-workflows: error: ") and message in err[-1]
    assert len(err) == 1, "no note or warning is printed before a refusal"
    assert not (tmp_path / "w").exists()


@pytest.mark.slow
def test_framewise_displacement_figure_in_outputs_and_report(fmriprep_run):
    """With fMRIPrep confounds, each run has its FD trace (censored volumes shaded) as a
    PNG beside the design, shown in the report."""
    _, out, _, _, _ = fmriprep_run
    figure = out / "sub-01" / f"{OUT_PREFIX}_{MODEL_OUTPUTS['fd_figure']}"
    assert figure.read_bytes().startswith(b"\x89PNG")
    assert "Framewise displacement (fMRIPrep)" in (out / "sub-01.html").read_text()


@pytest.fixture(scope="module")
def fmriprep_without_cosines(fmriprep_moae, tmp_path_factory):
    """The MoAE derivatives with the cosine columns removed from the confounds table (as
    older fMRIPrep versions and other tools write it): ``(raw, derivatives, bold)``."""
    import shutil

    raw, derivatives = fmriprep_moae
    copy = tmp_path_factory.mktemp("no_cosines") / "fmriprep"
    shutil.copytree(derivatives, copy)
    table = next((copy / "sub-01" / "func").glob("*_desc-confounds_timeseries.tsv"))
    confounds = pd.read_csv(table, sep="\t")
    assert any(c.startswith("cosine") for c in confounds)  # the fixture had them
    confounds.drop(columns=[c for c in confounds if c.startswith("cosine")]).to_csv(
        table, sep="\t", index=False, na_rep="n/a")
    return raw, copy, next((copy / "sub-01" / "func").glob("*_desc-preproc_bold.nii.gz"))


@pytest.mark.slow
@pytest.mark.parametrize("route", ["strategy_without_cosines", "columns_without_cosines",
                                   "strategy_with_cosines"])
def test_drift_decided_from_the_confounds_the_design_takes(fmriprep_moae,
                                                           fmriprep_without_cosines,
                                                           tmp_path, route):
    """The design gets cosine drifts at --high-pass exactly when the confounds it takes
    hold no cosine regressors (a table without them, or columns that leave them out),
    and none when they do: z maps equal nilearn's FirstLevelModel with drift_model
    'cosine' or None respectively, and the sidecar records the drift model used."""
    from nilearn.interfaces.fmriprep import load_confounds

    raw, derivatives = fmriprep_moae
    bold = next((derivatives / "sub-01" / "func").glob("*_desc-preproc_bold.nii.gz"))
    motion = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
    if route == "strategy_without_cosines":
        raw, derivatives, bold = fmriprep_without_cosines
        flags = ["--confounds-strategy", "simple", "--motion", "basic", "--wm-csf", "basic"]
        confounds, sample_mask = load_confounds_strategy(str(bold), "simple", motion="basic",
                                                         wm_csf="basic")
    elif route == "columns_without_cosines":
        flags = ["--confounds-columns", *motion]
        confounds, sample_mask = load_confounds(str(bold), strategy=("motion",),
                                                motion="basic")
    else:
        flags = ["--confounds-strategy", "simple", "--motion", "basic", "--wm-csf", "basic"]
        confounds, sample_mask = load_confounds_strategy(str(bold), "simple", motion="basic",
                                                         wm_csf="basic")
    cosines = sorted(c for c in confounds if c.startswith("cosine"))
    assert bool(cosines) == (route == "strategy_with_cosines")
    out = tmp_path / "out"
    argv = ["--bids-dir", str(raw), "--derivatives", str(derivatives), "--task", "auditory",
            *flags, "--contrast", "activeMinusRest=active - rest",
            "--output-dir", str(out), "--work-dir", str(tmp_path / "work")]
    assert main(argv) == 0
    mask = next((derivatives / "sub-01" / "func").glob("*_desc-brain_mask.nii.gz"))
    drift = None if cosines else "cosine"
    model = FirstLevelModel(t_r=7.0, mask_img=str(mask), noise_model="ar1", hrf_model="spm",
                            drift_model=drift, high_pass=1 / 160, slice_time_ref=0.0,
                            standardize=False)
    events = raw / "sub-01" / "func" / f"{PREFIX}_events.tsv"
    model.fit(str(bold), events=pd.read_csv(events, sep="\t"), confounds=confounds,
              sample_masks=None if sample_mask is None else [sample_mask])
    theirs = model.compute_contrast("active - rest", output_type="z_score")
    ours = nb.load(out / "sub-01" / f"{OUT_PREFIX}_contrast-activeMinusRest_stat-z_statmap.nii.gz")
    np.testing.assert_allclose(ours.get_fdata(), theirs.get_fdata(), rtol=1e-10, atol=1e-10)
    sidecar = json.loads((out / "sub-01" / f"{OUT_PREFIX}_{MODEL_OUTPUTS['design_json']}")
                         .read_text())
    assert sidecar["DriftModel"] == ("none" if cosines else "cosine")
    assert sidecar["DriftModelSetting"] == "auto"
    assert sorted(sidecar["CosineConfounds"]) == cosines
