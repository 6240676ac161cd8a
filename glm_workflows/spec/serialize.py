"""A spec as JSON (exact round trip) and as a BIDS Stats Model (any spec, flags' too).

``to_json``/``from_json``: every dataclass as an object tagged with its ``type``, tuples
as lists, compare=False fields included (:mod:`glm_workflows.spec.frozen`).
``to_bids_stats_model``: the graph as BIDS Stats Models nodes and edges
(:mod:`glm_workflows.spec.bsm_write`); what the specification has no field for goes in
each node's ``Model.Software["glm-workflows"]``, which
:func:`glm_workflows.spec.from_model.read_model` reads back.
"""

from __future__ import annotations

from .analysis import AnalysisSpec
from .bsm_write import SOFTWARE, model_dict

__all__ = ["SOFTWARE", "from_json", "to_bids_stats_model", "to_json"]


def to_json(spec: AnalysisSpec) -> str:
    """The spec as JSON text; :func:`from_json` gives an equal spec."""
    return spec.to_json()


def from_json(text: str) -> AnalysisSpec:
    """A spec from :func:`to_json`'s text (validated again)."""
    return AnalysisSpec.from_json(text)


def to_bids_stats_model(spec: AnalysisSpec) -> dict:
    """A BIDS Stats Model (BIDSModelVersion 1.0.0) of any spec; reading it back
    (:func:`glm_workflows.spec.from_model.read_model`) with the same selection gives an
    equal spec."""
    return model_dict(spec)
