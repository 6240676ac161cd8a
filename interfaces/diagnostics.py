"""A run's fit diagnostics: R², the whitening check and (optionally) the residuals.

A node of its own beside the fit (not outputs of ``FitGLM``): a fit cached before the
diagnostics existed stays cached, and its diagnostics are computed from its files.
"""

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

from glm_workflows.core.deflate import save_image
from glm_workflows.core.diagnostics import (
    ALPHA,
    LAGS,
    fit_diagnostics,
    flagged_fraction,
    ljung_box_dof,
    whitening_summary,
)
from glm_workflows.core.estimates import load_fitted_glm
from glm_workflows.core.glm import run_series
from glm_workflows.core.run_tables import load_design_matrix
from glm_workflows.settings import DEFAULT_MODEL


class _RunDiagnosticsInputSpec(BaseInterfaceInputSpec):
    bold_file = File(exists=True, mandatory=True, desc="4D functional image (the fit's)")
    design_file = File(exists=True, mandatory=True, desc="design matrix TSV (the fit's)")
    sample_mask = traits.List(traits.Int, desc="volumes fitted (the fit's); default: all")
    smoothing_fwhm = traits.Float(desc="the fit's smoothing FWHM (mm); default: none")
    betas = File(exists=True, mandatory=True, desc="parameter estimates from FitGLM")
    dispersion = File(exists=True, mandatory=True, desc="dispersion map from FitGLM")
    ar1 = File(exists=True, mandatory=True, desc="noise-bin map from FitGLM")
    mask_file = File(exists=True, mandatory=True, desc="mask from FitGLM")
    model_sidecar = File(exists=True, mandatory=True, desc="model JSON from FitGLM")
    save_residuals = traits.Bool(DEFAULT_MODEL.save_residuals, usedefault=True,
                                 desc="also write nilearn's residuals (4D)")
    num_threads = traits.Int(1, usedefault=True,
                             desc="BLAS threads (give the node the same n_procs)")


class _RunDiagnosticsOutputSpec(TraitedSpec):
    rsquared_map = File(exists=True, desc="R² of the whitened model (nilearn's r_square)")
    autocorrelation_map = File(exists=True, desc="whitened residuals' autocorrelation at "
                                                 "lags 1..k beyond white noise's (4D)")
    ljungbox_map = File(exists=True, desc="Ljung-Box Q of the whitened residuals")
    ljungbox_p_map = File(exists=True, desc="its p value")
    model_json = File(exists=True, desc="JSON: noise model, the diagnostics' definitions, "
                                        "the whitening check's summary")
    residuals_file = File(desc="nilearn's residuals, one volume per fitted scan "
                               "(save_residuals only)")
    whitening_fraction = traits.Float(desc="fraction of the mask flagged by the check")


class RunDiagnostics(SimpleInterface):
    """R², whitening check and residuals of a persisted fit (:mod:`core.diagnostics`)."""

    input_spec = _RunDiagnosticsInputSpec
    output_spec = _RunDiagnosticsOutputSpec

    def _run_interface(self, runtime):
        inputs = self.inputs
        fit = load_fitted_glm(betas=inputs.betas, dispersion=inputs.dispersion,
                              ar1=inputs.ar1, mask=inputs.mask_file,
                              sidecar=inputs.model_sidecar)
        with threadpool_limits(limits=inputs.num_threads):
            series, X, *_ = run_series(
                inputs.bold_file, load_design_matrix(inputs.design_file),
                mask_img=inputs.mask_file,
                smoothing_fwhm=inputs.smoothing_fwhm if isdefined(inputs.smoothing_fwhm)
                else None,
                run_name=None,
                sample_mask=inputs.sample_mask if isdefined(inputs.sample_mask) else None)
            maps = fit_diagnostics(series, X, fit, save_residuals=inputs.save_residuals)
        del series
        fraction = flagged_fraction(maps["ljung_box_p"])
        files = {"rsquared_map": "r_square", "autocorrelation_map": "autocorrelation",
                 "ljungbox_map": "ljung_box", "ljungbox_p_map": "ljung_box_p"}
        if inputs.save_residuals:
            files["residuals_file"] = "residuals"
        for output, key in files.items():
            path = os.path.join(runtime.cwd, f"{key}.nii.gz")
            save_image(fit.to_image(maps.pop(key)), path)
            self._results[output] = path
        self._results["model_json"] = os.path.join(runtime.cwd, "model.json")
        with open(self._results["model_json"], "w") as handle:
            json.dump({
                "NoiseModel": fit.noise_model,
                "DesignColumns": fit.columns,
                "DegreesOfFreedom": fit.df_residuals,
                **({"SmoothingFWHM": fit.smoothing_fwhm}
                   if fit.smoothing_fwhm is not None else {}),
                "RSquared": "nilearn's RegressionResults.r_square: var(wX beta) / var(wY) "
                            "over time, the whitened model's fitted values over the "
                            "whitened data (population variances)",
                "WhiteningCheck": {
                    "Summary": whitening_summary(fraction),
                    "FractionFlagged": fraction,
                    "Alpha": ALPHA,
                    "Lags": list(range(1, LAGS + 1)),
                    "DegreesOfFreedom": ljung_box_dof(fit.noise_model),
                    "Statistic": "Ljung-Box Q = n (n + 2) sum_k r_k^2 / (n - k) of the "
                                 "whitened residuals, r_k relative to its expectation "
                                 "under white noise for the design",
                },
                **({"Residuals": "nilearn's FirstLevelModel.residuals_: Y - wX beta "
                                 "(scaled data minus whitened fitted values)"}
                   if inputs.save_residuals else {}),
            }, handle, indent=2)
        self._results["whitening_fraction"] = fraction
        return runtime
