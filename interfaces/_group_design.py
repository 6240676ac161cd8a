"""A group design as the group nodes exchange it: a TSV file, one row per subject (or per
map, for a Dataset node grouped by nothing)."""

from __future__ import annotations

from glm_workflows.core.lazy import pandas as pd


def save_group_design(design: pd.DataFrame, path) -> None:
    """Write a group design as TSV, the subjects in a first ``participant_id`` column."""
    label = "map" if design.index.name == "map" else "participant_id"  # pooled: a row a map
    design.to_csv(path, sep="\t", index_label=label, float_format="%.17g")


def load_group_design(path) -> pd.DataFrame:
    """Read a group design written by :func:`save_group_design`."""
    return pd.read_csv(path, sep="\t", index_col="participant_id", dtype={"participant_id": str})
