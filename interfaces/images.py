"""Concatenate 3D/4D scans into one 4D image; average a 4D image over time."""

import os

import nibabel as nb
from nipype.interfaces.base import (
    BaseInterfaceInputSpec,
    File,
    InputMultiObject,
    SimpleInterface,
    TraitedSpec,
)

from glm_workflows.core.deflate import save_image
from glm_workflows.core.images import MEAN_IMAGE_FILE, concatenate_images, mean_image


class _ConcatenateImagesInputSpec(BaseInterfaceInputSpec):
    in_files = InputMultiObject(
        File(exists=True), mandatory=True,
        desc="3D or 4D images (NIfTI, NIfTI-pair/Analyze, gzipped or not), in acquisition order",
    )


class _ConcatenateImagesOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="4D NIfTI image, volumes in the order given")


class ConcatenateImages(SimpleInterface):
    """Concatenate images on one grid into a 4D NIfTI; refuses mismatched shapes or affines."""

    input_spec = _ConcatenateImagesInputSpec
    output_spec = _ConcatenateImagesOutputSpec

    def _run_interface(self, runtime):
        out_file = os.path.join(runtime.cwd, "bold.nii")
        save_image(concatenate_images(self.inputs.in_files), out_file)
        self._results["out_file"] = out_file
        return runtime


class _MeanImageInputSpec(BaseInterfaceInputSpec):
    in_file = File(exists=True, mandatory=True, desc="4D image")


class _MeanImageOutputSpec(TraitedSpec):
    out_file = File(exists=True, desc="3D float32 image: the mean over time")


class MeanImage(SimpleInterface):
    """Mean over time of a 4D image."""

    input_spec = _MeanImageInputSpec
    output_spec = _MeanImageOutputSpec

    def _run_interface(self, runtime):
        out_file = os.path.join(runtime.cwd, MEAN_IMAGE_FILE)
        save_image(mean_image(nb.load(self.inputs.in_file)), out_file)
        self._results["out_file"] = out_file
        return runtime
