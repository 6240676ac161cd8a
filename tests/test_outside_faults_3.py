"""Faults found by a third hunt from the outside (image headers, events as people write
them, BIDS App conventions, the group level): each refused in one line before any work,
or run correctly."""

import json

import nibabel as nb
import numpy as np
import pandas as pd
import pytest

from glm_workflows.cli import main
from glm_workflows.synthetic import (
    write_fmriprep_derivatives,
    write_participants,
    write_tiny_bids,
)

TINY = ["--task", "tiny", "--contrast", "aMinusB=a - b"]


def test_one_run_stored_as_nii_and_nii_gz_is_named_not_taken_for_echoes(tmp_path, refused):
    """``_bold.nii`` beside ``_bold.nii.gz`` (a conversion run twice): one line naming
    both files (was: "multi-echo raw run (echo-None, echo-None)")."""
    study = write_tiny_bids(tmp_path / "bids", subjects=("01",), n_scans=40)
    func = study / "sub-01" / "func"
    img = nb.load(func / "sub-01_task-tiny_bold.nii.gz")
    nb.Nifti1Image(np.asarray(img.dataobj), img.affine, img.header).to_filename(
        func / "sub-01_task-tiny_bold.nii")
    line = refused([str(study), str(tmp_path / "out"), "participant", *TINY,
                    "-w", str(tmp_path / "work")])
    assert line == (f"glm-workflows: error: {func / 'sub-01_task-tiny_bold.nii'}: the same run "
                    "is also stored as sub-01_task-tiny_bold.nii.gz; keep only one of the two "
                    "files")
    assert not (tmp_path / "out").exists()


def test_an_fmriprep_folder_given_as_the_bids_folder_is_told_to_use_derivatives(tmp_path,
                                                                                refused):
    """fMRIPrep's outputs as BIDS_DIR: the line says which folder goes where (was: "events
    file not found for sub-01_task-tiny_space-..._desc-preproc_bold.nii.gz")."""
    study = write_tiny_bids(tmp_path / "bids", subjects=("01",), n_scans=40)
    fmriprep = write_fmriprep_derivatives(study, tmp_path / "fmriprep")
    for extra in ([], ["--derivatives", str(fmriprep)]):
        line = refused([str(fmriprep), str(tmp_path / "out"), "participant", *TINY, *extra,
                        "-w", str(tmp_path / "work")])
        bold = next((fmriprep / "sub-01" / "func").glob("*_desc-preproc_bold.nii.gz"))
        assert line == (f"glm-workflows: error: {bold}: a preprocessed image (space-/desc- "
                        "entities) where the raw dataset's runs were expected: give the raw "
                        "BIDS folder as BIDS_DIR and fMRIPrep's outputs as --derivatives")
    assert not (tmp_path / "out").exists()


def test_a_tilde_in_a_path_flag_is_the_home_folder(tmp_path, monkeypatch, capsys):
    """``--output-dir=~/out`` reaches the command unexpanded (no shell expands ``~`` after
    ``--flag=``): it is the home folder's ``out``, as with a shell's expansion (was: a
    folder named ``~`` in the working directory, and the run's stamp inside it); the
    rerun is answered from that stamp."""
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    write_tiny_bids(home / "bids", subjects=("01",), n_scans=40)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(cwd)
    argv = ["--bids-dir=~/bids", "--output-dir=~/out", "--work-dir=~/work",
            "--analysis-level", "participant", *TINY]
    assert main(argv) == 0
    assert (home / "out" / "sub-01" / "sub-01_task-tiny_contrast-aMinusB_stat-z_statmap"
                                      ".nii.gz").is_file()
    assert list((home / "work" / "up_to_date").glob("*.json"))
    assert list(cwd.iterdir()) == []
    capsys.readouterr()
    assert main(argv) == 0
    assert capsys.readouterr().out.startswith("Up to date")


