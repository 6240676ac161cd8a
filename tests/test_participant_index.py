"""The participant level's index.html: it lists every subject report in the output folder,
those of earlier participant-level runs too (a BIDS App called once per subject)."""

import re

from glm_workflows.cli import main
from glm_workflows.core.naming import INDEX_FILE
from glm_workflows.synthetic import write_tiny_bids


def _linked_pages(index):
    return sorted(re.findall(r'href="([^"]+)"', index.read_text()))


def test_two_participant_calls_both_listed(tmp_path, capsys):
    """Two successive participant calls on different subjects into one folder: after the
    first the index lists sub-01, after the second sub-01 and sub-02 (and the run prints
    the index as its report)."""
    bids = write_tiny_bids(tmp_path / "bids", ["01", "02"], n_scans=40)
    out = tmp_path / "out"
    for subject in ("01", "02"):
        assert main([str(bids), str(out), "participant", "--participant-label", subject,
                     "--task", "tiny", "--contrast", "aMinusB=a - b",
                     "--work-dir", str(tmp_path / "work")]) == 0
        printed = capsys.readouterr().out
        assert f"Report: {out / INDEX_FILE}" in printed
    assert _linked_pages(out / INDEX_FILE) == ["sub-01.html", "sub-02.html"]
    assert all((out / page).exists() for page in _linked_pages(out / INDEX_FILE))
