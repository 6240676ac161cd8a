"""The group level's report page: written by the command line after a run with a group
level, built from ``group/`` alone (subjects and design rows, clusters, permutations),
linked from the index, well-formed; and robust to a group folder without permutations,
without survivors or with files missing."""

import csv
import json
import re
import shutil
from html.parser import HTMLParser

import nibabel as nb
import numpy as np
import pytest

from glm_workflows.cli import main
from glm_workflows.core.errors import InputError
from glm_workflows.core.naming import (
    GROUP_FOLDER,
    GROUP_REPORT,
    INDEX_FILE,
    group_file,
    group_stem,
    report_page,
)
from glm_workflows.report import write_group_report
from glm_workflows.synthetic import write_tiny_bids

SUBJECTS = [f"{i:02d}" for i in range(1, 7)]
STEM = group_stem("tiny", "aMinusB")
SEED = 13
#: Elements without an end tag.
VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    """Six tiny subjects, a one-sample group level with 20 permutations in two chunks."""
    root = tmp_path_factory.mktemp("report_group")
    bids = write_tiny_bids(root / "bids", subjects=SUBJECTS)
    out = root / "out"
    argv = ["--bids-dir", str(bids), "--task", "tiny", "--contrast", "aMinusB=a - b",
            "--group", "one-sample", "--permutations", "20", "--permutation-chunks", "2",
            "--seed", str(SEED), "--plugin", "Linear",
            "--output-dir", str(out), "--work-dir", str(root / "work")]
    assert main(argv) == 0
    return out


def _text(html: str) -> str:
    """The page's text: tags and embedded images left out, entities kept."""
    return re.sub(r"<[^>]+>", " ", re.sub(r'src="data:[^"]*"', "", html))


def _section(html: str, css_id: str) -> str:
    start = html.index(f'id="{css_id}"')
    return html[start:html.index("</table>", start)]


class _Checker(HTMLParser):
    """Every non-void element closed in order; ids unique."""

    def __init__(self):
        super().__init__()
        self.stack, self.errors, self.ids = [], [], []

    def handle_starttag(self, tag, attrs):
        self.ids += [value for name, value in attrs if name == "id"]
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
        else:
            self.stack.pop()


def _check_well_formed(html: str) -> None:
    checker = _Checker()
    checker.feed(html)
    checker.close()
    assert not checker.errors, checker.errors[:5]
    assert not checker.stack, f"unclosed: {checker.stack}"
    assert len(checker.ids) == len(set(checker.ids)), "duplicate ids"


@pytest.mark.slow
def test_cli_writes_group_page_linked_from_index(out):
    page = out / GROUP_REPORT
    assert page.exists()
    assert not list(out.glob("*.tmp"))
    index = (out / INDEX_FILE).read_text()
    assert f'href="{GROUP_REPORT}"' in index
    for subject in SUBJECTS:  # the subjects stay listed too
        assert f'href="{report_page(subject)}"' in index


@pytest.mark.slow
def test_group_page_names_subjects_with_their_design_rows(out):
    html = (out / GROUP_REPORT).read_text()
    folder = out / GROUP_FOLDER
    design = json.loads((folder / group_file(STEM, "design_json")).read_text())
    assert design["Subjects"] == SUBJECTS
    with open(folder / group_file(STEM, "design_file"), newline="") as stream:
        rows = list(csv.DictReader(stream, delimiter="\t"))
    table = _section(html, "design-table-1")
    for row in rows:  # every design row, the subject linking to its own page
        subject = row["participant_id"]
        assert subject in SUBJECTS
        cells = re.escape(f'<td><a href="{report_page(subject)}">{subject}</a></td>') \
            + "".join(rf'<td class="num">{re.escape(row[c])}</td>' for c in list(row)[1:])
        assert re.search(cells, table), subject
    definition = html[html.index('class="definition"'):]
    definition = definition[:definition.index("</p>")]
    assert f"{len(SUBJECTS)} subjects ({', '.join(SUBJECTS)})" in definition
    assert "<code>aMinusB</code>" in definition and "degrees of freedom: 5" in definition
    assert "Group design matrix" in html  # the design figure, embedded
    assert html.count('src="data:image/png;base64,') == 4  # design, cuts, ortho, null


