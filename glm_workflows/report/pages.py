"""The report pages of the subjects, section by section, their results grouped by
session and space (the index: :mod:`glm_workflows.report.index`).

Each section reads what it shows through :mod:`glm_workflows.report.reading` and marks
it up with :mod:`glm_workflows.report.markup`; pages are written atomically.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..core.derivatives import write_text_atomic
from ..core.entities import subject_label
from ..core.errors import InputError
from ..core.naming import (
    contrast_file,
    contrast_stem,
    model_file,
    report_page,
    subject_folder,
)
from .describe import describe_no_survivors, describe_threshold, number, setting_text
from .markup import (
    SURFACE_CAPTIONS,
    cluster_table,
    code,
    escape,
    file_figure,
    file_list,
    file_summary,
    key_value_table,
    page,
    results_group,
    surface_inference,
    surface_note,
    surface_z_maps,
)
from .reading import (
    find_analyses,
    find_contrasts,
    find_prefixes,
    group_prefixes,
    read_clusters,
    read_contrast_json,
    read_design_shape,
    read_designs,
    read_records,
    removed_by_extent,
    result_path,
    runs_combined,
)

#: Labels of the design sidecar's keys (and of the contrasts' noise model), in display order.
DESIGN_LABELS = {
    "RepetitionTime": "Repetition time (s)",
    "NumberOfScans": "Number of scans",
    "HRFModel": "HRF model",
    "DriftModel": "Drift model",
    "HighPass": "High-pass cut-off (Hz)",
    "DriftOrder": "Polynomial drift order",
    "SliceTimeRef": "Slice-time reference (fraction of TR)",
    "RepetitionTimeSource": "Repetition time from",
    "SliceTimeRefSource": "Slice-time reference from",
    "MaskSource": "Brain mask",
    "NoiseModel": "Noise model",
    "SmoothingFWHM": "Spatial smoothing before the fit (FWHM, mm)",
    "AREstimates": "AR coefficients whitened (calibrated noise model)",
    "WhiteningCheck": "Whitening check",
    "EventsFile": "Events file",
    "ConfoundsFile": "Confounds file",
    "ConfoundsStrategy": "Confounds strategy (nilearn)",
    "ConfoundsOptions": "Confounds options",
    "ConfoundsColumnPatterns": "Confound column patterns",
    "ConfoundColumns": "Confounds used",
    "NumberOfKeptVolumes": "Volumes kept (after censoring)",
    "CensoredVolumes": "Censored volumes (0-based)",
    "Columns": "Regressors",
    "SkippedContrasts": "Contrasts skipped (a condition absent from the run)",
}
#: Design sidecar keys holding file paths, shown as file lists.
FILE_SETTINGS = ("EventsFile", "ConfoundsFile", "Sources")


def write_subject_report(output_dir, subject) -> Path:
    """Write the HTML report of one subject's first-level results.

    Parameters
    ----------
    output_dir : str or PathLike
        The derivatives root holding ``sub-<subject>/`` (with, maybe, the records of its
        analyses, ``<analysis>_provenance.json``: one provenance section each).
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
    subject = subject_label(subject)
    folder = output_dir / subject_folder(subject)
    prefixes = find_prefixes(folder, subject)
    if not prefixes:
        raise InputError(f"{folder}: no first-level results of subject {subject} found")
    records = read_records(folder)
    analyses = ", ".join(find_analyses(folder, prefixes))
    body = [f"<h1>{escape(subject_folder(subject))} &mdash; first-level GLM report</h1>",
            f'<p id="analyses">Analyses: {escape(analyses)}</p>',
            _contents(folder, prefixes, bool(records)),
            _model_section(folder, prefixes)]
    body += [results_group(key, [_prefix_section(folder, prefix, prefixes)
                                 for prefix in members])
             for key, members in group_prefixes(prefixes).items()]
    if records:
        body.append(_provenance_section(records, subject))
    title = f"{subject_folder(subject)}: first-level GLM report"
    return write_text_atomic(output_dir / report_page(subject), page(title, body))


# --- sections ----------------------------------------------------------------------------

