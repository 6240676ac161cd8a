"""The first-level GLM workflow of one run."""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces.utility import IdentityInterface, Merge
from nipype.pipeline import engine as pe

from interfaces import (
    ClusterTable,
    ConcatenateImages,
    DerivativesSink,
    DesignMatrix,
    EstimateContrast,
    FitGLM,
    MeanImage,
    ThresholdMap,
)
from interfaces.derivatives import CONTRAST_OUTPUTS

from .core.derivatives import bids_prefix

#: The seed analysis' contrasts: (name, stat_type, rows).
SEED_CONTRASTS = (
    ("activeMinusRest", "t", ("active - rest",)),
    ("effectsOfInterest", "F", ("active", "rest")),
)


#: What a run workflow's outputnode gives a fixed-effects workflow.
RUN_OUTPUTS = ("contrast_names", "stat_types", "effect_maps", "variance_maps", "model_sidecar",
               "mask_file", "mean_file")


def estimate_memory_gb(n_voxels: int, n_scans: int) -> dict:
    """Per-node memory estimates (GB) for a run of ``n_voxels`` x ``n_scans``.

    ``data_gb`` is the size of the run as float64. About 0.3 GB is the Python
    process with nilearn loaded. Concatenation holds the scans and their
    concatenation in the stored type. The fit holds the run in its stored type
    (int16: a quarter of ``data_gb``) while masking, then two float32 copies of the
    masked series and float64 chunks; measured peaks: 0.30 GB on the SPM auditory
    run (0.19 GB as float64) and 1.43 GB on a 2 mm 97x115x97x300 run (2.6 GB).
    Contrasts hold a few float64 maps; thresholds, tables and their figures (matplotlib)
    about 0.5 GB whatever the run.
    """
    data_gb = n_voxels * n_scans * 8 / 1024**3
    return {
        "concatenate": round(0.3 + data_gb, 2),
        "fit": round(0.3 + 0.5 * data_gb, 2),
        "light": round(0.3 + 0.5 * data_gb, 2),
        "inference": 0.5,
    }


