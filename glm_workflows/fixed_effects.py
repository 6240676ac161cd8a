"""Subject-level workflow: the runs of one subject combined by fixed effects."""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces.utility import IdentityInterface, Merge
from nipype.pipeline import engine as pe

from interfaces import ClusterTable, DerivativesSink, FixedEffects, ThresholdMap

from .first_level import RUN_OUTPUTS

#: The FixedEffects input that receives each run output, as a list over runs.
FFX_INPUTS = {
    "contrast_names": "contrast_names",
    "stat_types": "stat_types",
    "effect_maps": "effect_maps",
    "variance_maps": "variance_maps",
    "model_sidecar": "model_sidecars",
    "mask_file": "mask_files",
    "mean_file": "mean_files",
}


def init_fixed_effects_wf(
    *,
    run_labels,
    output_dir: str,
    subject: str,
    task: str,
    session: str | None = None,
    height_control: str = "fdr",
    alpha: float = 0.05,
    threshold: float = 3.09,
    cluster_threshold: int = 10,
    two_sided: bool = False,
    table_min_cluster_size: int = 20,
    mem_gb: float = 0.5,
    name: str = "fixed_effects_wf",
):
    """Build the workflow combining a subject's runs, contrast by contrast.

    Workflow graph: one ``merge_<field>`` node per run output (inputs ``in1`` ...
    ``in<number of runs>``, connected by :func:`connect_runs`) -> ffx (nilearn's
    ``compute_fixed_effects`` for every contrast) -> threshold and table (MapNodes
    over contrasts, the same interfaces as the run level) -> sink, which writes the
    subject's maps under ``sub-<subject>[_ses-<session>]_task-<task>``.

    Parameters
    ----------
    run_labels : list of str
        The BIDS prefixes of the runs combined (at least 2), in the order
        :func:`connect_runs` connects them; recorded in the contrast sidecars.
    output_dir, subject, task, session
        Derivatives root and BIDS entities of the subject-level outputs.
    height_control, alpha, threshold, cluster_threshold, two_sided, table_min_cluster_size
        As in :func:`glm_workflows.first_level.init_first_level_wf`.
    mem_gb : float
        Memory estimate of the fixed-effects node (a few maps per run).
    name : str
        Workflow name.

    Inputs
    ------
    merge_<field>.in<i>
        For ``field`` in :data:`~glm_workflows.first_level.RUN_OUTPUTS`, run ``i``'s
        output (see :func:`connect_runs`).

    Outputs
    -------
    out_files
        The files written under ``output_dir``.
    """
    n_runs = len(run_labels)
    if n_runs < 2:
        raise ValueError(f"init_fixed_effects_wf: needs 2 or more runs, got {run_labels}")
    workflow = pe.Workflow(name=name)
    merges = {field: pe.Node(Merge(n_runs, no_flatten=True), name=f"merge_{field}",
                             run_without_submitting=True)  # list plumbing: no job of its own
              for field in RUN_OUTPUTS}
    ffx = pe.Node(FixedEffects(run_labels=list(run_labels)), name="ffx", mem_gb=mem_gb)
    threshold_node = pe.MapNode(
        ThresholdMap(height_control=height_control, alpha=alpha, threshold=threshold,
                     cluster_threshold=cluster_threshold, two_sided=two_sided),
        iterfield=["z_map", "title"], name="threshold", mem_gb=0.5,
    )
    table = pe.MapNode(ClusterTable(min_cluster_size=table_min_cluster_size,
                                    two_sided=two_sided),
                       iterfield=["z_map", "stat_threshold"], name="table", mem_gb=0.5)
    sink = pe.Node(DerivativesSink(output_dir=str(Path(output_dir).absolute()),
                                   subject=subject, task=task,
                                   sources=[f"{label}_contrast-*" for label in run_labels]),
                   name="sink", mem_gb=0.25)
    if session:
        sink.inputs.session = session
    outputnode = pe.Node(IdentityInterface(fields=["out_files"]), name="outputnode")
    workflow.connect(
        [(merges[field], ffx, [("out", FFX_INPUTS[field])]) for field in RUN_OUTPUTS]
        + [
            (ffx, threshold_node, [("z_maps", "z_map"), ("contrast_names", "title"),
                                   ("mask_file", "mask_file"), ("mean_file", "bg_file")]),
            (threshold_node, table, [("thresholded_map", "z_map"),
                                     ("threshold", "stat_threshold")]),
            (ffx, sink, [("mean_file", "mean_file"), ("mask_file", "mask_file"),
                         ("contrast_names", "contrast_names"), ("stat_types", "stat_types"),
                         ("effect_maps", "effect_maps"), ("variance_maps", "variance_maps"),
                         ("stat_maps", "stat_maps"), ("z_maps", "z_maps"), ("p_maps", "p_maps"),
                         ("contrast_jsons", "contrast_jsons")]),
            (threshold_node, sink, [("thresholded_map", "thresholded_maps"),
                                    ("threshold_json", "threshold_jsons"),
                                    ("figure", "thresholded_figures"),
                                    ("ortho_figure", "ortho_figures")]),
            (table, sink, [("table", "cluster_tables")]),
            (sink, outputnode, [("out_files", "out_files")]),
        ]
    )
    return workflow


def connect_runs(parent, run_wfs, ffx_wf) -> None:
    """Connect each run workflow's outputs to the fixed-effects workflow, in order."""
    for index, run_wf in enumerate(run_wfs, start=1):
        for field in RUN_OUTPUTS:
            parent.connect(run_wf, f"outputnode.{field}", ffx_wf, f"merge_{field}.in{index}")
