"""Output names and all-or-nothing writing (no Nipype)."""

import json

import pytest

from glm_workflows.core.derivatives import bids_prefix, write_derivatives
from glm_workflows.core.errors import InputError


def test_bids_prefix():
    """Entities in BIDS order; illegal labels refused."""
    assert bids_prefix("01", "auditory") == "sub-01_task-auditory"
    assert bids_prefix("01", "auditory", "pre", "2") == "sub-01_ses-pre_task-auditory_run-2"
    for bad in ("../x", "a_b", "a-b", "", "a/b"):
        with pytest.raises(InputError, match="use letters and digits only"):
            bids_prefix(bad, "auditory")


def test_write_replaces_everything_at_once(tmp_path):
    """Files land under sub-<label>/ with a dataset_description.json; no staging left."""
    source = tmp_path / "a.txt"
    source.write_text("new")
    out = tmp_path / "out"
    written = write_derivatives({"sub-01_x.txt": str(source)}, out, "01")
    assert written == [str(out / "sub-01" / "sub-01_x.txt")]
    assert (out / "sub-01" / "sub-01_x.txt").read_text() == "new"
    assert json.loads((out / "dataset_description.json").read_text())["DatasetType"] == "derivative"
    assert sorted(p.name for p in out.iterdir()) == ["dataset_description.json", "sub-01"]


def test_failed_write_leaves_earlier_results(tmp_path):
    """If one file cannot be copied, no earlier output changes and nothing partial remains."""
    out = tmp_path / "out"
    good = tmp_path / "good.txt"
    good.write_text("first run")
    write_derivatives({"sub-01_x.txt": str(good)}, out, "01")
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    changed = tmp_path / "changed.txt"
    changed.write_text("second run")
    with pytest.raises(FileNotFoundError):
        write_derivatives({"sub-01_x.txt": str(changed),
                           "sub-01_y.txt": str(tmp_path / "missing.txt")}, out, "01")
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert not list(out.glob(".staging-*"))
