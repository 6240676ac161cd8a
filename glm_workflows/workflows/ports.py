"""Which output feeds which input: the workflows' wiring lists, derived once from the
output names of :mod:`glm_workflows.core.naming`.

Every list is built afresh by its function (Nipype's ``connect`` edits the lists it is
given). The node fields named here are the interfaces' trait names, which are their cache
keys: they do not change.
"""

from __future__ import annotations

from ..core.naming import CONTRAST_MAPS, map_output

#: What a run workflow's outputnode gives for the model as a whole (for a fixed-effects
#: combination); besides, per contrast, the fields of :func:`run_contrast_fields`.
RUN_OUTPUTNODE_FIELDS = ("model_sidecar", "mask_file", "mean_file")

#: The fit's persisted files (FitGLM's outputs), which a contrast reads.
FIT_FILES = ("betas", "dispersion", "ar1", "mask_file", "model_sidecar")

#: The fit's diagnostics (FitGLM's outputs with ``save_diagnostics``) and the sink input (a
#: key of ``MODEL_OUTPUTS``) each fills.
DIAGNOSTICS_SINK_INPUTS = {"rsquared_map": "rsquared_map",
                           "autocorrelation_map": "autocorrelation_map",
                           "ljungbox_map": "ljungbox_map", "ljungbox_p_map": "ljungbox_p_map",
                           "diagnostics_json": "model_json"}


def diagnostics_to_sink(save_residuals: bool) -> list[tuple[str, str]]:
    """The fit's diagnostics connected to the sink (with ``save_residuals``, the residuals
    too)."""
    return [*DIAGNOSTICS_SINK_INPUTS.items(),
            *([("residuals_file", "residuals_file")] if save_residuals else [])]


#: Per contrast, the maps (of :data:`~glm_workflows.core.naming.CONTRAST_MAPS`) a run gives
#: a fixed-effects combination.
RUN_CONTRAST_MAPS = ("effect", "variance")

#: The inference workflow's outputs (its outputnode fields) and the sink input (a key of
#: ``CONTRAST_OUTPUTS`` and ``GROUP_OUTPUTS``) each fills.
INFERENCE_SINK_INPUTS = {
    "thresholded_map": "thresholded_maps",
    "threshold_json": "threshold_jsons",
    "figure": "thresholded_figures",
    "ortho_figure": "ortho_figures",
    "table": "cluster_tables",
    "table_json": "cluster_jsons",
}
#: What the inference workflow's outputnode gives.
INFERENCE_OUTPUTS = tuple(INFERENCE_SINK_INPUTS)

#: The surface inference workflow's outputs (its figure: the thresholded map on the mesh).
SURFACE_INFERENCE_OUTPUTS = ("thresholded_map", "threshold_json", "table", "table_json",
                             "figure")

#: The inference outputs that exist only when the map's space is known (the cluster
#: table's sidecar): connected only then, so that an analysis without a space keeps its
#: graph and its nodes' caches.
SPACE_OUTPUTS = ("table_json",)


def run_contrast_field(contrast_map: str, contrast: str) -> str:
    """``<map>_<contrast>``: a run workflow's outputnode field of one contrast's map."""
    return f"{contrast_map}_{contrast}"


def run_contrast_fields(contrast: str) -> list[str]:
    """A run workflow's outputnode fields of one contrast (:data:`RUN_CONTRAST_MAPS`)."""
    return [run_contrast_field(name, contrast) for name in RUN_CONTRAST_MAPS]


def maps_to_sink() -> list[tuple[str, str]]:
    """A contrast's maps (the outputs of ``ContrastMapsOutputSpec``) -> the sink's inputs."""
    return [(name, map_output(name)) for name in CONTRAST_MAPS]


def contrast_to_sink(*, figure: bool = False) -> list[tuple[str, str]]:
    """A contrast interface's outputs -> the sink's inputs: its maps, its sidecar
    (``contrast_json``) and, with ``figure``, its contrast matrix figure."""
    return [*maps_to_sink(), *([("contrast_figure", "contrast_figures")] if figure else []),
            ("contrast_json", "contrast_jsons")]


def inference_to_sink(*, space: str | None = None) -> list[tuple[str, str]]:
    """The inference workflow's outputs -> the sink's inputs; with a ``space``, the
    cluster table's sidecar too (:data:`SPACE_OUTPUTS`)."""
    return [(f"outputnode.{output}", sink_input)
            for output, sink_input in INFERENCE_SINK_INPUTS.items()
            if space or output not in SPACE_OUTPUTS]


def surface_inference_to_sink() -> list[tuple[str, str]]:
    """The surface inference workflow's outputs -> the sink's inputs."""
    return [(f"outputnode.{output}", INFERENCE_SINK_INPUTS[output])
            for output in SURFACE_INFERENCE_OUTPUTS]


def same_names(names) -> list[tuple[str, str]]:
    """``[(name, name), ...]``: outputs connected to inputs of the same names."""
    return [(name, name) for name in names]
