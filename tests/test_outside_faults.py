"""Faults found by running the command line from the outside on real layouts: a run given
as one 3D image, an output folder among the raw data, and the non-finite-samples warning
of a fit run by the workflow (Nipype set the fit's unconnected ``warnings`` Undefined)."""

from pathlib import Path

import nibabel as nb
import numpy as np
import pytest
from nilearn.masking import compute_epi_mask

from glm_workflows.cli import main
from glm_workflows.synthetic import write_tiny_bids

TINY = ["--task", "tiny", "--contrast", "aMinusB=a - b"]


def _refused(argv, capsys) -> str:
    """``main(argv)``: exit code 2 and one error line, returned."""
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1, err
    assert err[0].startswith("glm-workflows: error: ")
    return err[0]


def _files(root: Path) -> set:
    return {p.relative_to(root) for p in root.rglob("*")}


def test_a_3d_image_given_as_a_run_is_refused_naming_it(tmp_path, capsys):
    """A BIDS run whose bold file holds one 3D volume: one line naming the image and its
    shape (not a design error naming the events file), nothing written."""
    study = write_tiny_bids(tmp_path / "bids")
    bold = study / "sub-01" / "func" / "sub-01_task-tiny_bold.nii.gz"
    img = nb.load(bold)
    nb.Nifti1Image(np.asarray(img.dataobj)[..., 0], img.affine).to_filename(bold)
    line = _refused([str(study), str(tmp_path / "out"), "participant", *TINY,
                     "-w", str(tmp_path / "work")], capsys)
    assert f"{bold}: a 3D image {img.shape[:3]}" in line
    assert "4D image" in line
    assert not (tmp_path / "out").exists() and not (tmp_path / "work").exists()


@pytest.mark.parametrize("where", [".", "sub-01/glm"])
def test_an_output_folder_among_the_raw_data_is_refused(where, tmp_path, capsys):
    """The BIDS folder itself, or a folder inside one of its subjects, as the output folder:
    one line naming it, and the raw dataset left as it was."""
    study = write_tiny_bids(tmp_path / "bids")
    before = _files(study)
    output = study / where
    line = _refused([str(study), str(output), "participant", *TINY,
                     "-w", str(tmp_path / "work")], capsys)
    assert line.startswith(f"glm-workflows: error: --output-dir {output}: is ")
    assert str(study / "derivatives" / "glm") in line
    assert _files(study) == before


def test_an_output_folder_under_derivatives_is_accepted(tmp_path, capsys):
    """``BIDS_DIR/derivatives/glm``, the usual place, runs."""
    study = write_tiny_bids(tmp_path / "bids", subjects=("01",))
    output = study / "derivatives" / "glm"
    assert main([str(study), str(output), "participant", *TINY, "-q",
                 "-w", str(tmp_path / "work")]) == 0, capsys.readouterr().err
    assert (output / "sub-01" / "sub-01_task-tiny_contrast-aMinusB_stat-z_statmap.nii.gz").exists()
