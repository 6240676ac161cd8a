"""Self-contained HTML reports of the saved first-level results, one page per subject.

The pages are built from the files of the BIDS-Derivatives folder alone (design
matrices, contrast and threshold sidecars, statistical maps, cluster tables and the
optional ``provenance.json``), so a report can be written long after the workflow ran.
Every figure is embedded as a ``data:image/png`` URI and the style sheet is inline:
a page is one file that opens from disk without a server, JavaScript or network.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import os
import re
import secrets
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd

from .. import __version__
from .derivatives import PROVENANCE_FILE, check_label
from .errors import InputError

#: How each ``HeightControl`` of a thresholded-map sidecar is described.
HEIGHT_CONTROL_LABELS = {
    "fdr": "FDR q < {alpha:g}",
    "fpr": "uncorrected p < {alpha:g}",
    "bonferroni": "Bonferroni-corrected p < {alpha:g}",
    "none": "fixed threshold",
}

#: Labels of the design sidecar's keys (and of the contrasts' noise model), in display order.
DESIGN_LABELS = {
    "RepetitionTime": "Repetition time (s)",
    "NumberOfScans": "Number of scans",
    "HRFModel": "HRF model",
    "DriftModel": "Drift model",
    "HighPass": "High-pass cut-off (Hz)",
    "DriftOrder": "Polynomial drift order",
    "SliceTimeRef": "Slice-time reference (fraction of TR)",
    "NoiseModel": "Noise model",
    "EventsFile": "Events file",
    "ConfoundsFile": "Confounds file",
    "Columns": "Regressors",
}

_LABEL = r"[A-Za-z0-9]+"
_PREFIX = (r"(?P<prefix>sub-{subject}(?:_ses-" + _LABEL + r")?_task-" + _LABEL
           + r"(?:_run-" + _LABEL + r")?)")
_CLUSTER_COLUMNS = ("Cluster ID", "X", "Y", "Z", "Peak Stat", "Cluster Size (mm3)")

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif;
       margin: 0 auto; max-width: 1100px; padding: 0 1.5em 3em; color: #222;
       line-height: 1.4; }
h1 { border-bottom: 3px solid #345; padding-bottom: .3em; }
h2 { border-bottom: 1px solid #bbb; margin-top: 2em; }
h3 { margin-top: 1.6em; }
section.contrast { border-left: 4px solid #468; padding-left: 1em; margin: 1.5em 0; }
figure { display: inline-block; margin: .5em 1em .5em 0; vertical-align: top; }
figure img { max-width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { font-size: .85em; color: #555; }
table { border-collapse: collapse; margin: .5em 0 1em; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .2em .6em; text-align: left; }
th { background: #eef1f5; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.subpeak td { color: #666; }
table.settings th { text-align: left; font-weight: normal; }
p.threshold { font-weight: bold; }
p.note, .missing { color: #855; font-style: italic; }
code { font-size: .9em; word-break: break-all; }
summary { margin: .5em 0; }
footer { margin-top: 3em; font-size: .8em; color: #777; }
"""


def write_subject_report(output_dir, subject) -> Path:
    """Write the HTML report of one subject's first-level results.

    Parameters
    ----------
    output_dir : str or PathLike
        The derivatives root holding ``sub-<subject>/`` (with, maybe, the subject's
        ``provenance.json``).
    subject : str
        Subject label, with or without the ``sub-`` prefix.

    Returns
    -------
    path : pathlib.Path
        ``<output_dir>/sub-<subject>.html``, a self-contained page.

    Raises
    ------
    InputError
        If the subject folder is missing or holds no results.
    """
    output_dir = Path(output_dir)
    subject = _subject_label(subject)
    folder = output_dir / f"sub-{subject}"
    prefixes = find_prefixes(folder, subject)
    if not prefixes:
        raise InputError(f"{folder}: no first-level results of subject {subject} found")
    provenance = read_provenance(folder)

    body = [f"<h1>sub-{_e(subject)} &mdash; first-level GLM report</h1>",
            _contents(folder, prefixes, provenance is not None),
            _model_section(folder, prefixes)]
    body += [_prefix_section(folder, prefix, prefixes) for prefix in prefixes]
    if provenance is not None:
        body.append(_provenance_section(provenance, subject))
    page = _page(f"sub-{subject}: first-level GLM report", body)
    return _write_atomic(output_dir / f"sub-{subject}.html", page)


