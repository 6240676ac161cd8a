"""The group level's report page, ``group.html``: its designs and, per group contrast,
the definition, the parametric threshold and clusters, and the permutation inference.

Built, like the subject pages, from the files of the derivatives folder alone
(``group/``: design tables and sidecars, contrast, threshold and permutation sidecars,
cluster tables, figures and the -log10 FWE p maps, whose largest value is read back).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..core.derivatives import write_text_atomic
from ..core.entities import TEMPLATE_ENTITIES
from ..core.errors import InputError
from ..core.naming import GROUP_FOLDER, GROUP_REPORT, group_file, parse_subject_folder
from .describe import describe_no_survivors, describe_threshold, number, setting_text
from .markup import (
    SURFACE_CAPTIONS,
    cluster_table,
    code,
    data_table,
    escape,
    file_figure,
    file_list,
    key_value_table,
    page,
    surface_inference,
    surface_note,
    surface_z_maps,
)
from .pages import _first_peak
from .reading import (
    find_group_stems,
    map_removed_by_extent,
    parse_group_stem,
    read_json,
    read_max,
    read_tsv,
)

#: The permutation maps (keys of GROUP_OUTPUTS) and what each corrects, in display order.
FWE_MAPS = {
    "logp_max_t": "Voxel-wise (max-t)",
    "logp_max_size": "Cluster size",
    "logp_max_mass": "Cluster mass",
    "logp_max_tfce": "TFCE",
}
#: Labels of the group design sidecar's keys, in display order.
GROUP_DESIGN_LABELS = {
    "GroupModel": "Group model",
    "Columns": "Design columns",
    "GroupColumn": "Group column (participants.tsv)",
    "Covariates": "Covariates",
    "DemeanCovariates": "Covariates demeaned",
}
#: Keys of the design sidecar that tell designs apart (the rest is provenance).
_DESIGN_KEYS = (*GROUP_DESIGN_LABELS, "Subjects")


def write_group_report(output_dir) -> Path:
    """Write the HTML report of the group level, ``<output_dir>/group.html``.

    Parameters
    ----------
    output_dir : str or PathLike
        The derivatives root holding ``group/``.

    Returns
    -------
    path : pathlib.Path
        ``<output_dir>/group.html``, a self-contained page; the subjects of a design
        table link to their ``sub-<label>.html`` pages (relative links) when present.

    Raises
    ------
    InputError
        If the group folder is missing.
    """
    output_dir = Path(output_dir)
    folder = output_dir / GROUP_FOLDER
    if not folder.is_dir():
        raise InputError(f"{folder}: no group-level results found")
    stems = find_group_stems(folder)
    designs = _distinct_designs(folder, stems)
    body = ["<h1>Group level &mdash; GLM report</h1>"]
    if not stems:
        body.append('<p class="note">No group contrast saved.</p>')
    else:
        body.append(_contents(stems, len(designs)))
        body.append(_designs_section(output_dir, folder, designs))
        body += [_contrast_section(folder, stem) for stem in stems]
    title = "Group level: GLM report"
    return write_text_atomic(output_dir / GROUP_REPORT, page(title, body))


# --- sections ----------------------------------------------------------------------------

def _contents(stems, n_designs: int) -> str:
    label = "Group design" if n_designs == 1 else "Group designs"
    items = [f'<li><a href="#designs">{label}</a></li>']
    items += [f'<li><a href="#{escape(stem)}">{escape(_title(stem))}</a></li>' for stem in stems]
    return "<nav><h2>Contents</h2><ul>" + "".join(items) + "</ul></nav>"


def _title(stem: str) -> str:
    """``task-<T>[_space-<S>][_res-<R>]...[_node-<N>]_contrast-<C>[_group-<G>]`` in words (a node's
    contrast without ``group``: its group mean, or its own contrast at a node grouped by
    nothing)."""
    parts = parse_group_stem(stem)
    space = "".join(f", {entity} {parts[entity]}" for entity in TEMPLATE_ENTITIES
                    if parts[entity])
    text = f"task {parts['task']}{space}, contrast {parts['contrast']}"
    if parts["node"]:
        text = f"node {parts['node']}: {text}"
    if parts["group"]:
        return f"{text}, group contrast {parts['group']}"
    return text if parts["node"] else f"{text} (group mean)"


def _distinct_designs(folder: Path, stems) -> list[tuple[str, dict]]:
    """The designs of the group contrasts, those with the same table and settings once:
    ``(first stem, {"stems": [...], "design": sidecar or None})``."""
    groups: dict[str, dict] = {}
    for stem in stems:
        design = read_json(folder / group_file(stem, "design_json"))
        table_path = folder / group_file(stem, "design_file")
        table = table_path.read_text(encoding="utf-8") if table_path.exists() else None
        settings = {k: design[k] for k in _DESIGN_KEYS if k in design} if design else None
        key = json.dumps([settings, table], sort_keys=True)
        groups.setdefault(key, {"stems": [], "design": design})["stems"].append(stem)
    return [(entry["stems"][0], entry) for entry in groups.values()]


def _designs_section(output_dir: Path, folder: Path, designs) -> str:
    parts = ['<section id="designs">',
             f"<h2>{'Group design' if len(designs) == 1 else 'Group designs'}</h2>"]
    pages = (path.name for path in output_dir.glob("sub-*.html"))
    links = {parse_subject_folder(name[:-len(".html")]): name for name in pages}
    links.pop(None, None)  # a page name that is no subject's
    for index, (stem, entry) in enumerate(designs, start=1):
        parts.append(f'<section class="design" id="design-{index}">')
        if len(designs) > 1:
            parts.append(f"<h3>Design {index}</h3>")
        names = ", ".join(_title(s) for s in entry["stems"])
        parts.append(f"<p>Used by: {escape(names)}.</p>")
        design = entry["design"]
        if design is None:
            parts.append('<p class="note">Design sidecar not found.</p>')
        else:
            subjects = [str(s) for s in design.get("Subjects") or []]
            rows = [(GROUP_DESIGN_LABELS[k], _setting(k, design[k]))
                    for k in GROUP_DESIGN_LABELS if k in design]
            rows.append(("Subjects", f"{len(subjects)}: {', '.join(subjects)}"))
            parts.append(key_value_table(rows, f"design-settings-{index}"))
        table = read_tsv(folder / group_file(stem, "design_file"))
        parts.append(file_figure(folder / group_file(stem, "design_figure"),
                                 "Group design matrix (rows: subjects, columns: regressors)"))
        parts.append("<h4>Subjects and their design rows</h4>")
        parts.append(data_table(
            table, f"design-table-{index}",
            "The group design table: one row per subject, in the model's order"
            + (" (a subject links to its first-level report)" if links else ""), links))
        if design and design.get("Sources"):
            parts.append(f'<div class="sources">Input maps: {file_list(design["Sources"])}</div>')
        parts.append("</section>")
    parts.append("</section>")
    return "\n".join(parts)


def _contrast_section(folder: Path, stem: str) -> str:
    meta = read_json(folder / group_file(stem, "contrast_jsons")) or {}
    stat_type = str(meta.get("StatisticType", ""))
    parts = [f'<section class="contrast" id="{escape(stem)}">',
             f"<h2>{escape(_title(stem))}"
             + (f" <small>({escape(stat_type)} test)</small>" if stat_type else "") + "</h2>",
             _definition(meta)]
    z_maps = surface_z_maps(folder, group_file(stem, "z_maps"))
    if z_maps:  # surface or CIFTI maps: no 3-D grid to threshold or cut
        drawn = folder / group_file(stem, "surface_figures")
        thresholded = folder / group_file(stem, "thresholded_figures")
        parts += [file_figure(drawn, SURFACE_CAPTIONS[0]) if drawn.exists() else "",
                  file_figure(thresholded, SURFACE_CAPTIONS[1]) if thresholded.exists() else "",
                  surface_note(z_maps),
                  *surface_inference(read_json(folder / group_file(stem, "threshold_jsons")),
                                     read_tsv(folder / group_file(stem, "cluster_tables")),
                                     f"clusters-{stem}"),
                  "</section>"]
        return "\n".join(part for part in parts if part)
    parts.append("<h3>Parametric inference</h3>")
    settings = read_json(folder / group_file(stem, "threshold_jsons"))
    if settings is None:
        parts.append('<p class="note">Threshold settings not found.</p>')
    else:
        parts.append(f'<p class="threshold">Parametric threshold: '
                     f"{escape(describe_threshold(settings))}</p>")
    table = read_tsv(folder / group_file(stem, "cluster_tables"))
    parts.append(_figures(folder, stem, table))
    if settings is not None and settings.get("NoSurvivingVoxels"):
        by_extent = map_removed_by_extent(folder / group_file(stem, "z_maps"), settings)
        line = describe_no_survivors(settings, by_extent)
        parts.append(f'<p class="note no-survivors">Result: {escape(line)}.</p>')
    else:
        parts.append(cluster_table(table, f"clusters-{stem}"))
    parts.append(_permutations(folder, stem))
    parts.append("</section>")
    return "\n".join(part for part in parts if part)


def _definition(meta: dict) -> str:
    """First-level and group contrasts, model, subjects and degrees of freedom."""
    if not meta:
        return '<p class="note">Contrast sidecar not found.</p>'
    facts = []
    if meta.get("FirstLevelContrast"):
        facts.append(f"first-level contrast {code(meta['FirstLevelContrast'])}")
    if meta.get("GroupContrast"):
        facts.append(f"group contrast {code(meta['GroupContrast'])}")
    if meta.get("GroupModel"):
        facts.append(f"group model: {escape(meta['GroupModel'])}")
    subjects = [str(s) for s in meta.get("Subjects") or []]
    if subjects:
        facts.append(f'<span class="subjects">{len(subjects)} subjects '
                     f"({escape(', '.join(subjects))})</span>")
    if meta.get("DegreesOfFreedom") is not None:
        facts.append(f"degrees of freedom: {escape(number(meta['DegreesOfFreedom']))}")
    if not facts:
        return ""
    text = ", ".join(facts)
    return f'<p class="definition">Definition: {text}.</p>'


def _figures(folder: Path, stem: str, table) -> str:
    peak = _first_peak(table)
    where = f" at the peak ({', '.join(number(v) for v in peak)})" if peak else ""
    figures = [("thresholded_figures",
                "Thresholded z map over the subjects' mean image (axial cuts)"),
               ("ortho_figures", f"Thresholded z map, orthogonal view{where}")]
    return "\n".join(file_figure(folder / group_file(stem, output), caption)
                     for output, caption in figures)


def _permutations(folder: Path, stem: str) -> str:
    """The permutation inference: settings, the FWE maps present with the smallest FWE
    p of each, and the null distribution; empty without permutations."""
    settings = read_json(folder / group_file(stem, "permutation_json"))
    present = [output for output in FWE_MAPS if (folder / group_file(stem, output)).exists()]
    if settings is None and not present:
        return ""
    parts = [f'<section class="permutations" id="permutations-{escape(stem)}">',
             "<h3>Permutation inference</h3>"]
    if settings is None:
        parts.append('<p class="note">Permutation settings not found.</p>')
    else:
        parts.append(key_value_table(_permutation_settings(settings),
                                     f"permutation-settings-{stem}"))
    rows = []
    for output in present:
        name = group_file(stem, output)
        largest = read_max(folder / name)
        best = "unreadable" if largest is None else f"{10 ** -largest:.4g}"
        rows.append(f"<tr><td>{escape(FWE_MAPS[output])}</td><td>{code(name)}</td>"
                    f'<td class="num">{escape(best)}</td></tr>')
    if rows:
        parts.append(
            f'<table class="fwe" id="fwe-{escape(stem)}"><caption>FWE-corrected maps '
            "(-log10 p) and the smallest FWE-corrected p of each</caption><thead><tr>"
            "<th>Correction</th><th>Map</th><th>Smallest FWE p</th></tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table>")
    else:
        parts.append('<p class="note">No FWE-corrected map found.</p>')
    parts.append(file_figure(folder / group_file(stem, "null_figure"),
                             "Null distribution of the maximum statistic over permutations"))
    parts.append("</section>")
    return "\n".join(parts)


def _permutation_settings(settings: dict) -> list[tuple[str, str]]:
    rows = []
    if "Permutations" in settings:
        rows.append(("Permutations", number(settings["Permutations"])))
    if "Seed" in settings:
        rows.append(("Seed", number(settings["Seed"])))
    chunks = settings.get("Chunks")
    if isinstance(chunks, list):
        ranges = ", ".join(f"{c[0]}–{c[1]}" for c in chunks
                           if isinstance(c, list) and len(c) == 2)
        rows.append(("Chunks", f"{len(chunks)}" + (f" (permutations {ranges})" if ranges else "")))
    labels = (("TwoSided", "Two-sided"), ("ClusterFormingP", "Cluster-forming p"),
              ("TFCE", "TFCE"),
              ("MaxStatisticThreshold5Percent", "Max-statistic threshold (5% FWE)"),
              ("Method", "Method"))
    for key, label in labels:
        if key in settings:
            value = settings[key]
            rows.append((label, number(value, 3) if key == "MaxStatisticThreshold5Percent"
                         and isinstance(value, (int, float)) else _setting(key, value)))
    return rows


def _setting(key: str, value) -> str:
    """A sidecar value as text: yes/no, none for an empty list, else as the designs'."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return number(value)
    if value == []:
        return "none"
    return setting_text(key, value)

