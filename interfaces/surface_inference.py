"""Thresholds and cluster tables of surface z maps (packed), on the mesh."""

import json
import os

import nibabel as nb
import numpy as np
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from glm_workflows.core.cifti import is_cifti_layout, unpack_cifti
from glm_workflows.core.cifti_geometry import (
    CIFTI_SURFACE_MESH,
    cifti_cluster_table,
    cifti_table_sidecar,
    grayordinate_geometry,
)
from glm_workflows.core.deflate import save_image
from glm_workflows.core.mesh import geometry_for, layout_mesh_source
from glm_workflows.core.mesh_sources import where_to_put
from glm_workflows.core.naming import CONTRAST_OUTPUTS
from glm_workflows.core.surface_inference import (
    surface_cluster_table,
    surface_table_sidecar,
    threshold_surface,
)
from glm_workflows.core.surfaces import read_layout
from glm_workflows.settings import DEFAULT_INFERENCE

from ._ports import ThresholdSettingsInputSpec


def no_geometry(layout: dict) -> str:
    """Why a mesh without geometry gets no cluster extent or table (and where to put it)."""
    return (f"mesh {layout['Mesh']} not found or not of the data's vertex counts "
            f"(nilearn ships fsaverage5 only; {where_to_put(layout['Mesh'])}): no cluster "
            "extent or table")


def no_cifti_geometry() -> str:
    """Why CIFTI grayordinates without the fsLR 32k mesh get no cluster extent or table."""
    return (f"CIFTI grayordinates: their cortex mesh {CIFTI_SURFACE_MESH} was not found "
            f"({where_to_put(CIFTI_SURFACE_MESH)}): no cluster extent or table")


#: A cluster extent's units, for GIFTI meshes and CIFTI grayordinates.
EXTENT_UNITS = {False: "vertices (connected through the mesh's faces)",
                True: "grayordinates (vertices connected through the fsLR 32k mesh's faces, "
                      "voxels through their faces)"}


def _geometry(layout: dict):
    """The geometry of a layout (:func:`geometry_for`; CIFTI:
    :func:`grayordinate_geometry`), and why there is none."""
    if is_cifti_layout(layout):
        geometry = grayordinate_geometry(layout)
        return geometry, None if geometry is not None else no_cifti_geometry()
    geometry = geometry_for(layout)
    return geometry, None if geometry is not None else no_geometry(layout)


class _SurfaceThresholdInputSpec(ThresholdSettingsInputSpec):
    z_map = File(exists=True, mandatory=True, desc="a z map on the packed grid")
    mask_file = File(exists=True, mandatory=True,
                     desc="the model's mask: fdr/bonferroni correct over its vertices")
    layout_file = File(exists=True, mandatory=True, desc="the map's layout JSON")


class _SurfaceThresholdOutputSpec(TraitedSpec):
    thresholded_map = File(exists=True, desc="the packed z map, sub-threshold vertices 0")
    threshold = traits.Float(desc="the z threshold used (inf when fdr finds no discovery)")
    threshold_json = File(exists=True, desc="JSON: threshold, every setting, "
                                            "NoSurvivingVoxels, the mesh")