def write_index(output_dir, subjects) -> Path:
    """Write ``<output_dir>/index.html`` linking each subject's report.

    Parameters
    ----------
    output_dir : str or PathLike
        The derivatives root, where the ``sub-<label>.html`` pages are.
    subjects : iterable of str
        Subject labels, with or without the ``sub-`` prefix.

    Returns
    -------
    path : pathlib.Path
        The index page; its links are relative, so the folder can be moved.
    """
    output_dir = Path(output_dir)
    items = []
    for subject in sorted({_subject_label(s) for s in subjects}):
        page = f"sub-{subject}.html"
        prefixes = find_prefixes(output_dir / f"sub-{subject}", subject)
        detail = ", ".join(prefixes) if prefixes else "no results found"
        if not (output_dir / page).exists():
            detail += "; report not written yet"
        items.append(f'<li><a href="{_e(page)}">sub-{_e(subject)}</a> '
                     f"<small>({_e(detail)})</small></li>")
    listing = "\n".join(items) if items else "<li>No subject.</li>"
    body = ["<h1>First-level GLM reports</h1>",
            f'<ul id="subjects">\n{listing}\n</ul>']
    return _write_atomic(output_dir / "index.html", _page("First-level GLM reports", body))


def find_prefixes(folder, subject) -> list[str]:
    """The result prefixes of a subject folder, subject level first, then runs in order.

    Parameters
    ----------
    folder : str or PathLike
        ``<derivatives>/sub-<subject>``.
    subject : str
        Subject label (without ``sub-``).

    Returns
    -------
    prefixes : list of str
        ``sub-<label>[_ses-<label>]_task-<task>[_run-<index>]`` of every design or
        contrast file found; empty if the folder does not exist.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    pattern = re.compile(_PREFIX.format(subject=re.escape(subject))
                         + r"_(?:design\.(?:tsv|json)|contrast-[^_]+_statmap\.json)$")
    found = {m["prefix"] for p in folder.iterdir() if (m := pattern.match(p.name))}
    return sorted(found, key=_prefix_order)


def find_contrasts(folder, prefix: str) -> list[str]:
    """Names of the contrasts saved under ``prefix`` (from ``*_contrast-<name>_statmap.json``)."""
    pattern = re.compile(re.escape(prefix) + r"_contrast-([^_]+)_statmap\.json$")
    return sorted(m[1] for p in Path(folder).iterdir() if (m := pattern.match(p.name)))


def describe_threshold(settings: dict) -> str:
    """One line saying how a map was thresholded, from its ``desc-thresholded`` sidecar.

    Parameters
    ----------
    settings : dict
        ``HeightControl``, ``Alpha``, ``Threshold`` (null when no voxel can pass, with
        ``NoSurvivingVoxels``), ``ClusterThreshold``, ``TwoSided``.

    Returns
    -------
    text : str
        E.g. ``"FDR q < 0.05 → z > 2.93, clusters ≥ 10 voxels, one-sided"``.
    """
    two_sided = bool(settings.get("TwoSided", False))
    threshold = settings.get("Threshold")
    if threshold is None:
        height = ("no voxel can pass" if settings.get("NoSurvivingVoxels")
                  else "threshold not recorded")
    elif not np.isfinite(threshold):
        height = "no voxel can pass"
    else:
        height = f"{'|z|' if two_sided else 'z'} > {threshold:.2f}"
    clusters = int(settings.get("ClusterThreshold") or 0)
    extent = f"clusters ≥ {clusters} voxels" if clusters > 0 else "no cluster-size threshold"
    return (f"{_height_control(settings)} → {height}, {extent}, "
            f"{'two-sided' if two_sided else 'one-sided'}")


def describe_no_survivors(settings: dict, by_extent: bool) -> str:
    """The line shown instead of the cluster table when no voxel survives.

    Parameters
    ----------
    settings : dict
        The ``desc-thresholded`` sidecar (see :func:`describe_threshold`).
    by_extent : bool
        Whether voxels passed the height threshold and the cluster extent
        (``ClusterThreshold``) removed them all.

    Returns
    -------
    text : str
        E.g. ``"no voxel survives FDR q < 0.05"``,
        ``"no voxel survives FDR q < 0.05 with clusters ≥ 1000 voxels"`` or
        ``"no voxel survives fixed threshold z > 12.00"``.
    """
    criterion = _height_control(settings)
    threshold = settings.get("Threshold")
    if str(settings.get("HeightControl", "none")).lower() == "none" and threshold is not None:
        criterion += f" {'|z|' if settings.get('TwoSided') else 'z'} > {threshold:.2f}"
    if by_extent:
        criterion += f" with clusters ≥ {int(settings.get('ClusterThreshold') or 0)} voxels"
    return f"no voxel survives {criterion}"


def read_provenance(folder) -> dict | None:
    """The content of ``<folder>/provenance.json`` (a subject's record); None if absent.

    An unreadable record gives a dict holding only the key ``"Error"``, so the report
    says why the section is empty instead of failing.
    """
    path = Path(folder) / PROVENANCE_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return {"Error": f"{path.name} could not be read ({exc})"}
    if not isinstance(record, dict):
        return {"Error": f"{path.name}: expected a JSON object"}
    return record


# --- sections ---------------------------------------------------------------------------

def _contents(folder: Path, prefixes, with_provenance: bool) -> str:
    items = ['<li><a href="#model">Model settings</a></li>']
    for prefix in prefixes:
        contrasts = find_contrasts(folder, prefix)
        sub = "".join(f'<li><a href="#{_e(_contrast_id(prefix, c))}">{_e(c)}</a></li>'
                      for c in contrasts)
        items.append(f'<li><a href="#{_e(prefix)}">{_e(prefix)}</a>'
                     + (f"<ul>{sub}</ul>" if sub else "") + "</li>")
    if with_provenance:
        items.append('<li><a href="#provenance">Provenance</a></li>')
    return "<nav><h2>Contents</h2><ul>" + "".join(items) + "</ul></nav>"


def _model_section(folder: Path, prefixes) -> str:
    """The design settings, one column per distinct setting set (usually just one)."""
    designs = {p: _read_json(folder / f"{p}_design.json") for p in prefixes}
    designs = {p: d for p, d in designs.items() if d is not None}
    for prefix in designs:
        noise = sorted({str(s["NoiseModel"]) for c in find_contrasts(folder, prefix)
                        if (s := _read_json(folder / f"{prefix}_contrast-{c}_statmap.json"))
                        and "NoiseModel" in s})
        if noise:
            designs[prefix] = {**designs[prefix], "NoiseModel": ", ".join(noise)}
    if not designs:
        return ('<section id="model"><h2>Model settings</h2>'
                '<p class="note">No design sidecar found.</p></section>')
    groups: dict[str, list[str]] = {}
    for prefix, design in designs.items():
        groups.setdefault(json.dumps(design, sort_keys=True), []).append(prefix)
    columns = [(json.loads(key), names) for key, names in groups.items()]
    keys = [k for k in DESIGN_LABELS if any(k in d for d, _ in columns)]
    keys += sorted({k for d, _ in columns for k in d} - set(keys))
    head = "".join(f"<th>{_e(', '.join(names))}</th>" for _, names in columns)
    rows = [f"<tr><th>Setting</th>{head}</tr>"]
    for key in keys:
        cells = "".join(f"<td>{_e(_setting_text(key, d.get(key, '')))}</td>" for d, _ in columns)
        rows.append(f"<tr><th>{_e(DESIGN_LABELS.get(key, key))}</th>{cells}</tr>")
    return ('<section id="model"><h2>Model settings</h2>'
            f'<table class="settings">{"".join(rows)}</table></section>')


def _prefix_section(folder: Path, prefix: str, prefixes) -> str:
    parts = [f'<section class="level" id="{_e(prefix)}"><h2>{_e(prefix)}</h2>']
    runs = [p for p in prefixes if p != prefix and p.startswith(prefix + "_run-")]
    if runs:
        labels = ", ".join(p.rsplit("_run-", 1)[1] for p in runs)
        parts.append(f"<p>Fixed effects over runs {_e(labels)}.</p>")
    parts.append(_design_figures(folder, prefix))
    contrasts = find_contrasts(folder, prefix)
    if not contrasts:
        parts.append('<p class="note">No contrast saved.</p>')
    for contrast in contrasts:
        parts.append(_contrast_section(folder, prefix, contrast))
    parts.append("</section>")
    return "\n".join(parts)


def _design_figures(folder: Path, prefix: str) -> str:
    design_tsv = folder / f"{prefix}_design.tsv"
    if not design_tsv.exists():
        return ""
    design = pd.read_csv(design_tsv, sep="\t")
    return "\n".join([
        f"<h3>Design matrix</h3><p>{design.shape[0]} scans &times; "
        f"{design.shape[1]} regressors.</p>",
        _file_figure(folder / f"{prefix}_design.png",
                     "Design matrix (rows: scans, columns: regressors)"),
        _file_figure(folder / f"{prefix}_desc-correlation_design.png",
                     "Correlation between regressors (drifts and constant left out)"),
    ])


def _contrast_section(folder: Path, prefix: str, contrast: str) -> str:
    base = folder / f"{prefix}_contrast-{contrast}"
    meta = _read_json(Path(f"{base}_statmap.json")) or {}
    stat_type = str(meta.get("StatisticType", ""))
    parts = [f'<section class="contrast" id="{_e(_contrast_id(prefix, contrast))}">',
             f"<h3>Contrast {_e(contrast)}"
             + (f" <small>({_e(stat_type)} test)</small>" if stat_type else "") + "</h3>"]
    rows = meta.get("ContrastRows") or []
    facts = []
    if rows:
        facts.append("Definition: " + "; ".join(f"<code>{_e(str(r))}</code>" for r in rows))
    if meta.get("DegreesOfFreedom") is not None:
        facts.append(f"degrees of freedom: {_e(_number(meta['DegreesOfFreedom']))}")
    if meta.get("NoiseModel"):
        facts.append(f"noise model: {_e(str(meta['NoiseModel']))}")
    if facts:
        parts.append(f'<p class="definition">{", ".join(facts)}.</p>')

    settings = _read_json(Path(f"{base}_stat-z_desc-thresholded_statmap.json"))
    if settings is None:
        parts.append('<p class="note">Threshold settings not found.</p>')
    else:
        parts.append(f'<p class="threshold">Threshold: {_e(describe_threshold(settings))}</p>')
    table = _read_clusters(Path(f"{base}_clusters.tsv"))

    figures = [_file_figure(Path(f"{base}_contrastmatrix.png"), "Contrast weights"),
               _file_figure(Path(f"{base}_stat-z_desc-thresholded_statmap.png"),
                            "Thresholded z map over the mean image (axial cuts)")]
    peak = _first_peak(table)
    where = f" at the peak ({', '.join(_number(v) for v in peak)})" if peak else ""
    figures.append(_file_figure(Path(f"{base}_stat-z_desc-thresholdedOrtho_statmap.png"),
                                f"Thresholded z map, orthogonal view{where}"))
    parts.append("\n".join(figures))
    if settings is not None and settings.get("NoSurvivingVoxels"):
        line = describe_no_survivors(settings, _removed_by_extent(base, settings))
        parts.append(f'<p class="note no-survivors">Result: {_e(line)}.</p>')
    else:
        parts.append(_cluster_table(table, _contrast_id(prefix, contrast)))
    parts.append("</section>")
    return "\n".join(parts)


def _height_control(settings: dict) -> str:
    """How the height threshold was chosen, e.g. ``"FDR q < 0.05"`` or ``"fixed threshold"``."""
    control = str(settings.get("HeightControl", "none")).lower()
    how = HEIGHT_CONTROL_LABELS.get(control, f"{control} {{alpha:g}}")
    alpha = settings.get("Alpha")
    return how.format(alpha=alpha) if alpha is not None else how.split(" {")[0]


def _removed_by_extent(base: Path, settings: dict) -> bool:
    """Whether some voxel of the z map ``<base>_stat-z_statmap.nii.gz`` passes the finite
    height threshold, so that the cluster extent removed every voxel (assumed when the
    map is missing)."""
    threshold = settings.get("Threshold")
    if threshold is None or not np.isfinite(threshold) or not settings.get("ClusterThreshold"):
        return False
    z_map = Path(f"{base}_stat-z_statmap.nii.gz")
    if not z_map.exists():
        return True
    z = np.nan_to_num(np.asanyarray(nb.load(z_map).dataobj, dtype=np.float64))
    return bool(((np.abs(z) if settings.get("TwoSided") else z) >= threshold).any())


def _cluster_table(table, contrast_id: str) -> str:
    if table is None:
        return '<p class="note">Cluster table not found.</p>'
    if not table:
        return '<p class="note clusters-empty">No cluster survives the threshold.</p>'
    columns = list(table[0])
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    rows = []
    for record in table:
        peak = record.get("Cluster ID", "")
        subpeak = bool(peak) and not peak.isdigit()
        cells = "".join(_cluster_cell(column, record.get(column, "")) for column in columns)
        css = ' class="subpeak"' if subpeak else ""
        rows.append(f"<tr{css}>{cells}</tr>")
    return (f'<table class="clusters" id="clusters-{_e(contrast_id)}">'
            "<caption>Clusters of the thresholded map: peak coordinates in mm (world space), "
            "peak z value, sub-peaks as 1a, 1b&hellip;</caption>"
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")


def _cluster_cell(column: str, value: str) -> str:
    text = value
    try:
        number = float(value)
    except ValueError:
        number = None
    if number is not None and column != "Cluster ID":
        text = f"{number:.2f}" if column == "Peak Stat" else _number(number)
        return f'<td class="num">{_e(text)}</td>'
    return f"<td>{_e(text)}</td>"


def _provenance_section(record: dict, subject: str) -> str:
    parts = ['<section id="provenance"><h2>Provenance</h2>']
    if "Error" in record:
        parts.append(f'<p class="note">{_e(str(record["Error"]))}</p></section>')
        return "\n".join(parts)
    generated = record.get("GeneratedBy") or {}
    facts = [("Software", " ".join(str(generated[k]) for k in ("Name", "Version")
                                   if generated.get(k)))]
    facts += [("Date", generated.get("Date")), ("Command line", generated.get("CommandLine"))]
    if generated.get("WallTimeSeconds") is not None:
        facts.append(("Wall time", f"{_number(generated['WallTimeSeconds'], 1)} s"))
    parts.append(_key_value_table([(k, v) for k, v in facts if v], "generated-by",
                                  code={"Command line"}))
    if record.get("Parameters"):
        parts.append("<h3>Parameters</h3>")
        parts.append(_key_value_table(sorted(record["Parameters"].items()), "parameters"))
    if record.get("SoftwareVersions"):
        parts.append("<h3>Software versions</h3>")
        parts.append(_key_value_table(sorted(record["SoftwareVersions"].items()), "software"))

    inputs = [i for i in record.get("Inputs") or []
              if isinstance(i, dict) and str(i.get("subject", subject)) == subject]
    if inputs:
        rows = []
        for item in inputs:
            digest = str(item.get("sha256") or "")
            short = f"{digest[:12]}…" if len(digest) > 12 else digest
            rows.append(f"<tr><td>{_e(str(item.get('role', '')))}</td>"
                        f"<td><code>{_e(str(item.get('path', '')))}</code></td>"
                        f'<td><code title="{_e(digest)}">{_e(short)}</code></td></tr>')
        opened = " open" if len(inputs) <= 10 else ""
        parts.append(f"<h3>Inputs</h3><details{opened}><summary>{len(inputs)} file(s), "
                     "SHA-256 shortened to 12 digits</summary>"
                     '<table class="inputs"><thead><tr><th>Role</th><th>Path</th>'
                     f"<th>SHA-256</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
                     "</details>")

    nodes = [n for n in record.get("Nodes") or []
             if isinstance(n, dict) and str(n.get("subject", subject)) == subject]
    if nodes:
        rows, total = [], 0.0
        for node in nodes:
            seconds = node.get("seconds")
            total += float(seconds or 0)
            rows.append(f"<tr><td><code>{_e(str(node.get('name', '')))}</code></td>"
                        f"<td>{_e(str(node.get('status', '')))}</td>"
                        f'<td class="num">{_e(_number(seconds, 2) if seconds is not None else "")}'
                        "</td></tr>")
        rows.append(f'<tr><th colspan="2">Total</th><td class="num">{total:.2f}</td></tr>')
        parts.append('<h3>Workflow steps</h3><table class="steps"><thead><tr><th>Node</th>'
                     f"<th>Status</th><th>Seconds</th></tr></thead><tbody>{''.join(rows)}"
                     "</tbody></table>")
    parts.append("</section>")
    return "\n".join(parts)


# --- figures -----------------------------------------------------------------------------

def _figure(png: bytes | None, caption: str) -> str:
    if png is None:
        return f'<p class="note">{_e(caption)}</p>'
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{_e(caption)}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _file_figure(path: Path, caption: str) -> str:
    if not path.exists():
        return f'<p class="missing">Figure not found: {_e(path.name)}</p>'
    return _figure(path.read_bytes(), caption)


# --- helpers -----------------------------------------------------------------------------

def _page(title: str, body) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            '<meta name="generator" content="glm-workflows ' + _e(__version__) + '">\n'
            f"<title>{_e(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            + "\n".join(body)
            + f"\n<footer>Written by glm-workflows {_e(__version__)} from the files of this "
              "derivatives folder.</footer>\n</body>\n</html>\n")


def _write_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to a temporary file beside ``path``, then rename it into place."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _subject_label(subject) -> str:
    subject = str(subject)
    return check_label(subject[4:] if subject.startswith("sub-") else subject, "subject")


def _prefix_order(prefix: str):
    entities = dict(part.split("-", 1) for part in prefix.split("_"))
    run = entities.get("run")
    return (entities.get("ses", ""), entities.get("task", ""), run is not None,
            (len(run), run) if run else (0, ""))


def _contrast_id(prefix: str, contrast: str) -> str:
    return f"{prefix}_contrast-{contrast}"


def _read_json(path: Path) -> dict | None:
    """A JSON sidecar's object; None if missing, unreadable or not an object."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _read_clusters(path: Path):
    """The rows of a clusters TSV as dicts of strings; None if the file is missing."""
    if not path.exists():
        return None
    with open(path, newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream, delimiter="\t"))


