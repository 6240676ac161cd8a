"""Finding fMRIPrep-preprocessed runs, and the fMRIPrep-like test derivatives (no Nipype)."""

import json
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from glm_workflows.core.errors import InputError
from glm_workflows.inputs.fmriprep import find_derivative_runs
from glm_workflows.inputs.runs import slice_time_reference
from glm_workflows.synthetic import write_fmriprep_derivatives, write_tiny_bids

SPACE = "MNI152NLin2009cAsym"
FAKE_TR, FAKE_START_TIME = 1.5, 0.6


# --- the MoAE run and write_fmriprep_derivatives -----------------------------------------

def test_moae_run_found(fmriprep_moae):
    """One run: the preprocessed bold, its mask and confounds, the raw events, TR 7."""
    raw, derivatives = fmriprep_moae
    (run,) = find_derivative_runs(raw, derivatives, "auditory")
    func = derivatives / "sub-01" / "func"
    prefix = "sub-01_task-auditory"
    assert run.bold_files == [str(func / f"{prefix}_space-{SPACE}_desc-preproc_bold.nii.gz")]
    assert run.mask_file == str(func / f"{prefix}_space-{SPACE}_desc-brain_mask.nii.gz")
    assert run.confounds_file == str(func / f"{prefix}_desc-confounds_timeseries.tsv")
    assert run.events_file == str((raw / "sub-01" / "func" / f"{prefix}_events.tsv").absolute())
    assert run.t_r == json.loads((raw / "task-auditory_bold.json").read_text())["RepetitionTime"]
    assert (run.space, run.slice_time_ref, run.label) == \
        (SPACE, None, f"sub_01_task_auditory_space_{SPACE}")