def test_session_label_is_fmripreps_spelling_of_session(tmp_path):
    """``--session-label pre`` (fMRIPrep's flag) selects the runs ``--session pre`` selects
    (was: "unrecognized arguments")."""
    study = write_tiny_bids(tmp_path / "bids", subjects=("01",), n_scans=40,
                            sessions=("pre", "post"))
    out = tmp_path / "out"
    assert main([str(study), str(out), "participant", *TINY, "--session-label", "pre",
                 "-w", str(tmp_path / "work")]) == 0
    maps = sorted(path.relative_to(out).as_posix() for path in out.rglob("*_stat-z_statmap.nii.gz"))
    assert maps == ["sub-01/ses-pre/sub-01_ses-pre_task-tiny_contrast-aMinusB_stat-z_statmap"
                    ".nii.gz"]


@pytest.mark.parametrize(("expression", "says"), [
    ("1e400*a - b", "a weight is not a finite number"),
    ("[1e400, -1, 0, 0]", "a weight is not a finite number"),
    ("1e200*1e200*a", "a weight is not a finite number"),
    ("a / 0", "divides by zero"),
])
def test_contrast_weights_that_are_no_finite_number_are_refused_in_one_line(
        expression, says, tmp_path, refused):
    """A weight past float range (``1e400`` is inf) or a division by zero: one line saying
    so (was: NumPy's RuntimeWarning on stderr, then "must be a linear combination ...
    without a constant term", or "not linear" for ``a / 0``)."""
    study = write_tiny_bids(tmp_path / "bids", subjects=("01",), n_scans=40)
    line = refused([str(study), str(tmp_path / "out"), "participant", "--task", "tiny",
                    "--contrast", f"x={expression}", "-w", str(tmp_path / "work")])
    assert line.startswith(f"glm-workflows: error: contrast x: contrast '{expression}': {says}")
    assert not (tmp_path / "out").exists()


def test_trial_types_differing_only_by_end_spaces_are_refused(tmp_path, refused):
    """``a`` and ``a `` in one events file (a stray space in a spreadsheet): nilearn makes
    two conditions, and ``a - b`` put its weight on ``a `` (z maps far from nilearn's for
    the contrast over ``a``): refused in one line naming both spellings."""
    study = write_tiny_bids(tmp_path / "bids", subjects=("01",), n_scans=40)
    events_file = study / "sub-01" / "func" / "sub-01_task-tiny_events.tsv"
    events = pd.read_csv(events_file, sep="\t")
    assert list(events.trial_type[:3]) == ["a", "b", "a"]
    events.loc[2, "trial_type"] = "a "
    events.to_csv(events_file, sep="\t", index=False)
    line = refused([str(study), str(tmp_path / "out"), "participant", *TINY,
                    "-w", str(tmp_path / "work")])
    assert line == (f"glm-workflows: error: {events_file}: column 'trial_type' line 4: 'a ' "
                    "and 'a' (line 2) differ only by spaces at their ends; write one "
                    "condition one way")


def test_scans_in_a_shells_glob_order_are_refused(tmp_path, refused):
    """``--func vol*.nii`` of unpadded numbers gives vol0, vol1, vol10, ..., vol2: the run
    would be fitted with its volumes shuffled (was: exit 0, silently); in numeric order
    the same files are taken."""
    from glm_workflows.inputs.runs import file_list_run

    events = write_tiny_bids(tmp_path / "bids", subjects=("01",), n_scans=40) / "sub-01" \
        / "func" / "sub-01_task-tiny_events.tsv"
    for index in range(12):
        nb.Nifti1Image(np.full((4, 4, 4), 100.0 + index, np.float32), np.eye(4)).to_filename(
            tmp_path / f"vol{index}.nii")
    globbed = sorted(str(path) for path in tmp_path.glob("vol*.nii"))
    assert [p.rsplit("/", 1)[1] for p in globbed[:4]] == ["vol0.nii", "vol1.nii", "vol10.nii",
                                                          "vol11.nii"]
    line = refused(["--func", *globbed, "--events", str(events), "--tr", "2",
                    "--output-dir", str(tmp_path / "out"), "-w", str(tmp_path / "work")])
    assert line == (f"glm-workflows: error: --func {tmp_path / 'vol11.nii'}: scan 11 is given "
                    "before scan 2 (vol2.nii); a shell's glob sorts unpadded numbers as text: "
                    "give the scans in acquisition order (e.g. ls -v)")
    in_order = [str(tmp_path / f"vol{index}.nii") for index in range(12)]
    assert file_list_run(in_order, events, 2.0).bold_files == in_order