def init_first_level_wf(
    *,
    t_r: float,
    output_dir: str,
    subject: str,
    task: str,
    session: str | None = None,
    run: str | None = None,
    contrasts=SEED_CONTRASTS,
    noise_model: str = "ar1",
    hrf_model: str = "spm",
    drift_model: str = "cosine",
    high_pass: float = 1 / 160,
    drift_order: int = 1,
    slice_time_ref: float = 0.0,
    height_control: str = "fdr",
    alpha: float = 0.05,
    threshold: float = 3.09,
    cluster_threshold: int = 10,
    two_sided: bool = False,
    table_min_cluster_size: int = 20,
    mem_gb: dict | None = None,
    name: str = "first_level_wf",
):
    """Build the first-level GLM workflow of one run.

    Workflow graph: concatenate -> mean; concatenate -> design -> fit; then, for
    each contrast (a branch of its own, through iterables), estimate ->
    threshold -> table; finally one sink joins all contrasts and writes the
    outputs under BIDS-Derivatives names. Every node but the sink is cached,
    so changing one contrast or threshold reruns only what depends on it.

    Parameters
    ----------
    t_r : float
        Repetition time (s).
    output_dir : str
        Derivatives root; outputs go to ``<output_dir>/sub-<subject>/``.
    subject, task, session, run : str
        BIDS entities naming the outputs (``session``/``run`` optional).
    contrasts : sequence of (name, stat_type, rows)
        ``stat_type`` is ``'t'`` (one row) or ``'F'``; rows are expressions over
        design columns or weight vectors.
    noise_model, hrf_model, drift_model, high_pass, drift_order, slice_time_ref
        The model, as nilearn's ``FirstLevelModel``.
    height_control, alpha, threshold, cluster_threshold, two_sided
        Thresholding of each z map (``threshold`` is used with ``height_control='none'``).
    table_min_cluster_size : int
        Smallest cluster (voxels) listed in the cluster tables.
    mem_gb : dict or None
        Memory estimates from :func:`estimate_memory_gb`; default: a 64x64x64x96 run.
    name : str
        Workflow name.

    Inputs
    ------
    bold_files
        3D scans or 4D run(s) of one run, in order.
    events_file
        BIDS events.tsv.
    confounds_file
        Optional confounds TSV.
    mask_file
        Optional brain mask (default: computed as nilearn's FirstLevelModel does).

    Outputs
    -------
    out_files
        The files written under ``output_dir``.
    contrast_names, stat_types, effect_maps, variance_maps
        Per contrast (in the order given), for a fixed-effects combination of runs.
    model_sidecar, mask_file, mean_file
        The fit's model JSON and mask, and the mean image.
    """
    if not contrasts:
        raise ValueError("init_first_level_wf: at least one contrast is required")
    names = [c[0] for c in contrasts]
    if len(set(names)) != len(names):
        raise ValueError(f"init_first_level_wf: contrast names must be unique, got {names}")
    mem_gb = mem_gb or estimate_memory_gb(64 * 64 * 64, 96)
    workflow = pe.Workflow(name=name)

    inputnode = pe.Node(
        IdentityInterface(fields=["bold_files", "events_file", "confounds_file", "mask_file"]),
        name="inputnode",
    )
    outputnode = pe.Node(
        IdentityInterface(fields=["out_files", *RUN_OUTPUTS]),
        name="outputnode",
    )
    concatenate = pe.Node(ConcatenateImages(), name="concatenate", mem_gb=mem_gb["concatenate"])
    mean = pe.Node(MeanImage(), name="mean", mem_gb=mem_gb["light"])
    design = pe.Node(
        DesignMatrix(t_r=t_r, hrf_model=hrf_model, drift_model=drift_model, high_pass=high_pass,
                     drift_order=drift_order, slice_time_ref=slice_time_ref),
        name="design", mem_gb=0.25,
    )
    fit = pe.Node(FitGLM(noise_model=noise_model, num_threads=1,
                         run_name=bids_prefix(subject, task, session, run)), name="fit",
                  mem_gb=mem_gb["fit"], n_procs=1)

    contrast_source = pe.Node(
        IdentityInterface(fields=["contrast_name", "stat_type", "contrast_rows"]),
        name="contrast_source",
    )
    contrast_source.iterables = [
        ("contrast_name", names),
        ("stat_type", [c[1] for c in contrasts]),
        ("contrast_rows", [list(c[2]) for c in contrasts]),
    ]
    contrast_source.synchronize = True
    estimate = pe.Node(EstimateContrast(), name="estimate", mem_gb=mem_gb["light"])
    threshold_node = pe.Node(
        ThresholdMap(height_control=height_control, alpha=alpha, threshold=threshold,
                     cluster_threshold=cluster_threshold, two_sided=two_sided),
        name="threshold", mem_gb=mem_gb["inference"],
    )
    table = pe.Node(ClusterTable(min_cluster_size=table_min_cluster_size, two_sided=two_sided),
                    name="table", mem_gb=mem_gb["inference"])

    collect = pe.JoinNode(
        IdentityInterface(fields=["contrast_names", "stat_types", "effect_maps",
                                  "variance_maps"]),
        joinsource="contrast_source",
        joinfield=["contrast_names", "stat_types", "effect_maps", "variance_maps"],
        name="collect", run_without_submitting=True,
    )
    joined = ["contrast_names", "stat_types", *CONTRAST_OUTPUTS]
    sink = pe.JoinNode(
        DerivativesSink(output_dir=str(Path(output_dir).absolute()), subject=subject, task=task),
        joinsource="contrast_source", joinfield=joined, name="sink", mem_gb=0.25,
    )
    sources = pe.Node(Merge(3), name="sources", run_without_submitting=True)
    if session:
        sink.inputs.session = session
    if run:
        sink.inputs.run = run
    workflow.connect([
        (inputnode, concatenate, [("bold_files", "in_files")]),
        (inputnode, design, [("events_file", "events_file"),
                             ("confounds_file", "confounds_file")]),
        (inputnode, fit, [("mask_file", "mask_file")]),
        (concatenate, mean, [("out_file", "in_file")]),
        (concatenate, design, [("out_file", "bold_file")]),
        (concatenate, fit, [("out_file", "bold_file")]),
        (design, fit, [("design_file", "design_file")]),
        (fit, estimate, [("betas", "betas"), ("dispersion", "dispersion"), ("ar1", "ar1"),
                         ("mask_file", "mask_file"), ("model_sidecar", "model_sidecar")]),
        (contrast_source, estimate, [("contrast_name", "contrast_name"),
                                     ("stat_type", "stat_type"),
                                     ("contrast_rows", "contrast_rows")]),
        (estimate, threshold_node, [("z", "z_map"), ("contrast_name", "title")]),
        (fit, threshold_node, [("mask_file", "mask_file")]),
        (mean, threshold_node, [("out_file", "bg_file")]),
        (threshold_node, table, [("thresholded_map", "z_map"),
                                 ("threshold", "stat_threshold")]),
        (mean, sink, [("out_file", "mean_file")]),
        (fit, sink, [("mask_file", "mask_file")]),
        (design, sink, [("design_file", "design_file"), ("design_figure", "design_figure"),
                        ("design_json", "design_json"),
                        ("correlation_figure", "correlation_figure")]),
        (estimate, sink, [("contrast_name", "contrast_names"), ("stat_type", "stat_types"),
                          ("effect", "effect_maps"), ("variance", "variance_maps"),
                          ("stat", "stat_maps"), ("z", "z_maps"), ("p", "p_maps"),
                          ("contrast_figure", "contrast_figures"),
                          ("contrast_json", "contrast_jsons")]),
        (threshold_node, sink, [("thresholded_map", "thresholded_maps"),
                                ("threshold_json", "threshold_jsons"),
                                ("figure", "thresholded_figures"),
                                ("ortho_figure", "ortho_figures")]),
        (table, sink, [("table", "cluster_tables")]),
        (inputnode, sources, [("bold_files", "in1"), ("events_file", "in2"),
                              ("confounds_file", "in3")]),
        (sources, sink, [("out", "sources")]),
        (sink, outputnode, [("out_files", "out_files")]),
        (estimate, collect, [("contrast_name", "contrast_names"), ("stat_type", "stat_types"),
                             ("effect", "effect_maps"), ("variance", "variance_maps")]),
        (collect, outputnode, [("contrast_names", "contrast_names"),
                               ("stat_types", "stat_types"), ("effect_maps", "effect_maps"),
                               ("variance_maps", "variance_maps")]),
        (fit, outputnode, [("model_sidecar", "model_sidecar"), ("mask_file", "mask_file")]),
        (mean, outputnode, [("out_file", "mean_file")]),
    ])
    return workflow
