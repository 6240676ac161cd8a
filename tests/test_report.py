"""The HTML report: content from the real seed outputs, escaping, atomic writes, a browser."""

import base64
import json
import os
import re
import shutil
import struct
from html.parser import HTMLParser
from pathlib import Path

import pytest

from glm_workflows.core.analyses import analysis_record
from glm_workflows.core.entities import bids_prefix
from glm_workflows.core.errors import InputError
from glm_workflows.core.naming import (
    INDEX_FILE,
    contrast_file,
    contrast_stem,
    model_file,
    report_page,
)
from glm_workflows.report import (
    describe_no_survivors,
    describe_threshold,
    write_index,
    write_subject_report,
)
from glm_workflows.report.markup import file_list, file_summary

PREFIX = bids_prefix("01", "auditory")
TABLE_ID = f"clusters-{contrast_stem(PREFIX, 'activeMinusRest')}"
EVIL = "<script>alert(1)</script>"
RECORD = analysis_record("task-auditory")  # the seed analysis' record in sub-01/
CHROMIUM_BINARIES = ("/usr/lib/chromium/chromium", "/usr/bin/chromium")
CHROMEDRIVER = "/usr/bin/chromedriver"


class PageParser(HTMLParser):
    """Tags of interest of a page: img sources, links, ids, tables' body rows, scripts."""

    def __init__(self):
        super().__init__()
        self.images, self.links, self.ids, self.tags = [], [], set(), []
        self.table_rows, self.cells, self._table, self._cell = {}, {}, None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        elif tag == "a":
            self.links.append(attrs.get("href", ""))
        elif tag == "table":
            self._table = attrs.get("id")
            self.table_rows[self._table], self.cells[self._table] = 0, []
        elif tag == "tr" and self._table is not None:
            self.table_rows[self._table] += 1
            self.cells[self._table].append([])
        elif tag == "td" and self._table is not None:
            self._cell = ""

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.cells[self._table][-1].append(self._cell)
            self._cell = None
        elif tag == "table":
            self._table = None


def parse(path: Path) -> PageParser:
    parser = PageParser()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


def fake_provenance(data_dir) -> dict:
    """A provenance record in the documented format, with markup in a path and the command."""
    scan = str(Path(data_dir) / "spm_auditory" / "sub001" / "fM00223" / "fM00223_004.img")
    return {
        "GeneratedBy": {"Name": "glm-workflows", "Version": "0.1.0",
                        "CommandLine": f"glm-workflows --output-dir '{EVIL}'",
                        "WorkingDirectory": "/home/me/study",
                        "Date": "2026-11-25T15:00:00+00:00", "WallTimeSeconds": 7.2},
        "SoftwareVersions": {"nipype": "1.11.0", "nilearn": "0.14.1"},
        "Parameters": {"noise_model": "ar1", "hrf_model": "spm"},
        "Inputs": [{"path": scan, "sha256": "ab" * 32, "role": "bold", "subject": "01"},
                   {"path": f"/data/{EVIL}/events.tsv", "sha256": "cd" * 32,
                    "role": "events", "subject": "01"},
                   {"path": "/data/other.nii", "sha256": "ef" * 32, "role": "bold",
                    "subject": "02"}],
        "Nodes": [{"name": f"{PREFIX}_wf.fit", "subject": "01", "status": "ran",
                   "seconds": 1.23},
                  {"name": f"{PREFIX}_wf.contrasts", "subject": "01", "status": "cached",
                   "seconds": 0.5},
                  {"name": "sub-02_task-auditory_wf.fit", "subject": "02", "status": "ran",
                   "seconds": 9.0}],
    }


@pytest.fixture(scope="module")
def derivatives(tmp_path_factory, seed_cli):
    """A copy of the seed analysis' derivatives (run once per session), to write into."""
    root, _, _ = seed_cli
    out = tmp_path_factory.mktemp("report") / "derivatives"
    shutil.copytree(root / "out", out)
    return out