def _first_peak(table):
    if not table:
        return None
    try:
        return tuple(float(table[0][axis]) for axis in ("X", "Y", "Z"))
    except (KeyError, ValueError):
        return None


def _number(value, digits: int | None = None) -> str:
    """A number without useless decimals: 85.0 -> '85', 0.00625 -> '0.00625'."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if digits is not None:
        return f"{number:.{digits}f}"
    return f"{number:g}"


def _setting_text(key: str, value) -> str:
    if value is None:
        return "none"
    if key == "HighPass" and isinstance(value, (int, float)) and value > 0:
        return f"{value:g} (period {1 / value:g} s)"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) + f" ({len(value)})"
    if isinstance(value, float):
        return f"{value:g}"
    return value if isinstance(value, str) else json.dumps(value)


def _key_value_table(pairs, css_id: str, code=()) -> str:
    rows = "".join(
        f"<tr><th>{_e(str(k))}</th><td>"
        + (f"<code>{_e(_plain(v))}</code>" if k in code else _e(_plain(v)))
        + "</td></tr>" for k, v in pairs)
    return f'<table class="settings" id="{_e(css_id)}">{rows}</table>'


def _plain(value) -> str:
    if value is None:
        return "none"
    return value if isinstance(value, str) else json.dumps(value)


def _e(text) -> str:
    return html.escape(str(text), quote=True)
