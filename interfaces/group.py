"""Group level: the group model of one group contrast, and its permutation inference
split into chunks (each a node of its own) combined by a final node."""

from __future__ import annotations

import json
import os

import numpy as np
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)
from threadpoolctl import threadpool_limits

from glm_workflows.core.choices import GROUP_ESTIMATORS, GROUP_MODELS
from glm_workflows.core.deflate import save_image
from glm_workflows.core.derivatives import software_versions, write_derivatives
from glm_workflows.core.figures import plot_design
from glm_workflows.core.group import (
    fit_group,
    group_design,
    pooled_design,
    read_participants,
)
from glm_workflows.core.group_mask import difference_images
from glm_workflows.core.mixed_effects import fit_group_mixed
from glm_workflows.core.naming import (
    CONTRAST_MAPS,
    GROUP_FOLDER,
    GROUP_OUTPUTS,
    group_file,
    group_stem,
)
from glm_workflows.core.permutation_results import combine_permutations
from glm_workflows.core.permutations import permutation_chunk
from glm_workflows.core.surfaces import read_layout

from ._group_design import save_group_design
from ._permutation_args import block_args, permutation_args, permutation_record
from ._ports import ContrastMapsOutputSpec
from .derivatives import surface_files

#: The permutation maps (nilearn's ``non_parametric_inference`` keys) written.
LOGP_MAPS = ("logp_max_t", "logp_max_size", "logp_max_mass", "logp_max_tfce")


class _GroupModelInputSpec(BaseInterfaceInputSpec):
    effect_maps = traits.List(File(exists=True), mandatory=True,
                              desc="per subject, its effect map of the first-level contrast")
    paired_maps = traits.List(File(exists=True),
                              desc="paired model: per subject, the second contrast's effect map "
                                   "(the model is the one-sample test of effect - paired)")
    subjects = traits.List(traits.Str, mandatory=True, desc="subject labels, in map order")
    mask_file = File(exists=True, mandatory=True,
                     desc="group mask (the intersection of the subjects' masks)")
    model = traits.Enum(*GROUP_MODELS, usedefault=True, desc="group model")
    participants_file = File(exists=True, desc="participants.tsv (groups, covariates)")
    tables_digest = traits.Str("", usedefault=True,
                               desc="a digest of participants.tsv's bytes, only part of the "
                                    "node's hash (Nipype's trusts size and modification time)")
    group_column = traits.Str(desc="two-sample: the participants.tsv column of the groups")
    covariates = traits.List(traits.Str, desc="numeric participants.tsv columns added")
    demean = traits.Bool(False, usedefault=True, desc="demean the covariates")
    transformations = traits.Str(desc="JSON: a model file's Dataset node transformations of "
                                      "participants.tsv (one-sample)")
    intercept = traits.Bool(True, usedefault=True, desc="one-sample: the intercept column")
    contrast_name = traits.Str(mandatory=True, desc="group contrast name (output names)")
    contrast = traits.Either(traits.Str, traits.List(traits.Str), mandatory=True,
                             desc="expression over the group design's columns (t), or "
                                  "expressions (the rows of an F contrast)")
    first_level_contrast = traits.Str(mandatory=True, desc="the first-level contrast modelled")
    map_contrasts = traits.List(traits.Str, desc="a node grouped by nothing: per map, its "
                                                 "contrast (subjects: per map, its subject)")
    design_columns = traits.Str(desc="a node grouped by nothing: JSON [[X name, contrast or "
                                     "null (the intercept)], ...]")
    estimator = traits.Enum(*GROUP_ESTIMATORS,
                            desc="'mixed': the first-level variances used, the between-subject "
                                 "variance by REML (needs variance_maps); undefined: 'ols'")
    variance_maps = traits.List(File(exists=True),
                                desc="mixed: per subject, the variance map of its effect map")


class _GroupModelOutputSpec(ContrastMapsOutputSpec):
    """The group contrast's maps (t), the voxels fitted, the maps modelled, the design
    and the contrast's sidecar."""

    mask_file = File(exists=True, desc="the voxels fitted: the group mask where every map is "
                                       "finite")
    input_maps = traits.List(File(exists=True),
                             desc="the maps modelled, one per subject (paired: differences)")
    design_file = File(exists=True, desc="group design TSV (participant_id, columns)")
    design_json = File(exists=True, desc="JSON: model, subjects, columns, covariates")
    design_figure = File(exists=True, desc="PNG of the group design")
    contrast_json = File(exists=True, desc="JSON: contrast, weights, subjects, dof")
    tau2_map = File(desc="mixed: the between-subject variance estimated (REML)")


