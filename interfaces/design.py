"""Design matrix from events (nilearn's make_first_level_design_matrix)."""

import json
import os

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from glm_workflows.core.choices import DRIFT_MODELS
from glm_workflows.core.confounds import censoring_summary, framewise_displacement
from glm_workflows.core.design import (
    HRF_MODELS,
    confound_columns,
    cosine_columns,
    design_confounds,
    effective_drift_model,
    first_level_design,
)
from glm_workflows.core.figures import (
    plot_design,
    plot_design_correlation,
    plot_framewise_displacement,
)
from glm_workflows.core.naming import MODEL_OUTPUTS
from glm_workflows.core.run_tables import save_design_matrix
from glm_workflows.core.surfaces import n_volumes
from glm_workflows.settings import DEFAULT_MODEL, default_first


class _DesignMatrixInputSpec(BaseInterfaceInputSpec):
    events_file = File(exists=True, mandatory=True,
                       desc="BIDS events.tsv: onset, duration, trial_type (optional modulation)")
    bold_file = File(exists=True, mandatory=True,
                     desc="4D functional image (or a surface run's left-hemisphere GIFTI "
                          "series); only its number of volumes is read, and its name "
                          "by nilearn's confound strategies")
    t_r = traits.Float(mandatory=True, desc="repetition time in seconds")
    # Defaults: the settings' (glm_workflows.settings.DEFAULT_MODEL), as the CLI's.
    hrf_model = traits.Enum(*default_first(DEFAULT_MODEL.hrf_model, HRF_MODELS),
                            usedefault=True, desc="haemodynamic response model")
    drift_model = traits.Enum(*default_first(DEFAULT_MODEL.drift_model, DRIFT_MODELS),
                              usedefault=True,
                              desc="slow drift model; 'auto': cosine unless the confounds "
                                   "the design takes hold cosine regressors, then none")
    high_pass = traits.Float(DEFAULT_MODEL.high_pass, usedefault=True,
                             desc="high-pass cut-off in Hz for cosine drifts")
    drift_order = traits.Int(DEFAULT_MODEL.drift_order, usedefault=True,
                             desc="order of polynomial drifts")
    slice_time_ref = traits.Range(0.0, 1.0, DEFAULT_MODEL.slice_time_ref, usedefault=True,
                                  desc="time of the reference slice, as a fraction of the TR")
    run_node = traits.Str("", usedefault=True,
                          desc="a BIDS Stats Models Run node as JSON (glm_workflows.core."
                               "model_design.run_node_json): it makes the design instead of "
                               "the HRF and drift settings; '' for none")
    confounds_file = File(exists=True,
                          desc="optional TSV of nuisance regressors, one row per scan: all "
                               "its columns, or those confounds_selection selects")
    tables_digest = traits.Str("", usedefault=True,
                               desc="a digest of the events and confounds files' bytes "
                                    "(glm_workflows.core.tables.tables_digest), only part of "
                                    "the node's hash: Nipype hashes files by size and "
                                    "modification time, so an edit keeping both would reuse "
                                    "the cached design; '' for none")
    skipped_contrasts = traits.List(
        traits.Str, desc="contrasts of the study this run does not have (a condition absent "
                         "from it); only recorded in the design sidecar")
    input_sources = traits.Dict(
        traits.Str, traits.Str,
        desc="where the run's TR, slice-time reference and mask come from "
             "(RepetitionTimeSource, SliceTimeRefSource, MaskSource -> text); only recorded "
             "in the design sidecar")
    confounds_selection = traits.Dict(
        desc="fMRIPrep confounds selection (glm_workflows.settings.ConfoundSettings."
             "selection()): strategy (nilearn preset or ''), columns (shell-style patterns), "
             "options (nilearn's load_confounds options) and demean; default: every column")


class _DesignMatrixOutputSpec(TraitedSpec):
    design_file = File(exists=True, desc="design matrix TSV: named columns, one row per scan")
    design_figure = File(exists=True, desc="PNG figure of the design matrix")
    design_json = File(exists=True, desc="JSON: TR, number of scans, and every model setting")
    correlation_figure = File(exists=True, desc="PNG: correlations of the regressors (drifts "
                                                "and constant left out); absent if none is left")
    sample_mask = traits.List(traits.Int, desc="volumes to fit (the others are censored); "
                                               "undefined when none is censored")
    fd_figure = File(exists=True, desc="PNG: framewise displacement with the censored volumes "
                                       "marked; only with selected fMRIPrep confounds that "
                                       "have a framewise_displacement column")