class SurfaceThreshold(SimpleInterface):
    """Threshold a packed surface z map by height (over the mask's vertices) and by the
    size of its clusters of connected vertices (a mesh whose files are not found: height
    only)."""

    input_spec = _SurfaceThresholdInputSpec
    output_spec = _SurfaceThresholdOutputSpec

    def _run_interface(self, runtime):
        inputs = self.inputs
        layout = read_layout(inputs.layout_file)
        geometry, why = _geometry(layout)
        z_img = nb.load(inputs.z_map)
        extent = inputs.cluster_threshold if geometry is not None else 0
        thresholded, z_threshold = threshold_surface(
            np.asanyarray(z_img.dataobj), np.asanyarray(nb.load(inputs.mask_file).dataobj),
            layout, geometry, height_control=inputs.height_control, alpha=inputs.alpha,
            threshold=inputs.threshold, cluster_threshold=extent,
            two_sided=inputs.two_sided)
        out = {"thresholded_map": os.path.join(runtime.cwd, "thresholded.nii.gz"),
               "threshold_json": os.path.join(runtime.cwd, "threshold.json")}
        save_image(nb.Nifti1Image(thresholded.astype(np.float32), z_img.affine),
                   out["thresholded_map"])
        settings = {
            "HeightControl": inputs.height_control,
            "Alpha": inputs.alpha if inputs.height_control != "none" else None,
            "Threshold": z_threshold if np.isfinite(z_threshold) else None,
            "ClusterThreshold": extent,
            "ClusterThresholdUnits": EXTENT_UNITS[is_cifti_layout(layout)],
            "TwoSided": inputs.two_sided,
            "NoSurvivingVoxels": not bool(np.any(thresholded)),
            "Mesh": layout["Mesh"],
            "MeshSource": layout_mesh_source(layout) if geometry is not None else None,
        }
        if geometry is None:
            settings["ClusterExtentNotApplied"] = why
        with open(out["threshold_json"], "w") as handle:
            json.dump(settings, handle, indent=2, allow_nan=False)
        self._results.update(out, threshold=z_threshold)
        return runtime


class _SurfaceClusterTableInputSpec(BaseInterfaceInputSpec):
    z_map = File(exists=True, mandatory=True, desc="SurfaceThreshold's thresholded map")
    layout_file = File(exists=True, mandatory=True, desc="the map's layout JSON")
    min_cluster_size = traits.Int(DEFAULT_INFERENCE.table_min_cluster_size, usedefault=True,
                                  desc="clusters of fewer vertices are left out")
    two_sided = traits.Bool(DEFAULT_INFERENCE.two_sided, usedefault=True,
                            desc="report negative clusters too")
    space = traits.Str(desc="the maps' space (fMRIPrep's space-), for the sidecar")


class _SurfaceClusterTableOutputSpec(TraitedSpec):
    table = File(exists=True, desc="TSV: Cluster ID, Hemisphere, Peak Vertex, Peak Stat, "
                                   "Cluster Size (vertices), Cluster Area (mm2)")
    table_json = File(exists=True, desc="JSON sidecar of the table")


class SurfaceClusterTable(SimpleInterface):
    """The clusters of connected vertices of a thresholded surface map, their peaks, sizes
    and areas (CIFTI: of connected grayordinates, their areas or volumes; a mesh whose
    files are not found: a table without rows, its sidecar says why)."""

    input_spec = _SurfaceClusterTableInputSpec
    output_spec = _SurfaceClusterTableOutputSpec

    def _run_interface(self, runtime):
        inputs = self.inputs
        layout = read_layout(inputs.layout_file)
        geometry, why = _geometry(layout)
        values = np.asanyarray(nb.load(inputs.z_map).dataobj)
        space = inputs.space if isdefined(inputs.space) else layout["Mesh"]
        if is_cifti_layout(layout):
            table = cifti_cluster_table(unpack_cifti(values, layout), geometry,
                                        min_cluster_size=inputs.min_cluster_size,
                                        two_sided=inputs.two_sided)
            sidecar = cifti_table_sidecar(table, space)
        else:
            table = surface_cluster_table(values, layout, geometry,
                                          min_cluster_size=inputs.min_cluster_size,
                                          two_sided=inputs.two_sided)
            sidecar = surface_table_sidecar(table, space)
        if geometry is None:
            sidecar["ClustersNotComputed"] = why
            sidecar.pop("AreaSurface")
        else:
            sidecar["MeshSource"] = layout_mesh_source(layout)
        out = {"table": os.path.join(runtime.cwd, CONTRAST_OUTPUTS["cluster_tables"]),
               "table_json": os.path.join(runtime.cwd, CONTRAST_OUTPUTS["cluster_jsons"])}
        table.to_csv(out["table"], sep="\t", index=False, na_rep="n/a")
        with open(out["table_json"], "w") as handle:
            json.dump(sidecar, handle, indent=2, allow_nan=False)
        self._results.update(out)
        return runtime
