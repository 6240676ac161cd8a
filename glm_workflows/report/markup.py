"""HTML building blocks of the report pages: escaping, the page frame and style sheet,
figures, tables and file lists.

Every piece of text is escaped here; figures are embedded as ``data:image/png`` URIs and
the style sheet is inline, so a page needs no script, server or network.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from .. import __version__
from ..core.surface_names import HEMISPHERES, cifti_name, surface_name
from .describe import describe_threshold, group_files, number, plain

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
summary { margin: .5em 0; cursor: pointer; }
div.sources { margin: .5em 0; }
ol.paths { margin: 0; padding-left: 2.5em; font-size: .9em; }
footer { margin-top: 3em; font-size: .8em; color: #777; }
"""

_CLUSTER_CAPTION = ("Clusters of the thresholded map: peak coordinates in mm (world space), "
                    "peak z value, sub-peaks as 1a, 1b&hellip;")


def escape(text) -> str:
    """``text`` (any value) as HTML text, quotes included."""
    return html.escape(str(text), quote=True)


def code(text) -> str:
    """``text`` escaped, in a ``<code>`` element."""
    return f"<code>{escape(text)}</code>"


def page(title: str, body) -> str:
    """A complete HTML document: ``title``, the inline style sheet, ``body`` (HTML parts)."""
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f'<meta name="generator" content="glm-workflows {escape(__version__)}">\n'
            f"<title>{escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            + "\n".join(body)
            + f"\n<footer>Written by glm-workflows {escape(__version__)} from the files of "
              "this derivatives folder.</footer>\n</body>\n</html>\n")


def figure(png: bytes, caption: str) -> str:
    """A PNG embedded as a ``data:`` URI, with its caption."""
    data = base64.b64encode(png).decode("ascii")
    return (f'<figure><img src="data:image/png;base64,{data}" alt="{escape(caption)}">'
            f"<figcaption>{escape(caption)}</figcaption></figure>")


def file_figure(path: Path, caption: str) -> str:
    """The figure of a PNG file, or a note naming the missing file."""
    if not path.exists():
        return f'<p class="missing">Figure not found: {escape(path.name)}</p>'
    return figure(path.read_bytes(), caption)


def file_summary(paths) -> str:
    """Paths in a few words: one path as it is; several as one line per folder and
    extension, e.g. ``96 files fM00223_004.img … fM00223_099.img in /data/fM00223/``."""
    paths = [str(p) for p in paths]
    if not paths:
        return "none"
    if len(paths) == 1:
        return code(paths[0])
    return "<br>".join(_group_line(group) for group in group_files(paths))


def file_list(paths) -> str:
    """:func:`file_summary`, and for several paths the full list folded below it."""
    paths = [str(p) for p in paths]
    if len(paths) < 2:
        return file_summary(paths)
    items = "".join(f"<li>{code(p)}</li>" for p in paths)
    return (f"{file_summary(paths)}<details><summary>All {len(paths)} paths</summary>"
            f'<ol class="paths">{items}</ol></details>')


def _group_line(group) -> str:
    names = group.names
    if len(names) == 1:
        shown = code(names[0])
    elif len(names) == 2:
        shown = f"2 files {code(names[0])}, {code(names[1])}"
    else:
        shown = f"{len(names)} files {code(names[0])} … {code(names[-1])}"
    return f"{shown} in {code(group.folder)}"


def key_value_table(pairs, css_id: str, code_keys=()) -> str:
    """A two-column settings table of ``(key, value)`` pairs; values of ``code_keys`` in
    ``<code>``."""
    rows = "".join(
        f"<tr><th>{escape(k)}</th><td>"
        + (code(plain(v)) if k in code_keys else escape(plain(v)))
        + "</td></tr>" for k, v in pairs)
    return f'<table class="settings" id="{escape(css_id)}">{rows}</table>'


def cluster_table(table, table_id: str) -> str:
    """A cluster table (rows of strings, as read from its TSV), sub-peaks greyed out.

    Parameters
    ----------
    table : list of dict or None
        The rows; None when the file is missing.
    table_id : str
        The ``id`` of the ``<table>``.

    Returns
    -------
    html : str
        The table, or a note when it is missing or has no row.
    """
    if table is None:
        return '<p class="note">Cluster table not found.</p>'
    if not table:
        return '<p class="note clusters-empty">No cluster survives the threshold.</p>'
    columns = list(table[0])
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    rows = []
    for record in table:
        peak = record.get("Cluster ID", "")
        css = ' class="subpeak"' if peak and not peak.isdigit() else ""
        cells = "".join(_cluster_cell(column, record.get(column, "")) for column in columns)
        rows.append(f"<tr{css}>{cells}</tr>")
    return (f'<table class="clusters" id="{escape(table_id)}"><caption>{_CLUSTER_CAPTION}'
            f"</caption><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")


