"""Subject-level workflow: the runs of one subject combined by fixed effects."""

from __future__ import annotations

from nipype.interfaces.utility import IdentityInterface, Merge
from nipype.pipeline import engine as pe

from glm_workflows.interfaces import (
    CombineRunImages,
    DerivativesSink,
    FixedEffects,
    SurfaceFigure,
)

from ..core.naming import contrast_file, model_file, output_path
from ..core.surface_names import map_names
from ..settings import DEFAULT_INFERENCE, InferenceSettings
from .engine import Workflow
from .first_level import sink_entities
from .inference import init_inference_wf, init_surface_inference_wf
from .ports import (
    RUN_CONTRAST_MAPS,
    RUN_OUTPUTNODE_FIELDS,
    contrast_to_sink,
    inference_to_sink,
    run_contrast_field,
    surface_inference_to_sink,
)


def init_fixed_effects_wf(
    *,
    run_labels,
    contrasts,
    output_dir: str,
    subject: str,
    task: str,
    session: str | None = None,
    entities: dict | None = None,
    inference: InferenceSettings = DEFAULT_INFERENCE,
    contrast_runs: dict | None = None,
    mem_gb: float = 0.5,
    space: str | None = None,
    combinations: dict | None = None,
    surface: str | None = None,
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
        The runs' contrasts (the rows are recorded in the sidecars, so that the group
        level run from the output folder can check a ``--contrast NAME=EXPR``).
    output_dir, subject, task, session
        Derivatives root and BIDS entities of the subject-level outputs.
    entities : dict or None
        Their other entities (``acq``, ``ce``, ``rec``, ``dir``, ``echo`` -> label), e.g.
        from :func:`glm_workflows.workflows.study.subject_entities`.
    inference : InferenceSettings
        Thresholds and tables, as at the run level.
    contrast_runs : dict or None
        Per contrast name, the indices (into ``run_labels``) of the runs that have it
        (runs that differ: a condition absent from a run skips its contrasts there);
        default: every run. A contrast no run has gets no branch.
    mem_gb : float
        Memory estimate of each node (a few maps per run).
    space : str or None
        The runs' space, when known (the cluster tables' sidecars and AAL3 regions, as at
        the run level).
    combinations : dict or None
        A Session or Subject node's design: per node contrast, ``(incoming contrast,
        weights of the runs that have it)``; each is a branch ``ffx_<node contrast>``
        combining the incoming contrast's maps with those weights, written under the node
        contrast's name, instead of one branch per incoming contrast. None: the mean of
        each contrast.
    surface : str or None
        The runs' mesh (their layout's ``Mesh``), None for volumes: the maps are written per
        hemisphere, or as one CIFTI file for grayordinates (the sinks take the
        runs' layout through the ``surface`` node, connected by :func:`connect_runs`);
        the inference branch is the mesh's (:func:`init_surface_inference_wf`), as at the
        run level.
    name : str
        Workflow name.

    Inputs
    ------
    merge_<field>.in<i>
        Run ``i``'s outputnode field (see :func:`connect_runs`).
    surface.surface_layout
        Surface runs: the first run's layout JSON.
    """
    n_runs = len(run_labels)
    if n_runs < 2:
        raise ValueError(f"init_fixed_effects_wf: needs 2 or more runs, got {run_labels}")
    workflow = Workflow(name=name)
    plan = merge_plan(n_runs, contrasts, contrast_runs)
    merges = {field: pe.Node(Merge(len(sources)), name=f"merge_{field}",
                             run_without_submitting=True)  # list plumbing: no job of its own
              for field, sources in plan.items()}
    combine = pe.Node(CombineRunImages(), name="combine", mem_gb=mem_gb)
    entities = sink_entities(output_dir, subject, task, session, None, entities)
    # the sources: the runs' published maps (surface maps: a pair of GIFTI files each)
    sources = [output_path(model_file(label, "mask_file"), subject) for label in run_labels]
    if surface:
        sources = [written for name in sources for written in map_names(name, surface)]
    sink = pe.Node(DerivativesSink(**entities, sources=sources), name="sink", mem_gb=0.25)
    layout = pe.Node(IdentityInterface(fields=["surface_layout"]), name="surface") \
        if surface else None
    if surface:
        workflow.connect(layout, "surface_layout", sink, "surface_layout")
    workflow.connect([
        (merges["mask_file"], combine, [("out", "mask_files")]),
        (merges["mean_file"], combine, [("out", "mean_files")]),
        (combine, sink, [("mask_file", "mask_file"), ("mean_file", "mean_file")]),
    ])
    outputs = [(contrast, contrast, stat_type, rows, None)
               for contrast, stat_type, rows in contrasts] if combinations is None else [
        (contrast, incoming, "t", (), weights)
        for contrast, (incoming, weights) in combinations.items()]
    for contrast, incoming, stat_type, rows, weights in outputs:
        if f"effect_{incoming}" not in plan:
            continue
        labels = [run_labels[index] for index, _ in plan[f"effect_{incoming}"]]
        ffx = pe.Node(FixedEffects(contrast_name=contrast, stat_type=stat_type,
                                   contrast_rows=list(rows), run_labels=labels),
                      name=f"ffx_{contrast}", mem_gb=mem_gb)
        if weights is not None:
            ffx.inputs.weights = list(weights)
            ffx.inputs.combined_contrast = incoming
        workflow.connect([
            (merges[f"effect_{incoming}"], ffx, [("out", "effect_maps")]),
            (merges[f"variance_{incoming}"], ffx, [("out", "variance_maps")]),
            (merges[f"model_sidecar_{incoming}"], ffx, [("out", "model_sidecars")]),
            (combine, ffx, [("mask_file", "mask_file")]),
        ])
        contrast_sources = [output_path(contrast_file(label, incoming, m), subject)
                            for label in labels for m in ("effect_maps", "variance_maps")]
        if surface:  # thresholds and clusters on the mesh, the z map drawn on it
            contrast_sink = pe.Node(DerivativesSink(
                **entities, contrast_names=contrast, stat_types=stat_type,
                sources=[written for name in contrast_sources
                         for written in map_names(name, surface)]),
                name=f"sink_{contrast}", mem_gb=0.25)
            workflow.connect([
                (ffx, contrast_sink, contrast_to_sink()),
                (layout, contrast_sink, [("surface_layout", "surface_layout")]),
            ])
            figure = pe.Node(SurfaceFigure(title=contrast), name=f"surface_figure_{contrast}",
                             mem_gb=mem_gb)
            surface_wf = init_surface_inference_wf(inference=inference, space=space,
                                                   title=contrast,
                                                   name=f"inference_{contrast}_wf")
            workflow.connect([(ffx, figure, [("z", "z_map")]),
                              (layout, figure, [("surface_layout", "layout_file")]),
                              (figure, contrast_sink, [("figure", "surface_figures")]),
                              (ffx, surface_wf, [("z", "inputnode.z_map")]),
                              (combine, surface_wf, [("mask_file", "inputnode.mask_file")]),
                              (layout, surface_wf, [("surface_layout",
                                                     "inputnode.layout_file")]),
                              (surface_wf, contrast_sink, surface_inference_to_sink())])
            continue
        inference_wf = init_inference_wf(inference=inference, space=space,
                                         name=f"inference_{contrast}_wf")
        inference_wf.get_node("inputnode").inputs.title = contrast
        contrast_sink = pe.Node(DerivativesSink(**entities,  # the runs combined only
                                                sources=contrast_sources,
                                                contrast_names=contrast, stat_types=stat_type),
                                name=f"sink_{contrast}", mem_gb=0.25)
        workflow.connect([
            (ffx, inference_wf, [("z", "inputnode.z_map")]),
            (combine, inference_wf, [("mask_file", "inputnode.mask_file"),
                                     ("mean_file", "inputnode.bg_file")]),
            (ffx, contrast_sink, contrast_to_sink()),
            (inference_wf, contrast_sink, inference_to_sink(space=space)),
        ])
    return workflow


def merge_plan(n_runs: int, contrasts, contrast_runs: dict | None = None) -> dict:
    """What each ``merge_<field>`` node of a fixed-effects workflow gathers.

    Returns
    -------
    plan : dict
        ``merge field -> [(run index, run outputnode field), ...]``, in input order:
        the mask and mean of every run; per contrast that some run has, its effect and
        variance maps and the model sidecars of those runs only.
    """
    plan = {field: [(index, field) for index in range(n_runs)]
            for field in RUN_OUTPUTNODE_FIELDS if field != "model_sidecar"}
    for contrast, _, _ in contrasts:
        runs = range(n_runs) if contrast_runs is None else contrast_runs.get(contrast, ())
        if not runs:
            continue
        for field in (run_contrast_field(name, contrast) for name in RUN_CONTRAST_MAPS):
            plan[field] = [(index, field) for index in runs]
        plan[f"model_sidecar_{contrast}"] = [(index, "model_sidecar") for index in runs]
    return plan


def connect_runs(parent, run_wfs, ffx_wf, contrasts, contrast_runs: dict | None = None) -> None:
    """Connect the run workflows' outputs to the fixed-effects workflow built with the
    same ``contrasts`` and ``contrast_runs`` (:func:`merge_plan`). An item of ``run_wfs``
    may be a fixed-effects workflow (a session's runs combined, at a Session node): its
    maps are combined as a run's (:func:`combined_port`)."""
    for field, sources in merge_plan(len(run_wfs), contrasts, contrast_runs).items():
        for position, (index, run_field) in enumerate(sources, start=1):
            source = run_wfs[index]
            port = f"outputnode.{run_field}" if source.get_node("outputnode") is not None \
                else combined_port(field, run_field)
            parent.connect(source, port, ffx_wf, f"merge_{field}.in{position}")
    if ffx_wf.get_node("surface") is not None:  # surface runs: the first one's layout
        source = run_wfs[0]
        port = "outputnode.surface_layout" if source.get_node("outputnode") is not None \
            else "surface.surface_layout"
        parent.connect(source, port, ffx_wf, "surface.surface_layout")


def combined_port(field: str, run_field: str) -> str:
    """A fixed-effects workflow's output standing for a run's ``run_field`` in merge
    ``field``: the mask and mean of its ``combine`` node, a contrast's effect and variance
    of its ``ffx_<contrast>`` node, and that node's sidecar for the model's (its
    ``DegreesOfFreedom``, the sum of the runs', is what a run's model sidecar gives)."""
    if run_field in RUN_OUTPUTNODE_FIELDS and run_field != "model_sidecar":
        return f"combine.{run_field}"
    if run_field == "model_sidecar":
        return f"ffx_{field.removeprefix('model_sidecar_')}.contrast_json"
    for name in RUN_CONTRAST_MAPS:
        if run_field.startswith(f"{name}_"):
            return f"ffx_{run_field.removeprefix(name + '_')}.{name}"
    raise ValueError(f"combined_port: no output for {run_field!r}")
