"""Nipype interfaces of glm-workflows: thin shells over :mod:`glm_workflows.core`.

Each interface loads its input files, calls one core function and writes its
outputs in the node's working directory.
"""

from .derivatives import DerivativesSink
from .design import DesignMatrix
from .fixed_effects import CombineRunImages, FixedEffects
from .glm import EstimateContrast, FitGLM
from .group import CombinePermutations, GroupModel, GroupSink, PermutationChunk
from .images import ConcatenateImages, MeanImage
from .inference import ClusterTable, ThresholdMap
from .surface_inference import SurfaceClusterTable, SurfaceThreshold
from .surfaces import PackSurface, PackSurfaceMap, SurfaceFigure

__all__ = [
    "ClusterTable",
    "CombinePermutations",
    "CombineRunImages",
    "ConcatenateImages",
    "DerivativesSink",
    "DesignMatrix",
    "EstimateContrast",
    "FixedEffects",
    "FitGLM",
    "GroupModel",
    "GroupSink",
    "MeanImage",
    "PackSurface",
    "PackSurfaceMap",
    "PermutationChunk",
    "SurfaceClusterTable",
    "SurfaceFigure",
    "SurfaceThreshold",
    "ThresholdMap",
]
