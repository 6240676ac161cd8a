"""BIDS-Derivatives names of every output, built and parsed in one place.

A model's own outputs are ``<folder>/<prefix>_<suffix>`` and its contrasts'
``<folder>/<prefix>_contrast-<name>_<suffix>``, with ``<folder>`` = ``sub-<label>/ses-<label>``
when the prefix has a session (a run's, a session's fixed effects), else ``sub-<label>``
(a subject's fixed effects over sessions; :func:`output_folder`), and ``<prefix>`` =
``sub-<label>[_ses-<label>]_task-<label>[_acq-<label>]...[_run-<index>][_echo-<index>]``
``[_space-<label>][_res-<label>][_den-<label>]``
(:func:`~glm_workflows.core.entities.bids_prefix`: the run's BIDS entities and its image's
template entities, in the BIDS schema's order) and the suffixes of :data:`MODEL_OUTPUTS`
and :data:`CONTRAST_OUTPUTS` (checked against the schema: tests/test_bids_names.py). The
folder's root holds each subject's report page (:func:`report_page`), :data:`INDEX_FILE`,
:data:`PROVENANCE_FILE` and :data:`DESCRIPTION_FILE`. Surface outputs: one file per
hemisphere (:mod:`glm_workflows.core.surface_names`).

An *analysis* (one task, in one template, under one model) and its records are named in
:mod:`glm_workflows.core.analyses`.

The sink builds these names, the report, the command-line summary and the output
folder read them back, all through this module: plain strings, no Nipype, no file
access.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from .entities import _LABEL, _PREFIX, _TEMPLATE, check_label, template_part
from .surface_names import cifti_volume_name, volume_name

#: The statistics a contrast's ``{stat}`` suffix field takes.
STAT_TYPES = ("t", "F")


#: The maps of a contrast, at every level: the output traits of the interfaces that
#: estimate one (``EstimateContrast``, ``FixedEffects``, ``GroupModel``, through
#: ``interfaces._ports.ContrastMapsOutputSpec``), each written by the sink's input
#: ``<map>_maps`` (:func:`map_output`) as ``stat-<map>_statmap.nii.gz`` (``stat``:
#: ``stat-{stat}``, the contrast's statistic).
CONTRAST_MAPS = ("effect", "variance", "stat", "z", "p")


def map_output(contrast_map: str) -> str:
    """``<map>_maps``: the sink input (a key of :data:`CONTRAST_OUTPUTS`) of a contrast map
    (one of :data:`CONTRAST_MAPS`)."""
    return f"{contrast_map}_maps"


#: Per-contrast outputs (the sink's inputs) and the name suffix each is written under;
#: ``{stat}`` is the contrast's statistic, ``t`` or ``F``.
CONTRAST_OUTPUTS = {
    **{map_output(name): f"stat-{'{stat}' if name == 'stat' else name}_statmap.nii.gz"
       for name in CONTRAST_MAPS},
    "thresholded_maps": "stat-z_desc-thresholded_statmap.nii.gz",
    "threshold_jsons": "stat-z_desc-thresholded_statmap.json",
    "thresholded_figures": "stat-z_desc-thresholded_statmap.png",
    "ortho_figures": "stat-z_desc-thresholdedOrtho_statmap.png",
    "cluster_tables": "clusters.tsv",
    # the table's sidecar: its columns, the atlas of its peaks' regions (or why none);
    # only when the maps' space is known
    "cluster_jsons": "clusters.json",
    "contrast_figures": "design.png",  # nilearn's contrast-<name>_design
    "surface_figures": "stat-z_desc-surface_statmap.png",  # surface maps: z on the mesh
    "contrast_jsons": "statmap.json",
}


#: Per-model outputs (the sink's inputs) and their name suffix.
MODEL_OUTPUTS = {
    "mean_file": "desc-mean_bold.nii.gz",
    "mask_file": "desc-brain_mask.nii.gz",
    "design_file": "design.tsv",
    "design_figure": "design.png",
    "design_json": "design.json",
    "correlation_figure": "desc-correlation_design.png",
    "fd_figure": "desc-framewiseDisplacement_timeseries.png",
    # a run's fit diagnostics (FitGLM save_diagnostics; core.diagnostics): nilearn's names for the
    # R² and residuals (save_glm_to_bids), the model's sidecar (nilearn's statmap.json)
    "rsquared_map": "stat-rsquared_statmap.nii.gz",
    "autocorrelation_map": "stat-autocorrelation_desc-whitenedResiduals_statmap.nii.gz",
    "ljungbox_map": "stat-ljungbox_desc-whitenedResiduals_statmap.nii.gz",
    "ljungbox_p_map": "stat-p_desc-whitenedResidualsLjungBox_statmap.nii.gz",
    "model_json": "statmap.json",
    "residuals_file": "stat-errorts_statmap.nii.gz",
}


#: Staging folders: ``<prefix><host>-<pid>-<random>`` inside the output folder.
STAGING_PREFIX = ".glm-workflows-pending-"
#: The derivatives' description, at the folder's root.
DESCRIPTION_FILE = "dataset_description.json"
#: At the root, the list of the analyses' records
#: (:func:`~glm_workflows.core.analyses.analysis_record`).
PROVENANCE_FILE = "provenance.json"
#: The suffix of an analysis' record in a subject or group folder
#: (:func:`~glm_workflows.core.analyses.analysis_record`).
ANALYSIS_RECORD_SUFFIX = "_provenance.json"
#: The page linking the subjects' reports, at the folder's root.
INDEX_FILE = "index.html"
#: The group level's report page, at the folder's root (beside :data:`GROUP_FOLDER`).
GROUP_REPORT = "group.html"


#: The group level's folder, at the root: ``group/<stem>_<suffix>``, ``<stem>`` =
#: ``task-<T>_contrast-<C>`` for the group mean of first-level contrast ``C`` (one-sample,
#: paired), ``task-<T>_contrast-<C>+<G>`` for another group contrast ``G`` (BIDS labels
#: join with ``+``; 0.1 wrote ``_group-<G>``); ``_node-<N>`` (:func:`group_stem`).
GROUP_FOLDER = "group"


#: Per group contrast, its outputs and their name suffixes: the contrast outputs of the
#: other levels (effect, variance, t, z, p, thresholded map and figures, cluster table,
#: sidecar) and the permutation maps (-log10 FWE-corrected p).
GROUP_OUTPUTS = {
    **{output: suffix for output, suffix in CONTRAST_OUTPUTS.items()
       if output != "contrast_figures"},
    "design_file": "design.tsv",
    "design_json": "design.json",
    "design_figure": "design.png",
    "logp_max_t": "stat-logp_desc-voxelFWE_statmap.nii.gz",
    "logp_max_size": "stat-logp_desc-clusterSizeFWE_statmap.nii.gz",
    "logp_max_mass": "stat-logp_desc-clusterMassFWE_statmap.nii.gz",
    "logp_max_tfce": "stat-logp_desc-tfceFWE_statmap.nii.gz",
    "null_figure": "stat-maxT_desc-null_statmap.png",
    "permutation_json": "desc-permutations_statmap.json",
    "tau2_map": "stat-tau2_statmap.nii.gz",  # mixed effects: between-subject variance
}


_CONTRAST_SUFFIXES = {suffix.format(stat=stat): output
                      for output, suffix in CONTRAST_OUTPUTS.items() for stat in STAT_TYPES}


_MODEL_SUFFIXES = {suffix: output for output, suffix in MODEL_OUTPUTS.items()}


def _one_of(strings) -> str:
    """A regular expression matching any of ``strings`` literally."""
    return "|".join(re.escape(s) for s in strings)


_OUTPUT_NAME = re.compile(
    rf"(?P<prefix>{_PREFIX})(?:_contrast-(?P<contrast>{_LABEL})"
    rf"_(?P<contrast_suffix>{_one_of(_CONTRAST_SUFFIXES)})"
    rf"|_(?P<model_suffix>{_one_of(_MODEL_SUFFIXES)}))")


_SUBJECT_FOLDER = re.compile(rf"sub-({_LABEL})")


_SESSION_FOLDER = re.compile(rf"ses-({_LABEL})")


_NAME_FOLDER = re.compile(rf"(sub-{_LABEL})(?:_(ses-{_LABEL}))?(?=_|$)")


class OutputName(NamedTuple):
    """An output file name taken apart (see :func:`parse_output_name`).

    Attributes
    ----------
    prefix : str
        The model's prefix (:func:`bids_prefix`), e.g.
        ``sub-<label>[_ses-<label>]_task-<label>[_acq-<label>][_run-<index>]``.
    output : str
        Its key in :data:`MODEL_OUTPUTS` or :data:`CONTRAST_OUTPUTS`.
    contrast : str or None
        The contrast name, for a contrast's output.
    """

    prefix: str
    output: str
    contrast: str | None = None


def subject_folder(subject: str) -> str:
    """``sub-<label>``: a subject's folder (and its entity in a prefix)."""
    return f"sub-{check_label(subject, 'subject')}"