class GroupModel(SimpleInterface):
    """Fit a group model over subjects' maps and compute one t contrast (nilearn's
    SecondLevelModel), in the group mask less the voxels where some map is not finite
    (:func:`~glm_workflows.core.group_mask.finite_group_mask`: a map not finite in most of
    the mask fails the node, naming it). The contrast sidecar records the voxels fitted
    (``MaskVoxels``, of ``SubjectMasksVoxels``) and, per subject with any, its
    non-finite voxels (``NonFiniteVoxels``)."""

    input_spec = _GroupModelInputSpec
    output_spec = _GroupModelOutputSpec

    def _run_interface(self, runtime):
        inputs = self.inputs
        participants = read_participants(inputs.participants_file) \
            if isdefined(inputs.participants_file) else None
        if isdefined(inputs.map_contrasts):
            design = pooled_design(list(zip(inputs.subjects, inputs.map_contrasts,
                                            strict=True)), json.loads(inputs.design_columns))
        else:
            design = group_design(list(inputs.subjects), inputs.model, participants,
                              group_column=inputs.group_column
                              if isdefined(inputs.group_column) else None,
                              covariates=list(inputs.covariates)
                              if isdefined(inputs.covariates) else (),
                              demean=inputs.demean,
                              transformations=json.loads(inputs.transformations)
                              if isdefined(inputs.transformations) else (),
                              intercept=inputs.intercept)
        subjects = [f"sub-{label}" for label in design.index]
        stat_type = "t" if isinstance(inputs.contrast, str) else "F"
        maps_in = list(inputs.effect_maps)
        names = [f"{path} (the effect map of {subject})"
                 for path, subject in zip(maps_in, subjects, strict=True)]
        if isdefined(inputs.map_contrasts):  # a row per (subject, contrast) map
            subjects = [f"sub-{s}_contrast-{c}" for s, c in zip(inputs.subjects,
                                                                inputs.map_contrasts, strict=True)]
            names = [f"{path} (the map of contrast {contrast} of sub-{subject})"
                     for path, subject, contrast in zip(maps_in, inputs.subjects,
                                                        inputs.map_contrasts, strict=True)]
        if inputs.model == "paired":
            names = [f"{a} - {b} (the difference of {subject})" for a, b, subject in
                     zip(inputs.effect_maps, inputs.paired_maps, subjects, strict=True)]
            maps_in = []
            for index, image in enumerate(difference_images(inputs.effect_maps,
                                                            inputs.paired_maps)):
                maps_in.append(os.path.join(runtime.cwd, f"difference_{index:04d}.nii.gz"))
                save_image(image, maps_in[-1])
        mixed = isdefined(inputs.estimator) and inputs.estimator == "mixed"
        with threadpool_limits(limits=1):
            if mixed:
                maps = fit_group_mixed(maps_in, inputs.variance_maps, design,
                                       inputs.mask_file, inputs.contrast, names,
                                       [f"{path} (the variance map of {subject})" for path,
                                        subject in zip(inputs.variance_maps, subjects,
                                                       strict=True)])
                self._results["tau2_map"] = os.path.join(runtime.cwd, "tau2.nii.gz")
                save_image(maps["tau2"], self._results["tau2_map"])
            else:
                maps = fit_group(maps_in, design, inputs.mask_file, inputs.contrast, names)
        for key in CONTRAST_MAPS:
            self._results[key] = os.path.join(runtime.cwd, f"{key}.nii.gz")
            save_image(maps[key], self._results[key])
        group_mask = maps["mask"]
        non_finite = list(group_mask.non_finite)
        if mixed:  # a subject's effect and variance maps: its voxels left out of either
            half = len(non_finite) // 2
            non_finite = [a + b for a, b in zip(non_finite[:half], non_finite[half:],
                                                strict=True)]
        self._results["mask_file"] = os.path.join(runtime.cwd, "mask.nii.gz")
        save_image(group_mask.img, self._results["mask_file"])
        self._results["input_maps"] = maps_in
        self._results["design_file"] = os.path.join(runtime.cwd, "design.tsv")
        save_group_design(design, self._results["design_file"])
        self._results["design_figure"] = os.path.join(runtime.cwd, "design.png")
        plot_design(design, self._results["design_figure"])
        self._results["design_json"] = os.path.join(runtime.cwd, "design.json")
        with open(self._results["design_json"], "w") as handle:
            json.dump({"GroupModel": inputs.model, "Subjects": list(inputs.subjects),
                       "Columns": [str(c) for c in design.columns],
                       "GroupColumn": inputs.group_column
                       if isdefined(inputs.group_column) else None,
                       "Covariates": list(inputs.covariates)
                       if isdefined(inputs.covariates) else [],
                       "DemeanCovariates": inputs.demean}, handle, indent=2)
        self._results["contrast_json"] = os.path.join(runtime.cwd, "contrast.json")
        with open(self._results["contrast_json"], "w") as handle:
            json.dump({"ContrastName": inputs.contrast_name, "StatisticType": stat_type,
                       "FirstLevelContrast": inputs.first_level_contrast,
                       "GroupContrast": inputs.contrast, "GroupModel": inputs.model,
                       "Subjects": list(inputs.subjects),
                       "DegreesOfFreedom": int(len(design) - np.linalg.matrix_rank(design)),
                       "MaskVoxels": group_mask.n_voxels,
                       "SubjectMasksVoxels": group_mask.n_given,
                       "NonFiniteVoxels": {subject: count for subject, count in
                                           zip(subjects, non_finite, strict=True)
                                           if count},
                       **({"GroupEstimator": "mixed",
                           "EffectiveDegreesOfFreedom": {
                               "Description": "per voxel, the weights' effective number of "
                                              "subjects less the design's columns",
                               "Min": float(np.min(maps["dof"])),
                               "Median": float(np.median(maps["dof"])),
                               "Max": float(np.max(maps["dof"]))},
                           "Method": "mixed effects: between-subject variance by REML from "
                                     "the effect and first-level variance maps, Knapp-Hartung "
                                     "statistic (glm_workflows.core.mixed_effects)"} if mixed
                          else {"Method": "nilearn.glm.second_level.SecondLevelModel"})},
                      handle, indent=2)
        return runtime


