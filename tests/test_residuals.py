"""The residual time series end to end (``--save-residuals``, FitLins' ``--error-ts``,
``RunModel.save_residuals``, ``SaveResiduals`` in a model file's ``Model.Software``
entry): flags, Python and model files give one spec; the model file round trip is exact;
off, every node hashes as before the setting existed; on, only the fit node's inputs
change; a command-line run writes nilearn's ``residuals_`` on the real SPM
auditory run, and a run without the flag writes none."""

import json
import warnings
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
PREFIX = "sub-01_task-auditory"
ERRORTS = f"{PREFIX}_stat-errorts_statmap.nii.gz"
#: nilearn-equality tolerance of the residuals (as tests/test_diagnostics.py).
TOLERANCE = 1e-10


def _write_model(tmp_path: Path, value) -> Path:
    """examples/models/auditory_smdl.json with ``SaveResiduals`` in its Run node's entry."""
    model = json.loads((EXAMPLES / "auditory_smdl.json").read_text())
    model["Nodes"][0]["Model"]["Software"] = {"glm-workflows": {"SaveResiduals": value}}
    path = tmp_path / "residuals_smdl.json"
    path.write_text(json.dumps(model))
    return path


# ----------------------------------------------------------------- one spec, three routes


def test_flags_python_and_model_file_give_one_spec(tmp_path):
    spec, _ = spec_from_args(["--save-residuals"])
    off, _ = spec_from_args([])
    assert spec.model_settings().save_residuals is True
    assert off.model_settings().save_residuals is False
    assert spec_from_args(["--error-ts"])[0] == spec  # FitLins' name
    assert spec.model_settings().design() == off.model_settings().design()
    run = off.run_node
    python = replace(off, nodes=(replace(run, model=replace(run.model, save_residuals=True)),
                                 *off.nodes[1:]))
    assert python == spec
    assert from_json(to_json(spec)) == spec
    model = to_bids_stats_model(spec)
    assert model["Nodes"][0]["Model"]["Software"]["glm-workflows"]["SaveResiduals"] is True
    assert "SaveResiduals" not in json.dumps(to_bids_stats_model(off))
    path = tmp_path / "flags_smdl.json"
    path.write_text(json.dumps(model))
    assert read_model(path) == spec
    assert spec_from_args(["--model", str(path)])[0] == spec
    written = read_model(_write_model(tmp_path, True), bids_dir="/data/bids")
    assert written.model_settings().save_residuals is True
    assert read_model(EXAMPLES / "auditory_smdl.json").model_settings().save_residuals is False


@pytest.mark.parametrize("save", [True, False])
def test_model_file_round_trip_is_exact(tmp_path, save):
    """A model file read and written again is the same file: ``SaveResiduals`` written
    only when on (an example file without it stays without it)."""
    source = _write_model(tmp_path, True) if save else EXAMPLES / "auditory_smdl.json"
    spec = read_model(source)
    written = to_bids_stats_model(spec)
    path = tmp_path / "again_smdl.json"
    path.write_text(json.dumps(written))
    assert read_model(path) == spec
    assert to_bids_stats_model(read_model(path)) == written
    entry = written["Nodes"][0]["Model"]["Software"]["glm-workflows"]
    assert entry.get("SaveResiduals") is (True if save else None)


def test_error_ts_with_a_model_file_turns_it_on(tmp_path):
    """FitLins' ``--error-ts`` is given with a model file: not refused as the model flags
    are; it turns the residuals on over the file's setting (as ``--strict``)."""
    example = str(EXAMPLES / "auditory_smdl.json")
    spec = spec_from_args(["--model", example, "--error-ts"])[0]
    assert spec.model_settings().save_residuals is True
    assert spec.run_node.model == replace(read_model(example).run_node.model,
                                          save_residuals=True)
    on_file = str(_write_model(tmp_path, True))
    assert spec_from_args(["--model", on_file])[0].model_settings().save_residuals is True


@pytest.mark.parametrize("value", ["yes", 1, 0, None])
def test_bad_model_file_value_names_its_json_path(value, tmp_path):
    with pytest.raises(InputError) as raised:
        read_model(_write_model(tmp_path, value))
    assert str(raised.value) == (
        f"{tmp_path / 'residuals_smdl.json'}: Nodes[0].Model.Software.glm-workflows"
        f".SaveResiduals: expected true or false, got {json.dumps(value)}")


