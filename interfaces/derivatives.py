"""Sink: copies a first-level model's outputs under BIDS-Derivatives names."""

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    OutputMultiObject,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from glm_workflows.core.derivatives import bids_prefix, software_versions, write_derivatives

#: Per-contrast inputs of the sink and the name suffix each is written under.
#: ``{stat}`` is the contrast's statistic, ``t`` or ``F``.
CONTRAST_OUTPUTS = {
    "effect_maps": "stat-effect_statmap.nii.gz",
    "variance_maps": "stat-variance_statmap.nii.gz",
    "stat_maps": "stat-{stat}_statmap.nii.gz",
    "z_maps": "stat-z_statmap.nii.gz",
    "p_maps": "stat-p_statmap.nii.gz",
    "thresholded_maps": "stat-z_desc-thresholded_statmap.nii.gz",
    "threshold_jsons": "stat-z_desc-thresholded_statmap.json",
    "thresholded_figures": "stat-z_desc-thresholded_statmap.png",
    "ortho_figures": "stat-z_desc-thresholdedOrtho_statmap.png",
    "cluster_tables": "clusters.tsv",
    "contrast_figures": "contrastmatrix.png",
    "contrast_jsons": "statmap.json",
}
#: Per-model inputs and their name suffix.
MODEL_OUTPUTS = {
    "mean_file": "desc-mean_bold.nii.gz",
    "mask_file": "desc-brain_mask.nii.gz",
    "design_file": "design.tsv",
    "design_figure": "design.png",
    "design_json": "design.json",
    "correlation_figure": "desc-correlation_design.png",
}


class _DerivativesSinkInputSpec(BaseInterfaceInputSpec):
    output_dir = traits.Str(mandatory=True, desc="derivatives root folder")
    subject = traits.Str(mandatory=True, desc="subject label, without 'sub-'")
    task = traits.Str(mandatory=True, desc="task label")
    session = traits.Str(desc="session label, if any")
    run = traits.Str(desc="run index, if any")
    sources = traits.List(traits.Str, desc="input files the outputs derive from, recorded "
                                           "(with the software versions) in every JSON sidecar")
    mean_file = File(exists=True, mandatory=True, desc="mean functional image")
    mask_file = File(exists=True, mandatory=True, desc="brain mask of the fit")
    design_file = File(exists=True, desc="design matrix TSV (run-level models)")
    design_figure = File(exists=True, desc="design matrix PNG (run-level models)")
    design_json = File(exists=True, desc="design settings JSON (run-level models)")
    correlation_figure = File(exists=True, desc="regressor correlation PNG (run-level models)")
    contrast_names = traits.List(traits.Str, mandatory=True, desc="one name per contrast")
    stat_types = traits.List(traits.Str, mandatory=True, desc="'t' or 'F', per contrast")
    effect_maps = traits.List(File(exists=True), mandatory=True, desc="effect size maps")
    variance_maps = traits.List(File(exists=True), mandatory=True, desc="effect variance maps")
    stat_maps = traits.List(File(exists=True), mandatory=True, desc="t or F maps")
    z_maps = traits.List(File(exists=True), mandatory=True, desc="z maps")
    p_maps = traits.List(File(exists=True), mandatory=True, desc="p maps")
    thresholded_maps = traits.List(File(exists=True), mandatory=True,
                                   desc="thresholded z maps")
    threshold_jsons = traits.List(File(exists=True), mandatory=True,
                                  desc="threshold settings JSON, one per thresholded map")
    thresholded_figures = traits.List(File(exists=True), mandatory=True,
                                      desc="thresholded map figures (axial cuts)")
    ortho_figures = traits.List(File(exists=True), mandatory=True,
                                desc="thresholded map figures (orthogonal cuts at the peak)")
    cluster_tables = traits.List(File(exists=True), mandatory=True, desc="cluster tables")
    contrast_figures = traits.List(File(exists=True),
                                   desc="contrast matrix figures (run-level models)")
    contrast_jsons = traits.List(File(exists=True), mandatory=True,
                                 desc="contrast definitions, the sidecar of all its maps")


class _DerivativesSinkOutputSpec(TraitedSpec):
    out_files = OutputMultiObject(File(exists=True), desc="the written files")


class DerivativesSink(SimpleInterface):
    """Write all outputs of one model at once (staged, then renamed into place).

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
        )
        files = {f"{prefix}_{suffix}": getattr(inputs, field)
                 for field, suffix in MODEL_OUTPUTS.items() if isdefined(getattr(inputs, field))}
        pairs = zip(inputs.contrast_names, inputs.stat_types, strict=True)
        for index, (name, stat) in enumerate(pairs):
            for field, suffix in CONTRAST_OUTPUTS.items():
                if not isdefined(getattr(inputs, field)):
                    continue
                file_name = f"{prefix}_contrast-{name}_{suffix.format(stat=stat)}"
                files[file_name] = getattr(inputs, field)[index]
        provenance = {"Sources": list(inputs.sources) if isdefined(inputs.sources) else [],
                      "SoftwareVersions": software_versions()}
        self._results["out_files"] = write_derivatives(files, inputs.output_dir, inputs.subject,
                                                       sidecar_fields=provenance)
        return runtime