@pytest.mark.slow
def test_group_page_cluster_table_matches_tsv(out):
    html = (out / GROUP_REPORT).read_text()
    with open(out / GROUP_FOLDER / group_file(STEM, "cluster_tables"), newline="") as stream:
        rows = list(csv.DictReader(stream, delimiter="\t"))
    assert rows  # the true effect survives
    table = _section(html, f"clusters-{STEM}")
    shown = re.findall(r"<tr[^>]*><td>([^<]*)</td>((?:<td[^>]*>[^<]*</td>)*)</tr>", table)
    assert [peak for peak, _ in shown] == [row["Cluster ID"] for row in rows]
    for (_, cells), row in zip(shown, rows, strict=True):
        values = re.findall(r"<td[^>]*>([^<]*)</td>", cells)
        assert float(values[3]) == pytest.approx(float(row["Peak Stat"]), abs=0.005)
        assert [float(v) for v in values[:3]] == [float(row[a]) for a in ("X", "Y", "Z")]
    threshold = json.loads((out / GROUP_FOLDER / group_file(STEM, "threshold_jsons"))
                           .read_text())["Threshold"]
    assert f"z &gt; {threshold:.2f}" in html


@pytest.mark.slow
def test_group_page_permutation_summary(out):
    html = (out / GROUP_REPORT).read_text()
    settings = _section(html, f"permutation-settings-{STEM}")
    assert f"<th>Seed</th><td>{SEED}</td>" in settings
    assert "<th>Permutations</th><td>20</td>" in settings
    assert "<th>Chunks</th><td>2 (permutations 0–10, 10–20)</td>" in settings
    fwe = _section(html, f"fwe-{STEM}")
    for output, label in (("logp_max_t", "Voxel-wise (max-t)"),
                          ("logp_max_size", "Cluster size"),
                          ("logp_max_mass", "Cluster mass")):
        name = group_file(STEM, output)
        best = 10 ** -np.max(nb.load(out / GROUP_FOLDER / name).get_fdata())
        assert (f"<tr><td>{label}</td><td><code>{name}</code></td>"
                f'<td class="num">{best:.4g}</td></tr>') in fwe
    assert "TFCE</td>" not in fwe  # not computed, so not listed
    assert "Null distribution of the maximum statistic" in html


@pytest.mark.slow
def test_group_page_well_formed(out):
    html = (out / GROUP_REPORT).read_text()
    _check_well_formed(html)
    assert html.startswith("<!DOCTYPE html>") and "http" not in _text(html).lower()


@pytest.mark.slow
def test_group_page_without_permutations_or_survivors(out, tmp_path):
    """A copy of the group folder without permutation files, a threshold no voxel passes
    and the figures missing: the page says so instead of failing."""
    copy = tmp_path / "copy"
    shutil.copytree(out / GROUP_FOLDER, copy / GROUP_FOLDER)
    folder = copy / GROUP_FOLDER
    for output in ("logp_max_t", "logp_max_size", "logp_max_mass", "null_figure",
                   "permutation_json", "ortho_figures"):
        (folder / group_file(STEM, output)).unlink()
    sidecar = folder / group_file(STEM, "threshold_jsons")
    settings = {**json.loads(sidecar.read_text()), "HeightControl": "none", "Threshold": 99.0,
                "NoSurvivingVoxels": True}
    sidecar.write_text(json.dumps(settings))
    (folder / group_file(STEM, "cluster_tables")).write_text(
        "Cluster ID\tX\tY\tZ\tPeak Stat\tCluster Size (mm3)\n")
    html = write_group_report(copy).read_text()
    _check_well_formed(html)
    assert "Permutation inference" not in html
    assert "no voxel survives fixed threshold z &gt; 99.00" in html
    assert f"Figure not found: {group_file(STEM, 'ortho_figures')}" in html
    assert 'href="sub-' not in html  # no subject page beside this copy


def test_group_page_needs_group_folder(tmp_path):
    with pytest.raises(InputError, match="no group-level results"):
        write_group_report(tmp_path)
    (tmp_path / GROUP_FOLDER).mkdir()
    html = write_group_report(tmp_path).read_text()
    assert "No group contrast saved." in html
    _check_well_formed(html)