@pytest.fixture(scope="module")
def report(derivatives, data_dir):
    """The subject page and the index, with a provenance record in the subject's folder."""
    (derivatives / "sub-01" / RECORD).write_text(
        json.dumps(fake_provenance(data_dir)))
    page = write_subject_report(derivatives, "01")
    index = write_index(derivatives, ["01"])
    return page, index


def test_report_content(report):
    """Settings, contrasts, thresholds, cluster tables and provenance are on the page."""
    page, _ = report
    assert page.name == report_page("01")
    text = page.read_text(encoding="utf-8")
    assert "<title>sub-01: first-level GLM report</title>" in text
    for expected in ("Repetition time (s)</th><td>7<", "Noise model</th><td>ar1<",
                     "0.00625 (period 160 s)", "activeMinusRest", "effectsOfInterest",
                     "<code>active - rest</code>", "(F test)"):
        assert expected in text
    thresholds = re.findall(r'<p class="threshold">Threshold: (.*?)</p>', text)
    assert thresholds == ["FDR q &lt; 0.05 → z &gt; 2.93, clusters ≥ 10 voxels, one-sided",
                          "FDR q &lt; 0.05 → z &gt; 2.24, clusters ≥ 10 voxels, one-sided"]

    parsed = parse(page)
    assert TABLE_ID in parsed.ids
    assert parsed.table_rows[TABLE_ID] == 16  # header and 15 peaks (5 clusters)
    assert parsed.cells[TABLE_ID][1] == ["1", "-63", "-6", "42", "10.07", "4347"]
    # design, correlation, then per contrast: weights, axial cuts, orthogonal view
    assert len(parsed.images) == 2 + 2 * 3
    assert all(src.startswith("data:image/png;base64,") for src in parsed.images)
    assert all(link.startswith("#") for link in parsed.links)
    assert not {"script", "link", "iframe"} & set(parsed.tags)
    without_data = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", text)
    assert "http://" not in without_data and "https://" not in without_data

    assert '<section id="provenance">' in text
    assert "2026-11-25T15:00:00+00:00" in text and "7.2 s" in text
    assert "Working directory</th><td><code>/home/me/study</code>" in text
    assert "fM00223_004.img" in text and f">{'ab' * 6}…<" in text
    assert "/data/other.nii" not in text and "sub-02_task-auditory_wf.fit" not in text
    assert "Total</th><td class=\"num\">1.73<" in text


def test_report_lists_many_files_in_a_few_words(report):
    """The run's 96 scans (the design sidecar's Sources) take one line: count, first and
    last name, folder; each path is still on the page, folded in a <details> element."""
    page, _ = report
    text = page.read_text(encoding="utf-8")
    design = json.loads((page.parent / "sub-01" / model_file(PREFIX, "design_json")).read_text())
    folder = os.path.join(os.path.dirname(design["Sources"][0]), "")
    assert (f"96 files <code>fM00223_004.img</code> … <code>fM00223_099.img</code> in "
            f"<code>{folder}</code>") in text
    unfolded = re.sub(r"<details>.*?</details>", "", text, flags=re.S)
    assert "fM00223_050.img" not in unfolded
    assert f"<li><code>{folder}fM00223_050.img</code></li>" in text


def test_file_lists_in_a_few_words():
    """One path as it is; several as one line per folder and extension (escaped), and
    the full list folded below."""
    scans = [f"/d/run/s_{i:03d}.img" for i in range(4, 100)]
    assert file_summary(["/d/e.tsv"]) == file_list(["/d/e.tsv"]) == "<code>/d/e.tsv</code>"
    assert file_summary([*scans, "/d/run/e.tsv", "/d/x<y>/a.nii", "/d/x<y>/b.nii"]) == (
        "96 files <code>s_004.img</code> … <code>s_099.img</code> in <code>/d/run/</code><br>"
        "<code>e.tsv</code> in <code>/d/run/</code><br>"
        "2 files <code>a.nii</code>, <code>b.nii</code> in <code>/d/x&lt;y&gt;/</code>")
    listing = file_list(scans)
    assert listing.startswith(f"{file_summary(scans)}<details><summary>All 96 paths</summary>")
    assert listing.count("<li>") == 96


