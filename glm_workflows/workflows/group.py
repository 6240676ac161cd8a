"""The group level: a model over the subjects' maps of one first-level contrast, with
parametric inference (the threshold -> table sub-workflow of every level) and permutation
inference split into parallel chunks."""

from __future__ import annotations

import json

from nipype.interfaces.utility import IdentityInterface, Merge
from nipype.pipeline import engine as pe

from glm_workflows.interfaces import (
    CombinePermutations,
    CombineRunImages,
    GroupModel,
    GroupSink,
    PackSurfaceMap,
    PermutationChunk,
    SurfaceFigure,
)

from ..core.tables import tables_digest
from ..settings import DEFAULT_GROUP, DEFAULT_INFERENCE, GroupSettings, InferenceSettings
from ..spec.frozen import thaw
from .engine import Workflow
from .inference import init_inference_wf, init_surface_inference_wf
from .ports import contrast_to_sink, inference_to_sink, same_names, surface_inference_to_sink

#: The permutation outputs (CombinePermutations' traits), each a group sink input of the
#: same name.
PERMUTATION_OUTPUTS = tuple(CombinePermutations.output_spec().copyable_trait_names())

#: What the group workflow's inputnode takes, one list entry per subject.
GROUP_INPUTS = ("effect_maps", "paired_maps", "mask_files", "mean_files", "variance_maps")


def permutation_chunks(n_perm: int, n_chunks: int) -> list[tuple[int, int]]:
    """``n_perm`` permutations split into at most ``n_chunks`` ranges ``(start, stop)`` as
    even as possible (the first ones one longer)."""
    n_chunks = max(1, min(n_chunks, n_perm))
    size, extra = divmod(n_perm, n_chunks)
    bounds, start = [], 0
    for index in range(n_chunks):
        stop = start + size + (index < extra)
        bounds.append((start, stop))
        start = stop
    return bounds