def test_python_spec_refuses_a_value_that_is_not_a_bool():
    with pytest.raises(InputError, match="--save-residuals: expected True or False, got 1"):
        replace(spec_from_args([])[0].run_node, model=RunModel(save_residuals=1))


# ------------------------------------------------------------------------------ the cache


def _hashes(data_dir, tmp_path, *argv):
    from glm_workflows.execution.prepare import prepare
    from glm_workflows.workflows.study import init_analysis_wf

    workflow = init_analysis_wf(prepare(*spec_from_args(
        ["--data-dir", str(data_dir), "--output-dir", str(tmp_path / "out"),
         "--work-dir", str(tmp_path / "work"), *argv])))
    nodes = {node.fullname: node for node in workflow._get_all_nodes()}
    return nodes, {name: node.inputs.get_hashval(hash_method="content")[1]
                   for name, node in nodes.items()}


def test_off_leaves_the_input_undefined_and_on_changes_only_the_fit(data_dir, tmp_path):
    """The fit node writes the diagnostics (the run read once): off, its ``save_residuals``
    is not set, so its hash is what it was before the setting existed; on, only the fit's
    inputs change (it refits once to write them)."""
    nodes, off = _hashes(data_dir, tmp_path)
    fit = "sub_01_task_auditory_wf.fit"
    assert "save_residuals" not in dict(nodes[fit].inputs.get_hashval(
        hash_method="content")[0])
    on_nodes, on = _hashes(data_dir, tmp_path, "--save-residuals")
    assert set(on) == set(off)  # no node added or removed
    assert sorted(name for name in off if on[name] != off[name]) == [fit]
    assert ("save_residuals", True) in on_nodes[fit].inputs.get_hashval(
        hash_method="content")[0]


# ------------------------------------------------------------------- pipeline runs (slow)


@pytest.fixture(scope="module")
def residual_runs(data_dir, tmp_path_factory):
    """The seed analysis from the command line with --save-residuals, then without it
    (same work directory: the fit node, which writes them, runs again)."""
    root = tmp_path_factory.mktemp("residuals")
    work = str(root / "work")
    for flag, out in ((["--save-residuals"], "on"), ([], "off")):
        assert main(["--data-dir", str(data_dir), *flag, "--output-dir", str(root / out),
                     "--work-dir", work]) == 0
    return root / "on" / "sub-01", root / "off" / "sub-01"


@pytest.mark.slow
def test_cli_residuals_equal_nilearn(residual_runs, seed_bold, spm_events):
    """``--save-residuals``: the errorts map equals nilearn's
    ``FirstLevelModel(minimize_memory=False).residuals_[0]`` of the seed analysis
    (nilearn's own design and EPI mask) to 1e-10; the provenance records the setting."""
    from nilearn.glm.first_level import FirstLevelModel

    on, _ = residual_runs
    model = FirstLevelModel(t_r=7, noise_model="ar1", standardize=False, hrf_model="spm",
                            drift_model="cosine", high_pass=1 / 160, minimize_memory=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(seed_bold, events=pd.read_csv(spm_events, sep="\t"))
    theirs = model.residuals_[0].get_fdata()
    ours = nb.load(on / ERRORTS)
    assert ours.shape == theirs.shape == (*seed_bold.shape[:3], 96)
    np.testing.assert_array_equal(ours.affine, seed_bold.affine)
    mask = model.masker_.mask_img_.get_fdata() > 0
    data = ours.get_fdata()
    assert not data[~mask].any()  # outside the mask: 0, as nilearn's unmasking
    difference = np.abs(data - theirs).max()
    print(f"residuals: max |difference| vs nilearn = {difference:.3g}")  # shown with -s
    assert difference <= TOLERANCE
    record = json.loads(next(on.glob("*_provenance.json")).read_text())
    assert record["Parameters"]["save_residuals"] is True


@pytest.mark.slow
def test_cli_without_the_flag_writes_no_residuals(residual_runs):
    on, off = residual_runs
    assert not list(off.parent.rglob("*errorts*"))
    assert (off / f"{PREFIX}_stat-rsquared_statmap.nii.gz").exists()  # diagnostics still
    record = json.loads(next(off.glob("*_provenance.json")).read_text())
    assert record["Parameters"]["save_residuals"] is False
    for name in ("activeMinusRest", "effectsOfInterest"):  # the same maps otherwise
        z = f"{PREFIX}_contrast-{name}_stat-z_statmap.nii.gz"
        np.testing.assert_array_equal(nb.load(off / z).get_fdata(),
                                      nb.load(on / z).get_fdata())
