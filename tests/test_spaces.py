"""Two spaces of one fMRIPrep study analysed into one output folder: every level's outputs
carry the space (``space-`` in the BIDS schema's place), so the second analysis keeps the
first's files byte for byte; the group level alone reads one space's subject maps."""

import hashlib
import json

import nibabel as nb
import numpy as np
import pandas as pd
import pytest

from glm_workflows.cli import main
from glm_workflows.core.analyses import analysis_label, analysis_record
from glm_workflows.core.errors import InputError
from glm_workflows.core.naming import GROUP_FOLDER
from glm_workflows.inputs.derivatives import find_subject_maps
from glm_workflows.synthetic import write_fmriprep_derivatives, write_tiny_bids

SPACES = ("MNI152NLin2009cAsym", "T1w")
SUBJECTS = ("01", "02", "03")
CONTRAST = ["--contrast", "aMinusB=a - b"]
pytestmark = pytest.mark.slow


def _digests(folder):
    return {p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.suffix != ".html"
            and p.name not in ("provenance.json", "dataset_description.json")
            and "logs" not in p.parts}


@pytest.fixture(scope="module")
def two_spaces(tmp_path_factory):
    """The study, fMRIPrep-like images in two spaces, and the folder after the first
    space's analysis (its digests kept) and after the second's."""
    root = tmp_path_factory.mktemp("spaces")
    raw = write_tiny_bids(root / "raw", SUBJECTS)
    for space in SPACES:
        write_fmriprep_derivatives(raw, root / "fmriprep", space=space)
    out = root / "out"
    digests = {}
    for space in SPACES:
        code = main(["--bids-dir", str(raw), "--derivatives", str(root / "fmriprep"),
                     "--task", "tiny", "--space", space, *CONTRAST, "--group", "one-sample",
                     "--output-dir", str(out), "--work-dir", str(root / f"work-{space}")])
        assert code == 0
        digests[space] = _digests(out)
    return raw, root / "fmriprep", out, digests


def test_each_space_has_its_own_outputs_at_every_level(two_spaces):
    _, _, out, _ = two_spaces
    for space in SPACES:
        for subject in SUBJECTS:
            assert (out / f"sub-{subject}" / f"sub-{subject}_task-tiny_space-{space}_contrast-"
                    "aMinusB_stat-z_statmap.nii.gz").exists()
            record = out / f"sub-{subject}" / analysis_record(analysis_label("tiny", space))
            assert record.exists()
        assert (out / GROUP_FOLDER / f"task-tiny_space-{space}_contrast-aMinusB_stat-z_"
                "statmap.nii.gz").exists()


def test_the_second_space_keeps_the_first_spaces_files(two_spaces):
    _, _, _, digests = two_spaces
    first, second = (digests[space] for space in SPACES)
    assert first and all(second[path] == digest for path, digest in first.items())
    assert set(second) > set(first)


def test_each_space_equals_nilearn(two_spaces, tiny_nilearn_z):
    """Each space's run z map is nilearn's FirstLevelModel of that space's image."""
    raw, fmriprep, out, _ = two_spaces
    for space in SPACES:
        func = fmriprep / "sub-01" / "func"
        bold = next(func.glob(f"*_space-{space}_desc-preproc_bold.nii.gz"))
        mask = next(func.glob(f"*_space-{space}_desc-brain_mask.nii.gz"))
        expected = tiny_nilearn_z(raw, "01", bold, mask)
        ours = nb.load(out / "sub-01" / f"sub-01_task-tiny_space-{space}_contrast-aMinusB_"
                       "stat-z_statmap.nii.gz").get_fdata()
        np.testing.assert_allclose(ours, expected, atol=1e-6, rtol=0)


def test_the_group_level_alone_reads_one_space(two_spaces):
    _, _, out, _ = two_spaces
    with pytest.raises(InputError, match=r"several spaces \(MNI152NLin2009cAsym, T1w\); "
                                         "choose one with --space"):
        find_subject_maps(out, "tiny")
    maps, _ = find_subject_maps(out, "tiny", space="T1w")
    assert [m.prefix for m in maps] == [f"sub-{s}_task-tiny_space-T1w" for s in SUBJECTS]
    with pytest.raises(InputError, match="in space MNI .*spaces found: MNI152NLin2009cAsym, "
                                         "T1w"):
        find_subject_maps(out, "tiny", space="MNI")


def test_the_group_level_alone_of_one_space_equals_nilearn(two_spaces, tmp_path):
    """``glm-workflows BIDS_DIR OUTPUT_DIR group --space S``: the group mean of that
    space's subject maps, equal to nilearn's SecondLevelModel on them."""
    from nilearn.glm.second_level import SecondLevelModel

    raw, _, out, _ = two_spaces
    assert main([str(raw), str(out), "group", "--task", "tiny", "--space", "T1w",
                 "--group", "one-sample", "-w", str(tmp_path / "work")]) == 0
    maps = [str(out / f"sub-{s}" / f"sub-{s}_task-tiny_space-T1w_contrast-aMinusB_"
                "stat-effect_statmap.nii.gz") for s in SUBJECTS]
    masks = [str(out / f"sub-{s}" / f"sub-{s}_task-tiny_space-T1w_desc-brain_mask.nii.gz")
             for s in SUBJECTS]
    from nilearn.masking import intersect_masks

    model = SecondLevelModel(mask_img=intersect_masks(masks, threshold=1)).fit(
        maps, design_matrix=pd.DataFrame({"intercept": np.ones(len(SUBJECTS))}))
    expected = model.compute_contrast("intercept", output_type="z_score").get_fdata()
    ours = nb.load(out / GROUP_FOLDER / "task-tiny_space-T1w_contrast-aMinusB_stat-z_"
                   "statmap.nii.gz").get_fdata()
    np.testing.assert_allclose(ours, expected, atol=1e-6, rtol=0)
    sources = json.loads((out / GROUP_FOLDER / "task-tiny_space-T1w_contrast-aMinusB_"
                          "statmap.json").read_text())["Sources"]
    assert sources == [f"bids::sub-{s}/sub-{s}_task-tiny_space-T1w_contrast-aMinusB_"
                       "stat-effect_statmap.nii.gz" for s in SUBJECTS]
