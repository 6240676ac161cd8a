"""Sink: copies a first-level model's outputs under BIDS-Derivatives names."""

import os

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

from glm_workflows.core.cifti import is_cifti_layout, write_cifti_map
from glm_workflows.core.derivatives import software_versions, write_derivatives
from glm_workflows.core.entities import bids_prefix
from glm_workflows.core.naming import CONTRAST_OUTPUTS, MODEL_OUTPUTS, contrast_file, model_file
from glm_workflows.core.surface_names import cifti_name, surface_name
from glm_workflows.core.surfaces import read_layout, write_hemispheres

#: The sink's inputs for the entities of a prefix besides sub, ses, task and run: the
#: keyword of :func:`bids_prefix` (an entity of ``RunInputs.entities``) -> the input.
ENTITY_INPUTS = {"acq": "acquisition", "ce": "ceagent", "rec": "reconstruction",
                 "dir": "direction", "echo": "echo", "space": "space", "cohort": "cohort",
                 "res": "resolution", "den": "density"}


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
    space = traits.Str(desc="space of the fMRIPrep image(s) analysed, if any")
    cohort = traits.Str(desc="cohort of the image(s)' template, if any")
    resolution = traits.Str(desc="res label of the image(s), if any")
    density = traits.Str(desc="den label of the image(s), if any")
    sources = InputMultiObject(traits.Str, desc="input files the outputs derive from, recorded "
                                                "(with the software versions) in every JSON "
                                                "sidecar")
    events_file = traits.Str(desc="the run's events file, added to the sources")
    confounds_file = traits.Str(desc="the run's confounds file, added to the sources")
    contrast_names = InputMultiObject(traits.Str, desc="one name per contrast")
    stat_types = InputMultiObject(traits.Str, desc="'t' or 'F', per contrast")
    surface_layout = File(exists=True, desc="a surface run's layout JSON (PackSurface): its "
                                             "maps are written as one GIFTI per hemisphere")


#: What the sink's file inputs hold (their names: naming's MODEL_OUTPUTS and
#: CONTRAST_OUTPUTS; an input not listed here is described by its name).
INPUT_DESCRIPTIONS = {
    "mean_file": "mean functional image",
    "mask_file": "brain mask of the fit",
    "design_file": "design matrix TSV (run-level models)",
    "design_figure": "design matrix PNG (run-level models)",
    "design_json": "design settings JSON (run-level models)",
    "correlation_figure": "regressor correlation PNG (run-level models)",
    "fd_figure": "framewise displacement PNG with the censored volumes (run-level models "
                 "with fMRIPrep confounds)",
    "rsquared_map": "R² of the whitened model, per voxel (run-level models)",
    "autocorrelation_map": "whitened residuals' autocorrelation, lags 1..k (run-level)",
    "ljungbox_map": "Ljung-Box Q of the whitened residuals (run-level models)",
    "ljungbox_p_map": "p value of the Ljung-Box Q (run-level models)",
    "model_json": "the model's sidecar: noise model, diagnostics (run-level models)",
    "residuals_file": "residual time series, 4D (run-level models, --save-residuals)",
    "effect_maps": "effect size maps",
    "variance_maps": "effect variance maps",
    "stat_maps": "t or F maps",
    "z_maps": "z maps",
    "p_maps": "p maps",
    "thresholded_maps": "thresholded z maps",
    "threshold_jsons": "threshold settings JSON, one per thresholded map",
    "thresholded_figures": "thresholded map figures (axial cuts; surface maps: on the mesh)",
    "ortho_figures": "thresholded map figures (orthogonal cuts at the peak)",
    "cluster_tables": "cluster tables",
    "cluster_jsons": "cluster tables' sidecars: columns, atlas (when the space is known)",
    "contrast_figures": "contrast matrix figures (run-level models)",
    "surface_figures": "surface z maps drawn on the mesh (when a mesh source has it)",
    "contrast_jsons": "contrast definitions, the sidecar of all its maps",
}

for _output in MODEL_OUTPUTS:  # one optional file per model output
    _DerivativesSinkInputSpec.add_class_trait(
        _output, File(exists=True, desc=INPUT_DESCRIPTIONS.get(_output, f"the {_output} file")))
for _output in CONTRAST_OUTPUTS:  # per contrast output, one file per contrast
    _DerivativesSinkInputSpec.add_class_trait(
        _output, InputMultiObject(File(exists=True),
                                  desc=INPUT_DESCRIPTIONS.get(_output, f"the {_output} files")))
del _output


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
        if isdefined(inputs.surface_layout):
            files = surface_files(files, read_layout(inputs.surface_layout), runtime.cwd)
        sources = list(inputs.sources) if isdefined(inputs.sources) else []
        sources += [getattr(inputs, f) for f in ("events_file", "confounds_file")
                    if isdefined(getattr(inputs, f)) and getattr(inputs, f)]
        provenance = {"Sources": sources,
                      "SoftwareVersions": software_versions()}
        self._results["out_files"] = write_derivatives(files, inputs.output_dir, inputs.subject,
                                                       sidecar_fields=provenance)
        return runtime


def surface_files(files: dict, layout: dict, folder) -> dict:
    """The sink's files of a surface model: each packed map (``.nii.gz``) replaced by its
    two hemispheres' GIFTI files, or by one CIFTI dense scalar map (a CIFTI layout; its
    map named by its output name's ``stat-``/``desc-`` part), written in ``folder``; the
    other files kept."""
    out = {}
    for name, source in files.items():
        if surface_name(name, "L") == name:  # a table, a sidecar, a figure
            out[name] = source
            continue
        if is_cifti_layout(layout):
            written = os.path.join(folder, cifti_name(name))
            out[cifti_name(name)] = write_cifti_map(source, layout, written,
                                                    _map_label(name))
            continue
        names = {hemi: surface_name(name, hemi) for hemi in layout["Hemispheres"]}
        write_hemispheres(source, layout, {hemi: os.path.join(folder, written)
                                           for hemi, written in names.items()})
        out.update({written: os.path.join(folder, written) for written in names.values()})
    return out


def _map_label(name: str) -> str:
    """A CIFTI map's name (its ScalarAxis label): the output name's entities after the
    space (``contrast-a_stat-z_statmap``), or its suffix part."""
    stem = name.partition(".")[0]
    parts = stem.split("_")
    after = [i for i, part in enumerate(parts) if part.startswith(("den-", "space-"))]
    return "_".join(parts[after[-1] + 1:]) if after and after[-1] + 1 < len(parts) else stem