def _contents(folder: Path, prefixes, with_provenance: bool) -> str:
    items = ['<li><a href="#model">Model settings</a></li>']
    for prefix in prefixes:
        sub = "".join(f'<li><a href="#{escape(contrast_stem(prefix, c))}">{escape(c)}</a></li>'
                      for c in find_contrasts(folder, prefix))
        items.append(f'<li><a href="#{escape(prefix)}">{escape(prefix)}</a>'
                     + (f"<ul>{sub}</ul>" if sub else "") + "</li>")
    if with_provenance:
        items.append('<li><a href="#provenance">Provenance</a></li>')
    return "<nav><h2>Contents</h2><ul>" + "".join(items) + "</ul></nav>"


def _model_section(folder: Path, prefixes) -> str:
    """The design settings, one column per distinct setting set (usually just one)."""
    designs = read_designs(folder, prefixes)
    if not designs:
        return ('<section id="model"><h2>Model settings</h2>'
                '<p class="note">No design sidecar found.</p></section>')
    groups: dict[str, list[str]] = {}
    for prefix, design in designs.items():
        groups.setdefault(json.dumps(design, sort_keys=True), []).append(prefix)
    columns = [(json.loads(key), names) for key, names in groups.items()]
    keys = [k for k in DESIGN_LABELS if any(k in d for d, _ in columns)]
    keys += sorted({k for d, _ in columns for k in d} - set(keys))
    head = "".join(f"<th>{escape(', '.join(names))}</th>" for _, names in columns)
    rows = [f"<tr><th>Setting</th>{head}</tr>"]
    for key in keys:
        cells = "".join(f"<td>{_setting_cell(key, d.get(key, ''))}</td>" for d, _ in columns)
        rows.append(f"<tr><th>{escape(DESIGN_LABELS.get(key, key))}</th>{cells}</tr>")
    return ('<section id="model"><h2>Model settings</h2>'
            f'<table class="settings">{"".join(rows)}</table></section>')


def _setting_cell(key: str, value) -> str:
    """A design setting's cell: paths as a file list, anything else as text."""
    if key in FILE_SETTINGS and isinstance(value, (str, list)) and value:
        return file_list([value] if isinstance(value, str) else value)
    return escape(setting_text(key, value))


def _prefix_section(folder: Path, prefix: str, prefixes) -> str:
    parts = [f'<section class="level" id="{escape(prefix)}"><h2>{escape(prefix)}</h2>']
    runs = runs_combined(prefix, prefixes)
    if runs:
        parts.append(f"<p>Fixed effects over runs {escape(', '.join(runs))}.</p>")
    parts.append(_design_figures(folder, prefix))
    contrasts = find_contrasts(folder, prefix)
    if not contrasts:
        parts.append('<p class="note">No contrast saved.</p>')
    parts += [_contrast_section(folder, prefix, contrast) for contrast in contrasts]
    parts.append("</section>")
    return "\n".join(parts)


def _design_figures(folder: Path, prefix: str) -> str:
    shape = read_design_shape(folder, prefix)
    if shape is None:
        return ""
    fd_figure = result_path(folder, model_file(prefix, "fd_figure"))  # with fMRIPrep confounds only
    return "\n".join([
        f"<h3>Design matrix</h3><p>{shape[0]} scans &times; {shape[1]} regressors.</p>",
        file_figure(result_path(folder, model_file(prefix, "design_figure")),
                    "Design matrix (rows: scans, columns: regressors)"),
        file_figure(result_path(folder, model_file(prefix, "correlation_figure")),
                    "Correlation between regressors (drifts and constant left out)"),
        *([file_figure(fd_figure, "Framewise displacement (fMRIPrep) with the censored "
                                  "volumes shaded")] if fd_figure.exists() else []),
    ])


