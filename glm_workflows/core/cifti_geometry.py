"""The geometry of CIFTI grayordinates: which grayordinates are neighbours, each one's
size (a cortex vertex's area, a voxel's volume), and the clusters and cluster table of a
map on them.

A CIFTI layout (:func:`~glm_workflows.core.cifti.cifti_layout`) records its brain models;
the fsLR 32k mesh its cortex vertices belong to is found by :mod:`.mesh_sources`
(:data:`CIFTI_SURFACE_MESH`) and recorded in the layout (``MeshSource``) by the node that
packs the data. The graph of the grayordinates (:class:`Grayordinates`), as Connectome
Workbench's ``wb_command -cifti-find-clusters`` builds it:

- a cortex brain model's vertices are joined by the edges of the mesh's faces, restricted
  to the model's vertices (the subgraph on the kept vertices: the medial wall is not
  crossed);
- the voxels of every volume brain model are joined to their face neighbours
  (6-connectivity: ``scipy.ndimage.label``'s default structure in 3-D, which nilearn's
  ``threshold_img`` and ``get_clusters_table`` use) across the whole volume, so a cluster may
  run from one subcortical structure into its neighbour;
- no edge joins the two hemispheres, nor a vertex and a voxel.
"""

from __future__ import annotations

import numpy as np

from .lazy import pandas as pd
from .mesh import AREA_SURFACE, label_clusters, mesh_geometry
from .surface_names import FSLR_MESH

#: The mesh of a CIFTI layout's cortex vertices (fsLR 91k grayordinates).
CIFTI_SURFACE_MESH = FSLR_MESH

#: The hemisphere of each cortex brain model.
CORTEX_HEMISPHERES = {"CIFTI_STRUCTURE_CORTEX_LEFT": "L", "CIFTI_STRUCTURE_CORTEX_RIGHT": "R"}

#: The voxel neighbours: the six face neighbours (scipy.ndimage's default 3-D structure).
FACE_OFFSETS = ((1, 0, 0), (0, 1, 0), (0, 0, 1))

#: Columns of a CIFTI cluster table.
CIFTI_CLUSTER_COLUMNS = ("Cluster ID", "Structure", "Peak Grayordinate", "Peak Vertex",
                         "Peak Voxel", "Peak Stat", "Cluster Size (grayordinates)",
                         "Cluster Area (mm2)", "Cluster Volume (mm3)")

#: A CIFTI cluster table's columns as its JSON sidecar describes them.
CIFTI_CLUSTER_DESCRIPTIONS = {
    "Cluster ID": {"Description": "The cluster's number: positive clusters first, then "
                                  "(two-sided) negative ones; each sign by its first "
                                  "grayordinate (the CIFTI file's order)"},
    "Structure": {"Description": "The CIFTI brain structure of the peak, without its "
                                 "CIFTI_STRUCTURE_ prefix (CORTEX_LEFT, THALAMUS_RIGHT, ...); "
                                 "a volume cluster may extend into neighbouring structures"},
    "Peak Grayordinate": {"Description": "The peak's index in the CIFTI file's brain models "
                                         "(0-based)"},
    "Peak Vertex": {"Description": "A cortex peak's vertex in its hemisphere's fsLR 32k mesh "
                                   "(0-based); n/a for a voxel"},
    "Peak Voxel": {"Description": "A volume peak's voxel indices i,j,k in the CIFTI volume "
                                  "(0-based); n/a for a vertex"},
    "Peak Stat": {"Description": "z value at the peak (the cluster's largest |z|)"},
    "Cluster Size (grayordinates)": {
        "Description": "The cluster's number of grayordinates: vertices connected through the "
                       "fsLR 32k mesh's faces (within the brain model's vertices), or voxels "
                       "connected through their faces (6-connectivity)"},
    "Cluster Area (mm2)": {"Description": f"A cortex cluster's area: the sum of its vertex "
                                          f"areas on the {AREA_SURFACE}; n/a for voxels",
                           "Units": "mm^2"},
    "Cluster Volume (mm3)": {"Description": "A volume cluster's volume: its voxels times the "
                                            "voxel volume (|det| of the CIFTI affine); n/a for "
                                            "vertices", "Units": "mm^3"},
}


def voxel_adjacency(voxels: np.ndarray, shape):
    """Face adjacency (6-connectivity) of a list of voxels.

    Parameters
    ----------
    voxels : ndarray of int, shape (n, 3)
        Distinct voxel indices (i, j, k) in a grid of ``shape``.
    shape : tuple of int

    Returns
    -------
    adjacency : scipy.sparse.csr_matrix of bool, shape (n, n)
        Symmetric: ``(a, b)`` True when voxels a and b share a face.
    """
    from scipy import sparse

    voxels = np.asarray(voxels, dtype=np.int64).reshape(-1, 3)
    keys = np.ravel_multi_index(voxels.T, shape)
    order = np.argsort(keys)
    rows, cols = [], []
    for offset in FACE_OFFSETS:
        moved = voxels + np.asarray(offset)
        inside = np.all(moved < np.asarray(shape), axis=1)
        keys_moved = np.ravel_multi_index(moved[inside].T, shape)
        where = np.searchsorted(keys[order], keys_moved).clip(max=len(keys) - 1)
        found = keys[order][where] == keys_moved
        rows.append(np.flatnonzero(inside)[found])
        cols.append(order[where[found]])
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    n = len(voxels)
    graph = sparse.coo_matrix((np.ones(rows.size, dtype=bool), (rows, cols)), shape=(n, n))
    return (graph + graph.T).tocsr().astype(bool)


