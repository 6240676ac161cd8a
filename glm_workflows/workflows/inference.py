"""The inference sub-workflow of one contrast's z map, used by every level."""

from __future__ import annotations

from nipype.interfaces.utility import IdentityInterface
from nipype.pipeline import engine as pe

from glm_workflows.interfaces import (
    ClusterTable,
    SurfaceClusterTable,
    SurfaceFigure,
    SurfaceThreshold,
    ThresholdMap,
)

from ..settings import DEFAULT_INFERENCE, InferenceSettings
from .engine import Workflow
from .ports import INFERENCE_OUTPUTS, SURFACE_INFERENCE_OUTPUTS


def init_inference_wf(*, inference: InferenceSettings = DEFAULT_INFERENCE,
                      mem_gb: float = 0.5, space: str | None = None,
                      name: str = "inference_wf"):
    """Build the inference of one z map: threshold (with its figures) -> cluster table.

    Workflow graph: inputnode -> threshold (height and cluster extent; axial and
    orthogonal figures over the mean image) -> table (the clusters of the thresholded
    map) -> outputnode. One such workflow per contrast at every level (run, subject),
    so a new contrast adds a branch and recomputes nothing else.

    Parameters
    ----------
    inference : InferenceSettings
        Thresholds and table settings.
    mem_gb : float
        Memory estimate of each node.
    space : str or None
        The map's space (fMRIPrep's ``space-``), when known: the table node's ``space``
        (AAL3 regions of the peaks in an adult MNI152 template, and the table's sidecar
        ``table_json``). None (raw images, file lists): the table node as without it, its
        cache kept, and no sidecar.
    name : str
        Workflow name.

    Inputs
    ------
    z_map
        The contrast's z map.
    mask_file
        Voxels over which fdr/bonferroni correct (the model's mask).
    bg_file
        Background of the figures (the mean image).
    title
        Figure title (the contrast's name).

    Outputs
    -------
    thresholded_map, threshold_json, figure, ortho_figure
        The thresholded z map, its sidecar, its axial and orthogonal figures.
    table
        The cluster table (TSV).
    table_json
        The table's sidecar (JSON), connected only with a ``space``: connect the sink with
        ``inference_to_sink(space=space)``.
    """
    workflow = Workflow(name=name)
    inputnode = pe.Node(IdentityInterface(fields=["z_map", "mask_file", "bg_file", "title"]),
                        name="inputnode")
    outputnode = pe.Node(IdentityInterface(fields=list(INFERENCE_OUTPUTS)), name="outputnode")
    threshold = pe.Node(ThresholdMap(**inference.threshold_inputs()), name="threshold",
                        mem_gb=mem_gb)
    table = pe.Node(ClusterTable(**inference.table_inputs()), name="table", mem_gb=mem_gb)
    if space:  # undefined otherwise: the node's hash, cache and outputs as before
        table.inputs.space = space
        workflow.connect(table, "table_json", outputnode, "table_json")
    workflow.connect([
        (inputnode, threshold, [("z_map", "z_map"), ("mask_file", "mask_file"),
                                ("bg_file", "bg_file"), ("title", "title")]),
        (threshold, table, [("thresholded_map", "z_map"), ("threshold", "stat_threshold")]),
        (threshold, outputnode, [("thresholded_map", "thresholded_map"),
                                 ("threshold_json", "threshold_json"), ("figure", "figure"),
                                 ("ortho_figure", "ortho_figure")]),
        (table, outputnode, [("table", "table")]),
    ])
    return workflow


def init_surface_inference_wf(*, inference: InferenceSettings = DEFAULT_INFERENCE,
                              mem_gb: float = 0.5, space: str | None = None,
                              title: str = "", name: str = "inference_wf"):
    """Build the inference of one packed surface z map, on the mesh: threshold (height over
    the mask's vertices, cluster extent in connected vertices) -> cluster table, and the
    thresholded map drawn on the mesh.

    Parameters
    ----------
    inference : InferenceSettings
        Thresholds and table settings (as for volumes; sizes count vertices).
    mem_gb : float
        Memory estimate of each node.
    space : str or None
        The maps' space, for the table's sidecar (the layout's mesh otherwise).
    title : str
        The figure's title (the contrast's name).
    name : str
        Workflow name.

    Inputs
    ------
    z_map, mask_file, layout_file
        The packed z map, the model's mask, the layout JSON.

    Outputs
    -------
    thresholded_map, threshold_json, table, table_json, figure
        Connect the sink with ``surface_inference_to_sink()``; ``figure`` (the thresholded
        map on the mesh) is undefined when no source has the mesh.
    """
    workflow = Workflow(name=name)
    inputnode = pe.Node(IdentityInterface(fields=["z_map", "mask_file", "layout_file"]),
                        name="inputnode")
    outputnode = pe.Node(IdentityInterface(fields=list(SURFACE_INFERENCE_OUTPUTS)),
                         name="outputnode")
    threshold = pe.Node(SurfaceThreshold(**inference.threshold_inputs()), name="threshold",
                        mem_gb=mem_gb)
    table = pe.Node(SurfaceClusterTable(**inference.table_inputs()), name="table",
                    mem_gb=mem_gb)
    if space:
        table.inputs.space = space
    figure = pe.Node(SurfaceFigure(title=title), name="figure", mem_gb=mem_gb)
    workflow.connect([
        (inputnode, figure, [("layout_file", "layout_file")]),
        (threshold, figure, [("thresholded_map", "z_map"), ("threshold_json",
                                                             "threshold_json")]),
        (figure, outputnode, [("figure", "figure")]),
        (inputnode, threshold, [("z_map", "z_map"), ("mask_file", "mask_file"),
                                ("layout_file", "layout_file")]),
        (inputnode, table, [("layout_file", "layout_file")]),
        (threshold, table, [("thresholded_map", "z_map")]),
        (threshold, outputnode, [("thresholded_map", "thresholded_map"),
                                 ("threshold_json", "threshold_json")]),
        (table, outputnode, [("table", "table"), ("table_json", "table_json")]),
    ])
    return workflow
