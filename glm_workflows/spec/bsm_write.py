"""A spec written as a BIDS Stats Model (:func:`model_dict`).

Run node: a model design as ``Model.X``/``HRF``/``Options``/``Transformations``; the
flags' nilearn design as ``X: ["*"]`` (every column of nilearn's design) with the design
in the project's entry. Contrast rows become ``ConditionList``/``Weights``; rows that do
not read back the same (or cannot be written) are kept as text in the entry too. Session and
Subject nodes: ``meta`` with the intercept's dummy contrast. Dataset node: ``X`` = intercept (unless
the design has none) and covariates, its transformations (of participants.tsv), t and F
contrasts; the group model's other settings in the entry. A spec without a Run node (the
group level alone) gets a placeholder Run node marked ``GroupOnly`` in the entry.
"""

from __future__ import annotations

import re
from dataclasses import fields

from ..core.stats_model import INTERCEPT, INTERCEPT_NAME
from ..core.transform_checks import TRANSFORMER
from ..settings import DEFAULT_CONFOUNDS, DEFAULT_INFERENCE, GroupSettings
from .analysis import NilearnDesign
from .bsm import expression
from .frozen import thaw, to_dict

SOFTWARE = "glm-workflows"

#: GroupSettings fields Dataset nodes write in X/Contrasts, or the execution sets.
_GROUP_IN_BIDS = ("covariates", "contrasts", "chunks", "inputs", "transformations",
                  "intercept")


def model_dict(spec) -> dict:
    run = spec.run_node
    inputs = spec.inputs
    entry: dict = {}
    inference = non_default(spec.inference, DEFAULT_INFERENCE)
    if inference:
        entry["Inference"] = inference
    nodes = [_run_node(run, entry) if run else _placeholder_run(spec, entry)]
    for node in (spec.session_node, spec.subject_node):
        if node is not None:
            nodes.append(_meta_node(node))
    nodes += [_dataset_node(node) for node in spec.dataset_nodes]
    model = {"Name": spec.name or "glm_workflows", "BIDSModelVersion": "1.0.0"}
    if spec.description:
        model["Description"] = spec.description
    entities = {"task": [inputs.task]}
    if inputs.subjects:
        entities["subject"] = list(inputs.subjects)
    model["Input"] = entities
    model["Nodes"] = nodes
    edges = spec.edges
    if run is None and spec.dataset_node is not None:
        group = spec.dataset_node.model.group
        filt = {"contrast": list(group.inputs)} if group.inputs else None
        model["Edges"] = [_edge(nodes[0]["Name"], spec.dataset_node.name, filt)]
    else:
        model["Edges"] = [_edge(e.source, e.destination, {k: list(v) for k, v in e.filter}
                                or None) for e in edges]
    if not model["Edges"]:
        del model["Edges"]
    return model


def _edge(source, destination, filt) -> dict:
    edge = {"Source": source, "Destination": destination}
    if filt:
        edge["Filter"] = filt
    return edge


def _software(entry: dict) -> dict:
    return {SOFTWARE: entry} if entry else {}


def _contrasts(contrasts, x) -> tuple[list, list | None]:
    """BIDS Contrasts, and the rows as text when some do not read back the same."""
    written, exact = [], True
    for contrast in contrasts:
        weights = contrast_weights(contrast.rows, contrast.test, x)
        if weights is None:
            exact = False
            continue
        conditions, numbers, same = weights
        exact = exact and same
        written.append({"Name": contrast.name, "ConditionList": conditions,
                        "Weights": numbers, "Test": contrast.test})
    kept = None if exact else [[c.name, c.test, list(c.rows)] for c in contrasts]
    return written, kept


def _run_node(run, entry: dict) -> dict:
    model, design = run.model, run.model.design
    node = {"Level": "Run", "Name": run.name, "GroupBy": list(run.group_by)}
    section: dict = {"Type": "glm"}
    if type(design).__name__ == "NilearnDesign":
        section["X"] = ["*"]
        entry["Design"] = to_dict(design)
        if design.drift_model in ("auto", "cosine"):
            section["Options"] = {"HighPassFilterCutoffHz": design.high_pass}
        x = None
    else:
        if run.transformations:
            node["Transformations"] = {"Transformer": TRANSFORMER,
                                       "Instructions": thaw(run.transformations)}
        section["X"] = list(design.x)
        if design.hrf is not None:
            hrf = {"Variables": list(design.hrf.variables), "Model": design.hrf.model}
            if design.hrf.fir_delays is not None:
                hrf["Parameters"] = {"fir_delays": list(design.hrf.fir_delays)}
            section["HRF"] = hrf
        if design.high_pass is not None:
            section["Options"] = {"HighPassFilterCutoffHz": design.high_pass}
        extra = {k: v for k, v in (("slice_time_ref", design.slice_time_ref),
                                   ("drift_order", design.drift_order))
                 if v != getattr(NilearnDesign, k)}
        if extra:
            entry["Design"] = extra
        x = design.x
    entry["NoiseModel"] = model.noise_model
    confounds = non_default(model.confounds, DEFAULT_CONFOUNDS)
    if confounds:
        entry["Confounds"] = confounds
    if model.strict:
        entry["Strict"] = True
    if model.smoothing_fwhm is not None:
        entry["SmoothingFWHM"] = model.smoothing_fwhm
    if model.save_residuals:  # off: absent, so a round trip gives the file it read
        entry["SaveResiduals"] = True
    contrasts, kept = _contrasts(run.contrasts, x)
    if kept is not None:
        entry["Contrasts"] = kept
    section["Software"] = _software(entry)
    node["Model"] = section
    if contrasts:
        node["Contrasts"] = contrasts
    if run.description:
        node["Description"] = run.description
    return node