@pytest.mark.parametrize(("sidecar", "says"), [
    ({"RepetitionTime": True}, "{name}: RepetitionTime: expected a positive number of seconds, "
                               "got True"),
    ([{"RepetitionTime": 2.0}], "{path}: expected a JSON object of metadata fields ({{...}}), "
                                "got a list"),
    ({"VolumeTiming": [0.0, 2.0, 4.0]}, "{bold}: no RepetitionTime in any sidecar JSON (e.g. "
                                        "task-tiny_bold.json); its VolumeTiming (a sparse "
                                        "acquisition) is not supported: the design needs "
                                        "volumes one TR apart"),
])
def test_sidecars_without_a_usable_repetition_time_are_refused(sidecar, says, tmp_path,
                                                               refused):
    """JSON's ``true`` as RepetitionTime (was: a TR of 1 s, silently), a sidecar that is a
    list (was: a TypeError traceback), VolumeTiming instead of RepetitionTime (named)."""
    study = write_tiny_bids(tmp_path / "bids", subjects=("01",), n_scans=40)
    path = study / "task-tiny_bold.json"
    path.write_text(json.dumps(sidecar))
    line = refused([str(study), str(tmp_path / "out"), "participant", *TINY,
                    "-w", str(tmp_path / "work")])
    bold = study / "sub-01" / "func" / "sub-01_task-tiny_bold.nii.gz"
    assert line == "glm-workflows: error: " + says.format(name=path.name, path=path, bold=bold)


@pytest.mark.parametrize("label", ["null", "NA", "None"])
def test_trial_types_pandas_would_read_as_missing_are_conditions(label, tmp_path):
    """BIDS marks a missing value ``n/a`` only: a ``null`` trial type (null trials) is a
    condition (was: refused as "empty trial type", pandas reading ``null``, ``NA``,
    ``None`` as missing); z equals nilearn's on the events read as BIDS reads them."""
    from nilearn.glm.first_level import FirstLevelModel

    study = write_tiny_bids(tmp_path / "bids", subjects=("01",), n_scans=40)
    func = study / "sub-01" / "func"
    events_file = func / "sub-01_task-tiny_events.tsv"
    events = pd.read_csv(events_file, sep="\t")
    events["trial_type"] = events["trial_type"].replace({"b": label})
    events.to_csv(events_file, sep="\t", index=False)
    out = tmp_path / "out"
    assert main([str(study), str(out), "participant", "--task", "tiny", "--contrast",
                 f"aMinusNull=a - {label}", "-w", str(tmp_path / "work")]) == 0
    model = FirstLevelModel(t_r=2.0, noise_model="ar1", standardize=False, hrf_model="spm",
                            drift_model="cosine", high_pass=1 / 160)
    model.fit(str(func / "sub-01_task-tiny_bold.nii.gz"), events=events)
    weights = [{"a": 1.0, label: -1.0}.get(column, 0.0)
               for column in model.design_matrices_[0].columns]
    expected = model.compute_contrast(np.array(weights), output_type="z_score").get_fdata()
    ours = nb.load(out / "sub-01" / "sub-01_task-tiny_contrast-aMinusNull_stat-z_statmap"
                                    ".nii.gz").get_fdata()
    assert np.count_nonzero(ours) > 100
    np.testing.assert_allclose(ours, expected, atol=1e-10, rtol=0)