class _PermutationInputSpec(BaseInterfaceInputSpec):
    input_maps = traits.List(File(exists=True), mandatory=True,
                             desc="the maps modelled (GroupModel's input_maps)")
    design_file = File(exists=True, mandatory=True, desc="GroupModel's design TSV")
    mask_file = File(exists=True, mandatory=True, desc="GroupModel's mask (the voxels fitted)")
    contrast = traits.Str(mandatory=True, desc="expression over the design's columns")
    n_perm = traits.Int(mandatory=True, desc="permutations of the whole analysis")
    seed = traits.Int(mandatory=True, desc="random seed (nilearn's random_state)")
    two_sided = traits.Bool(False, usedefault=True, desc="test |t|")
    cluster_forming_p = traits.Float(desc="cluster-forming threshold (p): adds cluster size "
                                          "and mass inference")
    tfce = traits.Bool(False, usedefault=True, desc="adds TFCE inference")
    blocks = traits.List(traits.Int, desc="exchangeability blocks, per design row: the "
                                          "permutations respect them (undefined: none)")
    whole_blocks = traits.Bool(desc="with blocks: shuffle whole blocks (undefined: within)")
    # No default: undefined (volumes), the node's hash and outputs as before.
    layout_file = File(exists=True, desc="surface maps' layout JSON: clusters and TFCE on "
                                         "the mesh (fsaverage5)")


class _PermutationChunkInputSpec(_PermutationInputSpec):
    start = traits.Int(mandatory=True, desc="first permutation of this chunk")
    stop = traits.Int(mandatory=True, desc="one past its last permutation")


class _PermutationChunkOutputSpec(TraitedSpec):
    chunk_file = File(exists=True, desc="NPZ: the chunk's null maxima per permutation")


class PermutationChunk(SimpleInterface):
    """Permutations ``start..stop-1`` of a group contrast's sign-flip or shuffle sequence
    (the one nilearn's ``non_parametric_inference(n_jobs=1, random_state=seed)`` draws):
    their null maxima, for :class:`CombinePermutations`."""

    input_spec = _PermutationChunkInputSpec
    output_spec = _PermutationChunkOutputSpec

    def _run_interface(self, runtime):
        args, kwargs = permutation_args(self.inputs)
        with threadpool_limits(limits=1):  # exact replay needs the reference's BLAS threads
            null = permutation_chunk(*args, seed=self.inputs.seed, start=self.inputs.start,
                                     stop=self.inputs.stop, **kwargs,
                                     **block_args(self.inputs))
        self._results["chunk_file"] = os.path.join(runtime.cwd, "null.npz")
        np.savez(self._results["chunk_file"], **null)
        return runtime


class _CombinePermutationsInputSpec(_PermutationInputSpec):
    chunk_files = traits.List(File(exists=True), mandatory=True,
                              desc="every PermutationChunk's null maxima")


class _CombinePermutationsOutputSpec(TraitedSpec):
    logp_max_t = File(exists=True, desc="-log10 voxel-level FWE p (max statistic)")
    logp_max_size = File(exists=True, desc="-log10 cluster-size FWE p")
    logp_max_mass = File(exists=True, desc="-log10 cluster-mass FWE p")
    logp_max_tfce = File(exists=True, desc="-log10 TFCE FWE p")
    null_figure = File(exists=True, desc="PNG: null distribution of the max statistic, with "
                                         "its 5 % threshold")
    permutation_json = File(exists=True, desc="JSON: permutations, seed, chunks, thresholds")