def _contrast_section(folder: Path, prefix: str, contrast: str) -> str:
    meta = read_contrast_json(folder, prefix, contrast, "contrast_jsons") or {}
    stat_type = str(meta.get("StatisticType", ""))
    parts = [f'<section class="contrast" id="{escape(contrast_stem(prefix, contrast))}">',
             f"<h3>Contrast {escape(contrast)}"
             + (f" <small>({escape(stat_type)} test)</small>" if stat_type else "") + "</h3>",
             _contrast_definition(meta)]
    z_maps = surface_z_maps(folder, contrast_file(prefix, contrast, "z_maps"))
    if z_maps:  # a surface or CIFTI run: no 3-D grid to threshold or cut
        weights, drawn, thresholded = (folder / contrast_file(prefix, contrast, output) for output
                                       in ("contrast_figures", "surface_figures",
                                           "thresholded_figures"))
        parts += [file_figure(weights, "Contrast weights") if weights.exists() else "",
                  file_figure(drawn, SURFACE_CAPTIONS[0]) if drawn.exists() else "",
                  file_figure(thresholded, SURFACE_CAPTIONS[1]) if thresholded.exists() else "",
                  surface_note(z_maps),
                  *surface_inference(read_contrast_json(folder, prefix, contrast,
                                                        "threshold_jsons"),
                                     read_clusters(folder, prefix, contrast),
                                     f"clusters-{contrast_stem(prefix, contrast)}"),
                  "</section>"]
        return "\n".join(part for part in parts if part)
    settings = read_contrast_json(folder, prefix, contrast, "threshold_jsons")
    if settings is None:
        parts.append('<p class="note">Threshold settings not found.</p>')
    else:
        parts.append(f'<p class="threshold">Threshold: {escape(describe_threshold(settings))}</p>')
    table = read_clusters(folder, prefix, contrast)
    parts.append(_contrast_figures(folder, prefix, contrast, table))
    if settings is not None and settings.get("NoSurvivingVoxels"):
        line = describe_no_survivors(settings,
                                     removed_by_extent(folder, prefix, contrast, settings))
        parts.append(f'<p class="note no-survivors">Result: {escape(line)}.</p>')
    else:
        parts.append(cluster_table(table, f"clusters-{contrast_stem(prefix, contrast)}"))
    parts.append("</section>")
    return "\n".join(part for part in parts if part)


def _contrast_definition(meta: dict) -> str:
    """Rows, degrees of freedom, noise model and smoothing of a contrast, from its
    sidecar."""
    facts = []
    if meta.get("ContrastRows"):
        facts.append("Definition: " + "; ".join(code(row) for row in meta["ContrastRows"]))
    if meta.get("DegreesOfFreedom") is not None:
        facts.append(f"degrees of freedom: {escape(number(meta['DegreesOfFreedom']))}")
    if meta.get("NoiseModel"):
        facts.append(f"noise model: {escape(meta['NoiseModel'])}")
    if meta.get("SmoothingFWHM"):
        facts.append(f"smoothed (FWHM {escape(number(meta['SmoothingFWHM']))} mm)")
    return f'<p class="definition">{", ".join(facts)}.</p>' if facts else ""


def _contrast_figures(folder: Path, prefix: str, contrast: str, table) -> str:
    """Weights, axial cuts and the orthogonal view (at the first peak of ``table``)."""
    peak = _first_peak(table)
    where = f" at the peak ({', '.join(number(v) for v in peak)})" if peak else ""
    figures = [("contrast_figures", "Contrast weights"),
               ("thresholded_figures", "Thresholded z map over the mean image (axial cuts)"),
               ("ortho_figures", f"Thresholded z map, orthogonal view{where}")]
    return "\n".join(file_figure(result_path(folder, contrast_file(prefix, contrast, output)),
                                  caption)
                     for output, caption in figures)


def _provenance_section(records: dict, subject: str) -> str:
    """Each analysis' record (headed by its label when there are several)."""
    parts = ['<section id="provenance"><h2>Provenance</h2>']
    for analysis, record in records.items():
        if len(records) > 1:
            parts.append(f'<h3 class="analysis" id="provenance-{escape(analysis)}">'
                         f"Analysis {escape(analysis)}</h3>")
        parts += _record(record, subject)
    parts.append("</section>")
    return "\n".join(part for part in parts if part)


