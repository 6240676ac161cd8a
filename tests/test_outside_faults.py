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
