"""Spatial smoothing before the fit (``--smoothing-fwhm``, ``RunModel.smoothing_fwhm``,
``SmoothingFWHM`` in a model file's ``Model.Software`` entry): z maps equal nilearn's
``FirstLevelModel(smoothing_fwhm=...)`` on the real SPM auditory run, with and without
censoring; flags, Python and model files give one spec; an unsmoothed fit keeps the input
hash (the cache) it had before the setting existed; bad widths are one line before any
work."""

import json
from dataclasses import replace
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd
import pytest

from glm_workflows.cli import main, spec_from_args
from glm_workflows.core.errors import InputError
from glm_workflows.spec.analysis import RunModel
from glm_workflows.spec.from_model import read_model
from glm_workflows.spec.serialize import from_json, to_bids_stats_model, to_json

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "models"
FWHM = 6.0
PREFIX = "sub-01_task-auditory"
#: nilearn-equality tolerance of the z maps.
TOLERANCE = 1e-6


def _z(folder: Path, contrast: str, prefix: str = PREFIX) -> np.ndarray:
    return nb.load(folder / f"{prefix}_contrast-{contrast}_stat-z_statmap.nii.gz").get_fdata()


def _write_model(tmp_path: Path, fwhm) -> Path:
    """examples/models/auditory_smdl.json with ``SmoothingFWHM`` in its Run node's entry."""
    model = json.loads((EXAMPLES / "auditory_smdl.json").read_text())
    model["Nodes"][0]["Model"]["Software"] = {"glm-workflows": {"SmoothingFWHM": fwhm}}
    path = tmp_path / "smoothed_smdl.json"
    path.write_text(json.dumps(model))
    return path


# ------------------------------------------------------------------ the core, against nilearn


def test_volume_by_volume_equals_nilearn_smoothing_the_whole_run(seed_bold):
    """masked_run smooths one volume at a time: bit for bit what nilearn's masker gives
    (smooth_img of the 4D run, then apply_mask), non-finite samples set to 0 first."""
    from nilearn.image import smooth_img
    from nilearn.masking import apply_mask

    from glm_workflows.core.images import compute_brain_mask
    from glm_workflows.core.smoothing import masked_run

    data = np.asanyarray(seed_bold.dataobj)[..., :12].astype(np.float64)
    data[30, 30, 30, 3] = np.nan  # a hole in a volume: zeroed before smoothing, as nilearn
    img = nb.Nifti1Image(data, seed_bold.affine)
    mask = compute_brain_mask(nb.Nifti1Image(np.nan_to_num(data), seed_bold.affine))
    series, non_finite = masked_run(data, img.affine, mask, FWHM)
    theirs = apply_mask(smooth_img(img, FWHM), nb.Nifti1Image(mask.astype(np.uint8),
                                                              img.affine))
    order = np.argsort(np.ravel_multi_index(np.nonzero(mask), mask.shape, order="F"))
    np.testing.assert_array_equal(series[:, np.argsort(order)], theirs)
    assert series.dtype == theirs.dtype == np.float64
    assert non_finite == (int(mask[30, 30, 30]), 1 if mask[30, 30, 30] else 0)
    int_series, _ = masked_run(np.asanyarray(seed_bold.dataobj)[..., :4], img.affine, mask,
                               FWHM)
    assert int_series.dtype == np.float32  # int16 data smoothed in float32, as nilearn


@pytest.fixture(scope="module")
def nilearn_smoothed(seed_bold, spm_events):
    """nilearn's FirstLevelModel of the seed analysis with smoothing_fwhm=FWHM."""
    from nilearn.glm.first_level import FirstLevelModel

    model = FirstLevelModel(t_r=7, noise_model="ar1", standardize=False, hrf_model="spm",
                            drift_model="cosine", high_pass=1 / 160, smoothing_fwhm=FWHM)
    return model.fit(seed_bold, events=pd.read_csv(spm_events, sep="\t"))


