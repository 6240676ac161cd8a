"""Faults found by a fourth hunt from the outside (model files, fMRIPrep derivatives as
they are, reruns and folders, the Python route): each refused in one line before any
work, or run correctly."""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from glm_workflows.cli import main
from glm_workflows.synthetic import write_tiny_bids

TINY = ["--task", "tiny", "--contrast", "aMinusB=a - b"]
ROOT = Path(__file__).resolve().parents[1]


def _without_root_override() -> list[str]:
    """A command prefix under which file permissions apply (root bypasses them): none for
    another user, ``setpriv`` dropping the capabilities that override them for root."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv to run as root without CAP_DAC_OVERRIDE")
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}"]


def _digests(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and "logs" not in p.parts}


@pytest.mark.parametrize("locked", ["sub-01", "sub-01/notes"])
def test_a_read_only_subject_folder_is_refused_before_any_work(tmp_path, locked):
    """A subject folder (or a user's folder in it) that cannot be written: one line
    naming it, exit 2, the output folder untouched (was: the whole run, then the commit
    failing with "[Errno 13] Permission denied: '<file name>'", exit 1, the replaced
    folder and the commit journal left beside the new one)."""
    prefix = _without_root_override()
    study = write_tiny_bids(tmp_path / "bids", subjects=("01",), n_scans=40)
    out, work = tmp_path / "out", tmp_path / "work"
    argv = [str(study), str(out), "participant", *TINY, "-w", str(work)]
    assert main(argv) == 0
    (out / "sub-01" / "notes").mkdir()
    (out / "sub-01" / "notes" / "mine.txt").write_text("a user's file")
    before, names = _digests(out), sorted(p.name for p in out.iterdir())
    (out / locked).chmod(0o555)
    try:
        done = subprocess.run([*prefix, sys.executable, "-m", "glm_workflows.cli", *argv,
                               "--contrast", "bMinusA=b - a"], capture_output=True,
                              text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
                              check=False)
    finally:
        (out / locked).chmod(0o755)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        f"glm-workflows: error: {out / locked}: not writable (Permission denied); this run "
        "replaces sub-01/ when it ends, which needs every folder in it writable (fix the "
        "permissions or use another --output-dir)"]
    assert _digests(out) == before
    assert sorted(p.name for p in out.iterdir()) == names  # no journal, no replaced folder


def test_a_preprocessed_image_stored_as_nii_and_nii_gz_is_named_not_told_res_den(tmp_path,
                                                                                 refused):
    """fMRIPrep's bold as ``.nii.gz`` beside a stale ``.nii`` copy: the line says to keep
    one of the two (was: "choose one with --res / --den", which cannot choose between
    them)."""
    import nibabel as nb

    from glm_workflows.synthetic import write_fmriprep_derivatives

    study = write_tiny_bids(tmp_path / "bids", subjects=("01",), n_scans=40)
    fmriprep = write_fmriprep_derivatives(study, tmp_path / "fmriprep")
    gz = next((fmriprep / "sub-01" / "func").glob("*_desc-preproc_bold.nii.gz"))
    nb.save(nb.load(gz), gz.with_suffix(""))
    line = refused([str(study), str(tmp_path / "out"), "participant", *TINY,
                    "--derivatives", str(fmriprep), "-w", str(tmp_path / "work")])
    assert line == (f"glm-workflows: error: sub-01_task-tiny_bold.nii.gz: several preprocessed "
                    f"images match: {gz.with_suffix('')} and {gz}; the same image is stored as "
                    ".nii and .nii.gz: keep only one of the two files")
    assert not (tmp_path / "out").exists()


def _confound_model(path: Path, x: list) -> Path:
    """A Run -> Subject model of the tiny study whose ``X`` also names ``x``."""
    import json

    path.write_text(json.dumps({
        "Name": "confounds", "BIDSModelVersion": "1.0.0", "Input": {"task": ["tiny"]},
        "Nodes": [{"Level": "Run", "Name": "run", "GroupBy": ["run", "subject"],
                   "Transformations": {"Transformer": "pybids-transforms-v1",
                                       "Instructions": [{"Name": "Factor",
                                                         "Input": ["trial_type"]}]},
                   "Model": {"Type": "glm", "X": ["trial_type.a", "trial_type.b", *x, 1],
                             "HRF": {"Variables": ["trial_type.a", "trial_type.b"],
                                     "Model": "spm"},
                             "Options": {"HighPassFilterCutoffHz": 0.00625}},
                   "Contrasts": [{"Name": "aMinusB",
                                  "ConditionList": ["trial_type.a", "trial_type.b"],
                                  "Weights": [1, -1], "Test": "t"}]}]}))
    return path


def test_a_confound_in_model_x_of_a_run_without_confounds_file_says_so(tmp_path, refused):
    """One run's fMRIPrep confounds file missing, its model naming a confound in ``X``:
    the line says the run has no confounds file (was: only "no variable
    'framewise_displacement' in the run of <events.tsv>", the events file being fine)."""
    from glm_workflows.synthetic import write_fmriprep_derivatives

    study = write_tiny_bids(tmp_path / "bids", subjects=("01", "02"), n_scans=40)
    fmriprep = write_fmriprep_derivatives(study, tmp_path / "fmriprep")
    for path in (fmriprep / "sub-02" / "func").glob("*_desc-confounds_timeseries.*"):
        path.unlink()
    model = _confound_model(tmp_path / "model_smdl.json", ["framewise_displacement"])
    line = refused([str(study), str(tmp_path / "out"), "participant", "--model", str(model),
                    "--derivatives", str(fmriprep), "-w", str(tmp_path / "work")])
    events = study / "sub-02" / "func" / "sub-02_task-tiny_events.tsv"
    assert line == (f"glm-workflows: error: {model}: Nodes[0].Model.X[2]: no variable "
                    f"'framewise_displacement' in the run of {events} after the "
                    "transformations (available: trial_type.a, trial_type.b); the run has no "
                    "confounds file (fMRIPrep's *_desc-confounds_timeseries.tsv, read with "
                    "--derivatives)")
    assert not (tmp_path / "out").exists()


def test_confounds_in_model_x_with_n_a_first_rows_fit_as_nilearn(tmp_path, capsys):
    """fMRIPrep's derivative columns (``n/a`` in the first row) named in a model's ``X``:
    each run's z map equals nilearn's FirstLevelModel on the same design (the confounds'
    ``n/a`` as 0, as the warning says), in one warning line for every file and column."""
    import nibabel as nb
    import numpy as np
    import pandas as pd
    from nilearn.glm.first_level import FirstLevelModel, make_first_level_design_matrix

    from glm_workflows.synthetic import write_fmriprep_derivatives

    study = write_tiny_bids(tmp_path / "bids", subjects=("01",), n_scans=40, runs=2)
    fmriprep = write_fmriprep_derivatives(study, tmp_path / "fmriprep")
    names = ["framewise_displacement", "trans_x_derivative1", "rot_z"]
    model = _confound_model(tmp_path / "model_smdl.json", names)
    out = tmp_path / "out"
    assert main([str(study), str(out), "participant", "--model", str(model), "--derivatives",
                 str(fmriprep), "-w", str(tmp_path / "work")]) == 0
    files = [fmriprep / "sub-01" / "func" / f"sub-01_task-tiny_run-{run}_desc-confounds_"
             "timeseries.tsv" for run in (1, 2)]
    assert [line for line in capsys.readouterr().err.splitlines() if "n/a in" in line] == [
        f"glm-workflows: warning: 2 files ({files[0]}, {files[1]}): n/a in "
        "'framewise_displacement' (1 scan(s)), 'trans_x_derivative1' (1 scan(s)) replaced by "
        "0 in the design"]  # was: one line per file and column
    for run in (1, 2):
        stem = f"sub-01_task-tiny_run-{run}"
        func = fmriprep / "sub-01" / "func"
        bold = func / f"{stem}_space-MNI152NLin2009cAsym_desc-preproc_bold.nii.gz"
        confounds = pd.read_csv(func / f"{stem}_desc-confounds_timeseries.tsv", sep="\t",
                                na_values="n/a")[names]
        assert confounds.iloc[0].isna().sum() == 2
        events = pd.read_csv(study / "sub-01" / "func" / f"{stem}_events.tsv", sep="\t")
        design = make_first_level_design_matrix(
            np.arange(40) * 2.0, events, hrf_model="spm", drift_model="cosine",
            high_pass=0.00625, add_regs=confounds.fillna(0).to_numpy(), add_reg_names=names)
        fitted = FirstLevelModel(t_r=2.0, noise_model="ar1",
                                 mask_img=str(bold).replace("desc-preproc_bold",
                                                            "desc-brain_mask")).fit(
            str(bold), design_matrices=design)
        expected = fitted.compute_contrast("a - b", output_type="z_score").get_fdata()
        ours = nb.load(out / "sub-01" / f"{stem}_space-MNI152NLin2009cAsym_contrast-aMinusB_"
                                        "stat-z_statmap.nii.gz").get_fdata()
        np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-6)


def _python_route_cases(bids: str) -> dict:
    """Calls of the Python route with a wrong type, and the one line each gets."""
    from glm_workflows import read_model, run_analysis
    from glm_workflows.settings import ExecutionSettings, InferenceSettings
    from glm_workflows.spec.analysis import (
        AnalysisSpec,
        Contrast,
        InputSpec,
        NilearnDesign,
        Node,
        RunModel,
    )

    contrast = Contrast("aMinusB", "t", ("a - b",))

    def spec(run=None, group_by=("run", "subject"), contrasts=(contrast,), **kw):
        return AnalysisSpec(InputSpec(bids_dir=bids, task="tiny"),
                            (Node("Run", "run", run or RunModel(), group_by=group_by,
                                  contrasts=contrasts),), (), **kw)

    def execution(**kw):
        return ExecutionSettings(**{"output_dir": f"{bids}-out", "work_dir": f"{bids}-work",
                                    **kw})

    return {
        "run_analysis: spec: expected an AnalysisSpec (spec_from_args, read_model or "
        "AnalysisSpec(...)), got an ExecutionSettings":
            lambda: run_analysis(execution(), spec()),
        "run_analysis: spec: expected an AnalysisSpec (spec_from_args, read_model or "
        "AnalysisSpec(...)), got 'model_smdl.json' (str)":
            lambda: run_analysis("model_smdl.json", execution()),
        "run_analysis: execution: expected an ExecutionSettings, got {'output_dir': 'out'} "
        "(dict)": lambda: run_analysis(spec(), {"output_dir": "out"}),
        "ExecutionSettings.n_procs: expected a whole number or None, got '2' (str)":
            lambda: run_analysis(spec(), execution(plugin="MultiProc", n_procs="2")),
        "ExecutionSettings.plugin_args: expected JSON text (json.dumps of a dict), got "
        "{'n_procs': 2} (dict)": lambda: run_analysis(spec(), execution(plugin_args={
            "n_procs": 2})),
        "ExecutionSettings.output_dir: expected a path, got None (NoneType)":
            lambda: run_analysis(spec(), execution(output_dir=None)),
        "node 'run': group_by: expected a tuple of names, got 'run' (str)":
            lambda: spec(group_by="run"),
        "node 'run': contrasts: expected a tuple of Contrast, got a Contrast":
            lambda: spec(contrasts=contrast),
        "node 'run': NilearnDesign.high_pass: expected a number (Hz), got '0.01' (str)":
            lambda: spec(run=RunModel(design=NilearnDesign(high_pass="0.01"))),
        "node 'run': RunModel.confounds: expected a ConfoundSettings, got {'strategy': "
        "'simple'} (dict)": lambda: spec(run=RunModel(confounds={"strategy": "simple"})),
        "InferenceSettings.alpha: expected a number, got '0.05' (str)":
            lambda: spec(inference=InferenceSettings(alpha="0.05")),
        # numpy's bool is no bool (and not JSON): its type is named with its module
        "InferenceSettings.two_sided: expected True or False, got a numpy.bool":
            lambda: spec(inference=InferenceSettings(two_sided=np.bool_(True))),
        "read_model: path: expected a model file's path, got a dict (spec_from_dict takes "
        "a model read as JSON)": lambda: read_model({"Name": "m"}, bids_dir=bids),
    }


@pytest.mark.parametrize("expected", list(_python_route_cases("")))
def test_the_python_route_names_a_field_of_the_wrong_type(tmp_path, expected):
    """A wrong type given from Python: InputError, one line naming the field, before any
    folder is written (was: AttributeError/TypeError from inside a rule or the run, e.g.
    "'dict' object has no attribute 'verbosity'", or ``group_by="run"`` taken as the
    entities 'n', 'r', 'u' and run)."""
    from glm_workflows.core.errors import InputError

    bids = str(write_tiny_bids(tmp_path / "bids", subjects=("01",), n_scans=40))
    with pytest.raises(InputError) as raised:
        _python_route_cases(bids)[expected]()
    assert str(raised.value) == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bids"]


def test_spec_from_args_of_one_string_says_so(capsys):
    """``spec_from_args("--task x ...")`` (a string, not a list): one line saying so (was:
    "argument analysis_level: invalid choice: 'b'", the string read letter by letter)."""
    from glm_workflows import spec_from_args

    with pytest.raises(SystemExit) as raised:
        spec_from_args("--bids-dir data --task tiny")
    assert raised.value.code == 2
    assert capsys.readouterr().err.splitlines() == [
        "glm-workflows: error: expected the arguments as a list of words (shlex.split of "
        "the command line), got one string: '--bids-dir data --task tiny' (see "
        "glm-workflows --help)"]


def test_an_output_replacing_another_variable_is_warned_once(tmp_path, capsys):
    """``Scale`` of ``trial_type.a`` with ``Output: trial_type.b`` (pybids replaces ``b``
    silently, and the contrast a - b then compares a with itself rescaled): one warning
    line naming the instruction, once for the study's runs (was: nothing)."""
    import json

    study = write_tiny_bids(tmp_path / "bids", subjects=("01", "02"), n_scans=40)
    model = _confound_model(tmp_path / "model_smdl.json", [])
    written = json.loads(model.read_text())
    written["Nodes"][0]["Transformations"]["Instructions"].append(
        {"Name": "Scale", "Input": ["trial_type.a"], "Output": ["trial_type.b"]})
    model.write_text(json.dumps(written))
    assert main([str(study), str(tmp_path / "out"), "participant", "--model", str(model),
                 "-w", str(tmp_path / "work")]) == 0
    assert capsys.readouterr().err.splitlines() == [
        f"glm-workflows: warning: {model}: Nodes[0].Transformations.Instructions[1] (Scale): "
        "Output 'trial_type.b' replaced the variable of that name (as pybids does; give "
        "another Output name to keep both)"]


def test_a_dataset_design_refused_names_the_model_file_once(tmp_path, refused):
    """A model whose ``Input`` selects one subject for a one-sample Dataset node: the
    line names the file once (was: "model.json: model.json: Nodes[2].Model.X: ...")."""
    import json

    study = write_tiny_bids(tmp_path / "bids", subjects=("01", "02"), n_scans=40, runs=2)
    model = json.loads((ROOT / "examples" / "models" / "three_level_smdl.json").read_text())
    model["Input"]["subject"] = ["01"]
    path = tmp_path / "model_smdl.json"
    path.write_text(json.dumps(model))
    line = refused([str(study), str(tmp_path / "out"), "--model", str(path),
                    "-w", str(tmp_path / "work")])
    assert line == (f"glm-workflows: error: {path}: Nodes[2].Model.X: group model one-sample: "
                    "1 subject(s); at least two needed")


def test_events_in_x_that_nothing_convolves_are_warned_once(tmp_path, capsys):
    """A Run node without ``Model.HRF`` (or a condition left out of its ``Variables``):
    the events enter as boxcars, as pybids builds them; one warning line naming them
    (was: nothing, and z maps of an unconvolved design)."""
    import json

    study = write_tiny_bids(tmp_path / "bids", subjects=("01",), n_scans=40, runs=2)
    model = _confound_model(tmp_path / "model_smdl.json", [])
    written = json.loads(model.read_text())
    written["Nodes"][0]["Model"]["HRF"]["Variables"] = ["trial_type.a"]
    model.write_text(json.dumps(written))
    assert main([str(study), str(tmp_path / "out"), "participant", "--model", str(model),
                 "-w", str(tmp_path / "work")]) == 0
    assert capsys.readouterr().err.splitlines() == [
        f"glm-workflows: warning: {model}: Nodes[0].Model.X: 'trial_type.b': events not "
        "convolved (no Model.HRF or Convolve names them): they enter as boxcars sampled at "
        "the frame times"]


@pytest.mark.parametrize("flag", ["-w", "--output-dir"])
def test_a_folder_behind_a_broken_symbolic_link_is_refused_before_any_work(tmp_path, refused,
                                                                           flag):
    """``-w scratch/work`` or the output folder, ``scratch`` a link to a volume not
    mounted: one line naming the link (was, for ``-w``: a traceback from the design
    checks' mkdir, exit 1, the output folder left behind; for the output folder:
    "output directory is not writable (File exists)")."""
    study = write_tiny_bids(tmp_path / "bids", subjects=("01",), n_scans=40)
    (tmp_path / "scratch").symlink_to(tmp_path / "not-mounted")
    folders = {"-w": str(tmp_path / "work"), "--output-dir": str(tmp_path / "out")}
    folders[flag] = str(tmp_path / "scratch" / "folder")
    line = refused(["--bids-dir", str(study), "--analysis-level", "participant", *TINY,
                    "--output-dir", folders["--output-dir"], "-w", folders["-w"]])
    name = "--work-dir" if flag == "-w" else "--output-dir"
    assert line == (f"glm-workflows: error: {name} {tmp_path / 'scratch' / 'folder'}: "
                    f"{tmp_path / 'scratch'} is a broken symbolic link (to "
                    f"{tmp_path / 'not-mounted'})")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bids", "scratch"]


def test_an_output_dir_that_is_a_file_is_named_as_such(tmp_path, refused):
    """``--output-dir`` naming a file: "a file, not a directory" (was: "output directory
    is not writable (File exists)"); the file is left as it was."""
    study = write_tiny_bids(tmp_path / "bids", subjects=("01",), n_scans=40)
    (tmp_path / "out").write_text("a user's notes")
    line = refused([str(study), str(tmp_path / "out"), "participant", *TINY,
                    "-w", str(tmp_path / "work")])
    assert line == f"glm-workflows: error: --output-dir {tmp_path / 'out'}: a file, not a directory"
    assert (tmp_path / "out").read_text() == "a user's notes"


def test_an_earlier_commit_that_cannot_be_finished_is_one_line(tmp_path):
    """A commit journal whose replaced folder cannot be removed (made read-only after a
    run cut short): one line naming the folder, exit 2, before any work (was: a
    traceback from shutil.rmtree naming a file in it alone); once it is writable again,
    the next run finishes that commit and its own."""
    import json

    prefix = _without_root_override()
    study = write_tiny_bids(tmp_path / "bids", subjects=("01",), n_scans=40)
    out, work = tmp_path / "out", tmp_path / "work"
    argv = [str(study), str(out), "participant", *TINY, "-w", str(work)]
    assert main(argv) == 0
    staging = out / ".glm-workflows-pending-host-1-cut"
    trash = out / f".glm-workflows-replaced-{staging.name}-sub-01"
    trash.mkdir()
    (trash / "old.nii.gz").write_text("an older map")
    journal = out / f".glm-workflows-commit-{staging.name}.json"
    journal.write_text(json.dumps({"Staging": str(staging), "Swaps": [
        [str(staging / "sub-01"), str(out / "sub-01"), str(trash)]]}))
    trash.chmod(0o555)
    try:
        done = subprocess.run([*prefix, sys.executable, "-m", "glm_workflows.cli", *argv,
                               "--recheck"], capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
    finally:
        trash.chmod(0o755)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        f"glm-workflows: error: {trash}: the folder a commit replaced cannot be removed "
        "(Permission denied); make it and the folders in it writable, or remove it, then "
        "run again"]
    assert "Running" not in done.stdout
    assert main([*argv, "--recheck"]) == 0
    assert not trash.exists() and not journal.exists()


def test_a_models_design_sidecar_lists_the_confounds_its_x_takes(tmp_path):
    """A model whose ``X`` names three confounds of a file of 59 columns (cosineXX among
    them): the design sidecar's ``ConfoundColumns`` (the report's "Confounds used") are
    those three, and ``CosineConfounds`` none, the design's drifts being the model's
    (was: every column of the file, and the file's cosines)."""
    import json

    import pandas as pd

    from glm_workflows.synthetic import write_fmriprep_derivatives

    study = write_tiny_bids(tmp_path / "bids", subjects=("01",), n_scans=100)
    fmriprep = write_fmriprep_derivatives(study, tmp_path / "fmriprep")
    func = fmriprep / "sub-01" / "func"
    table = pd.read_csv(func / "sub-01_task-tiny_desc-confounds_timeseries.tsv", sep="\t")
    assert [c for c in table.columns if c.startswith("cosine")]
    names = ["framewise_displacement", "trans_x", "rot_z"]
    model = _confound_model(tmp_path / "model_smdl.json", names)
    out = tmp_path / "out"
    assert main([str(study), str(out), "participant", "--model", str(model), "--derivatives",
                 str(fmriprep), "-w", str(tmp_path / "work")]) == 0
    sidecar = json.loads((out / "sub-01" / "sub-01_task-tiny_space-MNI152NLin2009cAsym_"
                                           "design.json").read_text())
    assert sidecar["ConfoundColumns"] == names
    assert sidecar["CosineConfounds"] == []
    assert [c for c in sidecar["Columns"] if c in table.columns] == names


def test_a_contrast_over_fir_delays_fits_as_nilearn(tmp_path):
    """``Model.HRF`` ``fir`` (delays 0, 1, 2 scans) and a contrast over the delay columns
    (``trial_type.a_delay_1 - trial_type.b_delay_1``): the run's z map equals nilearn's
    FirstLevelModel with ``hrf_model="fir"`` (was: refused, "'trial_type.a_delay_1' is
    not in Model.X", so no contrast of an FIR model, nor of a derivative, could be
    written)."""
    import json

    import nibabel as nb
    import numpy as np
    import pandas as pd
    from nilearn.glm.first_level import FirstLevelModel, make_first_level_design_matrix

    from glm_workflows.synthetic import write_fmriprep_derivatives

    study = write_tiny_bids(tmp_path / "bids", subjects=("01",), n_scans=40)
    fmriprep = write_fmriprep_derivatives(study, tmp_path / "fmriprep")
    model = _confound_model(tmp_path / "model_smdl.json", [])
    written = json.loads(model.read_text())
    node = written["Nodes"][0]
    node["Model"]["HRF"].update(Model="fir", Parameters={"fir_delays": [0, 1, 2]})
    node["Contrasts"][0]["ConditionList"] = ["trial_type.a_delay_1", "trial_type.b_delay_1"]
    model.write_text(json.dumps(written))
    out = tmp_path / "out"
    assert main([str(study), str(out), "participant", "--model", str(model), "--derivatives",
                 str(fmriprep), "-w", str(tmp_path / "work")]) == 0
    bold = next((fmriprep / "sub-01" / "func").glob("*_desc-preproc_bold.nii.gz"))
    events = pd.read_csv(study / "sub-01" / "func" / "sub-01_task-tiny_events.tsv", sep="\t")
    design = make_first_level_design_matrix(np.arange(40) * 2.0, events, hrf_model="fir",
                                            fir_delays=[0, 1, 2], drift_model="cosine",
                                            high_pass=0.00625)
    fitted = FirstLevelModel(t_r=2.0, noise_model="ar1", mask_img=str(bold).replace(
        "desc-preproc_bold", "desc-brain_mask")).fit(str(bold), design_matrices=design)
    expected = fitted.compute_contrast("a_delay_1 - b_delay_1",
                                       output_type="z_score").get_fdata()
    ours = nb.load(out / "sub-01" / "sub-01_task-tiny_space-MNI152NLin2009cAsym_contrast-"
                                    "aMinusB_stat-z_statmap.nii.gz").get_fdata()
    np.testing.assert_allclose(ours, expected, rtol=0, atol=1e-6)


def test_the_same_command_twice_at_once_waits_for_the_first(tmp_path):
    """The same command started while it runs (held here by the test): the second waits
    with one note, then runs, exit 0 (was: both running the same Nipype nodes at once,
    one failing inside Nipype, "FileNotFoundError: ..._unfinished.json", exit 1)."""
    import time

    from glm_workflows import spec_from_args
    from glm_workflows.execution.analysis_lock import analysis_lock

    study = write_tiny_bids(tmp_path / "bids", subjects=("01",), n_scans=40)
    out, work = tmp_path / "out", tmp_path / "work"
    argv = [str(study), str(out), "participant", *TINY, "-w", str(work)]
    spec, execution = spec_from_args(argv)
    with analysis_lock(spec, execution):  # the first run, still running
        second = subprocess.Popen([sys.executable, "-m", "glm_workflows.cli", *argv],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env={**os.environ, "PYTHONPATH": str(ROOT)})
        for _ in range(20):  # 10 s to start, pass its checks and reach the lock
            if second.poll() is not None or (out / "sub-01").exists():
                break
            time.sleep(0.5)
        assert second.poll() is None  # waiting
        assert not (out / "sub-01").exists()
    stdout, stderr = second.communicate(timeout=300)
    assert second.returncode == 0, stderr
    assert stderr.splitlines() == [
        "glm-workflows: note: the same analysis is running in another process (work "
        f"directory {work}); waiting for it to finish"]
    assert (out / "sub-01" / "sub-01_task-tiny_contrast-aMinusB_stat-z_statmap.nii.gz").is_file()


@pytest.mark.parametrize("route", ["model", "flags"])
def test_a_dataset_level_that_no_t_contrast_reaches_is_warned(tmp_path, capsys, route):
    """Only F contrasts at the first level, and a group level (an F contrast is final in
    BIDS Stats Models, and the flags' group level takes t contrasts): one warning line
    saying the group level writes nothing (was: exit 0 and no group folder, silently)."""
    import json

    study = write_tiny_bids(tmp_path / "bids", subjects=("01", "02"), n_scans=40)
    out = tmp_path / "out"
    if route == "model":
        model = json.loads((ROOT / "examples" / "models" / "three_level_smdl.json").read_text())
        model["Nodes"][0]["Contrasts"][0].update(Test="F", Weights=[[1, -1]])
        path = tmp_path / "model_smdl.json"
        path.write_text(json.dumps(model))
        argv = ["--model", str(path)]
        expected = (f"glm-workflows: warning: {path}: Dataset node 'dataset': no t contrast "
                    "reaches it (F contrasts are final): it writes nothing")
    else:
        argv = ["--task", "tiny", "--f-contrast", "effects=a,b", "--group", "one-sample"]
        expected = ("glm-workflows: warning: --group one-sample: no t contrast (--contrast) "
                    "to take to the group level (F contrasts stay at the first level): it "
                    "writes nothing")
    assert main(["--bids-dir", str(study), "--output-dir", str(out), *argv,
                 "-w", str(tmp_path / "work")]) == 0
    assert capsys.readouterr().err.splitlines() == [expected]
    assert not (out / "group").exists()