def _record(record: dict, subject: str) -> list[str]:
    """An analysis' record on the subject's page: how it was made, its parameters,
    software, the subject's inputs and steps."""
    if "Error" in record:
        return [f'<p class="note">{escape(record["Error"])}</p>']
    parts = [_generated_by(record)]
    if isinstance(record.get("StatsModel"), dict):
        model = record["StatsModel"]
        parts.append(f'<details class="stats-model"><summary>Model file (BIDS Stats Models): '
                     f'{escape(str(model.get("Name", "")))}</summary>'
                     f'<pre>{escape(json.dumps(model, indent=2))}</pre></details>')
    if record.get("Parameters"):
        parts += ["<h3>Parameters</h3>",
                  key_value_table(sorted(record["Parameters"].items()), "parameters")]
    if record.get("SoftwareVersions"):
        parts += ["<h3>Software versions</h3>",
                  key_value_table(sorted(record["SoftwareVersions"].items()), "software")]
    return [*parts, _inputs(_of_subject(record.get("Inputs"), subject)),
            _steps(_of_subject(record.get("Nodes"), subject))]


def _generated_by(record: dict) -> str:
    generated = record.get("GeneratedBy") or {}
    facts = [("Software", " ".join(str(generated[k]) for k in ("Name", "Version")
                                   if generated.get(k))),
             ("Date", generated.get("Date")), ("Command line", generated.get("CommandLine")),
             ("Working directory", generated.get("WorkingDirectory"))]
    if generated.get("WallTimeSeconds") is not None:
        facts.append(("Wall time", f"{number(generated['WallTimeSeconds'], 1)} s"))
    return key_value_table([(k, v) for k, v in facts if v], "generated-by",
                           code_keys={"Command line", "Working directory"})


def _of_subject(items, subject: str) -> list[dict]:
    """The entries of a provenance list (inputs, nodes) that belong to ``subject``."""
    return [item for item in items or []
            if isinstance(item, dict) and str(item.get("subject", subject)) == subject]


def _inputs(inputs: list[dict]) -> str:
    """Per role, the input files in a few words; every file with its checksum folded."""
    if not inputs:
        return ""
    by_role: dict[str, list[str]] = {}
    for item in inputs:
        by_role.setdefault(str(item.get("role", "")), []).append(str(item.get("path", "")))
    roles = "".join(f"<li>{escape(role)}: {file_summary(paths)}</li>"
                    for role, paths in by_role.items())
    rows = []
    for item in inputs:
        digest = str(item.get("sha256") or "")
        short = f"{digest[:12]}…" if len(digest) > 12 else digest
        rows.append(f"<tr><td>{escape(item.get('role', ''))}</td>"
                    f"<td>{code(item.get('path', ''))}</td>"
                    f'<td><code title="{escape(digest)}">{escape(short)}</code></td></tr>')
    return (f'<h3>Inputs</h3><ul class="inputs">{roles}</ul>'
            f"<details><summary>All {len(inputs)} file(s) with their SHA-256 (shortened to 12 "
            'digits)</summary><table class="inputs"><thead><tr><th>Role</th><th>Path</th>'
            f"<th>SHA-256</th></tr></thead><tbody>{''.join(rows)}</tbody></table></details>")


def _steps(nodes: list[dict]) -> str:
    """The workflow's nodes: status and seconds, and their total."""
    if not nodes:
        return ""
    rows, total = [], 0.0
    for node in nodes:
        seconds = node.get("seconds")
        total += float(seconds or 0)
        rows.append(f"<tr><td>{code(node.get('name', ''))}</td>"
                    f"<td>{escape(node.get('status', ''))}</td><td class=\"num\">"
                    f"{escape(number(seconds, 2) if seconds is not None else '')}</td></tr>")
    rows.append(f'<tr><th colspan="2">Total</th><td class="num">{total:.2f}</td></tr>')
    return ('<h3>Workflow steps</h3><table class="steps"><thead><tr><th>Node</th>'
            f"<th>Status</th><th>Seconds</th></tr></thead><tbody>{''.join(rows)}"
            "</tbody></table>")


def _first_peak(table):
    if not table:
        return None
    try:
        return tuple(float(table[0][axis]) for axis in ("X", "Y", "Z"))
    except (KeyError, TypeError, ValueError):
        return None
