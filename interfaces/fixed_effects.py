"""Fixed-effects combination of a subject's runs, contrast by contrast."""

import json
import os

from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    traits,
)

from glm_workflows.core.fixed_effects import (
    combine_runs,
    intersect_run_masks,
    mean_of_images,
    run_dofs,
)

MAPS = ("effect", "variance", "stat", "z", "p")


class _FixedEffectsInputSpec(BaseInterfaceInputSpec):
    contrast_names = traits.List(traits.List(traits.Str), mandatory=True,
                                 desc="per run, the contrast names in order (must agree)")
    stat_types = traits.List(traits.List(traits.Str), mandatory=True,
                             desc="per run, 't' or 'F' per contrast")
    effect_maps = traits.List(traits.List(File(exists=True)), mandatory=True,
                              desc="per run, one effect map per contrast")
    variance_maps = traits.List(traits.List(File(exists=True)), mandatory=True,
                                desc="per run, one variance map per contrast")
    model_sidecars = traits.List(File(exists=True), mandatory=True,
                                 desc="per run, the fit's model JSON (degrees of freedom)")
    mask_files = traits.List(File(exists=True), mandatory=True, desc="per run, the fit's mask")
    mean_files = traits.List(File(exists=True), mandatory=True,
                             desc="per run, the mean functional image")
    run_labels = traits.List(traits.Str, mandatory=True,
                             desc="per run, its BIDS prefix (recorded in the JSON sidecars)")


class _FixedEffectsOutputSpec(TraitedSpec):
    contrast_names = traits.List(traits.Str, desc="contrast names, in order")
    stat_types = traits.List(traits.Str, desc="'t' or 'F' per contrast")
    effect_maps = traits.List(File(exists=True), desc="mean effect per contrast")
    variance_maps = traits.List(File(exists=True), desc="combined variance per contrast")
    stat_maps = traits.List(File(exists=True), desc="t or F map per contrast")
    z_maps = traits.List(File(exists=True), desc="z map per contrast")
    p_maps = traits.List(File(exists=True), desc="one-sided p map per contrast")
    contrast_jsons = traits.List(File(exists=True),
                                 desc="per contrast: statistic, runs, degrees of freedom")
    mask_file = File(exists=True, desc="intersection of the runs' masks")
    mean_file = File(exists=True, desc="mean of the runs' mean images")


class FixedEffects(SimpleInterface):
    """Combine each contrast over runs by fixed effects (nilearn's compute_fixed_effects)."""

    input_spec = _FixedEffectsInputSpec
    output_spec = _FixedEffectsOutputSpec

    def _run_interface(self, runtime):
        inputs = self.inputs
        names = inputs.contrast_names[0]
        if any(list(other) != list(names) for other in inputs.contrast_names):
            raise ValueError(f"runs have different contrasts: {inputs.contrast_names}")
        dofs = run_dofs(inputs.model_sidecars)
        mask_file = os.path.join(runtime.cwd, "mask.nii.gz")
        mask = intersect_run_masks(inputs.mask_files)
        mask.to_filename(mask_file)
        results = {f"{key}_maps": [] for key in MAPS}
        results["contrast_jsons"] = []
        for index, name in enumerate(names):
            maps = combine_runs([run[index] for run in inputs.effect_maps],
                                [run[index] for run in inputs.variance_maps],
                                dofs, mask)
            for key in MAPS:
                path = os.path.join(runtime.cwd, f"{name}_{key}.nii.gz")
                maps[key].to_filename(path)
                results[f"{key}_maps"].append(path)
            sidecar = os.path.join(runtime.cwd, f"{name}_contrast.json")
            with open(sidecar, "w") as handle:
                json.dump({
                    "ContrastName": name,
                    "StatisticType": inputs.stat_types[0][index],
                    "FixedEffectsOf": list(inputs.run_labels),
                    "RunDegreesOfFreedom": dofs,
                    "DegreesOfFreedom": sum(dofs),
                    "Method": "nilearn.glm.contrasts.compute_fixed_effects "
                              "(mean effect, variance = mean variance / n_runs)",
                }, handle, indent=2)
            results["contrast_jsons"].append(sidecar)
        mean_of_images(inputs.mean_files).to_filename(os.path.join(runtime.cwd, "mean.nii.gz"))
        self._results.update(
            results, contrast_names=list(names), stat_types=list(inputs.stat_types[0]),
            mask_file=mask_file,
            mean_file=os.path.join(runtime.cwd, "mean.nii.gz"),
        )
        return runtime