def test_report_escapes_markup(report):
    """Markup in provenance text is shown as text, never rendered."""
    page, _ = report
    text = page.read_text(encoding="utf-8")
    assert EVIL not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_report_escapes_fake_results(tmp_path):
    """Markup in design and contrast sidecars and cluster tables is escaped; missing files noted."""
    folder = tmp_path / "sub-02"
    folder.mkdir()
    prefix = bids_prefix("02", "x", run="1")
    (folder / model_file(prefix, "design_file")).write_text(
        "a<b\tc\tconstant\n1\t0\t1\n0\t1\t1\n1\t1\t1\n0\t0\t1\n")
    (folder / model_file(prefix, "design_json")).write_text(json.dumps(
        {"RepetitionTime": 2.0, "EventsFile": f"/x/{EVIL}.tsv", "Columns": ["a<b", "c"]}))
    (folder / contrast_file(prefix, "aMinusC", "contrast_jsons")).write_text(json.dumps(
        {"StatisticType": "t", "ContrastRows": ["a<b - c"], "NoiseModel": "ols"}))
    (folder / contrast_file(prefix, "aMinusC", "threshold_jsons")).write_text(json.dumps(
        {"HeightControl": "none", "Threshold": 3.1, "ClusterThreshold": 0, "TwoSided": True}))
    (folder / contrast_file(prefix, "aMinusC", "cluster_tables")).write_text(
        "Cluster ID\tX\tY\tZ\tPeak Stat\tCluster Size (mm3)\n<b>1</b>\t1\t2\t3\t4.5\t27\n")

    text = write_subject_report(tmp_path, "sub-02").read_text(encoding="utf-8")
    assert "<b>" not in text and EVIL not in text
    for escaped in ("a&lt;b - c", "&lt;b&gt;1&lt;/b&gt;", f"/x/{EVIL}.tsv".replace(
            "<", "&lt;").replace(">", "&gt;")):
        assert escaped in text
    assert "fixed threshold → |z| &gt; 3.10, no cluster-size threshold, two-sided" in text
    assert "Figure not found: " in text and '<section id="provenance">' not in text


def test_report_without_provenance_is_deterministic(derivatives, tmp_path):
    """No analysis record: no provenance section, and two writes give the same bytes."""
    folder = tmp_path / "out"
    shutil.copytree(derivatives / "sub-01", folder / "sub-01")
    (folder / "sub-01" / RECORD).unlink()
    first = write_subject_report(folder, "01").read_bytes()
    second = write_subject_report(folder, "01").read_bytes()
    assert first == second
    assert b'id="provenance"' not in first and b"Provenance" not in first


def test_index_links_reports(report):
    """The index links each page with a relative link."""
    _, index = report
    assert index.name == INDEX_FILE
    parsed = parse(index)
    assert parsed.links == [report_page("01")]
    assert (index.parent / parsed.links[0]).exists()


def test_atomic_write_keeps_old_page(report, monkeypatch):
    """A failure while writing leaves the previous page and no temporary file."""
    page, _ = report
    before = page.read_bytes()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_subject_report(page.parent, "01")
    monkeypatch.undo()
    assert page.read_bytes() == before
    assert not [p for p in page.parent.iterdir() if p.name.endswith(".tmp")]


def test_unknown_subject(report):
    page, _ = report
    with pytest.raises(InputError, match="no first-level results"):
        write_subject_report(page.parent, "99")
    with pytest.raises(InputError, match="letters and digits"):
        write_subject_report(page.parent, "../01")


