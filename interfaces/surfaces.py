"""Pack a surface run (fMRIPrep's GIFTI hemisphere pair) into one image, with its mask and
layout (:mod:`glm_workflows.core.surfaces`)."""

import json
import os

import nibabel as nb
import numpy as np
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    InputMultiObject,
    SimpleInterface,
    TraitedSpec,
    isdefined,
    traits,
)

from glm_workflows.core.cifti import is_cifti_file, is_cifti_layout, pack_cifti_map
from glm_workflows.core.cifti_geometry import CIFTI_SURFACE_MESH, cortex_on_mesh
from glm_workflows.core.deflate import save_image
from glm_workflows.core.mesh_sources import find_mesh
from glm_workflows.core.surface_figures import plot_surface_map
from glm_workflows.core.surfaces import (
    other_hemisphere_file,
    pack_map,
    pack_surface,
    read_layout,
)


def _json_format(layout: dict) -> dict:
    """How a layout JSON is written: indented, but a CIFTI one (its brain models' vertex
    and voxel lists: 91k grayordinates) compact."""
    return {"separators": (",", ":")} if is_cifti_layout(layout) else {"indent": 2}


class _PackSurfaceInputSpec(BaseInterfaceInputSpec):
    in_files = InputMultiObject(File(exists=True), mandatory=True,
                                desc="the run's left and right hemispheres (GIFTI), in order")
    mesh = traits.Str(mandatory=True, desc="the mesh: fMRIPrep's space (and den-) label")
    templateflow_home = traits.Str(desc="a TemplateFlow home searched for the mesh's files")


class _PackSurfaceOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="4D NIfTI-1 image: the vertices packed, then time")
    mask_file = File(exists=True, desc="the vertices with finite, non-constant data")
    layout_file = File(exists=True, desc="JSON: mesh, hemispheres, vertex counts, packing")


class PackSurface(SimpleInterface):
    """A GIFTI hemisphere pair as one packed 4D image, its mask and layout JSON."""

    input_spec = _PackSurfaceInputSpec
    output_spec = _PackSurfaceOutputSpec

    def _run_interface(self, runtime):
        img, mask, layout = pack_surface(list(self.inputs.in_files), self.inputs.mesh)
        out = {"out_file": os.path.join(runtime.cwd, "bold.nii"),
               "mask_file": os.path.join(runtime.cwd, "mask.nii.gz"),
               "layout_file": os.path.join(runtime.cwd, "surface.json")}
        save_image(img, out["out_file"])
        save_image(nb.Nifti1Image(mask.astype(np.uint8), img.affine), out["mask_file"])
        _write_layout(layout, self.inputs.templateflow_home, out["layout_file"])
        self._results.update(out)
        return runtime


class _PackSurfaceMapInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True,
                   desc="a map's left-hemisphere GIFTI file (hemi-L; hemi-R beside it), or "
                        "a CIFTI dense scalar map (.dscalar.nii)")
    mesh = traits.Str(mandatory=True, desc="the mesh: the maps' space (and den-) label")
    templateflow_home = traits.Str(desc="a TemplateFlow home searched for the mesh's files")


class _PackSurfaceMapOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="3D NIfTI-1 image: the map on the packed grid")
    layout_file = File(exists=True, desc="JSON: mesh, hemispheres, vertex counts, packing")


class PackSurfaceMap(SimpleInterface):
    """A map written per hemisphere (GIFTI) packed back into one image, with its layout
    (the group level read from an output folder)."""

    input_spec = _PackSurfaceMapInputSpec
    output_spec = _PackSurfaceMapOutputSpec

    def _run_interface(self, runtime):
        if is_cifti_file(self.inputs.in_file):  # a CIFTI map: its grayordinates
            img, layout = pack_cifti_map(self.inputs.in_file)
        else:
            paths = [self.inputs.in_file, other_hemisphere_file(self.inputs.in_file)]
            img, layout = pack_map(paths, self.inputs.mesh)
        out = {"out_file": os.path.join(runtime.cwd, "map.nii.gz"),
               "layout_file": os.path.join(runtime.cwd, "surface.json")}
        save_image(img, out["out_file"])
        _write_layout(layout, self.inputs.templateflow_home, out["layout_file"])
        self._results.update(out)
        return runtime


def _write_layout(layout: dict, templateflow_home, path) -> None:
    """The layout JSON, with its mesh's files (``MeshSource``) when a source has them:
    every later node (clusters, permutations, figures) reads those files."""
    home = templateflow_home if isdefined(templateflow_home) and templateflow_home else None
    # CIFTI: the fsLR 32k mesh of the cortex vertices
    found = find_mesh(CIFTI_SURFACE_MESH if is_cifti_layout(layout) else layout["Mesh"], home)
    if found is not None:
        layout = dict(layout, MeshSource=found.describe())
    with open(path, "w") as stream:
        json.dump(layout, stream, **_json_format(layout))


class _SurfaceFigureInputSpec(BaseInterfaceInputSpec):
    z_map = File(exists=True, mandatory=True, desc="a z map on the packed grid")
    layout_file = File(exists=True, mandatory=True, desc="its layout JSON")
    title = traits.Str("", usedefault=True, desc="figure title (the contrast's name)")
    threshold_json = File(exists=True, desc="a thresholded map's sidecar: its Threshold is "
                                            "the figure's (undefined: the map unthresholded)")


class _SurfaceFigureOutputSpec(TraitedSpec):
    figure = File(exists=True, desc="PNG: the map on the mesh, lateral and medial views of "
                                    "both hemispheres (undefined when no source has the "
                                    "mesh)")


class SurfaceFigure(SimpleInterface):
    """A surface z map (or thresholded z map) drawn on its mesh, lateral and medial views
    of both hemispheres (CIFTI grayordinates: their cortex on the fsLR 32k mesh, when a
    source has it)."""

    input_spec = _SurfaceFigureInputSpec
    output_spec = _SurfaceFigureOutputSpec

    def _run_interface(self, runtime):
        out_file = os.path.join(runtime.cwd, "surface.png")
        values = np.asanyarray(nb.load(self.inputs.z_map).dataobj)
        layout = read_layout(self.inputs.layout_file)
        threshold, title = None, self.inputs.title
        if isdefined(self.inputs.threshold_json):
            with open(self.inputs.threshold_json) as stream:
                settings = json.load(stream)
            # no survivor (fdr without discovery): nothing above any positive threshold
            threshold = settings["Threshold"] if settings["Threshold"] is not None else 1e-6
            line = f"{'|z|' if settings.get('TwoSided') else 'z'} >= {threshold:.3g}"
            title = f"{title}, {line}" if title else line
        if is_cifti_layout(layout):  # the cortex on the fsLR 32k mesh, if found
            spread = cortex_on_mesh(values, layout)
            if spread is None:
                return runtime
            values, layout = spread
        if plot_surface_map(values, layout, title, out_file, threshold=threshold):
            self._results["figure"] = out_file
        return runtime
