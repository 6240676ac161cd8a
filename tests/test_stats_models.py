"""``--model FILE``: a BIDS Stats Models file gives the maps of the equivalent flags (the
seed analysis; a three-level model on a multi-run study), its sidecars and report show
the model, and a bad model is one line (exit 2) before any work."""

import copy
import json
import re
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd
import pytest

from glm_workflows.cli import main
from glm_workflows.core.naming import GROUP_FOLDER, group_file, group_stem
from glm_workflows.synthetic import write_participants, write_tiny_bids

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "models"
SUBJECTS = ["01", "02", "03", "04", "05"]


def _maps(folder: Path, pattern: str) -> dict:
    return {p.name: p for p in sorted(folder.glob(pattern))}


def _assert_same_maps(folder: Path, reference: Path, pattern: str) -> int:
    ours, theirs = _maps(folder, pattern), _maps(reference, pattern)
    assert ours and list(ours) == list(theirs)
    for name, path in ours.items():
        np.testing.assert_array_equal(nb.load(path).get_fdata(),
                                      nb.load(theirs[name]).get_fdata(), err_msg=name)
    return len(ours)


@pytest.mark.slow
def test_seed_model_file_equals_the_flags(seed_cli, bids_dir, tmp_path, capsys):
    """examples/models/auditory_smdl.json on the MoAE BIDS run: every map identical to the
    command line's seed analysis (same design values, columns named after the model)."""
    root, _, _ = seed_cli
    out = tmp_path / "out"
    assert main(["--bids-dir", str(bids_dir), "--model", str(EXAMPLES / "auditory_smdl.json"),
                 "--output-dir", str(out), "--work-dir", str(tmp_path / "work")]) == 0
    printed = capsys.readouterr().out
    assert "activeMinusRest: fdr alpha=0.05 -> z > 2.931, 5 cluster(s)" in printed
    assert _assert_same_maps(out / "sub-01", root / "out" / "sub-01",
                             "*_contrast-*_statmap.nii.gz") == 12
    design = json.loads(next((out / "sub-01").glob("*_design.json")).read_text())
    assert design["Columns"][:2] == ["trial_type.active", "trial_type.rest"]
    assert design["Columns"][-1] == "intercept"
    assert design["StatsModelNode"]["HighPassFilterCutoffHz"] == 1 / 160
    reference = json.loads(next((root / "out" / "sub-01").glob("*_design.json")).read_text())
    assert len(design["Columns"]) == len(reference["Columns"])
    page = (out / "sub-01.html").read_text()
    assert "Model file (BIDS Stats Models): auditory" in page and "HighPassFilterCutoffHz" in page


@pytest.fixture(scope="module")
def multi_run_study(tmp_path_factory):
    """Five tiny subjects of two runs each, with a participants.tsv."""
    root = write_tiny_bids(tmp_path_factory.mktemp("smdl") / "bids", SUBJECTS, runs=2)
    write_participants(root, SUBJECTS)
    return root


@pytest.mark.slow
def test_three_level_model_equals_the_flags(multi_run_study, tmp_path):
    """Run (glm) -> Subject (meta) -> Dataset (glm, DummyContrasts): the run, fixed-effects
    and group maps equal those of ``--contrast aMinusB='a - b' --group one-sample``."""
    flags, model = tmp_path / "flags", tmp_path / "model"
    assert main(["--bids-dir", str(multi_run_study), "--task", "tiny", "--contrast",
                 "aMinusB=a - b", "--group", "one-sample", "--output-dir", str(flags),
                 "--work-dir", str(tmp_path / "w1")]) == 0
    assert main(["--bids-dir", str(multi_run_study), "--model",
                 str(EXAMPLES / "three_level_smdl.json"), "--output-dir", str(model),
                 "--work-dir", str(tmp_path / "w2")]) == 0
    for subject in SUBJECTS:
        assert _assert_same_maps(model / f"sub-{subject}", flags / f"sub-{subject}",
                                 "*_statmap.nii.gz") == 3 * 6 + 2 * 4
        # two runs and fixed effects (3 x 6 contrast maps), each run's 4 diagnostics maps
    assert _assert_same_maps(model / GROUP_FOLDER, flags / GROUP_FOLDER, "*_statmap.nii.gz")
    z = group_file(group_stem("tiny", "aMinusB"), "z_maps")
    assert (model / GROUP_FOLDER / z).exists()


