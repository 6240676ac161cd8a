"""The first-level GLM workflow of one run."""

from __future__ import annotations

from pathlib import Path

from nipype.interfaces.utility import IdentityInterface
from nipype.pipeline import engine as pe

from glm_workflows.interfaces import (
    ConcatenateImages,
    DerivativesSink,
    DesignMatrix,
    EstimateContrast,
    FitGLM,
    PackSurface,
    SurfaceFigure,
)

from ..core.entities import bids_prefix
from ..plan.study import (
    estimate_memory_gb,  # also importable from here, as before
    fit_memory_gb,
)
from ..settings import (
    DEFAULT_CONFOUNDS,
    DEFAULT_INFERENCE,
    DEFAULT_MODEL,
    SEED_CONTRASTS,
    ConfoundSettings,
    InferenceSettings,
    ModelSettings,
)
from .engine import Workflow
from .inference import init_inference_wf, init_surface_inference_wf
from .ports import (
    FIT_FILES,
    RUN_CONTRAST_MAPS,
    RUN_OUTPUTNODE_FIELDS,
    contrast_to_sink,
    diagnostics_to_sink,
    inference_to_sink,
    run_contrast_field,
    run_contrast_fields,
    same_names,
    surface_inference_to_sink,
)


def init_first_level_wf(
    *,
    t_r: float,
    output_dir: str,
    subject: str,
    task: str,
    session: str | None = None,
    run: str | None = None,
    entities: dict | None = None,
    contrasts=SEED_CONTRASTS,
    model: ModelSettings = DEFAULT_MODEL,
    inference: InferenceSettings = DEFAULT_INFERENCE,
    confounds: ConfoundSettings = DEFAULT_CONFOUNDS,
    mem_gb: dict | None = None,
    bold_is_4d: bool = False,
    skipped_contrasts=(),
    input_sources: dict | None = None,
    save_residuals: bool | None = None,
    space: str | None = None,
    surface: str | None = None,
    templateflow_home: str | None = None,
    name: str = "first_level_wf",
):
    """Build the first-level GLM workflow of one run.

    Workflow graph: concatenate -> design -> fit -> model sink (without concatenate when
    the run is one 4D file); the fit also writes the run's mean image and its diagnostics
    (R², the whitening check: the run is read once for all three);
    then one branch per contrast: estimate -> inference (threshold -> table, see
    :func:`~glm_workflows.workflows.inference.init_inference_wf`) -> contrast sink, which writes
    that contrast's outputs under BIDS-Derivatives names. Branches are plain nodes named
    after their contrast (no iterables), so building the graph costs the same for every
    run and a new contrast adds its branch without touching the others; every node but
    the sinks is cached.

    Parameters
    ----------
    t_r : float
        Repetition time (s).
    output_dir : str
        Derivatives root; outputs go to ``<output_dir>/sub-<subject>/``.
    subject, task, session, run : str
        BIDS entities naming the outputs (``session``/``run`` optional).
    entities : dict or None
        The run's other entities kept in the output names: ``acq``, ``ce``, ``rec``,
        ``dir`` and/or ``echo`` -> label (``RunInputs.entities``; see
        :func:`~glm_workflows.core.entities.bids_prefix`).
    contrasts : sequence of (name, stat_type, rows)
        ``stat_type`` is ``'t'`` (one row) or ``'F'``; rows are expressions over
        design columns or weight vectors.
    model : ModelSettings
        The model, as nilearn's ``FirstLevelModel``.
    inference : InferenceSettings
        Thresholds and cluster tables of each z map.
    confounds : ConfoundSettings
        Which columns of an fMRIPrep confounds file enter the design and which volumes
        are censored (default: every column of ``confounds_file``, no censoring).
    mem_gb : dict or None
        Memory estimates from :func:`estimate_memory_gb`; default: a 64x64x64x96 run.
    bold_is_4d : bool
        The run is one 4D file (``bold_files`` holds it alone): design and fit read it
        as it is, with no concatenated copy in the work directory. Otherwise the files
        (3D scans, or several 4D parts) are concatenated first.
    skipped_contrasts : sequence of str
        The study's contrasts this run does not have (a condition absent from it), left
        out of ``contrasts`` and recorded in the design sidecar.
    input_sources : dict or None
        Where the run's TR, slice-time reference and mask come from
        (``RunInputs.sources``), recorded in the design sidecar.
    save_residuals : bool or None
        Also write the fit's residuals (nilearn's ``residuals_``), 4D; None: the model's
        (``model.save_residuals``, ``--save-residuals``), written by the fit node.
    space : str or None
        The space of the run's images (``RunInputs.space``), when known: the cluster
        tables get their sidecars and, in an adult MNI152 template, the peaks' AAL3
        regions (:func:`~glm_workflows.workflows.inference.init_inference_wf`).
    surface : str or None
        A surface run's mesh (``fsaverage5``, ``fsaverage_den-10k``): ``bold_files`` are its
        left and right GIFTI hemispheres, packed into one image first (``PackSurface``,
        :mod:`glm_workflows.core.surfaces`; its mask: the vertices with finite,
        non-constant data), every map written as one GIFTI per hemisphere, and the
        mesh's inference branch (:func:`~glm_workflows.workflows.inference.
        init_surface_inference_wf`: thresholds and cluster tables, no volume figure).
        The outputnode also gives ``surface_layout``.
    templateflow_home : str or None
        A surface run: a TemplateFlow home searched for its mesh's files
        (:mod:`glm_workflows.core.mesh_sources`), recorded in its layout.
    name : str
        Workflow name.

    Inputs
    ------
    bold_files
        3D scans or 4D run(s) of one run, in order (a surface run: its two hemispheres).
    events_file
        BIDS events.tsv.
    confounds_file
        Optional confounds TSV.
    mask_file
        Optional brain mask (default: computed as nilearn's FirstLevelModel does).

    Outputs
    -------
    model_sidecar, mask_file, mean_file
        The fit's model JSON and mask, and the mean image.
    effect_<contrast>, variance_<contrast>
        Per contrast, its effect and variance maps (for a fixed-effects combination).
    """
    names = [c[0] for c in contrasts]
    if len(set(names)) != len(names):
        raise ValueError(f"init_first_level_wf: contrast names must be unique, got {names}")
    mem_gb = mem_gb or estimate_memory_gb(64 * 64 * 64, 96)
    if save_residuals is None:
        save_residuals = model.save_residuals
    workflow = Workflow(name=name)
    inputnode = pe.Node(
        IdentityInterface(fields=["bold_files", "events_file", "confounds_file", "mask_file"]),
        name="inputnode",
    )
    outputnode = pe.Node(
        IdentityInterface(fields=[*RUN_OUTPUTNODE_FIELDS,
                                  *(field for contrast in names
                                    for field in run_contrast_fields(contrast)),
                                  *(["surface_layout"] if surface else [])]),
        name="outputnode",
    )
    design = pe.Node(DesignMatrix(t_r=t_r, **model.design()), name="design", mem_gb=0.25)
    if confounds.selects:
        design.inputs.confounds_selection = confounds.selection()
    if skipped_contrasts:
        design.inputs.skipped_contrasts = list(skipped_contrasts)
    if input_sources:
        design.inputs.input_sources = dict(input_sources)
    fit = pe.Node(FitGLM(noise_model=model.noise_model, num_threads=1,
                         run_name=bids_prefix(subject, task, session, run,
                                              **(entities or {}))), name="fit",
                  mem_gb=fit_memory_gb(mem_gb, save_residuals), n_procs=1)
    if model.smoothing_fwhm:  # undefined otherwise: an unsmoothed fit keeps its cache
        fit.inputs.smoothing_fwhm = model.smoothing_fwhm
    # its `warnings` (non-finite samples) feed the progress lines, not a node: Nipype would
    # set such an output Undefined (an existing work directory refits once)
    fit.config = {"execution": {"remove_unnecessary_outputs": "false"}}
    # the mean image comes from the data the fit reads: the run is read once for both
    # (an existing work directory refits once: this input is new)
    fit.inputs.save_mean = True
    # and the diagnostics from the series fitted (an existing work directory refits once:
    # this input is new; before, a node of their own read the run again)
    fit.inputs.save_diagnostics = True
    if save_residuals:  # undefined otherwise, as the other flags
        fit.inputs.save_residuals = True
    entities = sink_entities(output_dir, subject, task, session, run, entities)
    sink = pe.Node(DerivativesSink(**entities), name="sink", mem_gb=0.25)
    if surface:
        home = {"templateflow_home": templateflow_home} if templateflow_home else {}
        pack = pe.Node(PackSurface(mesh=surface, **home), name="pack_surface",
                       mem_gb=mem_gb["concatenate"] if "concatenate" in mem_gb
                       else mem_gb["light"])
        workflow.connect([
            (inputnode, pack, [("bold_files", "in_files")]),
            # the left hemisphere: nilearn's confound strategies find its confounds file
            (inputnode, design, [(("bold_files", first_file), "bold_file")]),
            (pack, fit, [("out_file", "bold_file"), ("mask_file", "mask_file")]),
            (pack, sink, [("layout_file", "surface_layout")]),
            (pack, outputnode, [("layout_file", "surface_layout")]),
        ])
    elif bold_is_4d:
        workflow.connect([(inputnode, design, [(("bold_files", only_file), "bold_file")]),
                          (inputnode, fit, [(("bold_files", only_file), "bold_file")])])
    else:
        concatenate = pe.Node(ConcatenateImages(), name="concatenate",
                              mem_gb=mem_gb["concatenate"])
        workflow.connect([
            (inputnode, concatenate, [("bold_files", "in_files")]),
            (concatenate, design, [("out_file", "bold_file")]),
            (concatenate, fit, [("out_file", "bold_file")]),
        ])
    workflow.connect([
        (inputnode, design, [("events_file", "events_file"),
                             ("confounds_file", "confounds_file")]),
        *([] if surface else [(inputnode, fit, [("mask_file", "mask_file")])]),
        (design, fit, [("design_file", "design_file"), ("sample_mask", "sample_mask")]),
        (fit, sink, diagnostics_to_sink(save_residuals)),
        (fit, sink, [("mask_file", "mask_file"), ("mean_file", "mean_file")]),
        (design, sink, [("design_file", "design_file"), ("design_figure", "design_figure"),
                        ("design_json", "design_json"),
                        ("correlation_figure", "correlation_figure"),
                        ("fd_figure", "fd_figure")]),
        (inputnode, sink, list(_SOURCES)),
        (fit, outputnode, [("model_sidecar", "model_sidecar"), ("mask_file", "mask_file"),
                           ("mean_file", "mean_file")]),
    ])
    for contrast, stat_type, rows in contrasts:
        estimate = pe.Node(EstimateContrast(contrast_name=contrast, stat_type=stat_type,
                                            contrast_rows=list(rows)),
                           name=f"estimate_{contrast}", mem_gb=mem_gb["light"])
        if surface:  # thresholds and clusters on the mesh, the z map drawn on it
            contrast_sink = pe.Node(DerivativesSink(**entities, contrast_names=contrast,
                                                    stat_types=stat_type),
                                    name=f"sink_{contrast}", mem_gb=0.25)
            figure = pe.Node(SurfaceFigure(title=contrast), name=f"surface_figure_{contrast}",
                             mem_gb=mem_gb["light"])
            surface_wf = init_surface_inference_wf(
                inference=inference, mem_gb=mem_gb["inference"], space=space,
                title=contrast, name=f"inference_{contrast}_wf")
            workflow.connect([
                (estimate, surface_wf, [("z", "inputnode.z_map")]),
                (fit, surface_wf, [("mask_file", "inputnode.mask_file")]),
                (pack, surface_wf, [("layout_file", "inputnode.layout_file")]),
                (surface_wf, contrast_sink, surface_inference_to_sink()),
                (fit, estimate, same_names(FIT_FILES)),
                (estimate, figure, [("z", "z_map")]),
                (pack, figure, [("layout_file", "layout_file")]),
                (figure, contrast_sink, [("figure", "surface_figures")]),
                (pack, contrast_sink, [("layout_file", "surface_layout")]),
                (estimate, contrast_sink, contrast_to_sink(figure=True)),
                (inputnode, contrast_sink, list(_SOURCES)),
                (estimate, outputnode, [(name, run_contrast_field(name, contrast))
                                        for name in RUN_CONTRAST_MAPS]),
            ])
            continue
        inference_wf = init_inference_wf(inference=inference, mem_gb=mem_gb["inference"],
                                          space=space, name=f"inference_{contrast}_wf")
        inference_wf.get_node("inputnode").inputs.title = contrast
        contrast_sink = pe.Node(DerivativesSink(**entities, contrast_names=contrast,
                                                stat_types=stat_type),
                                name=f"sink_{contrast}", mem_gb=0.25)
        workflow.connect([
            (fit, estimate, [("betas", "betas"), ("dispersion", "dispersion"), ("ar1", "ar1"),
                             ("mask_file", "mask_file"), ("model_sidecar", "model_sidecar")]),
            (estimate, inference_wf, [("z", "inputnode.z_map")]),
            (fit, inference_wf, [("mask_file", "inputnode.mask_file")]),
            (fit, inference_wf, [("mean_file", "inputnode.bg_file")]),
            (estimate, contrast_sink, contrast_to_sink(figure=True)),
            (inference_wf, contrast_sink, inference_to_sink(space=space)),
            (inputnode, contrast_sink, list(_SOURCES)),
            (estimate, outputnode, [(name, run_contrast_field(name, contrast))
                                    for name in RUN_CONTRAST_MAPS]),
        ])
    return workflow


#: The run's input files, recorded as the sources of every sidecar.
_SOURCES = [("bold_files", "sources"), ("events_file", "events_file"),
            ("confounds_file", "confounds_file")]


def only_file(files) -> str:
    """The one file of a one-file list (a connection function: Nipype copies its source)."""
    if len(files) != 1:
        raise ValueError(f"expected one 4D file, got {len(files)} files")
    return files[0]


def first_file(files) -> str:
    """The first file of a list (a surface run's left hemisphere; a connection function)."""
    return files[0]


def sink_entities(output_dir, subject, task, session, run, extra=None) -> dict:
    """The DerivativesSink inputs naming a model's outputs.

    ``extra`` holds the other entities (``acq``, ``ce``, ``rec``, ``dir``, ``echo`` ->
    label), given to the sink's inputs of ``ENTITY_INPUTS``.
    """
    from glm_workflows.interfaces.derivatives import ENTITY_INPUTS

    entities = {"output_dir": str(Path(output_dir).absolute()), "subject": subject, "task": task}
    if session:
        entities["session"] = session
    if run:
        entities["run"] = run
    for key, value in (extra or {}).items():
        if value:
            entities[ENTITY_INPUTS[key]] = value
    return entities
