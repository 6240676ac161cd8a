"""The folded NIfTI-1 grid that surface runs (GIFTI hemisphere pairs,
:mod:`glm_workflows.core.surfaces`) and CIFTI grayordinates (:mod:`glm_workflows.core.cifti`)
travel on, and their default mask.

``n`` values (vertices, grayordinates) are packed as a NIfTI-1 image of shape ``(a, b, 1)``
(``+ (T,)``) with ``b = ceil(n / 32767)`` and ``a = ceil(n / b)``, so that no axis exceeds
NIfTI-1's 32767, the values in storage (Fortran) order and the ``a * b - n`` padding zero.
"""

from __future__ import annotations

import math

import numpy as np

#: The largest size of a NIfTI-1 axis.
NIFTI1_MAX_DIM = 32767


def folded_shape(n_vertices: int) -> tuple[int, int, int]:
    """The 3-D shape a run of ``n_vertices`` vertices is packed in (module docstring)."""
    columns = max(1, math.ceil(n_vertices / NIFTI1_MAX_DIM))
    return math.ceil(n_vertices / columns), columns, 1


def surface_mask(data: np.ndarray) -> np.ndarray:
    """Vertices whose data are finite and not constant over time.

    nilearn's ``SurfaceMasker`` keeps every vertex by default; fMRIPrep fills the medial
    wall with data, so this mask differs from it only at vertices whose series is constant
    (zero-filled, or the packing's padding) or has a non-finite sample.
    """
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(data).all(axis=-1)
        varies = np.ptp(np.where(np.isfinite(data), data, 0), axis=-1) > 0
    return finite & varies