@pytest.mark.slow
def test_fit_equals_nilearn_with_smoothing(seed_bold, seed_design, nilearn_smoothed,
                                           tmp_path):
    """fit_glm(smoothing_fwhm=6) on the seed run: nilearn's (unsmoothed) EPI mask and its
    z maps; the width is kept in the fit's sidecar, read back."""
    from glm_workflows.core.contrasts import contrast_matrix
    from glm_workflows.core.estimates import compute_contrast, load_fitted_glm, save_fitted_glm
    from glm_workflows.core.glm import fit_glm

    fit = fit_glm(seed_bold, seed_design, noise_model="ar1", smoothing_fwhm=FWHM)
    np.testing.assert_array_equal(fit.mask,
                                  nilearn_smoothed.masker_.mask_img_.get_fdata() > 0)
    fit = load_fitted_glm(**save_fitted_glm(fit, tmp_path))
    assert fit.smoothing_fwhm == FWHM
    for rows, stat_type in ((["active - rest"], "t"), (["active", "rest"], "F")):
        ours = compute_contrast(fit, contrast_matrix(rows, fit.columns, stat_type),
                                stat_type)["z"].get_fdata()
        theirs = nilearn_smoothed.compute_contrast(
            rows[0] if stat_type == "t" else np.eye(len(fit.columns))[:2],
            stat_type=stat_type, output_type="z_score").get_fdata()
        assert np.abs(ours - theirs).max() <= TOLERANCE


def test_core_refuses_bad_widths(seed_bold, seed_design):
    from glm_workflows.core.glm import fit_glm

    for fwhm, message in ((-1.0, "expected a smoothing width (FWHM) in mm > 0"),
                          (500.0, "larger than the field of view of run-x (192 x 192 x 192 mm)"
                                  "; expected a width up to 192 mm")):
        with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
            fit_glm(seed_bold, seed_design, noise_model="ar1", smoothing_fwhm=fwhm,
                    run_name="run-x")
    assert fit_glm(seed_bold, seed_design, noise_model="ols", smoothing_fwhm=0) \
        .smoothing_fwhm is None  # 0: no smoothing, as nilearn's


# --------------------------------------------------------------------- the cache is kept


def _fit_node(argv):
    from glm_workflows.execution.prepare import prepare
    from glm_workflows.workflows.study import init_analysis_wf

    workflow = init_analysis_wf(prepare(*spec_from_args(argv)))
    nodes = {node.fullname: node for node in workflow._get_all_nodes()}
    fits = [node for name, node in nodes.items() if name.endswith(".fit")]
    assert len(fits) == 1
    return fits[0], {name: node.inputs.get_hashval(hash_method="content")[1]
                     for name, node in nodes.items()}


def test_unsmoothed_fit_keeps_its_input_hash(data_dir, tmp_path):
    """The seed's fit node hashes the inputs it hashed before the setting existed (the
    new input is undefined, so it is not hashed), plus ``save_diagnostics`` and
    ``save_mean`` (the fit writes the diagnostics and the mean image since; a FitGLM
    without them hashes as before).
    The literals were computed on the commit before smoothing (4eb68ee). Smoothing
    changes the fit node's hash and no other node's."""
    from glm_workflows.interfaces import FitGLM

    common = ["--data-dir", str(data_dir), "--output-dir", str(tmp_path / "out"),
              "--work-dir", str(tmp_path / "work")]
    fit, hashes = _fit_node(common)
    hashed, value = fit.inputs.get_hashval(hash_method="content")
    assert [name for name, _ in hashed] == ["noise_model", "num_threads", "run_name",
                                            "save_diagnostics", "save_mean"]
    assert value == FitGLM(noise_model="ar1", num_threads=1, run_name=fit.inputs.run_name,
                           save_diagnostics=True, save_mean=True).inputs.get_hashval(
        hash_method="content")[1]
    assert FitGLM(noise_model="ar1", num_threads=1).inputs.get_hashval(
        hash_method="content")[1] == "27ca3eaaaf1397983af44da15a5369a7"
    assert FitGLM(noise_model="ar1", num_threads=1, run_name="sub-01_task-auditory",
                  sample_mask=[0, 1, 2]).inputs.get_hashval(
        hash_method="content")[1] == "da71594ad6f05b2f8314400f6e37f2e6"
    smoothed, smoothed_hashes = _fit_node([*common, "--smoothing-fwhm", str(FWHM)])
    assert [name for name, _ in smoothed.inputs.get_hashval(hash_method="content")[0]] == \
        ["noise_model", "num_threads", "run_name", "save_diagnostics", "save_mean",
         "smoothing_fwhm"]
    changed = sorted(name for name in hashes if hashes[name] != smoothed_hashes[name])
    assert changed == [fit.fullname]


# ----------------------------------------------------------------- one spec, three routes


