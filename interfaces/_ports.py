"""Output specs shared by several interfaces, their trait names taken from
:mod:`glm_workflows.core.naming`.

Trait names are Nipype's cache keys and the wiring's port names: the classes here only
gather them in one place (the names and their values are unchanged).
"""

from nipype.interfaces.base import File, TraitedSpec

from glm_workflows.core.naming import CONTRAST_MAPS

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
