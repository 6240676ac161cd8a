"""``--space A B``: several spaces of one fMRIPrep study in one call, each its own analysis
into the same output folder, as successive single-space calls (participant and group
levels), every space checked before the first runs; the report groups the results by
session and space."""

import hashlib
from html.parser import HTMLParser

import nibabel as nb
import numpy as np
import pytest

from glm_workflows.cli import main
from glm_workflows.cli.command import analyses_from_args, spec_from_args
from glm_workflows.core.errors import InputError
from glm_workflows.core.naming import GROUP_FOLDER, INDEX_FILE, report_page
from glm_workflows.synthetic import write_fmriprep_derivatives, write_tiny_bids

SPACES = ("MNI152NLin2009cAsym", "T1w")
SUBJECTS = ("01", "02")
CONTRAST = ["--contrast", "aMinusB=a - b"]


def _study(root):
    raw = write_tiny_bids(root / "raw", SUBJECTS, n_scans=40)
    for space in SPACES:
        write_fmriprep_derivatives(raw, root / "fmriprep", space=space)
    return raw, root / "fmriprep"


def _levels(raw, fmriprep, out, work, spaces):
    """The participant level, then the group level, of ``spaces`` in one call each."""
    first = main([str(raw), str(out), "participant", "--derivatives", str(fmriprep),
                  "--task", "tiny", "--space", *spaces, *CONTRAST, "-w", str(work), "-q"])
    second = main([str(raw), str(out), "group", "--task", "tiny", "--space", *spaces,
                   "--group", "one-sample", "-w", str(work), "-q"])
    return first, second


def _digests(folder):
    """Every output's digest but the pages, logs and records (they hold the command line,
    the folders and the times)."""
    return {p.relative_to(folder): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.suffix != ".html"
            and not p.name.endswith("provenance.json") and "logs" not in p.parts}


@pytest.fixture(scope="module")
def both_ways(tmp_path_factory):
    """The study; its output folder after one call per level with both spaces, and after
    successive single-space calls (the same work folder for the calls of a folder)."""
    root = tmp_path_factory.mktemp("space_list")
    raw, fmriprep = _study(root)
    assert _levels(raw, fmriprep, root / "one", root / "work-one", SPACES) == (0, 0)
    for space in SPACES:
        assert _levels(raw, fmriprep, root / "two", root / "work-two", [space]) == (0, 0)
    return raw, fmriprep, root / "one", root / "two"


@pytest.mark.slow
def test_one_call_equals_successive_calls(both_ways):
    _, _, one, two = both_ways
    ours, theirs = _digests(one), _digests(two)
    assert ours == theirs
    for space in SPACES:
        assert (one / GROUP_FOLDER / f"task-tiny_space-{space}_contrast-aMinusB_stat-z_"
                "statmap.nii.gz") in {one / path for path in ours}


@pytest.mark.slow
def test_each_space_equals_nilearn(both_ways, tiny_nilearn_z):
    """Each space's z map is nilearn's FirstLevelModel of that space's image."""
    raw, fmriprep, one, _ = both_ways
    for subject in SUBJECTS:
        func = fmriprep / f"sub-{subject}" / "func"
        for space in SPACES:
            bold = next(func.glob(f"*_space-{space}_desc-preproc_bold.nii.gz"))
            mask = next(func.glob(f"*_space-{space}_desc-brain_mask.nii.gz"))
            expected = tiny_nilearn_z(raw, subject, bold, mask)
            ours = nb.load(one / f"sub-{subject}" / f"sub-{subject}_task-tiny_space-{space}_"
                           "contrast-aMinusB_stat-z_statmap.nii.gz").get_fdata()
            np.testing.assert_allclose(ours, expected, atol=1e-6, rtol=0)


class _Headings(HTMLParser):
    """Per result section (``id``), the heading of the results group holding it."""

    def __init__(self):
        super().__init__()
        self.stack, self.headings, self.under, self.links = [], [], {}, {}
        self._in_heading = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.stack.append(attrs.get("class"))
            if attrs.get("class") == "level":
                self.under[attrs["id"]] = self.headings[-1] if "results" in self.stack else None
        if tag == "h2" and attrs.get("class") == "results":
            self._in_heading = True
            self.headings.append("")
        if tag == "a" and "results" in self.stack:
            self.links.setdefault(self.headings[-1], []).append(attrs["href"])

    def handle_endtag(self, tag):
        if tag == "section":
            self.stack.pop()
        if tag == "h2":
            self._in_heading = False

    def handle_data(self, data):
        if self._in_heading:
            self.headings[-1] += data


def _parsed(path):
    parser = _Headings()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


@pytest.mark.slow
def test_the_report_groups_by_space(both_ways):
    """The subject pages and the index: one heading per space, each result under its own."""
    _, _, one, _ = both_ways
    expected = [f"space {space}" for space in SPACES]
    for subject in SUBJECTS:
        page = _parsed(one / report_page(subject))
        assert page.headings == expected
        assert page.under == {f"sub-{subject}_task-tiny_space-{space}": f"space {space}"
                              for space in SPACES}
    index = _parsed(one / INDEX_FILE)
    assert index.headings == expected
    assert index.links == {heading: [report_page(s) for s in SUBJECTS]
                           for heading in expected}