def output_folder(name: str, subject: str | None = None) -> str:
    """The folder of an output file or prefix, from the root, as BIDS-Derivatives place
    them: ``sub-<s>/ses-<t>`` for ``sub-<s>_ses-<t>_...`` (a run's, a session's fixed
    effects), else ``sub-<s>`` (a subject's fixed effects over sessions); a name without
    ``sub-<label>`` goes to ``subject``'s folder (ValueError without ``subject``)."""
    match = _NAME_FOLDER.match(name)
    if match is None:
        if subject is None:
            raise ValueError(f"not a subject's output name: {name!r}")
        return subject_folder(subject)
    return "/".join(part for part in match.groups() if part)


def output_path(name: str, subject: str | None = None) -> str:
    """``<folder>/<name>``: an output file's path from the root (:func:`output_folder`)."""
    return f"{output_folder(name, subject)}/{name}"


def report_page(subject: str) -> str:
    """``sub-<label>.html``: a subject's report, at the folder's root."""
    return f"{subject_folder(subject)}.html"


def model_file(prefix: str, output: str) -> str:
    """``<prefix>_<suffix>`` of a model's output (a key of :data:`MODEL_OUTPUTS`)."""
    return f"{prefix}_{MODEL_OUTPUTS[output]}"


def contrast_file(prefix: str, contrast: str, output: str, stat_type: str | None = None) -> str:
    """``<prefix>_contrast-<contrast>_<suffix>`` of a contrast's output.

    Parameters
    ----------
    prefix : str
        The model's BIDS prefix (:func:`bids_prefix`).
    contrast : str
        The contrast name.
    output : str
        A key of :data:`CONTRAST_OUTPUTS`.
    stat_type : {'t', 'F'} or None
        The contrast's statistic; needed only for ``stat_maps``.

    Returns
    -------
    name : str
        The file name (no folder).
    """
    suffix = CONTRAST_OUTPUTS[output]
    if "{stat}" in suffix and stat_type not in STAT_TYPES:
        raise ValueError(f"{output}: stat_type must be one of {STAT_TYPES}, got {stat_type!r}")
    return f"{contrast_stem(prefix, contrast)}_{suffix.format(stat=stat_type)}"


