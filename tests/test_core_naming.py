"""Output names: built and parsed by one module (no Nipype, no files)."""

import pytest

from glm_workflows.core.entities import EXTRA_ENTITIES, bids_prefix, parse_prefix, subject_label
from glm_workflows.core.errors import InputError
from glm_workflows.core.naming import (
    CONTRAST_OUTPUTS,
    MODEL_OUTPUTS,
    OutputName,
    contrast_file,
    contrast_names,
    model_file,
    parse_output_name,
    parse_subject_folder,
    report_page,
)


def test_bids_prefix():
    """Entities in BIDS order; illegal labels refused."""
    assert bids_prefix("01", "auditory") == "sub-01_task-auditory"
    assert bids_prefix("01", "auditory", "pre", "2") == "sub-01_ses-pre_task-auditory_run-2"
    for bad in ("../x", "a_b", "a-b", "", "a/b"):
        with pytest.raises(InputError, match="use letters and digits only"):
            bids_prefix(bad, "auditory")


def test_names_as_documented():
    """A few names exactly as the "Output names" table of docs/outputs.md gives them."""
    prefix = bids_prefix("01", "auditory", run="2")
    assert model_file(prefix, "mask_file") == "sub-01_task-auditory_run-2_desc-brain_mask.nii.gz"
    assert contrast_file(prefix, "a", "stat_maps", "F") == \
        "sub-01_task-auditory_run-2_contrast-a_stat-F_statmap.nii.gz"
    assert contrast_file(prefix, "a", "ortho_figures") == \
        "sub-01_task-auditory_run-2_contrast-a_stat-z_desc-thresholdedOrtho_statmap.png"
    assert report_page("01") == "sub-01.html"
    with pytest.raises(ValueError, match="stat_type"):
        contrast_file(prefix, "a", "stat_maps")


@pytest.mark.parametrize("entities", [("01", "x", None, None), ("a1", "rest", "pre", "03")])
def test_every_name_parses_back(entities):
    """Every name the sink writes parses back to its prefix, output and contrast."""
    prefix = bids_prefix(*entities)
    assert parse_prefix(prefix) == {**dict.fromkeys(EXTRA_ENTITIES),
                                    **dict(zip(("subject", "task", "session", "run"), entities,
                                               strict=True))}
    for output in MODEL_OUTPUTS:
        assert parse_output_name(model_file(prefix, output)) == OutputName(prefix, output)
    for output in CONTRAST_OUTPUTS:
        for stat in ("t", "F"):
            name = contrast_file(prefix, "aMinusB2", output, stat)
            assert parse_output_name(name) == OutputName(prefix, output, "aMinusB2")


def test_other_names_do_not_parse():
    for name in ("provenance.json", "sub-01_task-x_bold.nii.gz", "sub-01_design.tsv",
                 "sub-01_task-x_contrast-a_b_clusters.tsv", "sub-01_task-x_design.tsv.tmp"):
        assert parse_output_name(name) is None
    assert parse_prefix("sub-01_run-1") is None


def test_contrasts_subjects_and_pages():
    prefix = bids_prefix("01", "x")
    names = [contrast_file(prefix, c, "cluster_tables") for c in ("b", "a")]
    names += [contrast_file(f"{prefix}_run-1", "c", "cluster_tables"),
              contrast_file(prefix, "d", "contrast_jsons")]
    assert contrast_names(names, prefix, "cluster_tables") == ["a", "b"]
    assert contrast_names(names, prefix) == ["d"]
    assert [parse_subject_folder(n) for n in ("sub-01", "sub-01.html", "sub-0_1")] == \
        ["01", None, None]
    assert subject_label("sub-02") == subject_label("02") == "02"
    with pytest.raises(InputError, match="letters and digits"):
        subject_label("../01")