def test_flags_python_and_model_file_give_one_spec(tmp_path):
    spec, _ = spec_from_args(["--smoothing-fwhm", "6"])
    assert spec.model_settings().smoothing_fwhm == 6.0
    assert spec.model_settings().design() == spec_from_args([])[0].model_settings().design()
    run = spec.run_node
    python = replace(spec_from_args([])[0], nodes=(
        replace(run, model=replace(run.model, smoothing_fwhm=6.0)), *spec.nodes[1:]))
    assert python == spec
    assert from_json(to_json(spec)) == spec
    model = to_bids_stats_model(spec)
    assert model["Nodes"][0]["Model"]["Software"]["glm-workflows"]["SmoothingFWHM"] == 6.0
    assert "SmoothingFWHM" not in json.dumps(to_bids_stats_model(spec_from_args([])[0]))
    path = tmp_path / "flags_smdl.json"
    path.write_text(json.dumps(model))
    assert read_model(path) == spec
    assert spec_from_args(["--model", str(path)])[0] == spec
    written = read_model(_write_model(tmp_path, 6), bids_dir="/data/bids")
    assert written.model_settings().smoothing_fwhm == 6.0
    assert read_model(EXAMPLES / "auditory_smdl.json").model_settings().smoothing_fwhm is None


@pytest.mark.parametrize("value", ["0", "-2", "nan", "inf"])
def test_bad_flag_is_one_line(value, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["--smoothing-fwhm", value, "--output-dir", str(out),
                 "--work-dir", str(tmp_path / "work")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        "glm-workflows: error: --smoothing-fwhm: expected a smoothing width (FWHM) in mm > 0")
    assert not out.exists() and not (tmp_path / "work").exists()


@pytest.mark.parametrize("value", [0, -1, "six", True])
def test_bad_model_file_value_names_its_json_path(value, tmp_path):
    with pytest.raises(InputError) as raised:
        read_model(_write_model(tmp_path, value))
    assert str(raised.value).startswith(
        f"{tmp_path / 'smoothed_smdl.json'}: Nodes[0].Model.Software.glm-workflows"
        ".SmoothingFWHM: expected a smoothing width (FWHM) in mm > 0")
    assert len(str(raised.value).splitlines()) == 1


def test_python_spec_refuses_a_bad_width():
    with pytest.raises(InputError, match="--smoothing-fwhm: expected a smoothing width"):
        replace(spec_from_args([])[0].run_node, model=RunModel(smoothing_fwhm=-3.0))


def test_wider_than_the_field_of_view_refused_before_any_work(data_dir, bids_dir, tmp_path,
                                                              capsys):
    """500 mm on the 64 x 64 x 64 run of 3 mm voxels (192 mm): one line naming the flag
    (or the model file's JSON path) and the widest width accepted; no folder written."""
    out, work = tmp_path / "out", tmp_path / "work"
    folders = ["--output-dir", str(out), "--work-dir", str(work)]
    assert main(["--data-dir", str(data_dir), "--smoothing-fwhm", "500", *folders]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        "glm-workflows: error: --smoothing-fwhm: 500 mm is larger than the field of view of ")
    assert err[0].endswith("(192 x 192 x 192 mm); expected a width up to 192 mm")
    model = _write_model(tmp_path, 500)
    assert main(["--bids-dir", str(bids_dir), "--model", str(model), *folders]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        f"glm-workflows: error: {model}: Nodes[0].Model.Software.glm-workflows.SmoothingFWHM"
        ": 500 mm is larger than the field of view of ")
    assert not out.exists() and not work.exists()
    assert main(["--bids-dir", str(bids_dir), "--model", str(model), "--smoothing-fwhm",
                 "4", *folders]) == 2
    assert "--smoothing-fwhm: not with --model (the model file sets it)" in \
        capsys.readouterr().err


# ------------------------------------------------------------------- pipeline runs (slow)


@pytest.fixture(scope="module")
def smoothed_seed(data_dir, tmp_path_factory):
    """The seed analysis with --smoothing-fwhm, run once from the command line."""
    root = tmp_path_factory.mktemp("smoothed_seed")
    assert main(["--data-dir", str(data_dir), "--smoothing-fwhm", str(FWHM),
                 "--output-dir", str(root / "out"), "--work-dir", str(root / "work")]) == 0
    return root / "out" / "sub-01"


@pytest.mark.slow
def test_cli_maps_equal_nilearn_and_record_the_smoothing(smoothed_seed, nilearn_smoothed):
    """No censoring: the seed run smoothed, z maps of both contrasts equal nilearn's; the
    contrast sidecars, the provenance record and the report say how it was smoothed."""
    columns = list(nilearn_smoothed.design_matrices_[0].columns)
    for name, rows, stat_type in (
            ("activeMinusRest", "active - rest", "t"),
            ("effectsOfInterest", np.eye(len(columns))[[columns.index("active"),
                                                        columns.index("rest")]], "F")):
        theirs = nilearn_smoothed.compute_contrast(rows, stat_type=stat_type,
                                                   output_type="z_score").get_fdata()
        difference = np.abs(_z(smoothed_seed, name) - theirs).max()
        print(f"no censoring, {name}: max |dz| = {difference:.3g}")  # shown with -s
        assert difference <= TOLERANCE, name
        sidecar = json.loads((smoothed_seed / f"{PREFIX}_contrast-{name}_statmap.json")
                             .read_text())
        assert sidecar["SmoothingFWHM"] == FWHM
    record = json.loads(next(smoothed_seed.glob("*_provenance.json")).read_text())
    assert record["Parameters"]["smoothing_fwhm"] == FWHM
    page = (smoothed_seed.parent / "sub-01.html").read_text()
    assert "Spatial smoothing before the fit (FWHM, mm)" in page
    assert "smoothed (FWHM 6 mm)" in page


@pytest.mark.slow
def test_model_file_route_gives_the_flags_maps(smoothed_seed, bids_dir, tmp_path):
    """The seed model file with SmoothingFWHM on the MoAE BIDS run: the flags' maps."""
    out = tmp_path / "out"
    assert main(["--bids-dir", str(bids_dir), "--model", str(_write_model(tmp_path, FWHM)),
                 "--output-dir", str(out), "--work-dir", str(tmp_path / "work")]) == 0
    for name in ("activeMinusRest", "effectsOfInterest"):
        np.testing.assert_array_equal(_z(out / "sub-01", name), _z(smoothed_seed, name))


@pytest.mark.slow
def test_censored_fmriprep_run_equals_nilearn(fmriprep_moae, tmp_path):
    """With censoring: fMRIPrep-like derivatives, nilearn's scrubbing strategy, fMRIPrep's
    brain mask; nilearn smooths the whole run, then drops the censored volumes."""
    from nilearn.glm.first_level import FirstLevelModel
    from nilearn.interfaces.fmriprep import load_confounds_strategy

    raw, derivatives = fmriprep_moae
    options = {"motion": "basic", "wm_csf": "basic", "fd_threshold": 0.5,
               "std_dvars_threshold": 1.5, "scrub": 0}
    flags = [item for name, value in options.items()
             for item in (f"--{name.replace('_', '-')}", str(value))]
    out = tmp_path / "out"
    assert main(["--bids-dir", str(raw), "--derivatives", str(derivatives), "--task",
                 "auditory", "--confounds-strategy", "scrubbing", *flags, "--smoothing-fwhm",
                 str(FWHM), "--output-dir", str(out), "--work-dir", str(tmp_path / "work")]) == 0
    func = derivatives / "sub-01" / "func"
    bold = next(func.glob("*_desc-preproc_bold.nii.gz"))
    mask = next(func.glob("*_desc-brain_mask.nii.gz"))
    confounds, sample_mask = load_confounds_strategy(str(bold), "scrubbing", **options)
    assert sample_mask is not None and len(sample_mask) < 96  # volumes were censored
    model = FirstLevelModel(t_r=7.0, mask_img=str(mask), noise_model="ar1", hrf_model="spm",
                            drift_model=None, slice_time_ref=0.0, standardize=False,
                            smoothing_fwhm=FWHM)
    model.fit(str(bold), events=pd.read_csv(raw / "sub-01" / "func" / f"{PREFIX}_events.tsv",
                                            sep="\t"),
              confounds=confounds, sample_masks=[sample_mask])
    theirs = model.compute_contrast("active - rest", output_type="z_score").get_fdata()
    space = bold.name.split("_space-")[1].split("_")[0]  # the outputs carry the image's space
    difference = np.abs(_z(out / "sub-01", "activeMinusRest", f"{PREFIX}_space-{space}")
                        - theirs).max()
    print(f"censored, activeMinusRest: max |dz| = {difference:.3g}")  # shown with -s
    assert difference <= TOLERANCE