@pytest.mark.parametrize("settings, expected", [
    ({"HeightControl": "fdr", "Alpha": 0.05, "Threshold": 2.9307, "ClusterThreshold": 10,
      "TwoSided": False}, "FDR q < 0.05 → z > 2.93, clusters ≥ 10 voxels, one-sided"),
    ({"HeightControl": "fpr", "Alpha": 0.001, "Threshold": 3.0902, "ClusterThreshold": 0,
      "TwoSided": True},
     "uncorrected p < 0.001 → |z| > 3.09, no cluster-size threshold, two-sided"),
    ({"HeightControl": "bonferroni", "Alpha": 0.05, "Threshold": 4.8, "ClusterThreshold": 5,
      "TwoSided": False}, "Bonferroni-corrected p < 0.05 → z > 4.80, clusters ≥ 5 voxels, "
                          "one-sided"),
    ({"HeightControl": "none", "Alpha": None, "Threshold": 3.09, "ClusterThreshold": 10,
      "TwoSided": False}, "fixed threshold → z > 3.09, clusters ≥ 10 voxels, one-sided"),
    ({"HeightControl": "fdr", "Alpha": 0.05, "Threshold": float("inf"), "ClusterThreshold": 10,
      "TwoSided": False}, "FDR q < 0.05 → no voxel can pass, clusters ≥ 10 voxels, one-sided"),
])
def test_describe_threshold(settings, expected):
    assert describe_threshold(settings) == expected


# --- a real headless browser --------------------------------------------------------------

