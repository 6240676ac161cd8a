"""GLM fit persisted as files, and t/F contrasts computed from those files."""

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
from threadpoolctl import threadpool_limits

from glm_workflows.core.choices import NOISE_MODELS
from glm_workflows.core.contrasts import contrast_matrix
from glm_workflows.core.deflate import save_image
from glm_workflows.core.diagnostics import FitDiagnostics, save_diagnostics
from glm_workflows.core.estimates import (
    autocorrelation_summary,
    compute_contrast,
    load_fitted_glm,
    save_fitted_glm,
)
from glm_workflows.core.figures import plot_contrast
from glm_workflows.core.glm import fit_glm
from glm_workflows.core.images import MEAN_IMAGE_FILE
from glm_workflows.core.run_tables import load_design_matrix
from glm_workflows.settings import DEFAULT_MODEL, default_first

from ._ports import ContrastMapsOutputSpec

#: FitGLM's diagnostics outputs, by their key in core.diagnostics.DIAGNOSTICS_FILES.
_DIAGNOSTICS_KEYS = {"rsquared_map": "r_square", "autocorrelation_map": "autocorrelation",
                     "ljungbox_map": "ljung_box", "ljungbox_p_map": "ljung_box_p",
                     "residuals_file": "residuals", "diagnostics_json": "sidecar"}


def _asked(flag) -> bool:
    """Whether an optional (undefined unless asked for) flag input is on."""
    return isdefined(flag) and bool(flag)


class _FitGLMInputSpec(BaseInterfaceInputSpec):
    bold_file = File(exists=True, mandatory=True, desc="4D functional image")
    design_file = File(exists=True, mandatory=True, desc="design matrix TSV, one row per scan")
    mask_file = File(exists=True,
                     desc="brain mask; default: the mask nilearn's FirstLevelModel computes")
    noise_model = traits.Enum(*default_first(DEFAULT_MODEL.noise_model, NOISE_MODELS),
                              usedefault=True, desc="temporal noise model")
    run_name = traits.Str(desc="how warnings and errors name the run (e.g. its BIDS prefix; "
                               "default: the bold file)")
    num_threads = traits.Int(1, usedefault=True,
                             desc="BLAS threads (give the node the same n_procs)")
    sample_mask = traits.List(traits.Int,
                              desc="volumes to fit (censoring, as nilearn's sample_masks); "
                                   "default: every volume")
    # no default (undefined unless asked for): the hash of an unsmoothed fit's inputs, and
    # so the cache of earlier work directories, stays what it was
    smoothing_fwhm = traits.Float(desc="FWHM (mm) of the Gaussian kernel each volume is "
                                       "smoothed with before masking, as nilearn's "
                                       "FirstLevelModel(smoothing_fwhm=); default: none")
    # likewise undefined unless asked for: a standalone fit hashes as it did
    save_mean = traits.Bool(desc="also write the run's mean image over time (every volume), "
                                 "from the data read for the fit, so the run is read once")
    save_diagnostics = traits.Bool(desc="also write the fit's diagnostics (R², the whitening "
                                        "check; core.diagnostics), from the series fitted, "
                                        "so the run is read once")
    save_residuals = traits.Bool(requires=["save_diagnostics"],
                                 desc="with save_diagnostics, also write nilearn's residuals "
                                      "(4D)")


class _FitGLMOutputSpec(TraitedSpec):
    betas = File(exists=True, desc="4D float64 NIfTI, one parameter estimate per design column")
    dispersion = File(exists=True, desc="residual variance (dispersion) of the whitened model")
    ar1 = File(exists=True, desc="binned AR(1) coefficient of each voxel (0 for OLS)")
    mask_file = File(exists=True, desc="the mask the model was fitted in")
    model_sidecar = File(
        exists=True,
        desc="JSON: noise model, design columns, degrees of freedom, counts of voxels and "
             "volumes with non-finite samples, and per AR(1) bin the normalized covariance "
             "of the estimates",
    )
    warnings = traits.List(
        traits.Str,
        desc="one line per problem in the data that did not stop the fit (e.g. non-finite "
             "samples, set to 0 as nilearn does); empty for a clean run",
    )
    mean_file = File(desc="3D float32 mean over time of the run, as MeanImage writes it "
                          "(save_mean only)")
    rsquared_map = File(desc="R² of the whitened model (nilearn's r_square; "
                             "save_diagnostics only)")
    autocorrelation_map = File(desc="whitened residuals' autocorrelation at lags 1..k beyond "
                                    "white noise's (4D; save_diagnostics only)")
    ljungbox_map = File(desc="Ljung-Box Q of the whitened residuals (save_diagnostics only)")
    ljungbox_p_map = File(desc="its p value (save_diagnostics only)")
    diagnostics_json = File(desc="JSON: noise model, the diagnostics' definitions, the "
                                 "whitening check's summary (save_diagnostics only)")
    residuals_file = File(desc="nilearn's residuals, one volume per fitted scan "
                               "(save_residuals only)")