@pytest.mark.slow
def test_edge_filter_and_covariate(multi_run_study, tmp_path):
    """A Dataset X with a participants.tsv column and an edge Filter by contrast: only that
    contrast goes up; the group maps equal ``--group-covariates age`` with the contrasts
    named as the model names them."""
    spec = json.loads((EXAMPLES / "three_level_smdl.json").read_text())
    spec["Nodes"][0]["Contrasts"].append({"Name": "a_only", "ConditionList": ["trial_type.a"],
                                          "Weights": [1], "Test": "t"})
    spec["Nodes"][2]["Model"]["X"] = [1, "age"]
    spec["Edges"][1]["Filter"] = {"contrast": ["aMinusB"]}
    path = tmp_path / "covariate_smdl.json"
    path.write_text(json.dumps(spec))
    model, flags = tmp_path / "model", tmp_path / "flags"
    assert main(["--bids-dir", str(multi_run_study), "--model", str(path),
                 "--output-dir", str(model), "--work-dir", str(tmp_path / "w1")]) == 0
    assert main(["--bids-dir", str(multi_run_study), "--task", "tiny",
                 "--contrast", "aMinusB=a - b", "--contrast", "aOnly=a",
                 "--group", "one-sample", "--group-covariates", "age",
                 "--group-contrast", "intercept=intercept", "--group-contrast", "age=age",
                 "--output-dir", str(flags), "--work-dir", str(tmp_path / "w2")]) == 0
    maps = _maps(model / GROUP_FOLDER, "*_statmap.nii.gz")
    assert maps and all(re.search(r"contrast-aMinusB[_+]", name)  # aOnly filtered out
                        for name in maps)
    assert any("contrast-aMinusB+age_" in name for name in maps)
    for name, map_path in maps.items():
        np.testing.assert_array_equal(nb.load(map_path).get_fdata(),
                                      nb.load(flags / GROUP_FOLDER / name).get_fdata())
    assert (model / "sub-01" / "sub-01_task-tiny_contrast-aOnly_stat-z_statmap.nii.gz").exists()


def _bad(tmp_path, mutate):
    spec = json.loads((EXAMPLES / "three_level_smdl.json").read_text())
    mutate(spec)
    path = tmp_path / "bad_smdl.json"
    path.write_text(json.dumps(spec))
    return path


