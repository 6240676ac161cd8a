"""The spatial statistics of permutation inference on the mesh: clusters of connected
vertices (size and mass, as nilearn's ``calculate_cluster_measures`` defines them on a
grid) and TFCE on the mesh.

The group model's maps travel packed (:mod:`glm_workflows.core.surfaces`); permutations
index the masked vertices in the order of the packed mask's masker (C order over the
packed grid). :class:`MeshSpace` maps them to the vertices of each hemisphere and keeps
the mesh's adjacency restricted to them, so a cluster never crosses the mask's edge
(as a volume cluster never leaves nilearn's mask) nor the two hemispheres.

TFCE (Smith & Nichols 2009, NeuroImage 44:83) on the mesh: the score of a vertex is
``sum over h of e(h)^E * h^H`` over the heights ``h`` (100 equal steps from the map's
maximum / 100 to its maximum, as nilearn's volume TFCE with ``dh='auto'``; no ``dh``
factor, as nilearn) at which the vertex is in a cluster of extent ``e(h)`` vertices;
``E = 1, H = 2``, the values Smith & Nichols recommend for surfaces (nilearn's volume
TFCE uses ``E = 0.5``). The extent counts vertices (as cluster sizes do), not areas.
"""

from __future__ import annotations

import numpy as np

from .cifti import is_cifti_layout
from .cifti_geometry import CIFTI_SURFACE_MESH, grayordinate_geometry
from .errors import InputError
from .mesh import geometry_for, label_clusters

#: TFCE's extent and height exponents on the mesh, and its number of height steps.
TFCE_E, TFCE_H, TFCE_STEPS = 1.0, 2.0, 100

#: TFCE's extent exponent at the voxels of CIFTI grayordinates (a volume's).
TFCE_E_VOXELS = 0.5


