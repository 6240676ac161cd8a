"""The values the numeric core accepts for its choice arguments, defined once: the
command line's ``choices``, the interfaces' ``traits.Enum`` values and the core's own checks
read them here (:mod:`glm_workflows.settings` holds the defaults)."""

#: Temporal noise models (:func:`glm_workflows.core.glm.fit_glm`).
NOISE_MODELS = ("ar1", "ols", "ar1-corrected", "ar2-corrected")
#: ``auto``: cosine drifts (at ``high_pass``) unless the run's confounds already hold
#: cosine regressors (fMRIPrep's ``cosineXX``), then none; decided per run from the
#: columns the design actually takes (:func:`glm_workflows.core.design.effective_drift_model`).
DRIFT_MODELS = ("auto", "cosine", "polynomial", "none")
#: Voxel-height thresholds (:func:`glm_workflows.core.inference.threshold_map`).
HEIGHT_CONTROLS = ("fpr", "fdr", "bonferroni", "none")

#: The group models (``--group``).
GROUP_MODELS = ("one-sample", "two-sample", "paired")
#: How the group model is estimated: ordinary least squares on the effect maps
#: (nilearn's SecondLevelModel), or mixed effects from the effect and variance maps
#: (:mod:`glm_workflows.core.mixed_effects`).
GROUP_ESTIMATORS = ("ols", "mixed")
