"""Faults found by a third hunt from the outside (image headers, events as people write
them, BIDS App conventions, the group level): each refused in one line before any work,
or run correctly."""

import nibabel as nb
import numpy as np

from glm_workflows.cli import main
from glm_workflows.synthetic import write_fmriprep_derivatives, write_tiny_bids

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