def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@pytest.fixture
def browser(tmp_path, monkeypatch):
    """Headless Chromium driven by the system chromedriver (Selenium Manager stays offline)."""
    binary = next((b for b in CHROMIUM_BINARIES if os.access(b, os.X_OK)), None)
    missing = [name for name, ok in (("chromium", binary), ("chromium-driver",
                                     os.access(CHROMEDRIVER, os.X_OK))) if not ok]
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing.append("selenium (pip install selenium)")
    if missing:
        message = (f"browser test needs {', '.join(missing)}: run .ci/install-browser.sh "
                   "(and pip install selenium)")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)

    monkeypatch.setenv("SE_OFFLINE", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage", "--window-size=1280,900",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


IMAGES_OK = """
return Array.from(document.images).map(
    img => [img.complete && img.naturalWidth > 0, img.naturalWidth, img.alt]);
"""


@pytest.mark.slow
def test_report_in_headless_chromium(report, browser, tmp_path):
    """Every image decodes, the cluster table is there, and a full-page screenshot is taken."""
    page, index = report
    browser.get(page.as_uri())
    assert browser.title == "sub-01: first-level GLM report"
    images = browser.execute_script(IMAGES_OK)
    assert len(images) == 8
    assert all(ok for ok, _, _ in images), [alt for ok, _, alt in images if not ok]
    rows = browser.execute_script(
        "const t = document.getElementById(arguments[0]); return t ? t.rows.length : -1;",
        TABLE_ID)
    assert rows == 16
    first = browser.execute_script(
        "return Array.from(document.getElementById(arguments[0]).rows[1].cells)"
        ".map(c => c.textContent);", TABLE_ID)
    assert first[1:4] == ["-63", "-6", "42"]
    folded = browser.execute_script(
        "return Array.from(document.querySelectorAll('details')).map("
        "d => [d.open, d.lastElementChild.checkVisibility()]);")
    assert folded and not any(is_open or shown for is_open, shown in folded)
    browser.find_element("css selector", "details summary").click()
    assert browser.execute_script(
        "return document.querySelector('details').lastElementChild.checkVisibility();")

    viewport = tmp_path / "sub-01-viewport.png"
    assert browser.save_screenshot(str(viewport))
    width, height, ratio = browser.execute_script(
        "return [window.innerWidth, window.innerHeight, window.devicePixelRatio];")
    assert png_size(viewport.read_bytes()) == (round(width * ratio), round(height * ratio))

    metrics = browser.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    full_w, full_h = int(metrics["width"]), int(metrics["height"])
    shot = browser.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": full_w, "height": full_h, "scale": 1}})
    full_page = tmp_path / "sub-01-full.png"
    full_page.write_bytes(base64.b64decode(shot["data"]))
    print(f"screenshot: {full_page}")
    assert full_page.stat().st_size > 10_000
    assert full_h > height
    assert png_size(full_page.read_bytes()) == (round(full_w * ratio), round(full_h * ratio))

    browser.get(index.as_uri())
    link = browser.find_element("css selector", f'a[href="{report_page("01")}"]')
    link.click()
    assert browser.current_url == page.as_uri()
    assert browser.execute_script("return document.getElementById(arguments[0]) !== null;",
                                  TABLE_ID)


# --- no voxel survives ---------------------------------------------------------------------

@pytest.mark.parametrize("settings, by_extent, expected", [
    ({"HeightControl": "fdr", "Alpha": 1e-30, "Threshold": None, "ClusterThreshold": 10,
      "TwoSided": False, "NoSurvivingVoxels": True}, False, "no voxel survives FDR q < 1e-30"),
    ({"HeightControl": "bonferroni", "Alpha": 1e-10, "Threshold": 7.4, "ClusterThreshold": 10,
      "TwoSided": False, "NoSurvivingVoxels": True}, False,
     "no voxel survives Bonferroni-corrected p < 1e-10"),
    ({"HeightControl": "fdr", "Alpha": 0.05, "Threshold": 2.93, "ClusterThreshold": 1000,
      "TwoSided": False, "NoSurvivingVoxels": True}, True,
     "no voxel survives FDR q < 0.05 with clusters ≥ 1000 voxels"),
    ({"HeightControl": "none", "Alpha": None, "Threshold": 12.0, "ClusterThreshold": 0,
      "TwoSided": True, "NoSurvivingVoxels": True}, False,
     "no voxel survives fixed threshold |z| > 12.00"),
])
def test_describe_no_survivors(settings, by_extent, expected):
    assert describe_no_survivors(settings, by_extent) == expected


def test_describe_threshold_without_finite_threshold():
    """fdr without discovery is recorded as a null threshold with NoSurvivingVoxels."""
    settings = {"HeightControl": "fdr", "Alpha": 1e-30, "Threshold": None,
                "ClusterThreshold": 10, "TwoSided": False, "NoSurvivingVoxels": True}
    assert describe_threshold(settings) == ("FDR q < 1e-30 → no voxel can pass, "
                                            "clusters ≥ 10 voxels, one-sided")


def test_report_says_nothing_survives_instead_of_the_table(tmp_path):
    """An empty result shows why nothing survives (the extent only when voxels passed the
    height threshold in the z map) and no table; a contrast with survivors keeps its table."""
    import nibabel as nb
    import numpy as np

    folder = tmp_path / "sub-03"
    folder.mkdir()
    prefix = bids_prefix("03", "x")
    z = np.zeros((8, 8, 8))
    z[2:4, 2:4, 2] = 4.0  # 4 voxels above 3, fewer than the extent of 50
    for name, height, empty in (("extent", 3.0, True), ("height", 5.0, True),
                                ("kept", 3.0, False)):
        path = {output: folder / contrast_file(prefix, name, output) for output in
                ("contrast_jsons", "z_maps", "threshold_jsons", "cluster_tables")}
        path["contrast_jsons"].write_text(json.dumps({"StatisticType": "t"}))
        nb.Nifti1Image(z, np.eye(4)).to_filename(path["z_maps"])
        path["threshold_jsons"].write_text(json.dumps(
            {"HeightControl": "fpr", "Alpha": 0.001, "Threshold": height,
             "ClusterThreshold": 50, "TwoSided": False, "NoSurvivingVoxels": empty}))
        path["cluster_tables"].write_text(
            "Cluster ID\tX\tY\tZ\tPeak Stat\tCluster Size (mm3)\n"
            + ("" if empty else "1\t2\t2\t2\t4.0\t4\n"))

    page = write_subject_report(tmp_path, "03")
    text = page.read_text(encoding="utf-8")
    lines = re.findall(r'<p class="note no-survivors">(.*?)</p>', text)
    assert lines == ["Result: no voxel survives uncorrected p &lt; 0.001 with clusters ≥ 50 "
                     "voxels.", "Result: no voxel survives uncorrected p &lt; 0.001."]
    assert set(parse(page).table_rows) == {f"clusters-{contrast_stem(prefix, 'kept')}"}