class Grayordinates:
    """The graph of a CIFTI layout's grayordinates (module docstring) and their sizes.

    Parameters
    ----------
    layout : dict
        A CIFTI layout (its ``BrainModels``).
    hemispheres : dict
        ``'L'``/``'R'`` -> :class:`~.mesh.Hemisphere` of the fsLR 32k mesh.

    Attributes
    ----------
    adjacency : scipy.sparse.csr_matrix of bool, shape (n, n)
    measure : ndarray, shape (n,)
        A vertex's area (mm²) or a voxel's volume (mm³).
    is_voxel : ndarray of bool, shape (n,)
    structure : ndarray of int, shape (n,)
        The index of each grayordinate's brain model in ``layout['BrainModels']``.
    """

    def __init__(self, layout: dict, hemispheres: dict):
        from scipy import sparse

        models = layout["BrainModels"]
        n = int(layout["Grayordinates"])
        self.names = [m["Structure"] for m in models]
        self.measure = np.zeros(n)
        self.is_voxel = np.zeros(n, dtype=bool)
        self.structure = np.zeros(n, dtype=np.int64)
        self.local = np.zeros(n, dtype=np.int64)  # a vertex's index in its mesh
        blocks, voxel_rows, voxels, shape = [], [], [], None
        for index, model in enumerate(models):
            rows = np.arange(model["Offset"], model["Offset"] + model["Count"])
            self.structure[rows] = index
            if "Vertices" in model:
                hemisphere = hemispheres[CORTEX_HEMISPHERES[model["Structure"]]]
                vertices = np.asarray(model["Vertices"], dtype=np.int64)
                self.local[rows] = vertices
                self.measure[rows] = hemisphere.areas[vertices]
                blocks.append((rows, hemisphere.adjacency[vertices][:, vertices]))
            else:
                shape = tuple(model["VolumeShape"])
                affine = np.asarray(model["Affine"], dtype=np.float64)
                self.is_voxel[rows] = True
                # |det| as a triple product: exact for a diagonal affine (LU's is not)
                axes = affine[:3, :3].T
                self.measure[rows] = abs(float(np.dot(axes[0], np.cross(axes[1], axes[2]))))
                voxel_rows.append(rows)
                voxels.append(np.asarray(model["Voxels"], dtype=np.int64).reshape(-1, 3))
        self.voxels = np.zeros((n, 3), dtype=np.int64)
        if voxels:
            rows = np.concatenate(voxel_rows)
            self.voxels[rows] = np.concatenate(voxels)
            blocks.append((rows, voxel_adjacency(self.voxels[rows], shape)))
        graph_rows, graph_cols = [], []
        for rows, graph in blocks:
            coo = graph.tocoo()
            graph_rows.append(rows[coo.row])
            graph_cols.append(rows[coo.col])
        graph_rows = np.concatenate(graph_rows) if graph_rows else np.zeros(0, dtype=int)
        graph_cols = np.concatenate(graph_cols) if graph_cols else np.zeros(0, dtype=int)
        self.adjacency = sparse.coo_matrix(
            (np.ones(graph_rows.size, dtype=bool), (graph_rows, graph_cols)),
            shape=(n, n)).tocsr().astype(bool)
        self.n_values = n


def grayordinate_geometry(layout: dict) -> Grayordinates | None:
    """The :class:`Grayordinates` of a CIFTI layout, or None when its ``MeshSource`` (the
    fsLR 32k mesh) is missing, its vertex counts differ from the brain models' meshes, or a
    surface brain model is not a cortex."""
    source = layout.get("MeshSource")
    hemispheres = mesh_geometry(source) if source else None
    if hemispheres is None:
        return None
    for model in layout["BrainModels"]:
        if "Vertices" not in model:
            continue
        hemi = CORTEX_HEMISPHERES.get(model["Structure"])
        if hemi is None or hemispheres[hemi].n_vertices != int(model["SurfaceVertices"]):
            return None
    return Grayordinates(layout, hemispheres)


def signed_labels(values: np.ndarray, geometry: Grayordinates, signs) -> list:
    """``[(sign, labels, n_clusters)]``: the clusters of the grayordinates of each sign's
    non-zero values (:func:`~.mesh.label_clusters` on the grayordinates' graph, clusters
    numbered by their first grayordinate)."""
    return [(sign, *label_clusters(sign * values > 0, geometry.adjacency)) for sign in signs]


