"""Thresholding of z maps and cluster tables."""

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

from glm_workflows.core.deflate import save_image
from glm_workflows.core.figures import (
    in_memory_image,
    plot_orthogonal_view,
    plot_thresholded_map,
)
from glm_workflows.core.inference import (
    cluster_table,
    has_surviving_voxels,
    label_cluster_table,
    threshold_map,
)
from glm_workflows.core.naming import CONTRAST_OUTPUTS
from glm_workflows.settings import DEFAULT_INFERENCE

from ._ports import ThresholdSettingsInputSpec


class _ThresholdMapInputSpec(ThresholdSettingsInputSpec):
    z_map = File(exists=True, mandatory=True, desc="3D z map")
    mask_file = File(exists=True, desc="voxels over which fdr/bonferroni correct")
    bg_file = File(exists=True, desc="background for the figure (the mean image)")
    title = traits.Str("", usedefault=True, desc="figure title")


class _ThresholdMapOutputSpec(TraitedSpec):
    thresholded_map = File(exists=True, desc="z map with sub-threshold voxels set to 0 "
                                             "(all zeros when nothing survives)")
    threshold = traits.Float(desc="the z threshold used (inf when fdr finds no discovery)")
    threshold_json = File(exists=True, desc="JSON: threshold value (null if not finite), "
                                            "every setting and NoSurvivingVoxels")
    figure = File(exists=True, desc="PNG: 3 axial cuts of the thresholded map over the mean "
                                    "(one-sided: red-yellow from the threshold; two-sided: "
                                    "also blue-light blue below minus it)")
    ortho_figure = File(exists=True, desc="PNG: orthogonal cuts through the map's peak "
                                          "(the mask's centre if none) over the mean")


class ThresholdMap(SimpleInterface):
    """Threshold a z map by height (fpr/fdr/bonferroni/fixed) and cluster size."""

    input_spec = _ThresholdMapInputSpec
    output_spec = _ThresholdMapOutputSpec

    def _run_interface(self, runtime):
        inputs = self.inputs
        thresholded, z_threshold = threshold_map(
            inputs.z_map,
            mask_img=inputs.mask_file if isdefined(inputs.mask_file) else None,
            height_control=inputs.height_control,
            alpha=inputs.alpha,
            threshold=inputs.threshold,
            cluster_threshold=inputs.cluster_threshold,
            two_sided=inputs.two_sided,
        )
        out = {key: os.path.join(runtime.cwd, name) for key, name in (
            ("thresholded_map", "thresholded.nii.gz"), ("threshold_json", "threshold.json"),
            ("figure", "thresholded.png"), ("ortho_figure", "thresholded_ortho.png"))}
        save_image(thresholded, out["thresholded_map"])
        survives = has_surviving_voxels(thresholded)
        settings = {
            "HeightControl": inputs.height_control,
            "Alpha": inputs.alpha if inputs.height_control != "none" else None,
            "Threshold": z_threshold if np.isfinite(z_threshold) else None,
            "ClusterThreshold": inputs.cluster_threshold,
            "TwoSided": inputs.two_sided,
            "NoSurvivingVoxels": not survives,
        }
        with open(out["threshold_json"], "w") as handle:
            json.dump(settings, handle, indent=2, allow_nan=False)
        background = in_memory_image(inputs.bg_file) if isdefined(inputs.bg_file) else None
        mask = inputs.mask_file if isdefined(inputs.mask_file) else None
        title = _figure_title(inputs.title, inputs.height_control, z_threshold, survives,
                              inputs.two_sided)
        plot_thresholded_map(thresholded, background, z_threshold, title, out["figure"],
                             centre_img=mask, two_sided=inputs.two_sided)
        plot_orthogonal_view(thresholded, background, z_threshold, title, out["ortho_figure"],
                             centre_img=mask, two_sided=inputs.two_sided)
        self._results.update(out, threshold=z_threshold)
        return runtime


def _figure_title(name: str, height_control: str, z_threshold: float, survives: bool,
                  two_sided: bool = False) -> str:
    """E.g. ``"c (fdr, z > 2.93)"`` (``|z| > 2.93`` when ``two_sided``), ``"c (fdr: no voxel
    survives)"`` when fdr found no discovery, ``"c (bonferroni, z > 7.41: no voxel
    survives)"``."""
    how = height_control
    if np.isfinite(z_threshold):
        how += f", {'|z|' if two_sided else 'z'} > {z_threshold:.2f}"
    if not survives:
        how += ": no voxel survives"
    return f"{name} ({how})".strip()


class _ClusterTableInputSpec(BaseInterfaceInputSpec):
    z_map = File(exists=True, mandatory=True,
                 desc="3D z map: ThresholdMap's thresholded map, so that the table lists the "
                      "clusters that survived its cluster extent")
    stat_threshold = traits.Float(mandatory=True,
                                  desc="height threshold (z); inf gives a table without rows")
    min_cluster_size = traits.Int(DEFAULT_INFERENCE.table_min_cluster_size, usedefault=True,
                                  desc="clusters smaller than this many voxels are left out")
    two_sided = traits.Bool(DEFAULT_INFERENCE.two_sided, usedefault=True,
                            desc="report negative clusters too")
    # No default: undefined (the space not known), the node's hash and outputs are those
    # of a table without it.
    space = traits.Str(desc="the map's space (fMRIPrep's space-), if known: an adult MNI152 "
                            "template adds the peaks' AAL3 regions; any known space writes "
                            "the table's sidecar")


class _ClusterTableOutputSpec(TraitedSpec):
    table = File(exists=True, desc="TSV: Cluster ID, X, Y, Z (mm), Peak Stat, "
                                   "Cluster Size (mm3) [, Region (AAL3)]")
    table_json = File(exists=True, desc="JSON sidecar of the table (only when 'space' is "
                                        "defined): its columns, and the atlas or why none")


class ClusterTable(SimpleInterface):
    """Table of clusters and peaks above a threshold (nilearn's get_clusters_table); with
    ``space``, the peaks' AAL3 regions (adult MNI152 templates) and a JSON sidecar."""

    input_spec = _ClusterTableInputSpec
    output_spec = _ClusterTableOutputSpec

    def _run_interface(self, runtime):
        table = cluster_table(self.inputs.z_map, self.inputs.stat_threshold,
                              min_cluster_size=self.inputs.min_cluster_size,
                              two_sided=self.inputs.two_sided)
        if isdefined(self.inputs.space):
            table, sidecar = label_cluster_table(table, self.inputs.space)
            self._results["table_json"] = os.path.join(runtime.cwd,
                                                       CONTRAST_OUTPUTS["cluster_jsons"])
            with open(self._results["table_json"], "w") as handle:
                json.dump(sidecar, handle, indent=2, allow_nan=False)
        self._results["table"] = os.path.join(runtime.cwd, CONTRAST_OUTPUTS["cluster_tables"])
        table.to_csv(self._results["table"], sep="\t", index=False)
        return runtime
