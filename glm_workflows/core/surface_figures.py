"""A surface map drawn on its mesh (nilearn's ``plot_surf_stat_map``): lateral and medial
views of both hemispheres, on any mesh whose files a source has
(:mod:`.mesh_sources`, recorded in the layout's ``MeshSource``): its inflated surface over
the sulcal depth when the source has them, else its midthickness (or pial) surface without
background."""

from __future__ import annotations

import functools

import numpy as np

from .figures import _plotting, _png
from .mesh import layout_mesh_source
from .mesh_sources import read_sulcal_depth
from .surfaces import unpack

#: The surfaces a figure is drawn on, in order of preference.
FIGURE_SURFACES = ("inflated", "very-inflated", "midthickness", "pial")

#: The views drawn (rows) of each hemisphere (columns).
FIGURE_VIEWS = ("lateral", "medial")


@functools.cache
def _figure_mesh(files: tuple):
    """``(PolyMesh, sulcal depth SurfaceImage or None, surface kind)`` of a mesh source's
    files (``((kind, hemi, path), ...)``), loaded once per process."""
    from nilearn.surface import (
        InMemoryMesh,
        PolyMesh,
        SurfaceImage,
        load_surf_mesh,
    )

    paths = {(kind, hemi): path for kind, hemi, path in files}
    kind = next(k for k in FIGURE_SURFACES if (k, "L") in paths and (k, "R") in paths)
    parts = {}
    for hemi, part in (("L", "left"), ("R", "right")):
        loaded = load_surf_mesh(paths[kind, hemi])
        parts[part] = InMemoryMesh(np.asarray(loaded.coordinates, dtype=np.float64),
                                   np.asarray(loaded.faces))
    mesh = PolyMesh(**parts)
    sulcal = None
    if ("sulc", "L") in paths and ("sulc", "R") in paths:
        sulcal = SurfaceImage(mesh=mesh, data={
            part: read_sulcal_depth(paths["sulc", hemi], hemi)
            for hemi, part in (("L", "left"), ("R", "right"))})
    return mesh, sulcal, kind


def figure_mesh(layout: dict):
    """:func:`_figure_mesh` of a layout's mesh source, or None (no source, no surface to
    draw on, or vertex counts other than the layout's)."""
    source = layout_mesh_source(layout)
    if not source or not any(kind in source["Files"] for kind in FIGURE_SURFACES):
        return None
    files = tuple(sorted((kind, hemi, path) for kind, paths in source["Files"].items()
                         for hemi, path in paths.items()))
    mesh, sulcal, kind = _figure_mesh(files)
    if [mesh.parts[part].n_vertices for part in ("left", "right")] != \
            [int(n) for n in layout["Vertices"]]:
        return None
    return mesh, sulcal, kind


def plot_surface_map(values: np.ndarray, layout: dict, title: str, path, *,
                     threshold: float | None) -> bool:
    """Draw a packed map on its mesh: a 2x2 grid, lateral (top) and medial (bottom) views
    of the left and right hemispheres, one colour scale (symmetric, the map's largest
    ``|value|``).

    Parameters
    ----------
    values : ndarray, shape ``PackedShape``
        The map (a z map, or a thresholded z map) on the packed grid
        (:mod:`glm_workflows.core.surfaces`).
    layout : dict
        Its layout (its ``MeshSource`` names the mesh's files).
    title : str
        The figure's title.
    path : str or PathLike
        Where the PNG is written.
    threshold : float or None
        Values of smaller ``|value|`` are not drawn (nilearn's ``threshold``); None: every
        value is drawn.

    Returns
    -------
    drawn : bool
        False (nothing written) for a mesh no source has, or whose vertex counts differ
        from the map's.
    """
    found = figure_mesh(layout)
    if found is None:
        return False
    from nilearn.surface import SurfaceImage

    mesh, sulcal, kind = found
    halves = unpack(np.asarray(values, dtype=float), layout)
    stat_map = SurfaceImage(mesh=mesh, data={"left": halves["L"], "right": halves["R"]})
    plt, plotting = _plotting()
    figure, axes = plt.subplots(2, 2, subplot_kw={"projection": "3d"}, figsize=(8, 6.4))
    peak = max(float(np.abs(np.nan_to_num(halves[h])).max(initial=0)) for h in "LR")
    peak = max(peak, abs(threshold) * 1.01 if threshold is not None else 0.0, 1e-6)
    for row, view in enumerate(FIGURE_VIEWS):
        for column, hemi in enumerate(("left", "right")):
            plotting.plot_surf_stat_map(
                stat_map=stat_map, surf_mesh=mesh, hemi=hemi, view=view, bg_map=sulcal,
                axes=axes[row, column], figure=figure,
                colorbar=(row, column) == (0, 1), vmax=peak, threshold=threshold,
                title=f"{hemi} hemisphere, {view}")
    figure.suptitle(f"{title} ({kind} {layout['Mesh']})" if title
                    else f"{kind} {layout['Mesh']}")
    with open(path, "wb") as stream:
        stream.write(_png(figure))
    return True
