"""Subject-level workflow: the runs of one subject combined by fixed effects."""

from __future__ import annotations

from nipype.interfaces.utility import Merge
from nipype.pipeline import engine as pe

from glm_workflows.interfaces import CombineRunImages, DerivativesSink, FixedEffects

from .core.naming import contrast_stem
from .first_level import CONTRAST_MAPS, INFERENCE_TO_SINK, MODEL_OUTPUTS, sink_entities
from .inference import init_inference_wf
from .settings import DEFAULT_INFERENCE, InferenceSettings


def init_fixed_effects_wf(
    *,
    run_labels,
    contrasts,
    output_dir: str,
    subject: str,
    task: str,
    session: str | None = None,
    inference: InferenceSettings = DEFAULT_INFERENCE,
    mem_gb: float = 0.5,
    name: str = "fixed_effects_wf",
):
    """Build the workflow combining a subject's runs, contrast by contrast.

    Workflow graph: ``merge_<field>`` nodes gather each run's outputs (inputs ``in1``
    ... ``in<number of runs>``, connected by :func:`connect_runs`); combine (the
    intersection of the runs' masks, the mean of their mean images) -> model sink; then
    one branch per contrast: ffx (nilearn's ``compute_fixed_effects``) -> inference
    (threshold -> table, the sub-workflow of every level) -> contrast sink, which writes
    the subject's maps under ``sub-<subject>[_ses-<session>]_task-<task>``. A new
    contrast adds its branch and recomputes nothing else.

    Parameters
    ----------
    run_labels : list of str
        The BIDS prefixes of the runs combined (at least 2), in the order
        :func:`connect_runs` connects them; recorded in the contrast sidecars.
    contrasts : sequence of (name, stat_type, rows)
        The runs' contrasts (rows are not used here).
    output_dir, subject, task, session
        Derivatives root and BIDS entities of the subject-level outputs.
    inference : InferenceSettings
        Thresholds and tables, as at the run level.
    mem_gb : float
        Memory estimate of each node (a few maps per run).
    name : str
        Workflow name.

    Inputs
    ------
    merge_<field>.in<i>
        Run ``i``'s outputnode field (see :func:`connect_runs`).
    """
    n_runs = len(run_labels)
    if n_runs < 2:
        raise ValueError(f"init_fixed_effects_wf: needs 2 or more runs, got {run_labels}")
    workflow = pe.Workflow(name=name)
    fields = [*MODEL_OUTPUTS, *(f"{field}_{contrast}" for contrast, _, _ in contrasts
                                for field in CONTRAST_MAPS)]
    merges = {field: pe.Node(Merge(n_runs), name=f"merge_{field}",
                             run_without_submitting=True)  # list plumbing: no job of its own
              for field in fields}
    combine = pe.Node(CombineRunImages(), name="combine", mem_gb=mem_gb)
    entities = sink_entities(output_dir, subject, task, session, None)
    sources = [contrast_stem(label, "*") for label in run_labels]
    sink = pe.Node(DerivativesSink(**entities, sources=sources), name="sink", mem_gb=0.25)
    workflow.connect([
        (merges["mask_file"], combine, [("out", "mask_files")]),
        (merges["mean_file"], combine, [("out", "mean_files")]),
        (combine, sink, [("mask_file", "mask_file"), ("mean_file", "mean_file")]),
    ])
    for contrast, stat_type, _ in contrasts:
        ffx = pe.Node(FixedEffects(contrast_name=contrast, stat_type=stat_type,
                                   run_labels=list(run_labels)),
                      name=f"ffx_{contrast}", mem_gb=mem_gb)
        inference_wf = init_inference_wf(inference=inference, name=f"inference_{contrast}_wf")
        inference_wf.get_node("inputnode").inputs.title = contrast
        contrast_sink = pe.Node(DerivativesSink(**entities, sources=sources,
                                                contrast_names=contrast, stat_types=stat_type),
                                name=f"sink_{contrast}", mem_gb=0.25)
        workflow.connect([
            (merges[f"effect_{contrast}"], ffx, [("out", "effect_maps")]),
            (merges[f"variance_{contrast}"], ffx, [("out", "variance_maps")]),
            (merges["model_sidecar"], ffx, [("out", "model_sidecars")]),
            (combine, ffx, [("mask_file", "mask_file")]),
            (ffx, inference_wf, [("z", "inputnode.z_map")]),
            (combine, inference_wf, [("mask_file", "inputnode.mask_file"),
                                     ("mean_file", "inputnode.bg_file")]),
            (ffx, contrast_sink, [("effect", "effect_maps"), ("variance", "variance_maps"),
                                  ("stat", "stat_maps"), ("z", "z_maps"), ("p", "p_maps"),
                                  ("contrast_json", "contrast_jsons")]),
            (inference_wf, contrast_sink, list(INFERENCE_TO_SINK)),
        ])
    return workflow


def connect_runs(parent, run_wfs, ffx_wf) -> None:
    """Connect each run workflow's outputs to the fixed-effects workflow, in order."""
    fields = [name.removeprefix("merge_") for name in ffx_wf.list_node_names()
              if name.startswith("merge_")]
    for index, run_wf in enumerate(run_wfs, start=1):
        for field in fields:
            parent.connect(run_wf, f"outputnode.{field}", ffx_wf, f"merge_{field}.in{index}")