def group_stem(task: str, contrast: str, group_contrast: str | None = None,
               node: str | None = None, space: str | None = None,
               **template: str | None) -> str:
    """``task-<T>[_space-<S>][_cohort-<C>][_res-<R>][_den-<D>][_node-<N>]_contrast-<C>[+<G>]``:
    how a group contrast's outputs are named (``group_contrast`` None: the group mean of
    first-level contrast ``C``; ``node``: the label of a Dataset node other than the model's
    first, None for the first; ``space`` and ``template`` (``cohort``, ``res``, ``den``):
    the subjects' maps' template entities, None when not known)."""
    stem = f"task-{check_label(task, 'task')}{template_part(space=space, **template)}"
    stem += f"_node-{check_label(node, 'node')}" if node else ""
    stem += f"_contrast-{check_label(contrast, 'contrast')}"
    if group_contrast:
        stem += f"+{check_label(group_contrast, 'group contrast')}"
    return stem


_GROUP_STEM = re.compile(rf"task-(?P<task>{_LABEL}){_TEMPLATE}"
                         rf"(?:_node-(?P<node>{_LABEL}))?_contrast-(?P<contrast>{_LABEL})"
                         rf"(?:(?:\+|_group-)(?P<group>{_LABEL}))?")


def parse_group_name(name: str) -> dict | None:
    """:func:`parse_group_stem`'s parts of a group output's file name (a hemisphere's GIFTI
    or a CIFTI file's too: ``hemi-`` before ``space-``); None for another name."""
    name = as_volume_name(name)
    match = _GROUP_STEM.match(name)
    return match.groupdict() if match and name[match.end():][:1] in ("", "_") else None