def _placeholder_run(spec, entry: dict) -> dict:
    entry["GroupOnly"] = True
    if spec.inputs.contrasts:
        entry["Contrasts"] = [list(pair) for pair in spec.inputs.contrasts]
    return {"Level": "Run", "Name": "run", "GroupBy": ["run", "subject"],
            "Model": {"Type": "glm", "X": ["*"], "Software": _software(entry)}}


def _meta_node(node) -> dict:
    written = {"Level": node.level, "Name": node.name, "GroupBy": list(node.group_by),
               "Model": {"Type": "meta", "X": [INTERCEPT]},
               "DummyContrasts": {"Contrasts": [INTERCEPT], "Test": "t"}}
    if node.model.designed:  # its design and contrasts, as read
        x = list(node.model.x)
        contrasts, _ = _contrasts(node.contrasts, x)
        written["Model"]["X"] = x
        written.pop("DummyContrasts")
        written["Contrasts"] = contrasts
        if node.transformations:
            written["Transformations"] = {"Transformer": TRANSFORMER,
                                          "Instructions": thaw(node.transformations)}
    if node.description:
        written["Description"] = node.description
    return written


def _dataset_node(node) -> dict:
    group = node.model.group
    x = [INTERCEPT, *group.covariates] if group.intercept else list(group.covariates)
    entry = {k: v for k, v in non_default(group, GroupSettings()).items()
             if k not in _GROUP_IN_BIDS}
    written = {"Level": "Dataset", "Name": node.name, "GroupBy": list(node.group_by)}
    if group.transformations:
        written["Transformations"] = {"Transformer": TRANSFORMER,
                                      "Instructions": thaw(group.transformations)}
    section = {"Type": "glm", "X": x}
    contrasts = []
    for name, row in group.contrasts:
        test = "t" if isinstance(row, str) else "F"
        weights = contrast_weights((row,) if test == "t" else tuple(row), test, x)
        if weights is None or not weights[2] or weights[0] == [INTERCEPT]:
            contrasts = None
            break
        contrasts.append({"Name": name, "ConditionList": weights[0], "Weights": weights[1],
                          "Test": test})
    if contrasts is None:
        entry["contrasts"] = [list(pair) for pair in group.contrasts]
    if contrasts:
        written["Contrasts"] = contrasts
    elif group.intercept:
        written["DummyContrasts"] = {"Contrasts": [INTERCEPT], "Test": "t"}
    section["Software"] = {SOFTWARE: {"Group": entry}}
    written["Model"] = section
    if node.description:
        written["Description"] = node.description
    return written


def non_default(settings, default) -> dict:
    """The fields of ``settings`` that differ from ``default``, tuples as lists."""
    return {f.name: to_dict(getattr(settings, f.name)) for f in fields(settings)
            if getattr(settings, f.name) != getattr(default, f.name)}


def _number(value):
    return int(value) if float(value).is_integer() else float(value)


def contrast_weights(rows, test: str, x=None):
    """``(ConditionList, Weights, same)`` of expression rows (``same``: reading them back
    gives the same rows; else the project's entry keeps the rows). None: not writable."""
    from ..core.contrasts import contrast_matrix, referenced_names

    names: list = []
    for row in rows:
        found = referenced_names(row)
        for match in re.finditer(r"[A-Za-z_][\w.]*", row):
            if match.group() in found and match.group() not in names:
                names.append(match.group())
    if not names:
        return None
    try:
        matrix = contrast_matrix(list(rows), names, test)
    except Exception:  # noqa: BLE001  (a row that is not linear in names: kept as text)
        return None
    conditions = [INTERCEPT if n == INTERCEPT_NAME and x is not None and INTERCEPT in x
                  else n for n in names]
    if x is not None and any(c not in x for c in conditions):
        return None
    weights = [[_number(w) for w in row] for row in matrix]
    try:
        again = tuple(expression(conditions, w, "") for w in weights)
    except Exception:  # noqa: BLE001
        again = None
    return conditions, weights if test == "F" else weights[0], again == tuple(rows)