class MeshSpace:
    """The masked values of a packed mask and their adjacency: the mesh's edges between
    masked vertices (never across the hemispheres), or for CIFTI grayordinates their graph
    (:func:`~.cifti_geometry.grayordinate_geometry`).

    Parameters
    ----------
    mask : ndarray of bool, shape ``PackedShape``
        The group mask on the packed grid (the permutations' masker's).
    layout : dict
        :func:`~glm_workflows.core.surfaces.surface_layout`.

    Raises
    ------
    InputError
        When the mesh has no geometry (:func:`~.mesh.geometry_for`).
    """

    def __init__(self, mask: np.ndarray, layout: dict):
        mask = np.asarray(mask) != 0
        # the packed (vertex) index of each masked value, in the masker's (C) order
        packed = np.ravel_multi_index(np.nonzero(mask), mask.shape, order="F")
        if is_cifti_layout(layout):
            geometry = grayordinate_geometry(layout)
            if geometry is None:
                raise InputError(f"CIFTI grayordinates: their cortex mesh {CIFTI_SURFACE_MESH} "
                                 "was not found (docs/surfaces.md, Mesh sources), so no cluster "
                                 "or TFCE permutation inference")
            adjacency = geometry.adjacency
        else:
            geometry = geometry_for(layout)
            if geometry is None:
                raise InputError(f"mesh {layout['Mesh']}: no geometry (its mesh files were not "
                                 "found: docs/surfaces.md, Mesh sources), so no cluster or TFCE "
                                 "permutation inference")
            from scipy import sparse

            adjacency = sparse.block_diag([geometry[hemi].adjacency
                                           for hemi in layout["Hemispheres"]], format="csr")
        self.graph = adjacency[packed][:, packed].tocsr()
        #: TFCE's extent exponent: one, or one per value (CIFTI: a voxel's is a volume's)
        self.extent_exponent = (np.where(geometry.is_voxel[packed], TFCE_E_VOXELS, TFCE_E)
                                if is_cifti_layout(layout) else TFCE_E)

    @classmethod
    def from_graph(cls, graph) -> MeshSpace:
        """A space whose values are ``graph``'s vertices (every one masked)."""
        space = cls.__new__(cls)
        space.graph, space.extent_exponent = graph.tocsr(), TFCE_E
        return space

    @property
    def n_values(self) -> int:
        return self.graph.shape[0]

    def cluster_sizes(self, supra: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The supra-threshold values and the size of the cluster each belongs to.

        Returns
        -------
        index : ndarray of int
            The positions of the supra-threshold values.
        sizes : ndarray of int, shape (index.size,)
        """
        from scipy.sparse.csgraph import connected_components

        index = np.flatnonzero(supra)
        _, labels = connected_components(self.graph[index][:, index], directed=False)
        return index, np.bincount(labels)[labels]

    def label(self, supra: np.ndarray, offset: int = 0) -> tuple[np.ndarray, int]:
        """Clusters of connected supra-threshold values, numbered from ``offset + 1`` in
        the order of their first value (:func:`~.mesh.label_clusters`).

        Returns
        -------
        labels : ndarray of int, shape (n_values,)
            0 outside ``supra``.
        n_clusters : int
            The largest label (0 without a cluster).
        """
        labels, _ = label_clusters(supra, self.graph)
        labels = np.where(labels > 0, labels + offset, 0)
        return labels, int(labels.max(initial=0))


def signed_clusters(values: np.ndarray, space: MeshSpace, threshold: float,
                    two_sided: bool) -> np.ndarray:
    """Cluster labels of the values above ``threshold`` (and, two-sided, below minus it,
    numbered after the positive ones), as nilearn's ``calculate_cluster_measures``
    (strictly above)."""
    labels, n_positive = space.label(values > threshold)
    if two_sided:
        negative, _ = space.label(values < -threshold, offset=n_positive)
        labels = labels + negative
    return labels


def cluster_measures(values: np.ndarray, space: MeshSpace, threshold: float,
                     two_sided: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each cluster's size (vertices) and mass (sum of ``|t| - threshold``).

    Returns
    -------
    labels : ndarray of int, shape (n_values,)
    sizes, masses : ndarray, shape (n_clusters + 1,)
        Index 0 is the background (0).
    """
    labels = signed_clusters(values, space, threshold, two_sided)
    sizes = np.bincount(labels)
    excess = np.where(labels > 0, np.abs(values) - threshold, 0.0)
    masses = np.bincount(labels, weights=excess, minlength=sizes.size)
    sizes[0], masses[0] = 0, 0.0
    return labels, sizes, masses


def cluster_max(values: np.ndarray, space: MeshSpace, threshold: float,
                two_sided: bool) -> tuple[int, float]:
    """The largest cluster size and mass of one map (0, 0 without a cluster)."""
    _, sizes, masses = cluster_measures(values, space, threshold, two_sided)
    return int(sizes.max(initial=0)), float(masses.max(initial=0.0))


def mesh_tfce(values: np.ndarray, space: MeshSpace, two_sided: bool) -> np.ndarray:
    """TFCE of one map on the mesh (module docstring), signed as the values.

    Parameters
    ----------
    values : ndarray, shape (n_values,)
        The map's masked values (t).
    space : MeshSpace
    two_sided : bool
        Negative values too (their TFCE negative), the heights from the largest ``|t|``.

    Returns
    -------
    tfce : ndarray, shape (n_values,)
    """
    values = np.asarray(values, dtype=np.float64)
    tfce = np.zeros(values.shape)
    with np.errstate(invalid="ignore"):
        top = np.nanmax(np.abs(values)) if two_sided else np.nanmax(values)
    if not top > 0:
        return tfce
    heights = np.linspace(0, top, TFCE_STEPS + 1)[1:]
    finite = np.nan_to_num(values, nan=0.0)
    for sign in ((-1, 1) if two_sided else (1,)):
        signed = finite * sign
        for height in heights:
            supra = signed >= height
            if not supra.any():
                break
            index, sizes = space.cluster_sizes(supra)
            exponent = space.extent_exponent
            exponent = exponent[index] if np.ndim(exponent) else exponent
            tfce[index] += sign * sizes.astype(np.float64) ** exponent * height ** TFCE_H
    return tfce


def tfce_max(values: np.ndarray, space: MeshSpace, two_sided: bool) -> float:
    """``max |TFCE|`` of one map on the mesh."""
    return float(np.max(np.abs(mesh_tfce(values, space, two_sided)), initial=0.0))