@pytest.mark.slow
def test_moae_derivatives_as_fmriprep_writes_them(fmriprep_moae):
    """Description, sidecar, mask and confound columns look like fMRIPrep's."""
    import nibabel as nb

    raw, derivatives = fmriprep_moae
    description = json.loads((derivatives / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert description["GeneratedBy"][0]["Name"] == "fMRIPrep"
    (run,) = find_derivative_runs(raw, derivatives, "auditory")
    bold, source = nb.load(run.bold_files[0]), nb.load(raw / "sub-01/func/"
                                                       "sub-01_task-auditory_bold.nii.gz")
    assert bold.get_data_dtype() == np.float32
    np.testing.assert_allclose(bold.affine, source.affine)
    np.testing.assert_array_equal(np.asanyarray(bold.dataobj),
                                  np.asanyarray(source.dataobj).astype(np.float32))
    sidecar = json.loads(Path(run.bold_files[0].replace(".nii.gz", ".json")).read_text())
    assert sidecar["RepetitionTime"] == 7.0 and sidecar["SkullStripped"] is False
    mask = nb.load(run.mask_file)
    assert mask.get_data_dtype() == np.uint8 and mask.shape == source.shape[:3]
    assert 0 < np.asarray(mask.dataobj).mean() < 1

    table = pd.read_csv(run.confounds_file, sep="\t", na_values="n/a")
    assert len(table) == source.shape[3]
    for base in ("global_signal", "csf", "white_matter", "trans_x", "trans_y", "trans_z",
                 "rot_x", "rot_y", "rot_z"):
        for column in (base, f"{base}_derivative1", f"{base}_power2",
                       f"{base}_derivative1_power2"):
            assert column in table
        assert table[f"{base}_derivative1"].isna().tolist() == [True] + [False] * 95
    for column in ("framewise_displacement", "dvars", "std_dvars"):
        assert np.isnan(table[column][0]) and not table[column][1:].isna().any()
    assert (table.framewise_displacement > 0.5).sum() == 3
    assert (table.std_dvars > 1.5).sum() >= 3
    assert np.abs(table[["trans_x", "trans_y", "trans_z"]]).max().max() < 5  # mm
    assert np.abs(table[["rot_x", "rot_y", "rot_z"]]).max().max() < 0.1  # radians
    # fMRIPrep's DCT basis: floor(2 * n * TR / 128) - 1 cosines (the constant left out)
    n_cosines = int(np.floor(2 * 96 * 7.0 / 128)) - 1
    assert [c for c in table if c.startswith("cosine")] == [f"cosine{k:02d}"
                                                            for k in range(n_cosines)]
    for prefix, count in (("a", 6), ("c", 3), ("w", 3), ("t", 3)):
        assert [c for c in table if c.startswith(f"{prefix}_comp_cor")] == [
            f"{prefix}_comp_cor_{k:02d}" for k in range(count)]
    outliers = table[["non_steady_state_outlier00", "non_steady_state_outlier01"]].to_numpy()
    np.testing.assert_array_equal(outliers, np.eye(96)[:, :2])


def test_moae_confounds_load_with_nilearn(fmriprep_moae):
    """nilearn's simple, scrubbing and compcor strategies read the confounds."""
    from nilearn.interfaces.fmriprep import load_confounds_strategy

    raw, derivatives = fmriprep_moae
    (run,) = find_derivative_runs(raw, derivatives, "auditory")
    table = pd.read_csv(run.confounds_file, sep="\t", na_values="n/a")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        simple, simple_mask = load_confounds_strategy(run.bold_files[0], "simple")
        scrub, scrub_mask = load_confounds_strategy(run.bold_files[0], "scrubbing")
        compcor, _ = load_confounds_strategy(run.bold_files[0], "compcor")
    for confounds in (simple, scrub, compcor):
        assert len(confounds) == 96 and not confounds.isna().any().any()
        assert {"trans_x", "rot_z_derivative1_power2", "cosine00"} <= set(confounds)
    assert {"csf", "white_matter"} <= set(simple)
    assert not any("comp_cor" in c for c in simple)
    assert [c for c in compcor if "comp_cor" in c] == [f"a_comp_cor_{k:02d}" for k in range(6)]
    np.testing.assert_array_equal(simple_mask, np.arange(2, 96))  # non-steady volumes out
    flagged = set(np.flatnonzero((table.framewise_displacement > 0.5)
                                 | (table.std_dvars > 1.5))) | {0, 1}
    assert flagged and not flagged & set(scrub_mask)


def test_writer_is_deterministic(tmp_path):
    """The same seed gives the same confounds; another seed other motion."""
    raw = write_tiny_bids(tmp_path / "raw", ("01",))
    tables = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        out = write_fmriprep_derivatives(raw, tmp_path / name, space="T1w", seed=seed)
        (run,) = find_derivative_runs(raw, out, "tiny")
        assert run.space == "T1w"
        tables.append(pd.read_csv(run.confounds_file, sep="\t", na_values="n/a"))
    pd.testing.assert_frame_equal(tables[0], tables[1])
    assert not np.allclose(tables[0].trans_x, tables[2].trans_x)


# --- nilearn's fake BIDS dataset ---------------------------------------------------------

@pytest.fixture(scope="module")
def fake_bids(tmp_path_factory):
    """nilearn's fake dataset (2 subjects x 2 sessions x 2 runs of task main, spaces MNI
    and T1w), with a ``StartTime`` in every derivative bold sidecar."""
    from nilearn._utils.data_gen import create_fake_bids_dataset

    root = create_fake_bids_dataset(base_dir=tmp_path_factory.mktemp("fake"), n_sub=2,
                                    n_ses=2, tasks=["main"], n_runs=[2])
    for bold in (root / "derivatives").glob("sub-*/ses-*/func/*_bold.nii.gz"):
        bold.with_name(bold.name.replace(".nii.gz", ".json")).write_text(json.dumps(
            {"RepetitionTime": FAKE_TR, "StartTime": FAKE_START_TIME}))
    return root


@pytest.fixture
def fake_copy(fake_bids, tmp_path):
    """A copy of :func:`fake_bids` to change."""
    return shutil.copytree(fake_bids, tmp_path / "bids")


def test_several_spaces_refused(fake_bids):
    """Without --space, the two spaces present are listed."""
    with pytest.raises(InputError, match=r"several spaces .*\(MNI, T1w\).* --space"):
        find_derivative_runs(fake_bids, fake_bids / "derivatives", "main")


def test_every_run_with_mask_and_confounds(fake_bids):
    """Each raw run gets its space-MNI bold, mask and confounds, and its raw events."""
    runs = find_derivative_runs(fake_bids, [fake_bids / "derivatives"], "main", space="MNI")
    raw_bolds = sorted(fake_bids.glob("sub-*/ses-*/func/*_task-main_*bold.nii.gz"))
    assert len(runs) == len(raw_bolds) == 8
    for run, raw in zip(runs, raw_bolds, strict=True):
        prefix = raw.name.replace("_bold.nii.gz", "")
        func = fake_bids / "derivatives" / raw.parent.relative_to(fake_bids)
        assert run.bold_files == [str(func / f"{prefix}_space-MNI_desc-preproc_bold.nii.gz")]
        assert run.mask_file == str(func / f"{prefix}_space-MNI_desc-brain_mask.nii.gz")
        assert run.confounds_file == str(func / f"{prefix}_desc-confounds_timeseries.tsv")
        assert run.events_file == str(raw.with_name(f"{prefix}_events.tsv"))
        assert (run.subject, run.session, run.run, run.space) == (
            prefix.split("_")[0][4:], prefix.split("_")[1][4:], prefix.split("_")[3][4:], "MNI")
    t1w = find_derivative_runs(fake_bids, fake_bids / "derivatives", "main", space="T1w",
                               desc="fmriprep", subjects=["01"])
    assert [r.bold_files[0].endswith("_space-T1w_desc-fmriprep_bold.nii.gz") for r in t1w] \
        == [True] * 4
    assert all(r.mask_file.endswith("_space-T1w_desc-brain_mask.nii.gz") for r in t1w)


def test_selections(fake_bids):
    """runs=["1"] matches run-01; sessions and subjects keep what they name."""
    runs = find_derivative_runs(fake_bids, fake_bids / "derivatives", "main", space="MNI",
                                runs=["1"], sessions=["ses-02"])
    assert [(r.subject, r.session, r.run) for r in runs] == [("01", "02", "01"),
                                                            ("02", "02", "01")]
    assert [r.label for r in runs] == ["sub_01_ses_02_task_main_run_01_space_MNI",
                                       "sub_02_ses_02_task_main_run_01_space_MNI"]


def test_tr_and_slice_time_ref_as_nilearn(fake_bids):
    """TR and slice-time reference equal what nilearn's first_level_from_bids infers."""
    from nilearn.glm.first_level import first_level_from_bids

    runs = find_derivative_runs(fake_bids, fake_bids / "derivatives", "main", space="MNI")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models, *_ = first_level_from_bids(fake_bids, "main", space_label="MNI",
                                           img_filters=[("desc", "preproc")])
    assert {r.t_r for r in runs} == {m.t_r for m in models}
    assert {r.slice_time_ref for r in runs} == {m.slice_time_ref for m in models}
    assert models[0].slice_time_ref == pytest.approx(FAKE_START_TIME / FAKE_TR)


def test_tr_from_raw_when_the_derivative_sidecar_is_absent(fake_copy):
    """No derivative sidecar: TR from the raw sidecars, no slice-time reference."""
    for sidecar in (fake_copy / "derivatives").rglob("*_bold.json"):
        sidecar.unlink()
    raw_json = next(fake_copy.glob("sub-01/ses-01/func/*_run-01_bold.json"))
    raw_json.write_text(json.dumps({"RepetitionTime": 2.5}))
    runs = find_derivative_runs(fake_copy, fake_copy / "derivatives", "main", space="MNI",
                                subjects=["01"], sessions=["01"])
    assert [r.t_r for r in runs] == [2.5, FAKE_TR]
    assert [r.slice_time_ref for r in runs] == [None, None]


def test_slice_timing_reference():
    """StartTime / TR first; else the middle of SliceTiming; else None; bad values refused."""
    assert slice_time_reference({"StartTime": 1.0, "SliceTiming": [0, 1.9]}, 2.0) == 0.5
    times = [0.0, 0.5, 1.0, 1.5, 0.25, 0.75, 1.25, 1.75]
    assert slice_time_reference({"SliceTiming": times}, 2.0) == pytest.approx(
        (np.min(times) + np.max(times)) / 2 / 2.0)
    assert slice_time_reference({"RepetitionTime": 2.0}, 2.0) is None
    with pytest.raises(InputError, match="x.json: StartTime: expected seconds"):
        slice_time_reference({"StartTime": 2.0}, 2.0, "x.json")


def test_old_confounds_name(tmp_path):
    """fMRIPrep < 20.2 named the confounds desc-confounds_regressors.tsv."""
    from nilearn._utils.data_gen import create_fake_bids_dataset

    root = create_fake_bids_dataset(base_dir=tmp_path, n_sub=1, n_ses=0, tasks=["main"],
                                    n_runs=[1], confounds_tag="desc-confounds_regressors")
    (run,) = find_derivative_runs(root, root / "derivatives", "main", space="T1w")
    assert run.confounds_file.endswith("sub-01_task-main_run-01_desc-confounds_regressors.tsv")
    assert run.session is None


# --- bad input ---------------------------------------------------------------------------

def test_no_bold_for_desc_or_space(fake_bids):
    """A desc or space with no image: one line naming what was searched and what there is."""
    found = "found space-MNI_desc-preproc, space-T1w_desc-fmriprep, space-T1w_desc-preproc only"
    with pytest.raises(InputError, match=r"no preprocessed \*_space-\*_desc-smooth_bold.*"
                                         r"searched sub-01_ses-01_task-main_run-01_space-\*_"
                                         r"desc-smooth_bold") as info:
        find_derivative_runs(fake_bids, fake_bids / "derivatives", "main", desc="smooth")
    assert str(info.value).endswith(found)
    with pytest.raises(InputError) as info:
        find_derivative_runs(fake_bids, fake_bids / "derivatives", "main", space="fsLR")
    message = str(info.value)
    assert "\n" not in message
    # fsLR: the run's CIFTI grayordinates are searched (docs/surfaces.md)
    assert "searched sub-01_ses-01_task-main_run-01_space-fsLR_den-91k_bold.dtseries.nii" \
        in message
    assert message.endswith(found)  # no CIFTI


def test_two_resolutions_refused(fake_copy):
    """Two res- images of one run: both named; --res chooses."""
    func = fake_copy / "derivatives" / "sub-01" / "ses-01" / "func"
    bold = func / "sub-01_ses-01_task-main_run-01_space-MNI_desc-preproc_bold.nii.gz"
    low = func / "sub-01_ses-01_task-main_run-01_space-MNI_res-2_desc-preproc_bold.nii.gz"
    high = func / "sub-01_ses-01_task-main_run-01_space-MNI_res-1_desc-preproc_bold.nii.gz"
    shutil.copy(bold, low)
    bold.rename(high)
    with pytest.raises(InputError, match="several preprocessed images") as info:
        find_derivative_runs(fake_copy, fake_copy / "derivatives", "main", space="MNI")
    assert str(low) in str(info.value) and str(high) in str(info.value)
    assert "--res / --den" in str(info.value)
    runs = find_derivative_runs(fake_copy, fake_copy / "derivatives", "main", space="MNI",
                                res="02", subjects=["01"], sessions=["01"], runs=["1"])
    assert runs[0].bold_files == [str(low)]


def test_events_inherited_or_missing(fake_copy):
    """Events may be inherited from the root; missing events name the run."""
    events = next(fake_copy.glob("sub-01/ses-01/func/*_run-01_events.tsv"))
    root_events = fake_copy / "task-main_events.tsv"
    shutil.copy(events, root_events)
    events.unlink()
    (run,) = find_derivative_runs(fake_copy, fake_copy / "derivatives", "main", space="MNI",
                                  subjects=["01"], sessions=["01"], runs=["1"])
    assert run.events_file == str(root_events)
    root_events.unlink()
    with pytest.raises(InputError, match="sub-01_ses-01_task-main_run-01_bold.nii.gz: no events"):
        find_derivative_runs(fake_copy, fake_copy / "derivatives", "main", space="MNI")


def test_bad_folders(fake_bids, tmp_path):
    """A missing derivatives folder, or derivatives without this run's images."""
    with pytest.raises(InputError, match="nowhere: derivatives directory not found"):
        find_derivative_runs(fake_bids, tmp_path / "nowhere", "main")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no preprocessed"):
        find_derivative_runs(fake_bids, tmp_path / "empty", "main")
