"""All-or-nothing writing of a model's outputs (no Nipype)."""

import json

import pytest

from glm_workflows.core.derivatives import write_derivatives
from glm_workflows.core.naming import DESCRIPTION_FILE


def test_write_replaces_everything_at_once(tmp_path):
    """Files land under sub-<label>/ with a dataset_description.json; no staging left."""
    source = tmp_path / "a.txt"
    source.write_text("new")
    out = tmp_path / "out"
    written = write_derivatives({"sub-01_x.txt": str(source)}, out, "01")
    assert written == [str(out / "sub-01" / "sub-01_x.txt")]
    assert (out / "sub-01" / "sub-01_x.txt").read_text() == "new"
    assert json.loads((out / DESCRIPTION_FILE).read_text())["DatasetType"] == "derivative"
    assert sorted(p.name for p in out.iterdir()) == [DESCRIPTION_FILE, "sub-01"]


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
