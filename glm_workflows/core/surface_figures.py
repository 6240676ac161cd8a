"""A surface z map drawn on its mesh (nilearn's ``plot_surf_stat_map``), when nilearn
ships the mesh (fsaverage5); other meshes get no figure."""

from __future__ import annotations

import functools

import numpy as np

from .figures import _plotting, _png
from .surfaces import unpack

#: The meshes nilearn ships (drawn without a download), by the layout's ``Mesh``.
BUNDLED_MESHES = ("fsaverage5",)


@functools.cache
def _mesh(name: str):
    """A bundled mesh's inflated surface and sulcal depth, loaded once per process."""
    from nilearn.datasets import load_fsaverage, load_fsaverage_data

    return (load_fsaverage(name)["inflated"],
            load_fsaverage_data(mesh=name, mesh_type="inflated", data_type="sulcal"))


def plot_surface_map(values: np.ndarray, layout: dict, title: str, path) -> bool:
    """Draw a packed map on the inflated mesh, lateral views of both hemispheres, over the
    sulcal depth, unthresholded (no threshold is computed on surfaces yet).

    Parameters
    ----------
    values : ndarray, shape ``PackedShape``
        The map (a z map) on the packed grid (:mod:`glm_workflows.core.surfaces`).
    layout : dict
        Its layout.
    title : str
        The figure's title.
    path : str or PathLike
        Where the PNG is written.

    Returns
    -------
    drawn : bool
        False (nothing written) for a mesh nilearn does not ship, or whose vertex counts
        differ from the map's.
    """
    if layout["Mesh"] not in BUNDLED_MESHES:
        return False
    from nilearn.surface import SurfaceImage

    mesh, sulcal = _mesh(layout["Mesh"])
    if [mesh.parts[part].n_vertices for part in ("left", "right")] != layout["Vertices"]:
        return False
    halves = unpack(np.asarray(values, dtype=float), layout)
    stat_map = SurfaceImage(mesh=mesh, data={"left": halves["L"], "right": halves["R"]})
    plt, plotting = _plotting()
    figure, axes = plt.subplots(1, 2, subplot_kw={"projection": "3d"}, figsize=(8, 3.6))
    peak = float(np.abs(stat_map.data.parts["left"]).max(initial=0))
    peak = max(peak, float(np.abs(stat_map.data.parts["right"]).max(initial=0)), 1e-6)
    for axis, hemi in zip(axes, ("left", "right"), strict=True):
        plotting.plot_surf_stat_map(stat_map=stat_map, surf_mesh=mesh, hemi=hemi,
                                    view="lateral", bg_map=sulcal, axes=axis, figure=figure,
                                    colorbar=hemi == "right", vmax=peak, threshold=None,
                                    title=f"{hemi} hemisphere")
    figure.suptitle(title)
    with open(path, "wb") as stream:
        stream.write(_png(figure))
    return True