class DesignMatrix(SimpleInterface):
    """First-level design matrix from an events file, as TSV and figure.

    Built and checked by :func:`glm_workflows.core.design.first_level_design`, the
    function the command line validates runs with, so a run that validated gives
    this node the same design.
    """

    input_spec = _DesignMatrixInputSpec
    output_spec = _DesignMatrixOutputSpec

    def _run_interface(self, runtime):
        n_scans = n_volumes(self.inputs.bold_file)
        confounds_file = self.inputs.confounds_file \
            if isdefined(self.inputs.confounds_file) else None
        selection = self.inputs.confounds_selection \
            if isdefined(self.inputs.confounds_selection) else None
        confounds, sample_mask = design_confounds(self.inputs.bold_file, confounds_file,
                                                  n_scans, selection)
        design, _ = first_level_design(
            self.inputs.events_file, n_scans, self.inputs.t_r,
            confounds_file=confounds_file, confounds=confounds, sample_mask=sample_mask,
            hrf_model=self.inputs.hrf_model,
            drift_model=self.inputs.drift_model,
            high_pass=self.inputs.high_pass,
            drift_order=self.inputs.drift_order,
            slice_time_ref=self.inputs.slice_time_ref,
            run_node=self.inputs.run_node,
        )
        columns = confound_columns(confounds, confounds_file)
        if self.inputs.run_node:  # a model's X picks the confounds: those of the design
            columns = [c for c in columns if c in design.columns]
        for output in ("design_file", "design_figure", "design_json"):  # the outputs' suffixes
            self._results[output] = os.path.join(runtime.cwd, MODEL_OUTPUTS[output])
        save_design_matrix(design, self._results["design_file"])
        with open(self._results["design_json"], "w") as handle:
            json.dump({
                "RepetitionTime": self.inputs.t_r,
                "NumberOfScans": n_scans,
                "HRFModel": self.inputs.hrf_model,
                "DriftModel": effective_drift_model(self.inputs.drift_model, columns),
                "DriftModelSetting": self.inputs.drift_model,
                "CosineConfounds": cosine_columns(columns),
                "HighPass": self.inputs.high_pass,
                "DriftOrder": self.inputs.drift_order,
                "SliceTimeRef": self.inputs.slice_time_ref,
                **(self.inputs.input_sources if isdefined(self.inputs.input_sources) else {}),
                "StatsModelNode": json.loads(self.inputs.run_node)
                if self.inputs.run_node else None,
                "EventsFile": self.inputs.events_file,
                "ConfoundsFile": confounds_file,
                "ConfoundsStrategy": (selection or {}).get("strategy") or None,
                "ConfoundsColumnPatterns": (selection or {}).get("columns") or None,
                "ConfoundsOptions": (selection or {}).get("options") or None,
                "ConfoundColumns": columns,
                "CensoredVolumes": censoring_summary(sample_mask, n_scans),
                "NumberOfKeptVolumes": n_scans if sample_mask is None else len(sample_mask),
                "Columns": list(design.columns),
                "SkippedContrasts": list(self.inputs.skipped_contrasts)
                if isdefined(self.inputs.skipped_contrasts) else [],
            }, handle, indent=2)
        if sample_mask is not None:
            self._results["sample_mask"] = [int(v) for v in sample_mask]
        fd = framewise_displacement(confounds_file) if selection else None
        if fd is not None:
            self._results["fd_figure"] = os.path.join(runtime.cwd, MODEL_OUTPUTS["fd_figure"])
            plot_framewise_displacement(
                fd, censoring_summary(sample_mask, n_scans), self._results["fd_figure"],
                fd_threshold=(selection.get("options") or {}).get("fd_threshold"))
        plot_design(design, self._results["design_figure"])
        correlation = os.path.join(runtime.cwd, "design_correlation.png")
        if plot_design_correlation(design, correlation):
            self._results["correlation_figure"] = correlation
        return runtime