def as_volume_name(name: str) -> str:
    """A surface output's name (one hemisphere's GIFTI, a CIFTI file) as the volume
    output's it stands for; any other name as it is."""
    volume = volume_name(name)
    return cifti_volume_name(name) or (volume[0] if volume else name)


def parse_group_stem(stem: str) -> dict | None:
    """``task``, ``space``, ``cohort``, ``res``, ``den``, ``node``, ``contrast``, ``group``
    (None if absent) of a group
    stem (:func:`group_stem`, or 0.1's ``_group-<G>``); None for another name."""
    match = _GROUP_STEM.fullmatch(stem)
    return match.groupdict() if match else None


def group_file(stem: str, output: str, stat_type: str = "t") -> str:
    """``<stem>_<suffix>`` of a group output (a key of :data:`GROUP_OUTPUTS`)."""
    return f"{stem}_{GROUP_OUTPUTS[output].format(stat=stat_type)}"


def contrast_stem(prefix: str, contrast: str) -> str:
    """``<prefix>_contrast-<contrast>``: how every output name of a contrast starts."""
    return f"{prefix}_contrast-{contrast}"


def parse_output_name(name: str) -> OutputName | None:
    """Take an output file name apart; None if it is not one this package writes.

    Parameters
    ----------
    name : str
        A file name (no folder), e.g.
        ``sub-01_task-auditory_contrast-activeMinusRest_clusters.tsv``.

    Returns
    -------
    parsed : OutputName or None
        E.g. ``OutputName("sub-01_task-auditory", "cluster_tables", "activeMinusRest")``.
    """
    match = _OUTPUT_NAME.fullmatch(name)
    if match is None:
        return None
    if match["contrast"] is None:
        return OutputName(match["prefix"], _MODEL_SUFFIXES[match["model_suffix"]])
    return OutputName(match["prefix"], _CONTRAST_SUFFIXES[match["contrast_suffix"]],
                      match["contrast"])


def parse_subject_folder(name: str) -> str | None:
    """The label of a subject folder's name ``sub-<label>``; None for any other name."""
    match = _SUBJECT_FOLDER.fullmatch(name)
    return match[1] if match else None


def parse_session_folder(name: str) -> str | None:
    """The label of a session folder's name ``ses-<label>`` (inside a subject's folder);
    None for any other name."""
    match = _SESSION_FOLDER.fullmatch(name)
    return match[1] if match else None


def contrast_names(file_names, prefix: str, output: str = "contrast_jsons") -> list[str]:
    """Names of the contrasts of ``prefix`` that have an ``output`` among ``file_names``.

    Parameters
    ----------
    file_names : iterable of str
        File names (no folder), e.g. a subject folder's listing.
    prefix : str
        The model's BIDS prefix.
    output : str
        A key of :data:`CONTRAST_OUTPUTS` (default: the contrast's sidecar).

    Returns
    -------
    names : list of str
        Sorted.
    """
    parsed = (parse_output_name(name) for name in file_names)
    return sorted(p.contrast for p in parsed
                  if p is not None and p.prefix == prefix and p.output == output)