def cifti_cluster_table(values: np.ndarray, geometry: Grayordinates | None, *,
                        min_cluster_size: int, two_sided: bool) -> pd.DataFrame:
    """The clusters of a thresholded map's grayordinates, and their peaks.

    Parameters
    ----------
    values : ndarray, shape (n_grayordinates,)
        A thresholded z map (0 below the threshold), in the brain models' order.
    geometry : Grayordinates or None
        None (no fsLR 32k mesh): no row.
    min_cluster_size : int
        Clusters of fewer grayordinates are left out.
    two_sided : bool
        Negative clusters too (after the positive ones).

    Returns
    -------
    table : pandas.DataFrame
        Columns :data:`CIFTI_CLUSTER_COLUMNS`; the peak is the grayordinate of largest
        ``|z|`` (the first on a tie); missing values (a voxel's vertex, a vertex's voxel)
        are NA.
    """
    rows = []
    values = np.asarray(values, dtype=np.float64)
    signs = ((1, -1) if two_sided else (1,)) if geometry is not None else ()
    for sign, labels, n_clusters in (signed_labels(values, geometry, signs) if signs else ()):
        order = np.argsort(labels, kind="stable")
        bounds = np.searchsorted(labels[order], np.arange(1, n_clusters + 2))
        for cluster in range(n_clusters):
            members = order[bounds[cluster]:bounds[cluster + 1]]
            if members.size < min_cluster_size:
                continue
            peak = int(members[np.argmax(sign * values[members])])
            voxel = bool(geometry.is_voxel[peak])
            size = float(geometry.measure[members].sum())
            rows.append({
                "Structure": geometry.names[geometry.structure[peak]].removeprefix(
                    "CIFTI_STRUCTURE_"),
                "Peak Grayordinate": peak,
                "Peak Vertex": None if voxel else int(geometry.local[peak]),
                "Peak Voxel": ",".join(str(int(i)) for i in geometry.voxels[peak]) if voxel
                else None,
                "Peak Stat": float(values[peak]),
                "Cluster Size (grayordinates)": int(members.size),
                "Cluster Area (mm2)": None if voxel else size,
                "Cluster Volume (mm3)": size if voxel else None})
    table = pd.DataFrame(rows, columns=list(CIFTI_CLUSTER_COLUMNS[1:]))
    table["Peak Vertex"] = table["Peak Vertex"].astype("Int64")
    for column in ("Cluster Area (mm2)", "Cluster Volume (mm3)"):
        table[column] = table[column].astype(np.float64)
    table.insert(0, "Cluster ID", np.arange(1, len(table) + 1))
    return table


def cifti_table_sidecar(table: pd.DataFrame, space: str | None) -> dict:
    """A CIFTI cluster table's JSON sidecar: its columns, the space and the area's surface."""
    sidecar = {column: CIFTI_CLUSTER_DESCRIPTIONS[column] for column in table.columns}
    sidecar["Space"] = space
    sidecar["AreaSurface"] = AREA_SURFACE
    sidecar["AtlasNotApplied"] = "CIFTI map: peaks are given as grayordinates"
    return sidecar


def cortex_on_mesh(values: np.ndarray, layout: dict) -> tuple[np.ndarray, dict] | None:
    """A packed CIFTI map's cortex spread back onto the fsLR 32k mesh's vertices, packed
    as a GIFTI pair (:func:`~glm_workflows.core.surfaces.surface_layout`), for a figure.

    Parameters
    ----------
    values : ndarray, shape ``PackedShape``
        A map on the CIFTI layout's packed grid.
    layout : dict
        The CIFTI layout (its ``BrainModels`` and ``MeshSource``).

    Returns
    -------
    packed, mesh_layout : ndarray and dict, or None
        The two hemispheres' vertices (32492 each; vertices of no grayordinate, such as the
        medial wall, 0) packed, and their layout (``Mesh`` :data:`CIFTI_SURFACE_MESH`, the
        CIFTI layout's ``MeshSource``); None without a ``MeshSource`` or a cortex model.
    """
    from .cifti import unpack_cifti
    from .packing import folded_shape

    cortex = {CORTEX_HEMISPHERES[m["Structure"]]: m for m in layout["BrainModels"]
              if m["Structure"] in CORTEX_HEMISPHERES}
    if not layout.get("MeshSource") or sorted(cortex) != ["L", "R"]:
        return None
    grayordinates = unpack_cifti(np.asarray(values, dtype=np.float64), layout)
    counts = [int(cortex[hemi]["SurfaceVertices"]) for hemi in ("L", "R")]
    flat = np.zeros(sum(counts))
    for start, hemi in zip((0, counts[0]), ("L", "R"), strict=True):
        model = cortex[hemi]
        vertices = np.asarray(model["Vertices"], dtype=np.int64)
        flat[start + vertices] = grayordinates[model["Offset"]:model["Offset"] + model["Count"]]
    shape = folded_shape(len(flat))
    padded = np.zeros(int(np.prod(shape)))
    padded[:len(flat)] = flat
    mesh_layout = {"Mesh": CIFTI_SURFACE_MESH, "Hemispheres": ["L", "R"], "Vertices": counts,
                   "PackedShape": list(shape), "MeshSource": layout["MeshSource"]}
    return padded.reshape(shape, order="F"), mesh_layout
