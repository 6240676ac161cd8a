"""Plain-text descriptions for the report: thresholds, settings, numbers, file lists.

No HTML here (:mod:`glm_workflows.report.markup` escapes and marks these up) and no
file access.
"""

from __future__ import annotations

import json
import os
from typing import NamedTuple

import numpy as np

#: How each ``HeightControl`` of a thresholded-map sidecar is described.
HEIGHT_CONTROL_LABELS = {
    "fdr": "FDR q < {alpha:g}",
    "fpr": "uncorrected p < {alpha:g}",
    "bonferroni": "Bonferroni-corrected p < {alpha:g}",
    "none": "fixed threshold",
}


class FileGroup(NamedTuple):
    """Files of one folder with one extension (see :func:`group_files`).

    Attributes
    ----------
    folder : str
        The folder, ending with ``/``.
    names : list of str
        The file names, in the order given.
    """

    folder: str
    names: list


def describe_threshold(settings: dict) -> str:
    """One line saying how a map was thresholded, from its ``desc-thresholded`` sidecar.

    Parameters
    ----------
    settings : dict
        ``HeightControl``, ``Alpha``, ``Threshold`` (null when no voxel can pass, with
        ``NoSurvivingVoxels``), ``ClusterThreshold``, ``TwoSided``.

    Returns
    -------
    text : str
        E.g. ``"FDR q < 0.05 → z > 2.93, clusters ≥ 10 voxels, one-sided"``.
    """
    two_sided = bool(settings.get("TwoSided", False))
    threshold = settings.get("Threshold")
    if threshold is None:
        height = ("no voxel can pass" if settings.get("NoSurvivingVoxels")
                  else "threshold not recorded")
    elif not np.isfinite(threshold):
        height = "no voxel can pass"
    else:
        height = f"{'|z|' if two_sided else 'z'} > {threshold:.2f}"
    clusters = int(settings.get("ClusterThreshold") or 0)
    unit = "vertices" if settings.get("Mesh") else "voxels"  # a surface map's sidecar
    extent = f"clusters ≥ {clusters} {unit}" if clusters > 0 else "no cluster-size threshold"
    return (f"{height_control(settings)} → {height}, {extent}, "
            f"{'two-sided' if two_sided else 'one-sided'}")


def describe_no_survivors(settings: dict, by_extent: bool) -> str:
    """The line shown instead of the cluster table when no voxel survives.

    Parameters
    ----------
    settings : dict
        The ``desc-thresholded`` sidecar (see :func:`describe_threshold`).
    by_extent : bool
        Whether voxels passed the height threshold and the cluster extent
        (``ClusterThreshold``) removed them all.

    Returns
    -------
    text : str
        E.g. ``"no voxel survives FDR q < 0.05"``,
        ``"no voxel survives FDR q < 0.05 with clusters ≥ 1000 voxels"`` or
        ``"no voxel survives fixed threshold z > 12.00"``.
    """
    criterion = height_control(settings)
    threshold = settings.get("Threshold")
    if str(settings.get("HeightControl", "none")).lower() == "none" and threshold is not None:
        criterion += f" {'|z|' if settings.get('TwoSided') else 'z'} > {threshold:.2f}"
    if by_extent:
        criterion += f" with clusters ≥ {int(settings.get('ClusterThreshold') or 0)} voxels"
    return f"no voxel survives {criterion}"


def height_control(settings: dict) -> str:
    """How the height threshold was chosen, e.g. ``"FDR q < 0.05"`` or ``"fixed threshold"``."""
    control = str(settings.get("HeightControl", "none")).lower()
    how = HEIGHT_CONTROL_LABELS.get(control, f"{control} {{alpha:g}}")
    alpha = settings.get("Alpha")
    return how.format(alpha=alpha) if alpha is not None else how.split(" {")[0]


def group_files(paths) -> list[FileGroup]:
    """Paths grouped by folder and extension, groups in order of first appearance.

    Parameters
    ----------
    paths : iterable of str
        File paths, e.g. a run's 96 scans and its events file.

    Returns
    -------
    groups : list of FileGroup
        E.g. ``[FileGroup("/data/fM00223/", ["fM00223_004.img", ...]),
        FileGroup("/data/fM00223/", ["fM00223_events.tsv"])]``.
    """
    groups: dict = {}
    for path in paths:
        folder, name = os.path.split(str(path))
        extension = name[name.find("."):] if "." in name else ""
        groups.setdefault((os.path.join(folder or ".", ""), extension), []).append(name)
    return [FileGroup(folder, names) for (folder, _), names in groups.items()]


def number(value, digits: int | None = None) -> str:
    """A number without useless decimals: 85.0 -> '85', 0.00625 -> '0.00625'."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{value:.{digits}f}" if digits is not None else f"{value:g}"


def setting_text(key: str, value) -> str:
    """A design setting as text: the high-pass with its period, lists with their length."""
    if value is None:
        return "none"
    if key == "HighPass" and isinstance(value, (int, float)) and value > 0:
        return f"{value:g} (period {1 / value:g} s)"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) + f" ({len(value)})"
    if isinstance(value, float):
        return f"{value:g}"
    return plain(value)


def plain(value) -> str:
    """A value as text: strings as they are, None as ``none``, anything else as JSON."""
    if value is None:
        return "none"
    return value if isinstance(value, str) else json.dumps(value)