def init_group_wf(*, task: str, contrast: str, subjects, output_dir: str,
                  group_contrasts, group: GroupSettings = DEFAULT_GROUP,
                  inference: InferenceSettings = DEFAULT_INFERENCE,
                  participants_file: str | None = None, n_chunks: int = 1,
                  mem_gb: float = 1.0, name: str = "group_wf", node: str | None = None,
                  map_rows=None, design_columns=None, space: str | None = None,
                  template_entities: dict | None = None, sources=None,
                  surface: bool = False, blocks=()):
    """Build the group level of one first-level contrast.

    Workflow graph: ``merge_<input>`` nodes gather the subjects' maps (inputs ``in1`` ...
    ``in<n subjects>``, see :func:`connect_subjects`); combine (the intersection of the
    subjects' masks: the group mask; the mean of their mean images: the figures'
    background); then one branch per group contrast: model (nilearn's SecondLevelModel,
    or with ``group.estimator`` 'mixed' the mixed-effects model of the effect and variance
    maps, ``merge_variance_maps``),
    in the group mask less the voxels not finite in every map; its mask is also the
    inference's and the permutations') -> inference (threshold -> table) -> sink, and,
    with permutations, ``n_chunks``
    permutation nodes (each replays the seed's sequence up to its range) -> combine
    -> sink. The sink writes ``<output_dir>/group/task-<T>_contrast-<C>[_group-<G>]_*``.

    Parameters
    ----------
    task, contrast : str
        The task and the first-level contrast (paired: the name of the difference).
    subjects : list of str
        Subject labels, in input order (the rows of the design).
    output_dir : str
        Derivatives root.
    group_contrasts : list of (name or None, expression)
        The group contrasts; name None: the group mean, which keeps the first-level
        contrast's name.
    group : GroupSettings
        Model and permutation settings.
    inference : InferenceSettings
        Parametric thresholds and tables, as at the other levels.
    participants_file : str or None
        ``participants.tsv`` (groups, covariates).
    n_chunks : int
        Permutation nodes.
    mem_gb : float
        Memory estimate of the model and permutation nodes.
    name : str
        Workflow name.
    node : str or None
        The Dataset node's label in the output names (``_node-<label>``; None: the model's
        first Dataset node, named as ever).
    sources : list of str or None
        The subjects' maps as the sidecars' ``Sources`` name them (their published paths,
        relative to ``output_dir``); None: the files the merge node gathers.
    space : str or None
        The subjects' maps' space (``_space-<S>`` in the output names; None: not known).
    template_entities : dict or None
        Their other template entities (``cohort``, ``res``, ``den`` -> label), after the
        space in the output names.
    blocks : sequence of int
        Per subject, its exchangeability block (``group.exchangeability_blocks``'s
        levels); () : every subject exchangeable.
    map_rows, design_columns : list or None
        A node grouped by nothing: its design's rows ``(subject, contrast)`` (the effect
        maps, ``merge_effect_maps`` taking one per row) and columns ``(X name, contrast
        or None for the intercept)``; each group contrast is then named by itself
        (``contrast-<G>``).
    surface : bool
        The subjects' maps are surface maps (packed, :mod:`glm_workflows.core.surfaces`):
        the sinks take their layout through the ``surface`` node (input
        ``surface.surface_layout``) and write every map per hemisphere; thresholds, cluster
        tables, clusters and TFCE of the permutations on the mesh
        (:mod:`glm_workflows.core.mesh_permutations`).
    """
    workflow = Workflow(name=name)
    n_subjects = len(subjects)
    mixed = group.estimator == "mixed"
    fields = [f for f in GROUP_INPUTS if (f != "paired_maps" or group.model == "paired")
              and (f != "variance_maps" or mixed)]
    merges = {field: pe.Node(Merge(len(map_rows) if map_rows and field == "effect_maps"
                                   else n_subjects), name=f"merge_{field}",
                             run_without_submitting=True) for field in fields}
    combine = pe.Node(CombineRunImages(), name="combine", mem_gb=mem_gb)
    workflow.connect([(merges["mask_files"], combine, [("out", "mask_files")]),
                      (merges["mean_files"], combine, [("out", "mean_files")])])
    chunks = permutation_chunks(group.permutations, n_chunks) if group.permutations else []
    layout = pe.Node(IdentityInterface(fields=["surface_layout"]), name="surface") \
        if surface else None
    for group_contrast, expression in group_contrasts:
        label = group_contrast or "mean"
        f_test = not isinstance(expression, str)
        model = pe.Node(GroupModel(subjects=list(subjects), model=group.model,
                                   covariates=[] if map_rows else list(group.covariates),
                                   demean=group.demean,
                                   intercept=group.intercept,
                                   contrast_name=group_contrast or contrast,
                                   contrast=list(expression) if f_test else expression,
                                   first_level_contrast=contrast),
                        name=f"model_{label}", mem_gb=mem_gb)
        if group.transformations:
            model.inputs.transformations = json.dumps(thaw(group.transformations))
        if map_rows:
            model.inputs.subjects = [subject for subject, _ in map_rows]
            model.inputs.map_contrasts = [contrast for _, contrast in map_rows]
            model.inputs.design_columns = json.dumps([list(c) for c in design_columns])
        if participants_file:
            model.inputs.participants_file = participants_file
            model.inputs.tables_digest = tables_digest(participants_file)
        if group.group_column:
            model.inputs.group_column = group.group_column
        sink = pe.Node(GroupSink(output_dir=output_dir, task=task,
                                 contrast=(group_contrast or "intercept") if map_rows
                                 else contrast, stat_type="F" if f_test else "t"),
                       name=f"sink_{label}", mem_gb=0.25)
        if group_contrast and not map_rows:
            sink.inputs.group_contrast = group_contrast
        if node:
            sink.inputs.node = node
        if space:
            sink.inputs.space = space
        if template_entities:
            sink.inputs.template_entities = dict(template_entities)
        if sources is not None:
            sink.inputs.sources = list(sources)
        else:
            workflow.connect(merges["effect_maps"], "out", sink, "sources")
        workflow.connect([
            (merges["effect_maps"], model, [("out", "effect_maps")]),
            (combine, model, [("mask_file", "mask_file")]),
            (model, sink, [*contrast_to_sink(),
                           *same_names(("design_file", "design_json", "design_figure"))]),
        ])
        if surface:  # thresholds and clusters on the mesh, the z map drawn on it
            figure = pe.Node(SurfaceFigure(title=group_contrast or contrast),
                             name=f"surface_figure_{label}", mem_gb=mem_gb)
            surface_wf = init_surface_inference_wf(inference=inference, space=space,
                                                   title=group_contrast or contrast,
                                                   name=f"inference_{label}_wf")
            workflow.connect([(layout, sink, [("surface_layout", "surface_layout")]),
                              (layout, figure, [("surface_layout", "layout_file")]),
                              (model, figure, [("z", "z_map")]),
                              (figure, sink, [("figure", "surface_figures")]),
                              (model, surface_wf, [("z", "inputnode.z_map"),
                                                   ("mask_file", "inputnode.mask_file")]),
                              (layout, surface_wf, [("surface_layout",
                                                     "inputnode.layout_file")]),
                              (surface_wf, sink, surface_inference_to_sink())])
        else:
            inference_wf = init_inference_wf(inference=inference, space=space,
                                             name=f"inference_{label}_wf")
            inference_wf.get_node("inputnode").inputs.title = group_contrast or contrast
            workflow.connect([
                (model, inference_wf, [("z", "inputnode.z_map"),
                                       ("mask_file", "inputnode.mask_file")]),
                (combine, inference_wf, [("mean_file", "inputnode.bg_file")]),
                (inference_wf, sink, inference_to_sink(space=space)),
            ])
        if group.model == "paired":
            workflow.connect(merges["paired_maps"], "out", model, "paired_maps")
        if mixed:
            model.inputs.estimator = "mixed"
            workflow.connect([(merges["variance_maps"], model, [("out", "variance_maps")]),
                              (model, sink, [("tau2_map", "tau2_map")])])
        if not chunks:
            continue
        settings = dict(contrast=expression, n_perm=group.permutations, seed=group.seed,
                        two_sided=inference.two_sided, tfce=group.tfce,
                        cluster_forming_p=group.cluster_forming_p)
        if blocks:  # exchangeability blocks: the draws respect them
            settings["blocks"] = list(blocks)
            if group.whole_blocks:
                settings["whole_blocks"] = True
        gather = pe.Node(Merge(len(chunks)), name=f"gather_{label}",
                         run_without_submitting=True)
        combine_perm = pe.Node(CombinePermutations(**settings),
                               name=f"permutations_{label}", mem_gb=mem_gb)
        for index, (start, stop) in enumerate(chunks, start=1):
            chunk = pe.Node(PermutationChunk(**settings, start=start, stop=stop),
                            name=f"permutation_{label}_{start}_{stop}", mem_gb=mem_gb)
            workflow.connect([
                (model, chunk, [("input_maps", "input_maps"), ("design_file", "design_file"),
                                ("mask_file", "mask_file")]),
                (chunk, gather, [("chunk_file", f"in{index}")]),
            ])
            if surface:
                workflow.connect(layout, "surface_layout", chunk, "layout_file")
        if surface:  # clusters and TFCE on the mesh
            workflow.connect(layout, "surface_layout", combine_perm, "layout_file")
        workflow.connect([
            (gather, combine_perm, [("out", "chunk_files")]),
            (model, combine_perm, [("input_maps", "input_maps"),
                                   ("design_file", "design_file"), ("mask_file", "mask_file")]),
            (combine_perm, sink, same_names(PERMUTATION_OUTPUTS)),
        ])
    return workflow