class FitGLM(SimpleInterface):
    """Fit a first-level GLM and persist what any later contrast needs, as files; on
    request, also the run's mean image and the fit's diagnostics, from the data read."""

    input_spec = _FitGLMInputSpec
    output_spec = _FitGLMOutputSpec

    def _run_interface(self, runtime):
        diagnostics = FitDiagnostics(self.inputs.noise_model,
                                     save_residuals=_asked(self.inputs.save_residuals)) \
            if _asked(self.inputs.save_diagnostics) else None
        with threadpool_limits(limits=self.inputs.num_threads):
            fit = fit_glm(
                self.inputs.bold_file,
                load_design_matrix(self.inputs.design_file),
                mask_img=self.inputs.mask_file if isdefined(self.inputs.mask_file) else None,
                noise_model=self.inputs.noise_model,
                run_name=self.inputs.run_name if isdefined(self.inputs.run_name) else None,
                sample_mask=self.inputs.sample_mask if isdefined(self.inputs.sample_mask)
                else None,
                smoothing_fwhm=self.inputs.smoothing_fwhm
                if isdefined(self.inputs.smoothing_fwhm) else None,
                with_mean=_asked(self.inputs.save_mean),
                observer=diagnostics,
            )
        if diagnostics is not None:
            paths = save_diagnostics(fit, diagnostics.maps(), runtime.cwd)
            del diagnostics  # the residuals, if kept: freed before the fit's maps are written
            self._results.update({output: paths[key]
                                  for output, key in _DIAGNOSTICS_KEYS.items()
                                  if key in paths})
        if fit.mean_img is not None:
            self._results["mean_file"] = os.path.join(runtime.cwd, MEAN_IMAGE_FILE)
            save_image(fit.mean_img, self._results["mean_file"])
        paths = save_fitted_glm(fit, runtime.cwd)
        self._results.update(
            betas=paths["betas"], dispersion=paths["dispersion"], ar1=paths["ar1"],
            mask_file=paths["mask"], model_sidecar=paths["sidecar"], warnings=fit.warnings,
        )
        return runtime


class _EstimateContrastInputSpec(BaseInterfaceInputSpec):
    betas = File(exists=True, mandatory=True, desc="parameter estimates from FitGLM")
    dispersion = File(exists=True, mandatory=True, desc="dispersion map from FitGLM")
    ar1 = File(exists=True, mandatory=True, desc="AR(1) map from FitGLM")
    mask_file = File(exists=True, mandatory=True, desc="mask from FitGLM")
    model_sidecar = File(exists=True, mandatory=True, desc="model JSON from FitGLM")
    contrast_name = traits.Str(mandatory=True, desc="name of the contrast (letters and digits)")
    stat_type = traits.Enum("t", "F", usedefault=True, desc="'t' (one row) or 'F' (rows)")
    contrast_rows = traits.List(
        traits.Either(traits.Str, traits.List(traits.Float)), mandatory=True,
        desc="one or more rows: expressions over design columns ('active - rest'), "
             "or weight vectors with one weight per column",
    )


class _EstimateContrastOutputSpec(ContrastMapsOutputSpec):
    contrast_figure = File(exists=True, desc="PNG of the contrast weights")
    contrast_json = File(exists=True, desc="JSON: name, statistic, rows, weights per design "
                                           "column, degrees of freedom, noise model")
    contrast_name = traits.Str(desc="the contrast's name, passed through")
    stat_type = traits.Str(desc="'t' or 'F', passed through")


class EstimateContrast(SimpleInterface):
    """A t or F contrast from a persisted fit, equal to nilearn's ``compute_contrast``."""

    input_spec = _EstimateContrastInputSpec
    output_spec = _EstimateContrastOutputSpec

    def _run_interface(self, runtime):
        fit = load_fitted_glm(
            betas=self.inputs.betas, dispersion=self.inputs.dispersion, ar1=self.inputs.ar1,
            mask=self.inputs.mask_file, sidecar=self.inputs.model_sidecar,
        )
        matrix = contrast_matrix(self.inputs.contrast_rows, fit.columns, self.inputs.stat_type)
        maps = compute_contrast(fit, matrix, self.inputs.stat_type)
        for key, img in maps.items():
            self._results[key] = os.path.join(runtime.cwd, f"{key}.nii.gz")
            save_image(img, self._results[key])
        self._results["contrast_figure"] = os.path.join(runtime.cwd, "contrast.png")
        plot_contrast(matrix, fit.columns, self.inputs.contrast_name,
                      self._results["contrast_figure"])
        self._results["contrast_json"] = os.path.join(runtime.cwd, "contrast.json")
        with open(self._results["contrast_json"], "w") as handle:
            json.dump({
                "ContrastName": self.inputs.contrast_name,
                "StatisticType": self.inputs.stat_type,
                "ContrastRows": list(self.inputs.contrast_rows),
                "ContrastWeights": matrix.tolist(),
                "DesignColumns": fit.columns,
                "DegreesOfFreedom": fit.df_residuals,
                "NoiseModel": fit.noise_model,
                **({"SmoothingFWHM": fit.smoothing_fwhm}
                   if fit.smoothing_fwhm is not None else {}),
                **({"AutocorrelationSummary": summary}
                   if (summary := autocorrelation_summary(fit)) else {}),
            }, handle, indent=2)
        self._results["contrast_name"] = self.inputs.contrast_name
        self._results["stat_type"] = self.inputs.stat_type
        return runtime
