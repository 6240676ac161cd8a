"""Sink: copies a first-level model's outputs under BIDS-Derivatives names."""

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    InputMultiObject,
    OutputMultiObject,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from glm_workflows.core.derivatives import software_versions, write_derivatives
from glm_workflows.core.naming import (
    CONTRAST_OUTPUTS,
    MODEL_OUTPUTS,
    bids_prefix,
    contrast_file,
    model_file,
)

#: The sink's inputs for the entities of a prefix besides sub, ses, task and run: the
#: keyword of :func:`bids_prefix` (an entity of ``RunInputs.entities``) -> the input.
ENTITY_INPUTS = {"acq": "acquisition", "ce": "ceagent", "rec": "reconstruction",
                 "dir": "direction", "echo": "echo"}


class _DerivativesSinkInputSpec(BaseInterfaceInputSpec):
    output_dir = traits.Str(mandatory=True, desc="derivatives root folder")
    subject = traits.Str(mandatory=True, desc="subject label, without 'sub-'")
    task = traits.Str(mandatory=True, desc="task label")
    session = traits.Str(desc="session label, if any")
    run = traits.Str(desc="run index, if any")
    acquisition = traits.Str(desc="acq label of the run(s), if any")
    ceagent = traits.Str(desc="ce (contrast agent) label of the run(s), if any")
    reconstruction = traits.Str(desc="rec label of the run(s), if any")
    direction = traits.Str(desc="dir (phase-encoding direction) label of the run(s), if any")
    echo = traits.Str(desc="echo index of the run(s), if any")
    sources = InputMultiObject(traits.Str, desc="input files the outputs derive from, recorded "
                                                "(with the software versions) in every JSON "
                                                "sidecar")
    events_file = traits.Str(desc="the run's events file, added to the sources")
    confounds_file = traits.Str(desc="the run's confounds file, added to the sources")
    mean_file = File(exists=True, desc="mean functional image")
    mask_file = File(exists=True, desc="brain mask of the fit")
    design_file = File(exists=True, desc="design matrix TSV (run-level models)")
    design_figure = File(exists=True, desc="design matrix PNG (run-level models)")
    design_json = File(exists=True, desc="design settings JSON (run-level models)")
    correlation_figure = File(exists=True, desc="regressor correlation PNG (run-level models)")
    fd_figure = File(exists=True, desc="framewise displacement PNG with the censored volumes "
                                       "(run-level models with fMRIPrep confounds)")
    contrast_names = InputMultiObject(traits.Str, desc="one name per contrast")
    stat_types = InputMultiObject(traits.Str, desc="'t' or 'F', per contrast")
    effect_maps = InputMultiObject(File(exists=True), desc="effect size maps")
    variance_maps = InputMultiObject(File(exists=True), desc="effect variance maps")
    stat_maps = InputMultiObject(File(exists=True), desc="t or F maps")
    z_maps = InputMultiObject(File(exists=True), desc="z maps")
    p_maps = InputMultiObject(File(exists=True), desc="p maps")
    thresholded_maps = InputMultiObject(File(exists=True), desc="thresholded z maps")
    threshold_jsons = InputMultiObject(File(exists=True),
                                       desc="threshold settings JSON, one per thresholded map")
    thresholded_figures = InputMultiObject(File(exists=True),
                                           desc="thresholded map figures (axial cuts)")
    ortho_figures = InputMultiObject(File(exists=True),
                                     desc="thresholded map figures (orthogonal cuts at the peak)")
    cluster_tables = InputMultiObject(File(exists=True), desc="cluster tables")
    contrast_figures = InputMultiObject(File(exists=True),
                                        desc="contrast matrix figures (run-level models)")
    contrast_jsons = InputMultiObject(File(exists=True),
                                      desc="contrast definitions, the sidecar of all its maps")


class _DerivativesSinkOutputSpec(TraitedSpec):
    out_files = OutputMultiObject(File(exists=True), desc="the written files")


class DerivativesSink(SimpleInterface):
    """Write outputs of one model at once (staged, then renamed into place): its own
    files (mean, mask, design) and/or those of its contrasts (one or several; a single
    contrast's outputs may be given as plain values).

    Like Nipype's DataSink it runs every time, so a deleted output folder is
    written again from the cache.
    """

    input_spec = _DerivativesSinkInputSpec
    output_spec = _DerivativesSinkOutputSpec
    _always_run = True

    def _run_interface(self, runtime):
        inputs = self.inputs
        prefix = bids_prefix(
            inputs.subject, inputs.task,
            session=inputs.session if isdefined(inputs.session) else None,
            run=inputs.run if isdefined(inputs.run) else None,
            **{key: getattr(inputs, name) for key, name in ENTITY_INPUTS.items()
               if isdefined(getattr(inputs, name)) and getattr(inputs, name)},
        )
        files = {model_file(prefix, field): getattr(inputs, field)
                 for field in MODEL_OUTPUTS if isdefined(getattr(inputs, field))}
        names = inputs.contrast_names if isdefined(inputs.contrast_names) else []
        pairs = zip(names, inputs.stat_types if names else [], strict=True)
        for index, (name, stat) in enumerate(pairs):
            for field in CONTRAST_OUTPUTS:
                if isdefined(getattr(inputs, field)):
                    files[contrast_file(prefix, name, field, stat)] = getattr(inputs, field)[index]
        sources = list(inputs.sources) if isdefined(inputs.sources) else []
        sources += [getattr(inputs, f) for f in ("events_file", "confounds_file")
                    if isdefined(getattr(inputs, f)) and getattr(inputs, f)]
        provenance = {"Sources": sources,
                      "SoftwareVersions": software_versions()}
        self._results["out_files"] = write_derivatives(files, inputs.output_dir, inputs.subject,
                                                       sidecar_fields=provenance)
        return runtime