def connect_subjects(parent, sources: list[dict], group_wf) -> None:
    """Connect each subject's maps to the group workflow, in subject order.

    Parameters
    ----------
    parent : nipype Workflow
        Holds the subjects' workflows and ``group_wf``.
    sources : list of dict
        Per subject, ``group input -> (workflow, output field)``, for the fields of
        :data:`GROUP_INPUTS` the group workflow gathers (a list of them: the subject's
        maps, each subject giving as many).
    """
    for index, subject_sources in enumerate(sources, start=1):
        for field, source in subject_sources.items():
            if isinstance(source, list):  # several maps of the subject (a pooled node)
                for offset, (node, output) in enumerate(source):
                    parent.connect(node, output, group_wf,
                                   f"merge_{field}.in{(index - 1) * len(source) + offset + 1}")
                continue
            node, output = source
            parent.connect(node, output, group_wf, f"merge_{field}.in{index}")




def set_subject_inputs(group_wf, inputs: list[dict]) -> None:
    """Give the group workflow each subject's maps as files (no upstream workflow: a
    derivatives folder written earlier), in subject order.

    Parameters
    ----------
    group_wf : nipype Workflow
        From :func:`init_group_wf`.
    inputs : list of dict
        Per subject, ``group input -> file``, for the fields of :data:`GROUP_INPUTS` the
        group workflow gathers (inputs ``in<i>`` of its ``merge_<field>`` nodes; a list of
        files: the subject's maps, each subject giving as many).
    """
    for index, subject_inputs in enumerate(inputs, start=1):
        for field, path in subject_inputs.items():
            if isinstance(path, list):  # several maps of the subject (a pooled node)
                for offset, one in enumerate(path):
                    setattr(group_wf.get_node(f"merge_{field}").inputs,
                            f"in{(index - 1) * len(path) + offset + 1}", one)
                continue
            setattr(group_wf.get_node(f"merge_{field}").inputs, f"in{index}", path)


def set_subject_surface_inputs(group_wf, inputs: list[dict], mesh: str,
                               templateflow_home: str | None = None) -> None:
    """:func:`set_subject_inputs` for maps written per hemisphere (each given by its left
    file): each packed back by a ``PackSurfaceMap`` node (``pack_<field>_<i>``) of
    ``group_wf``, the first one's layout given to the sinks (``surface.surface_layout``);
    ``templateflow_home`` searched for the mesh's files."""
    home = {"templateflow_home": templateflow_home} if templateflow_home else {}
    for index, subject_inputs in enumerate(inputs, start=1):
        for field, path in subject_inputs.items():
            if isinstance(path, list):  # several maps of the subject (a pooled node)
                for offset, one in enumerate(path):
                    position = (index - 1) * len(path) + offset + 1
                    pack = pe.Node(PackSurfaceMap(in_file=one, mesh=mesh, **home),
                                   name=f"pack_{field}_{position}")
                    group_wf.connect(pack, "out_file", group_wf.get_node(f"merge_{field}"),
                                     f"in{position}")
                continue
            pack = pe.Node(PackSurfaceMap(in_file=path, mesh=mesh, **home),
                           name=f"pack_{field}_{index}")
            group_wf.connect(pack, "out_file", group_wf.get_node(f"merge_{field}"),
                             f"in{index}")
            if index == 1 and field == "mask_files":
                group_wf.connect(pack, "layout_file", group_wf.get_node("surface"),
                                 "surface_layout")
