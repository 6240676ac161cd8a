"""The acq, ce, rec, dir and echo entities of a run, and the space, cohort, res and den of
the fMRIPrep image analysed, are kept in its output names, in the BIDS schema's order."""

import contextlib
import io
import itertools
import shutil
import warnings

import nibabel as nb
import numpy as np
import pandas as pd
import pytest
from nilearn.glm.first_level import FirstLevelModel

from glm_workflows.cli import main
from glm_workflows.core.entities import EXTRA_ENTITIES, bids_prefix, parse_prefix
from glm_workflows.core.errors import InputError
from glm_workflows.core.naming import contrast_file, report_page
from glm_workflows.inputs.bids import find_bids_runs
from glm_workflows.inputs.runs import RunInputs
from glm_workflows.synthetic import write_tiny_bids
from glm_workflows.workflows.study import subject_entities

ALL = {"subject": "01", "session": "pre", "task": "x", "acq": "hi", "ce": "gad",
       "rec": "mag", "dir": "AP", "run": "2", "echo": "1"}
OPTIONAL = ("session", "acq", "ce", "rec", "dir", "run", "echo")


# --- naming -------------------------------------------------------------------------------

def test_prefix_with_every_entity_in_bids_order():
    assert bids_prefix(**ALL) == "sub-01_ses-pre_task-x_acq-hi_ce-gad_rec-mag_dir-AP_run-2_echo-1"


@pytest.mark.parametrize("present", [c for n in range(len(OPTIONAL) + 1)
                                     for c in itertools.combinations(OPTIONAL, n)])
def test_prefix_round_trip(present):
    entities = {key: (ALL[key] if key in ("subject", "task", *present) else None)
                for key in ALL}
    prefix = bids_prefix(**entities)
    assert parse_prefix(prefix) == {**dict.fromkeys(EXTRA_ENTITIES), **entities}
    assert bids_prefix(**parse_prefix(prefix)) == prefix


def test_template_entities_follow_the_bids_schema_order():
    """space, cohort, res and den of an fMRIPrep image are placed where the BIDS schema's
    entity table (bidsschematools) puts them, and parsed back."""
    from bidsschematools.schema import load_schema

    schema = load_schema()
    order = [schema.objects.entities[key].name for key in schema.rules.entities]
    entities = {"subject": "01", "session": "pre", "task": "x", "run": "1", "acq": "hi",
                "space": "MNI152NLin2009cAsym", "cohort": "2", "res": "2", "den": "91k"}
    prefix = bids_prefix(**entities)
    keys = [part.split("-")[0] for part in prefix.split("_")]
    assert keys == sorted(keys, key=order.index)
    assert set(keys) == {"sub", "ses", "task", "run", "acq", "space", "cohort", "res", "den"}
    assert parse_prefix(prefix) == {**dict.fromkeys(EXTRA_ENTITIES), **entities}


def test_prefix_without_extra_entities_is_unchanged():
    assert bids_prefix("01", "x", "pre", "1") == "sub-01_ses-pre_task-x_run-1"
    assert bids_prefix("01", "x", acq=None, echo="") == "sub-01_task-x"


def test_prefix_checks_the_extra_labels():
    with pytest.raises(InputError, match="acq label 'a-b'"):
        bids_prefix("01", "x", acq="a-b")


def test_entities_out_of_order_are_no_prefix():
    assert parse_prefix("sub-01_task-x_run-1_acq-hi") is None


def test_run_label_and_prefix():
    run = RunInputs("01", "x", [], "", 2.0, session="a", run="1", entities={"acq": "hi"})
    assert run.prefix == "sub-01_ses-a_task-x_acq-hi_run-1"
    assert run.label == "sub_01_ses_a_task_x_acq_hi_run_1"
    assert RunInputs("01", "x", [], "", 2.0, run="1").label == "sub_01_task_x_run_1"


def test_subject_level_keeps_shared_entities_only():
    def run(**entities):
        return RunInputs("01", "x", [], "", 2.0, entities=entities)

    assert subject_entities([run(acq="hi", echo="1"), run(acq="lo", echo="1")]) == {"echo": "1"}
    assert subject_entities([run(acq="hi"), run()]) == {}