@pytest.mark.parametrize("demean", [[], ["--demean"]])
def test_a_covariate_of_one_value_is_named_before_any_work(demean, tmp_path, refused):
    """A participants.tsv column with one value for every subject: the line names it and
    its value (was: "columns intercept, site are linearly dependent", and with --demean,
    the zero column, "columns site are linearly dependent")."""
    subjects = ("01", "02", "03", "04")
    study = write_tiny_bids(tmp_path / "bids", subjects=subjects, n_scans=40)
    participants = pd.read_csv(write_participants(study, subjects), sep="\t")
    participants["site"] = 3
    participants.to_csv(study / "participants.tsv", sep="\t", index=False)
    line = refused([str(study), str(tmp_path / "out"), *TINY, "--group", "one-sample",
                    "--group-covariates", "site", *demean, "-w", str(tmp_path / "work")])
    assert line == ("glm-workflows: error: participants.tsv: covariate 'site' is 3 for every "
                    "one of the 4 subjects; a covariate needs two values at least (it cannot "
                    "be told from the mean)")
    assert not (tmp_path / "out").exists()


def _ms_units(img):
    img.header.set_xyzt_units("mm", "msec")
    img.header.set_zooms((*img.header.get_zooms()[:3], 2000.0))


def _no_step(img):
    img.header.set_zooms((*img.header.get_zooms()[:3], 0.0))


def _scaled_int16(img):
    data = np.asarray(img.dataobj)
    scaled = nb.Nifti1Image(np.round((data - 10) / 0.5).astype(np.int16), img.affine)
    scaled.header.set_xyzt_units("mm", "sec")
    scaled.header.set_zooms((*img.header.get_zooms()[:3], 2.0))
    scaled.header.set_slope_inter(0.5, 10)
    return scaled


_OBLIQUE = np.array([[2.9, -0.6, 0.3, -10.0], [0.62, 2.92, -0.2, 5.0], [-0.25, 0.25, 2.98, 3.0],
                     [0.0, 0.0, 0.0, 1.0]])


@pytest.mark.parametrize("form", ["ms-units", "no-time-step", "scaled-int16", "float64", "LAS",
                                  "oblique"])