@pytest.mark.parametrize("mutate, message", [
    (lambda s: s["Nodes"][0]["Model"].update(Colour="red"),
     "Nodes[0].Model.Colour: unknown key"),
    (lambda s: s["Nodes"][0]["Model"].update(X="trial_type.a"), "Nodes[0].Model.X"),
    (lambda s: s["Nodes"][0]["Contrasts"][0].update(ConditionList=["trial_type.c"]),
     "Nodes[0].Contrasts[0]"),
    (lambda s: s["Nodes"][0]["Contrasts"][0].update(Weights=[1, -1, 0]),
     "Nodes[0].Contrasts[0].Weights: 3 weights for 2 conditions"),
    (lambda s: s["Edges"][1].update(Destination="group"),
     "Edges[1].Destination: no node named 'group'"),
    (lambda s: s["Nodes"].pop(0) and s.pop("Edges"), "Run"),
    (lambda s: s["Nodes"][0]["Transformations"]["Instructions"].append(
        {"Name": "Scale", "Input": ["response_time"]}),
     "Nodes[0].Transformations.Instructions[1] (Scale): no variable 'response_time'"),
    (lambda s: s["Nodes"][0]["Model"].update(X=["trial_type.a", "trial_type.c", 1]),
     "trial_type.c"),
    (lambda s: s["Nodes"][0]["Transformations"]["Instructions"].append(
        {"Name": "Convolve", "Input": ["trial_type.a"], "Model": "spm"}),
     "convolved twice"),
    (lambda s: s["Nodes"][0]["Model"]["Options"].update(LowPassFilterCutoffHz=0.1),
     "LowPassFilterCutoffHz"),
    (lambda s: s["Nodes"][1]["Model"].update(Type="glm"),
     "Nodes[1].Model.Type: 'glm' at the Subject level is not supported"),
    (lambda s: s["Nodes"][0]["Model"]["Options"].update(Mask={"desc": ["brain"]}),
     "Nodes[0].Model.Options.Mask: masks by entities are not supported"),
    (lambda s: s["Nodes"][0]["Contrasts"].append(
        {"Name": "a_minus_b", "ConditionList": ["trial_type.a"], "Weights": [1],
         "Test": "t"}) or s["Nodes"][0]["Contrasts"].append(
        {"Name": "aMinusB2", "ConditionList": ["trial_type.a"], "Weights": [1], "Test": "t"})
     or s["Nodes"][0]["Contrasts"][1].update(Name="a-minus-b"),
     "both become the BIDS label 'aMinusB'"),
    (lambda s: s["Edges"][1].update(Filter={"contrast": ["bMinusA"]}),
     "Edges Filter: no first-level t contrast 'bMinusA'"),
    (lambda s: s["Nodes"].pop(1) and s.pop("Edges"),
     "the Dataset node takes the Run node's outputs directly, but sub-01 has 2 runs"),
    (lambda s: s["Nodes"][0]["Model"].update(X=["trial_type.*", 1])
     or s["Nodes"][0].update(DummyContrasts={"Test": "t"}),
     "Nodes[0].DummyContrasts: list its Contrasts"),
    (lambda s: s["Nodes"][2]["Model"].update(X=[1, "group"]),
     "bad_smdl.json: Nodes[2].Model.X: participants.tsv: covariate 'group'"),
    (lambda s: s["Nodes"][0]["Transformations"]["Instructions"].append(
        {"Name": "Scale", "Input": ["onset"]}),
     "(in the run of "),  # a run's transformation fails: the events file is named
    (lambda s: s["Nodes"][1]["Model"].update(X=["runnum"]) or s["Nodes"][1].update(
        Contrasts=[{"Name": "slope", "ConditionList": ["runnum"], "Weights": [1],
                    "Test": "t"}]),
     "bad_smdl.json: Nodes[1]: Model.X: no column 'runnum' in "),
    (lambda s: s["Nodes"][1]["Model"].update(X=[1, "run"]) or s["Nodes"][1].update(
        Contrasts=[{"Name": "slope", "ConditionList": ["run"], "Weights": [[1]],
                    "Test": "F"}]),
     "Nodes[1]: contrast slope: only t contrasts combine a subject's maps"),
])
def test_bad_model_refused_before_any_work(multi_run_study, tmp_path, capsys, mutate,
                                           message):
    out = tmp_path / "out"
    code = main(["--bids-dir", str(multi_run_study), "--model", str(_bad(tmp_path, mutate)),
                 "--output-dir", str(out), "--work-dir", str(tmp_path / "work")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists() or not any(out.glob("sub-*"))


def test_model_replaces_the_model_flags(multi_run_study, tmp_path, capsys):
    code = main(["--bids-dir", str(multi_run_study), "--model",
                 str(EXAMPLES / "three_level_smdl.json"), "--contrast", "x=a",
                 "--output-dir", str(tmp_path / "out")])
    assert code == 2
    assert "--contrast: not with --model" in capsys.readouterr().err


@pytest.mark.slow
def test_model_on_fmriprep_confounds(fmriprep_moae, tmp_path):
    """X takes fMRIPrep confound columns by glob: the design holds them (n/a of the
    derivative columns as 0), equal to the confounds file's columns."""
    raw, derivatives = fmriprep_moae
    spec = json.loads((EXAMPLES / "auditory_smdl.json").read_text())
    spec["Nodes"][0]["Model"]["X"] = ["trial_type.active", "trial_type.rest", "trans_*", 1]
    path = tmp_path / "confounds_smdl.json"
    path.write_text(json.dumps(spec))
    out = tmp_path / "out"
    assert main(["--bids-dir", str(raw), "--derivatives", str(derivatives), "--model",
                 str(path), "--output-dir", str(out), "--work-dir", str(tmp_path / "w")]) == 0
    design = pd.read_csv(next((out / "sub-01").glob("*_design.tsv")), sep="\t")
    confounds = pd.read_csv(next(Path(derivatives).rglob("*_desc-confounds_timeseries.tsv")),
                            sep="\t", na_values=["n/a"])
    columns = [c for c in confounds.columns if c.startswith("trans_")]
    assert [c for c in design.columns if c.startswith("trans_")] == columns
    np.testing.assert_array_equal(design[columns].to_numpy(),
                                  confounds[columns].fillna(0).to_numpy())


def test_deep_copy_of_examples_untouched():
    """The shipped examples stay valid JSON models (the tests above mutate copies)."""
    for path in EXAMPLES.glob("*_smdl.json"):
        spec = json.loads(path.read_text())
        assert copy.deepcopy(spec)["BIDSModelVersion"] == "1.0.0"


@pytest.mark.slow
def test_hrf_derivatives_follow_their_variable(multi_run_study, tmp_path):
    """X names a convolved variable; its derivative columns come with it, in nilearn's
    order: the maps equal ``--hrf-model 'spm + derivative'``."""
    spec = json.loads((EXAMPLES / "three_level_smdl.json").read_text())
    spec["Nodes"][0]["Model"]["HRF"]["Model"] = "spm + derivative"
    spec["Nodes"] = spec["Nodes"][:1]
    del spec["Edges"]
    path = tmp_path / "derivative_smdl.json"
    path.write_text(json.dumps(spec))
    common = ["--bids-dir", str(multi_run_study), "--participant-label", "01"]
    assert main([*common, "--model", str(path), "--output-dir", str(tmp_path / "model"),
                 "--work-dir", str(tmp_path / "w1")]) == 0
    assert main([*common, "--task", "tiny", "--contrast", "aMinusB=a - b", "--hrf-model",
                 "spm + derivative", "--output-dir", str(tmp_path / "flags"),
                 "--work-dir", str(tmp_path / "w2")]) == 0
    design = pd.read_csv(next((tmp_path / "model" / "sub-01").glob("*run-1*_design.tsv")),
                         sep="\t")
    assert list(design.columns[:4]) == ["trial_type.a", "trial_type.a_derivative",
                                        "trial_type.b", "trial_type.b_derivative"]
    assert _assert_same_maps(tmp_path / "model" / "sub-01", tmp_path / "flags" / "sub-01",
                             "*_statmap.nii.gz") == 18 + 2 * 4  # and 2 runs' diagnostics


def test_no_high_pass_no_drifts(spm_events):
    """Without HighPassFilterCutoffHz the design is X alone (no drift columns), and equals
    nilearn's design without drifts."""
    from nilearn.glm.first_level import make_first_level_design_matrix

    from glm_workflows.core.model_design import model_design, run_node_json
    from glm_workflows.core.stats_model_read import stats_model

    spec = json.loads((EXAMPLES / "auditory_smdl.json").read_text())
    del spec["Nodes"][0]["Model"]["Options"]
    node = stats_model(spec).root
    design, _ = model_design(spm_events, 96, 7.0, run_node=run_node_json(node),
                             slice_time_ref=0.0)
    assert list(design.columns) == ["trial_type.active", "trial_type.rest", "intercept"]
    events = pd.read_csv(spm_events, sep="\t")
    nilearn = make_first_level_design_matrix(np.arange(96) * 7.0, events, hrf_model="spm",
                                             drift_model=None)
    np.testing.assert_array_equal(design.to_numpy(), nilearn.to_numpy())