# --- a study with two acquisitions ---------------------------------------------------------

def write_acq_study(root):
    """sub-01 with ``acq-hi`` (the tiny run) and ``acq-lo`` (another noise seed)."""
    bids = write_tiny_bids(root / "bids", subjects=("01",))
    other = write_tiny_bids(root / "other", subjects=("01",), seed=1)
    func = bids / "sub-01" / "func"
    for suffix in ("bold.nii.gz", "events.tsv"):
        (func / f"sub-01_task-tiny_{suffix}").rename(func / f"sub-01_task-tiny_acq-hi_{suffix}")
        shutil.copy(other / "sub-01" / "func" / f"sub-01_task-tiny_{suffix}",
                    func / f"sub-01_task-tiny_acq-lo_{suffix}")
    return bids


@pytest.fixture(scope="module")
def acq_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("acq")
    bids = write_acq_study(root)
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        code = main(["--bids-dir", str(bids), "--task", "tiny", "--output-dir", str(root / "out"),
                     "--work-dir", str(root / "work"), "--plugin", "Linear",
                     "--contrast", "aMinusB=a - b"])
    return code, stderr.getvalue(), bids, root / "out"


def test_find_bids_runs_keeps_acq(tmp_path):
    runs = find_bids_runs(write_acq_study(tmp_path), "tiny")
    assert [r.entities for r in runs] == [{"acq": "hi"}, {"acq": "lo"}]
    assert [r.prefix for r in runs] == ["sub-01_task-tiny_acq-hi", "sub-01_task-tiny_acq-lo"]


def test_runs_named_as_their_fixed_effects_are_refused(tmp_path):
    bids = write_acq_study(tmp_path)
    func = bids / "sub-01" / "func"
    for suffix in ("bold.nii.gz", "events.tsv"):
        (func / f"sub-01_task-tiny_acq-lo_{suffix}").rename(func / f"sub-01_task-tiny_{suffix}")
    with pytest.raises(InputError, match="would be named sub-01_task-tiny, as one of the runs"):
        find_bids_runs(bids, "tiny")


@pytest.mark.parametrize("acq", ["hi", "lo"])
def test_run_maps_equal_nilearn(acq_run, acq):
    code, stderr, bids, out = acq_run
    assert code == 0, stderr
    stem = bids / "sub-01" / "func" / f"sub-01_task-tiny_acq-{acq}"
    model = FirstLevelModel(t_r=2, noise_model="ar1", standardize=False, hrf_model="spm",
                            drift_model="cosine", high_pass=1 / 160)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(f"{stem}_bold.nii.gz", events=pd.read_csv(f"{stem}_events.tsv", sep="\t"))
        expected = model.compute_contrast("a - b", output_type="z_score").get_fdata()
    prefix = f"sub-01_task-tiny_acq-{acq}"
    path = out / "sub-01" / contrast_file(prefix, "aMinusB", "z_maps")
    assert path.name == f"sub-01_task-tiny_acq-{acq}_contrast-aMinusB_stat-z_statmap.nii.gz"
    ours = nb.load(path).get_fdata()
    assert np.count_nonzero(ours) > 100
    np.testing.assert_allclose(ours, expected, atol=1e-10, rtol=0)


def test_subject_level_and_report(acq_run):
    code, stderr, _, out = acq_run
    assert code == 0, stderr
    folder = out / "sub-01"
    for output in ("z_maps", "effect_maps", "contrast_jsons"):
        assert (folder / contrast_file("sub-01_task-tiny", "aMinusB", output)).exists()
    sidecar = pd.read_json(folder / contrast_file("sub-01_task-tiny", "aMinusB",
                                                  "contrast_jsons"), typ="series")
    assert list(sidecar["FixedEffectsOf"]) == ["sub-01_task-tiny_acq-hi",
                                               "sub-01_task-tiny_acq-lo"]
    page = (out / report_page("01")).read_text()
    assert "sub-01_task-tiny_acq-hi" in page and "sub-01_task-tiny_acq-lo" in page
    assert "Fixed effects over runs acq-hi, acq-lo." in page