def test_header_forms_scanners_write_give_nilearns_z(form, tmp_path):
    """A bold whose header states the TR in ms or not at all (the sidecar's TR used),
    int16 data with scl_slope/scl_inter, float64 data, an LAS or an oblique affine: z
    equal to nilearn's FirstLevelModel on the same files (atol 1e-6)."""
    from nilearn.glm.first_level import FirstLevelModel

    study = write_tiny_bids(tmp_path / "bids", subjects=("01",), n_scans=40)
    func = study / "sub-01" / "func"
    bold = func / "sub-01_task-tiny_bold.nii.gz"
    img = nb.load(bold)
    data, affine = np.asarray(img.dataobj), img.affine
    if form == "float64":
        data = data.astype(np.float64)
    if form == "LAS":
        affine = np.diag([-3.0, 3.0, 3.0, 1.0])
    if form == "oblique":
        affine = _OBLIQUE
    img = nb.Nifti1Image(data, affine)
    img.header.set_xyzt_units("mm", "sec")
    img.header.set_zooms((*img.header.get_zooms()[:3], 2.0))
    if form == "ms-units":
        _ms_units(img)
    if form == "no-time-step":
        _no_step(img)
    if form == "scaled-int16":
        img = _scaled_int16(img)
    img.to_filename(bold)
    written = nb.load(bold)
    assert written.header.get_xyzt_units()[1] == ("msec" if form == "ms-units" else "sec")
    if form == "scaled-int16":
        assert (written.get_data_dtype(), written.dataobj.slope) == (np.int16, 0.5)
    out = tmp_path / "out"
    assert main([str(study), str(out), "participant", *TINY, "-w", str(tmp_path / "work")]) == 0
    model = FirstLevelModel(t_r=2.0, noise_model="ar1", standardize=False, hrf_model="spm",
                            drift_model="cosine", high_pass=1 / 160)
    model.fit(str(bold), events=pd.read_csv(func / "sub-01_task-tiny_events.tsv", sep="\t"))
    expected = model.compute_contrast("a - b", output_type="z_score").get_fdata()
    ours = nb.load(out / "sub-01" / "sub-01_task-tiny_contrast-aMinusB_stat-z_statmap.nii.gz")
    assert np.count_nonzero(ours.get_fdata()) > 100
    np.testing.assert_allclose(ours.affine, nb.load(bold).affine)
    np.testing.assert_allclose(ours.get_fdata(), expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("inside", ["", "sub-01/glm"])
def test_an_output_folder_among_fmripreps_outputs_is_refused(inside, tmp_path, refused):
    """OUTPUT_DIR the ``--derivatives`` folder itself (or in one of its ``sub-*``): the
    maps went among fMRIPrep's, under its dataset_description.json (was: exit 0); its
    ``glm`` subfolder, as ``BIDS_DIR/derivatives/glm``, is accepted."""
    study = write_tiny_bids(tmp_path / "bids", subjects=("01",), n_scans=40)
    fmriprep = write_fmriprep_derivatives(study, tmp_path / "fmriprep")
    out = fmriprep / inside if inside else fmriprep
    before = sorted(path for path in fmriprep.rglob("*"))
    line = refused([str(study), str(out), "participant", "--derivatives", str(fmriprep), *TINY,
                    "-w", str(tmp_path / "work")])
    where = "is inside sub-01/ of" if inside else "is"
    assert line == (f"glm-workflows: error: --output-dir {out}: {where} the --derivatives "
                    f"folder {fmriprep}; the outputs would be written among fMRIPrep's (give "
                    "a folder of their own, e.g. BIDS_DIR/derivatives/glm)")
    assert sorted(path for path in fmriprep.rglob("*")) == before
    assert main([str(study), str(fmriprep / "glm"), "participant", "--derivatives",
                 str(fmriprep), *TINY, "-w", str(tmp_path / "work")]) == 0


def test_a_label_given_with_its_entity_key_is_told_the_label(tmp_path, refused):
    """``--task task-tiny`` (the file-name form): the line says the label is ``tiny``
    (``--participant-label sub-01`` is taken as ``01``; a task label has no such rule)."""
    study = write_tiny_bids(tmp_path / "bids", subjects=("01",), n_scans=40)
    line = refused([str(study), str(tmp_path / "out"), "participant", "--task", "task-tiny",
                    "--contrast", "aMinusB=a - b", "-w", str(tmp_path / "work")])
    assert line == ("glm-workflows: error: task label 'task-tiny': use letters and digits only "
                    "(the label of task-tiny is 'tiny')")


@pytest.mark.parametrize("columns", [["a", "a ", "b", "constant"], [" a", "a", "b"],
                                     ["a", "b", "b "]])
def test_a_name_in_a_contrast_is_its_column_beside_one_with_end_spaces(columns):
    """A design (e.g. confounds or a model file's variables) with a column ``a `` beside
    ``a``: ``a - b`` weights the columns ``a`` and ``b`` (was: ``a `` for ``a``, or
    ``b `` for ``b``)."""
    from glm_workflows.core.contrasts import expression_to_vector

    expected = np.zeros(len(columns))
    expected[columns.index("a")], expected[columns.index("b")] = 1.0, -1.0
    np.testing.assert_array_equal(expression_to_vector("a - b", columns), expected)


@pytest.mark.parametrize("missing", ["n/a", "", "nan"])
def test_a_trial_type_marked_missing_is_still_refused(missing, tmp_path, refused):
    """``n/a``, an empty cell and ``nan`` (a table written from Python) stay missing."""
    study = write_tiny_bids(tmp_path / "bids", subjects=("01",), n_scans=40)
    events_file = study / "sub-01" / "func" / "sub-01_task-tiny_events.tsv"
    lines = events_file.read_text().splitlines()
    lines[2] = "\t".join([*lines[2].split("\t")[:2], missing])
    events_file.write_text("\n".join(lines) + "\n")
    line = refused([str(study), str(tmp_path / "out"), "participant", *TINY,
                    "-w", str(tmp_path / "work")])
    assert line == (f"glm-workflows: error: {events_file}: column 'trial_type' line 3: empty "
                    "trial type")


def test_zero_padded_condition_codes_keep_their_text(tmp_path):
    """Trial types ``01`` and ``02`` (condition codes) are the conditions ``01`` and ``02``
    as written (was: read as the numbers 1 and 2, so ``01 - 02`` was refused and ``1``
    and ``01`` merged into one condition); z equals nilearn's on the events read as text."""
    from nilearn.glm.first_level import FirstLevelModel

    study = write_tiny_bids(tmp_path / "bids", subjects=("01",), n_scans=40)
    func = study / "sub-01" / "func"
    events_file = func / "sub-01_task-tiny_events.tsv"
    events = pd.read_csv(events_file, sep="\t")
    events["trial_type"] = events["trial_type"].map({"a": "01", "b": "02"})
    events.to_csv(events_file, sep="\t", index=False)
    out = tmp_path / "out"
    assert main([str(study), str(out), "participant", "--task", "tiny", "--contrast",
                 "x=01 - 02", "-w", str(tmp_path / "work")]) == 0
    design = pd.read_csv(out / "sub-01" / "sub-01_task-tiny_design.tsv", sep="\t", dtype=str,
                         nrows=0)
    assert list(design.columns[:2]) == ["01", "02"]
    text = pd.read_csv(events_file, sep="\t", dtype={"trial_type": str})
    model = FirstLevelModel(t_r=2.0, noise_model="ar1", standardize=False, hrf_model="spm",
                            drift_model="cosine", high_pass=1 / 160)
    model.fit(str(func / "sub-01_task-tiny_bold.nii.gz"), events=text)
    weights = [{"01": 1.0, "02": -1.0}.get(column, 0.0)
               for column in model.design_matrices_[0].columns]
    expected = model.compute_contrast(np.array(weights), output_type="z_score").get_fdata()
    ours = nb.load(out / "sub-01" / "sub-01_task-tiny_contrast-x_stat-z_statmap.nii.gz")
    assert np.count_nonzero(ours.get_fdata()) > 100
    np.testing.assert_allclose(ours.get_fdata(), expected, atol=1e-10, rtol=0)


def test_subject_maps_of_one_contrast_name_but_two_expressions_are_refused(tmp_path,
                                                                           refused):
    """Two subjects' maps named ``aMinusB`` (one rerun with ``b - a``): the group level
    alone names both expressions and subjects before any work (was: exit 0, the group mean
    of opposite signs)."""
    subjects = ("01", "02", "03")
    study = write_tiny_bids(tmp_path / "bids", subjects=subjects, n_scans=40)
    out, work = tmp_path / "out", str(tmp_path / "work")
    assert main([str(study), str(out), "participant", *TINY, "-w", work, "-q"]) == 0
    assert main([str(study), str(out), "participant", "--task", "tiny", "--contrast",
                 "aMinusB=b - a", "--participant-label", "02", "-w", work, "-q"]) == 0
    line = refused([str(study), str(out), "group", "--task", "tiny", "--group", "one-sample",
                    "-w", work])
    assert line == (f"glm-workflows: error: contrast aMinusB: the maps of sub-01 in {out} are "
                    "of 'a - b', those of sub-02 of 'b - a'; rerun the participant level of "
                    "one with the other's expression")
    assert not (out / "group").exists()


def test_a_complex_valued_run_is_refused_before_any_work(tmp_path, refused):
    """A complex64 bold (phase and magnitude saved together): one line naming its data type
    (was: its real part fitted, with NumPy's ComplexWarning on stderr)."""
    study = write_tiny_bids(tmp_path / "bids", subjects=("01",), n_scans=40)
    bold = study / "sub-01" / "func" / "sub-01_task-tiny_bold.nii.gz"
    img = nb.load(bold)
    nb.Nifti1Image(np.asarray(img.dataobj).astype(np.complex64), img.affine).to_filename(bold)
    line = refused([str(study), str(tmp_path / "out"), "participant", *TINY,
                    "-w", str(tmp_path / "work")])
    assert line == f"glm-workflows: error: {bold}: data type complex64; expected real numbers"
    assert not (tmp_path / "out").exists()
