"""Output specs shared by several interfaces, their trait names taken from
:mod:`glm_workflows.core.naming`.

Trait names are Nipype's cache keys and the wiring's port names: the classes here only
gather them in one place (the names and their values are unchanged).
"""

from nipype.interfaces.base import BaseInterfaceInputSpec, File, TraitedSpec, traits

from glm_workflows.core.choices import HEIGHT_CONTROLS
from glm_workflows.core.naming import CONTRAST_MAPS
from glm_workflows.settings import DEFAULT_INFERENCE, default_first

#: What each contrast map holds, at any level.
_MAP_DESCRIPTIONS = {
    "effect": "effect size (F: one volume per row, as nilearn)",
    "variance": "effect variance",
    "stat": "t or F statistic map",
    "z": "z map",
    "p": "p map (one-sided for t)",
}


class ContrastMapsOutputSpec(TraitedSpec):
    """The maps of one contrast (:data:`~glm_workflows.core.naming.CONTRAST_MAPS`): the
    outputs of ``EstimateContrast``, ``FixedEffects`` and ``GroupModel``."""


for _name in CONTRAST_MAPS:  # one file output per contrast map
    ContrastMapsOutputSpec.add_class_trait(_name, File(exists=True,
                                                       desc=_MAP_DESCRIPTIONS[_name]))
del _name


class ThresholdSettingsInputSpec(BaseInterfaceInputSpec):
    """The height threshold and cluster extent of a z map, defaults the settings'
    (:data:`glm_workflows.settings.DEFAULT_INFERENCE`, as the CLI's): the inputs of
    ``ThresholdMap`` (voxels) and ``SurfaceThreshold`` (vertices of a mesh)."""

    height_control = traits.Enum(
        *default_first(DEFAULT_INFERENCE.height_control, HEIGHT_CONTROLS), usedefault=True,
        desc="fpr, fdr, bonferroni, or none (use 'threshold')")
    alpha = traits.Float(DEFAULT_INFERENCE.alpha, usedefault=True,
                         desc="error rate for fpr/fdr/bonferroni")
    threshold = traits.Float(DEFAULT_INFERENCE.threshold, usedefault=True,
                             desc="z threshold, used when height_control is 'none'")
    cluster_threshold = traits.Int(DEFAULT_INFERENCE.cluster_threshold, usedefault=True,
                                   desc="remove clusters smaller than this many voxels "
                                        "(vertices on a mesh)")
    two_sided = traits.Bool(DEFAULT_INFERENCE.two_sided, usedefault=True,
                            desc="threshold |z| (both tails) instead of positive z only")