def test_a_missing_space_is_refused_before_any_work(tmp_path, capsys):
    """A space not in the derivatives, given after one that is: refused in one line
    listing the spaces found; no output written (the first space's checks made sure the
    output folder is writable: it is there, empty)."""
    raw, fmriprep = _study(tmp_path)
    out = tmp_path / "out"
    assert main([str(raw), str(out), "participant", "--derivatives", str(fmriprep),
                 "--task", "tiny", "--space", SPACES[0], "MNI", *CONTRAST,
                 "-w", str(tmp_path / "work")]) == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("glm-workflows: error: ")
    assert "space-MNI_desc-preproc" in error
    assert all(f"space-{space}_desc-preproc" in error for space in SPACES)
    assert list(out.iterdir()) == []


def test_one_analysis_per_space():
    argv = ["/nonexistent/raw", "out", "participant", "--derivatives", "/nonexistent/d",
            "--space", *SPACES]
    analyses = analyses_from_args(argv)
    assert [spec.inputs.space for spec, _ in analyses] == list(SPACES)
    assert [spec.inputs.space for spec, _ in analyses_from_args(argv[:-1])] == [SPACES[0]]
    assert spec_from_args(argv[:-1])[0] == analyses[0][0]
    with pytest.raises(InputError, match="several spaces"):
        spec_from_args(argv)


@pytest.mark.parametrize(("extra", "message"), [
    (["--space", "T1w", "T1w"], "--space T1w T1w: a space given twice"),
    (["--space", *SPACES, "--slurm-array"], "one space with --slurm-array"),
])
def test_space_list_refusals(extra, message):
    with pytest.raises(InputError, match=message):
        analyses_from_args(["--bids-dir", "/nonexistent/raw", "--derivatives",
                            "/nonexistent/d", "--task", "tiny", *extra])


@pytest.mark.slow
def test_volume_and_surface_spaces_in_one_call(tmp_path):
    """``--space T1w fsaverage5``: the volume and the surface analyses of one call equal
    successive single-space calls, and the subject pages show each under its space."""
    from glm_workflows.synthetic_surface import write_surface_study

    raw, fmriprep = write_surface_study(tmp_path / "study", SUBJECTS, n_scans=40)
    write_fmriprep_derivatives(raw, fmriprep, space="T1w")
    spaces = ["T1w", "fsaverage5"]
    assert _levels(raw, fmriprep, tmp_path / "one", tmp_path / "work-one", spaces) == (0, 0)
    for space in spaces:
        assert _levels(raw, fmriprep, tmp_path / "two", tmp_path / "work-two",
                       [space]) == (0, 0)
    ours = _digests(tmp_path / "one")
    assert ours == _digests(tmp_path / "two")
    assert {path.name for path in ours} >= {
        "sub-01_task-tiny_hemi-L_space-fsaverage5_contrast-aMinusB_stat-z_statmap.func.gii",
        "sub-01_task-tiny_space-T1w_contrast-aMinusB_stat-z_statmap.nii.gz"}
    page = _parsed(tmp_path / "one" / report_page("01"))
    assert page.headings == [f"space {space}" for space in spaces]
    assert set(page.under.values()) == set(page.headings)


@pytest.mark.slow
def test_the_report_groups_by_session_and_space(tmp_path):
    """Two sessions in two spaces: the subject page has a heading per session and space
    (the subject level over sessions under its space alone), each result under its own."""
    raw = write_tiny_bids(tmp_path / "raw", ["01"], n_scans=40, sessions=("pre", "post"))
    for space in SPACES:
        write_fmriprep_derivatives(raw, tmp_path / "fmriprep", space=space)
    assert main([str(raw), str(tmp_path / "out"), "participant", "--derivatives",
                 str(tmp_path / "fmriprep"), "--task", "tiny", "--space", *SPACES, *CONTRAST,
                 "-w", str(tmp_path / "work"), "-q"]) == 0
    page = _parsed(tmp_path / "out" / report_page("01"))
    headings = {(session, space): " · ".join(([f"ses-{session}"] if session else [])
                                             + [f"space {space}"])
                for session in (None, "post", "pre") for space in SPACES}
    assert page.headings == list(headings.values())
    assert page.under == {"_".join(["sub-01", *([f"ses-{session}"] if session else []),
                                    "task-tiny", f"space-{space}"]): heading
                          for (session, space), heading in headings.items()}
    index = _parsed(tmp_path / "out" / INDEX_FILE)
    assert index.headings == page.headings


@pytest.mark.parametrize(("codes", "expected", "ran"), [
    ([1, 0], 1, 2),  # a failed space: the next one still runs; the call fails
    ([0, 0], 0, 2),
    ([130, 0], 130, 1),  # interrupted: the spaces not yet run are not
])
def test_every_space_checked_first_and_the_largest_code(monkeypatch, codes, expected, ran):
    from glm_workflows.execution import analysis

    calls = []
    monkeypatch.setattr(analysis, "prepare", lambda spec, execution: calls.append(
        ("check", spec)) or f"plan of {spec}")

    def run(spec, execution, *, command_line=None, plan=None):
        calls.append(("run", spec, plan))
        return codes[len([c for c in calls if c[0] == "run"]) - 1]

    monkeypatch.setattr(analysis, "run_analysis", run)
    execution = analyses_from_args(["--task", "tiny"])[0][1]
    assert analysis.run_analyses([(s, execution) for s in SPACES]) == expected
    assert calls == [*(("check", s) for s in SPACES),
                     *(("run", s, f"plan of {s}") for s in SPACES[:ran])]