class CombinePermutations(SimpleInterface):
    """Permutation inference of a group contrast from its chunks: nilearn's
    ``non_parametric_inference`` maps, whatever the split."""

    input_spec = _CombinePermutationsInputSpec
    output_spec = _CombinePermutationsOutputSpec

    def _run_interface(self, runtime):
        from glm_workflows.core.figures import plot_null_distribution

        args, kwargs = permutation_args(self.inputs)
        chunks = []
        for path in self.inputs.chunk_files:
            with np.load(path) as data:
                chunks.append({key: data[key] for key in data.files})
        chunks.sort(key=lambda chunk: int(chunk["start"]))
        with threadpool_limits(limits=1):
            maps = combine_permutations(*args, chunks, **kwargs)
        for key in LOGP_MAPS:
            if key in maps:
                self._results[key] = os.path.join(runtime.cwd, f"{key}.nii.gz")
                save_image(maps[key], self._results[key])
        max_t = np.concatenate([chunk["max_t"] for chunk in chunks])
        threshold = float(np.quantile(max_t, 0.95))
        self._results["null_figure"] = os.path.join(runtime.cwd, "null.png")
        plot_null_distribution(max_t, threshold, self._results["null_figure"])
        self._results["permutation_json"] = os.path.join(runtime.cwd, "permutations.json")
        with open(self._results["permutation_json"], "w") as handle:
            json.dump({"Permutations": self.inputs.n_perm, "Seed": self.inputs.seed,
                       "Chunks": [[int(c["start"]), int(c["stop"])] for c in chunks],
                       "TwoSided": self.inputs.two_sided,
                       "ClusterFormingP": kwargs["threshold"], "TFCE": self.inputs.tfce,
                       "MaxStatisticThreshold5Percent": threshold,
                       **permutation_record(self.inputs, kwargs)},
                      handle, indent=2)
        return runtime


class _GroupSinkInputSpec(BaseInterfaceInputSpec):
    output_dir = traits.Str(mandatory=True, desc="derivatives root (outputs go to group/)")
    task = traits.Str(mandatory=True, desc="task label")
    contrast = traits.Str(mandatory=True, desc="the first-level contrast")
    group_contrast = traits.Str(desc="the group contrast's name; undefined for the group mean "
                                     "(the outputs keep the first-level contrast's name)")
    stat_type = traits.Enum("t", "F", usedefault=True, desc="the group contrast's statistic")
    node = traits.Str(desc="the Dataset node's label (a model's Dataset nodes after its "
                           "first); undefined: the first's")
    space = traits.Str(desc="the space of the subjects' maps (fMRIPrep's space-); undefined "
                            "when not known")
    template_entities = traits.Dict(traits.Str, traits.Str,
                                    desc="the maps' other template entities (cohort, res, "
                                         "den -> label), after the space in the names")
    sources = traits.List(traits.Str, desc="the subjects' maps, recorded in every sidecar")
    surface_layout = File(exists=True, desc="surface maps' layout JSON (PackSurface): each map "
                                             "written as one GIFTI per hemisphere")


for _output in GROUP_OUTPUTS:  # one optional file input per group output
    _GroupSinkInputSpec.add_class_trait(_output, File(exists=True, desc=f"the {_output} file"))


class _GroupSinkOutputSpec(TraitedSpec):
    out_files = traits.List(File(exists=True), desc="the written files")


class GroupSink(SimpleInterface):
    """Write one group contrast's outputs into ``<output_dir>/group/`` at once, named
    ``<stem>_<suffix>`` (:func:`~glm_workflows.core.naming.group_stem`)."""

    input_spec = _GroupSinkInputSpec
    output_spec = _GroupSinkOutputSpec
    _always_run = True

    def _run_interface(self, runtime):
        inputs = self.inputs
        stem = group_stem(inputs.task, inputs.contrast,
                          inputs.group_contrast if isdefined(inputs.group_contrast) else None,
                          inputs.node if isdefined(inputs.node) else None,
                          inputs.space if isdefined(inputs.space) else None,
                          **(inputs.template_entities if isdefined(inputs.template_entities)
                             else {}))
        files = {group_file(stem, output, inputs.stat_type): getattr(inputs, output)
                 for output in GROUP_OUTPUTS if isdefined(getattr(inputs, output))}
        if isdefined(inputs.surface_layout):
            files = surface_files(files, read_layout(inputs.surface_layout), runtime.cwd)
        sidecar = {"Sources": list(inputs.sources) if isdefined(inputs.sources) else [],
                   "SoftwareVersions": software_versions()}
        self._results["out_files"] = write_derivatives(files, inputs.output_dir, None,
                                                       sidecar_fields=sidecar,
                                                       folder=GROUP_FOLDER)
        return runtime
