"""Fixed-effects combination of a subject's runs: the subject's mask and mean image, and
each contrast in a node of its own."""

import json
import os

import nibabel as nb
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from glm_workflows.core.deflate import save_image
from glm_workflows.core.fixed_effects import (
    combine_runs,
    intersect_run_masks,
    mean_of_images,
    run_dofs,
)
from glm_workflows.core.naming import CONTRAST_MAPS

from ._ports import ContrastMapsOutputSpec


class _CombineRunImagesInputSpec(BaseInterfaceInputSpec):
    mask_files = traits.List(File(exists=True), mandatory=True, desc="per run, the fit's mask")
    mean_files = traits.List(File(exists=True), mandatory=True,
                             desc="per run, the mean functional image")


class _CombineRunImagesOutputSpec(TraitedSpec):
    mask_file = File(exists=True, desc="intersection of the runs' masks")
    mean_file = File(exists=True, desc="mean of the runs' mean images")


class CombineRunImages(SimpleInterface):
    """A subject's mask (where every run was fitted) and mean image, from its runs'."""

    input_spec = _CombineRunImagesInputSpec
    output_spec = _CombineRunImagesOutputSpec

    def _run_interface(self, runtime):
        self._results["mask_file"] = os.path.join(runtime.cwd, "mask.nii.gz")
        save_image(intersect_run_masks(self.inputs.mask_files), self._results["mask_file"])
        self._results["mean_file"] = os.path.join(runtime.cwd, "mean.nii.gz")
        save_image(mean_of_images(self.inputs.mean_files), self._results["mean_file"])
        return runtime


class _FixedEffectsInputSpec(BaseInterfaceInputSpec):
    contrast_name = traits.Str(mandatory=True, desc="the contrast's name")
    stat_type = traits.Enum("t", "F", mandatory=True, desc="'t' or 'F'")
    contrast_rows = traits.List(traits.Either(traits.Str, traits.List(traits.Float)),
                                desc="the contrast's rows, as the runs' (recorded only)")
    effect_maps = traits.List(File(exists=True), mandatory=True,
                              desc="per run, the contrast's effect map")
    variance_maps = traits.List(File(exists=True), mandatory=True,
                                desc="per run, the contrast's variance map")
    model_sidecars = traits.List(File(exists=True), mandatory=True,
                                 desc="per run, the fit's model JSON (degrees of freedom)")
    mask_file = File(exists=True, mandatory=True,
                     desc="where the runs are combined (the intersection of their masks)")
    run_labels = traits.List(traits.Str, mandatory=True,
                             desc="per run, its BIDS prefix (recorded in the JSON sidecar)")
    weights = traits.List(traits.Float,
                          desc="per run, its weight in a linear combination (a Session or "
                               "Subject node's design); undefined: the mean")
    combined_contrast = traits.Str(desc="the incoming contrast the weights combine (recorded "
                                        "only; with weights)")


class _FixedEffectsOutputSpec(ContrastMapsOutputSpec):
    """The mean effect, the combined variance and their t or F, z and p maps."""

    contrast_json = File(exists=True, desc="statistic, runs combined, degrees of freedom")


class FixedEffects(SimpleInterface):
    """Combine one contrast over runs by fixed effects (nilearn's compute_fixed_effects)."""

    input_spec = _FixedEffectsInputSpec
    output_spec = _FixedEffectsOutputSpec

    def _run_interface(self, runtime):
        inputs = self.inputs
        dofs = run_dofs(inputs.model_sidecars)
        weights = list(inputs.weights) if isdefined(inputs.weights) else None
        maps = combine_runs(inputs.effect_maps, inputs.variance_maps, dofs,
                            nb.load(inputs.mask_file), weights=weights)
        for key in CONTRAST_MAPS:
            self._results[key] = os.path.join(runtime.cwd, f"{key}.nii.gz")
            save_image(maps[key], self._results[key])
        self._results["contrast_json"] = os.path.join(runtime.cwd, "contrast.json")
        method = ("nilearn.glm.contrasts.compute_fixed_effects "
                  "(mean effect, variance = mean variance / n_runs)") if weights is None else (
            "weighted sum of the maps (effect sum(w e), variance sum(w^2 v)), its t and z by "
            "nilearn.glm.contrasts.compute_fixed_effects")
        extra = {} if weights is None else {"Weights": weights,
                                            "CombinedContrast": inputs.combined_contrast}
        with open(self._results["contrast_json"], "w") as handle:
            json.dump({
                "ContrastName": inputs.contrast_name,
                "StatisticType": inputs.stat_type,
                "ContrastRows": list(inputs.contrast_rows) if isdefined(inputs.contrast_rows)
                else None,
                "FixedEffectsOf": list(inputs.run_labels),
                "RunDegreesOfFreedom": dofs,
                "DegreesOfFreedom": sum(dofs),
                **extra,
                "Method": method,
            }, handle, indent=2)
        return runtime