def data_table(table, table_id: str, caption: str = "", links=None) -> str:
    """A table read from a TSV (rows of strings, e.g. a group design), numbers right-aligned.

    Parameters
    ----------
    table : list of dict or None
        The rows; None when the file is missing.
    table_id : str
        The ``id`` of the ``<table>``.
    caption : str
        Its caption (HTML), if any.
    links : dict of str to str, optional
        Text of a first-column cell to the page it links to (e.g. a subject to its
        report).

    Returns
    -------
    html : str
        The table, or a note when it is missing or has no row.
    """
    if table is None:
        return '<p class="note">Table not found.</p>'
    if not table:
        return '<p class="note">Empty table.</p>'
    links = links or {}
    columns = list(table[0])
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    rows = []
    for record in table:
        cells = []
        for column in columns:
            value = record.get(column) or ""
            if column == columns[0] and value in links:
                cells.append(f'<td><a href="{escape(links[value])}">{escape(value)}</a></td>')
            elif _is_number(value):
                cells.append(f'<td class="num">{escape(value)}</td>')
            else:
                cells.append(f"<td>{escape(value)}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    caption = f"<caption>{caption}</caption>" if caption else ""
    return (f'<table class="data" id="{escape(table_id)}">{caption}<thead><tr>{head}</tr>'
            f"</thead><tbody>{''.join(rows)}</tbody></table>")


def _is_number(value: str) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _cluster_cell(column: str, value: str) -> str:
    try:
        value_number = float(value)
    except (TypeError, ValueError):
        value_number = None
    if value_number is None or column == "Cluster ID":
        return f"<td>{escape(value)}</td>"
    text = f"{value_number:.2f}" if column == "Peak Stat" else number(value_number)
    return f'<td class="num">{escape(text)}</td>'


#: The captions of a surface contrast's figures: the z map and the thresholded z map on
#: the mesh (``surface_figures``, ``thresholded_figures``).
SURFACE_CAPTIONS = ("z map on the inflated mesh (unthresholded; lateral and medial views; "
                    "the midthickness or pial surface when no inflated one is found)",
                    "Thresholded z map on the mesh (lateral and medial views)")


def surface_z_maps(folder, z_map: str) -> list[str]:
    """The files a z map written under volume name ``z_map`` became in ``folder``: its
    GIFTI pair (L, R), its CIFTI map, or none (a volume)."""
    pair = [surface_name(z_map, hemi) for hemi in HEMISPHERES]
    if (Path(folder) / pair[0]).exists():
        return pair
    return [cifti_name(z_map)] if (Path(folder) / cifti_name(z_map)).exists() else []


def surface_note(z_maps) -> str:
    """The note of a surface contrast: no volume figure, and its GIFTI z maps (L, R) or
    its CIFTI z map (grayordinates: no figure, no clusters)."""
    if len(z_maps) == 1:
        return ('<p class="note">CIFTI grayordinates: no figure; height threshold only (no '
                f'clusters); z map: <code>{escape(z_maps[0])}</code>.</p>')
    return ('<p class="note">Surface maps: no volume figure; threshold and clusters on the '
            f'mesh (connected vertices); z maps: <code>{escape(z_maps[0])}</code>, '
            f'<code>{escape(z_maps[1])}</code>.</p>')


def surface_inference(settings, table, table_id: str) -> list[str]:
    """A surface contrast's threshold line and cluster table (HTML pieces).

    Parameters
    ----------
    settings : dict or None
        Its threshold sidecar (None: an output folder written before surface thresholds).
    table : list of dict or None
        Its cluster table's rows.
    table_id : str
        The ``id`` of the ``<table>``.
    """
    if settings is None:
        return []
    return [f'<p class="threshold">Threshold: {escape(describe_threshold(settings))}</p>',
            cluster_table(table, table_id)]


def results_label(session: str | None, space: str | None) -> str:
    """A session and space as a heading, ``"ses-pre · space T1w"`` ("" for neither)."""
    return " · ".join(([f"ses-{session}"] if session else [])
                      + ([f"space {space}"] if space else []))


def results_group(key, parts) -> str:
    """``parts`` (markup) under the heading of their session and space (``key``, as
    :func:`~glm_workflows.report.reading.group_prefixes`'); as they are for neither."""
    session, space = key
    label = results_label(session, space)
    if not label:
        return "\n".join(parts)
    css_id = "results-" + "_".join(([f"ses-{session}"] if session else [])
                                   + ([f"space-{space}"] if space else []))
    return (f'<section class="results" id="{escape(css_id)}">'
            f'<h2 class="results">{escape(label)}</h2>\n' + "\n".join(parts) + "\n</section>")
