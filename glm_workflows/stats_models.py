"""``--model FILE``: a BIDS Stats Models file mapped onto this project's levels.

The model becomes the settings the command-line flags would give, so that a model file
runs through the same checks, graph and outputs as the flags (and gives the same maps):

* **Run** (``glm``): the design is the node's (:mod:`glm_workflows.core.model_design`:
  transformations, ``Model.HRF`` with nilearn's regressors, ``X``, cosine drifts from
  ``HighPassFilterCutoffHz``, none without it); its ``Contrasts`` and
  ``DummyContrasts`` become the first-level contrasts (``pass`` is estimated as ``t``).
* **Subject** (``meta``, grouped by subject and contrast): fixed effects over the
  subject's runs, as without a model; its (dummy) contrasts pass the incoming t contrasts.
* **Dataset** (``glm``, grouped by contrast): the group level, a one-sample design with
  ``X`` = ``1`` and numeric ``participants.tsv`` columns; its dummy contrast of the
  intercept is the group mean, named after the incoming contrast (as pybids names it).
  F contrasts are final: they do not go to the next node.
* ``Edges[].Filter`` by ``contrast`` keeps those contrasts for the next node.

What the project cannot run (Session nodes, a Subject ``glm`` model, Dataset designs
with categorical columns, filters on other entities) is refused with one line naming
the JSON path, before any work.
"""

from __future__ import annotations

import keyword
import re

from .core.errors import InputError
from .core.model_design import run_node_json
from .core.stats_model import INTERCEPT, INTERCEPT_NAME, NodeSpec, StatsModel

#: ``Input`` entities (each sets the command-line flag of its name).
INPUT_ENTITIES = ("task", "subject", "session", "run", "space")
#: Flags the model file replaces (refused with ``--model``).
MODEL_FLAGS = ("contrast", "f_contrast", "hrf_model", "drift_model", "high_pass",
               "drift_order", "confounds_strategy", "confounds_columns", "group",
               "group_column", "pair", "group_covariates", "group_contrast")
_IDENTIFIER = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


def contrast_label(name: str) -> str:
    """A BIDS ``contrast-<label>`` (letters and digits) from a model's name:
    ``trial_type.active`` -> ``trialTypeActive``; ``active_vs_rest`` -> ``activeVsRest``."""
    parts = [p for p in re.split(r"[^A-Za-z0-9]+", str(name)) if p]
    if not parts:
        raise InputError(f"contrast name {name!r}: no letter or digit to name it by")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def _expression(conditions, weights, where: str) -> str:
    """A contrast row as an expression over design columns (``1`` is the intercept)."""
    terms = []
    for condition, weight in zip(conditions, weights, strict=True):
        column = INTERCEPT_NAME if condition == INTERCEPT else str(condition)
        if not _IDENTIFIER.match(column) or any(keyword.iskeyword(p) for p in column.split(".")):
            raise InputError(f"{where}: condition {column!r} cannot be named in a contrast "
                             "(use letters, digits, '_' and '.')")
        if weight == 0:
            continue
        terms.append(column if weight == 1 else f"-{column}" if weight == -1
                     else f"{weight!r}*{column}")
    if not terms:
        raise InputError(f"{where}: all weights are zero")
    return " + ".join(terms).replace("+ -", "- ")


def _dummy_conditions_known(node: NodeSpec) -> None:
    """Refuse DummyContrasts over every ``X`` entry when some are globs: the columns they
    match are known only from each run's data, so the contrasts would differ by run."""
    dummy = node.dummy_contrasts
    if dummy is not None and dummy.conditions is None and any(
            isinstance(x, str) and any(ch in x for ch in "*?[") for x in node.x):
        raise InputError(f"{node.path}.DummyContrasts: list its Contrasts (X holds glob "
                         "patterns, whose columns each run's data decides)")


def run_contrasts(node: NodeSpec) -> tuple[list[str], list[str]]:
    """The Run node's contrasts as ``--contrast`` and ``--f-contrast`` values."""
    _dummy_conditions_known(node)
    t_contrasts, f_contrasts, labels = [], [], {}
    for index, contrast in enumerate(node.expanded_contrasts()):
        where = f"{node.path}.Contrasts[{index}]"
        rows = [_expression(contrast.conditions, row, where) for row in contrast.weights]
        label = contrast_label(contrast.name)
        if label in labels:
            raise InputError(f"{where}.Name: {contrast.name!r} and {labels[label]!r} both "
                             f"become the BIDS label {label!r}; rename one")
        labels[label] = contrast.name
        if contrast.test == "F":
            f_contrasts.append(f"{label}={','.join(rows)}")
        else:
            t_contrasts.append(f"{label}={rows[0]}")
    return t_contrasts, f_contrasts


def check_node_chain(model: StatsModel) -> tuple[NodeSpec | None, NodeSpec | None]:
    """The Subject and Dataset nodes after the Run node (each may be absent), refusing
    what this project cannot run."""
    run = model.root
    chain, current = [run], run
    while True:
        edges = model.outputs(current.name)
        if not edges:
            break
        if len(edges) > 1:
            raise InputError(f"{model.source}: Edges: node {current.name!r} feeds "
                             f"{len(edges)} nodes; one chain of nodes is supported")
        current = model.node(edges[0].destination)
        chain.append(current)
    levels = [node.level for node in chain]
    for node in chain[1:]:
        if node.level == "Session":
            raise InputError(f"{node.path}: Session nodes are not supported (the subject's "
                             "runs are combined by fixed effects at the Subject node)")
        if node.level == "Run":
            raise InputError(f"{node.path}: one Run node is supported")
    subject = next((n for n in chain if n.level == "Subject"), None)
    dataset = next((n for n in chain if n.level == "Dataset"), None)
    if len(chain) != 1 + (subject is not None) + (dataset is not None):
        raise InputError(f"{model.source}: nodes {' -> '.join(levels)}: expected Run, then "
                         "optionally Subject, then optionally Dataset")
    if subject is not None:
        if subject.model_type != "meta":
            raise InputError(f"{subject.path}.Model.Type: 'glm' at the Subject level is not "
                             "supported; use 'meta' (fixed effects over the runs)")
        if set(subject.group_by) != {"subject", "contrast"}:
            raise InputError(f"{subject.path}.GroupBy: expected ['subject', 'contrast'], got "
                             f"{list(subject.group_by)}")
        if subject.contrasts or (subject.dummy_contrasts and subject.dummy_contrasts.conditions
                                 not in (None, (INTERCEPT,))):
            raise InputError(f"{subject.path}: only DummyContrasts of the intercept are "
                             "supported at the Subject level (each contrast's fixed effect)")
    if dataset is not None:
        if dataset.model_type != "glm":
            raise InputError(f"{dataset.path}.Model.Type: expected 'glm' at the Dataset level")
        if set(dataset.group_by) != {"contrast"}:
            raise InputError(f"{dataset.path}.GroupBy: expected ['contrast'], got "
                             f"{list(dataset.group_by)}")
        if INTERCEPT not in dataset.x:
            raise InputError(f"{dataset.path}.Model.X: the Dataset design needs the "
                             "intercept (1)")
    return subject, dataset


def contrast_filter(model: StatsModel, run: NodeSpec) -> tuple[str, ...]:
    """The contrasts the edges' ``Filter`` let through to the group level (all: ())."""
    kept: tuple[str, ...] | None = None
    for edge in model.edges:
        for entity, values in (edge.filter or {}).items():
            if entity != "contrast":
                raise InputError(f"{model.source}: Edges ({edge.source} -> "
                                 f"{edge.destination}).Filter.{entity}: only filters on "
                                 "'contrast' are supported")
            labels = tuple(contrast_label(v) for v in
                           (values if isinstance(values, (list, tuple)) else [values]))
            kept = labels if kept is None else tuple(v for v in kept if v in labels)
            if not kept:
                raise InputError(f"{model.source}: Edges ({edge.source} -> "
                                 f"{edge.destination}).Filter.contrast: no contrast passes "
                                 "the filters")
    return kept or ()


def model_settings(model: StatsModel) -> dict:
    """The command-line values a model file stands for (argparse destinations).

    Returns
    -------
    dict
        ``contrast``, ``f_contrast``, ``run_node``, ``hrf_model``, ``drift_model``,
        ``high_pass``, the ``Input`` selections, the group level's ``group``,
        ``group_covariates``, ``group_contrast`` and ``group_inputs``, and
        ``runs_are_subjects`` (a Dataset node straight after the Run node: it takes one
        run per subject).
    """
    run = model.root
    subject, dataset = check_node_chain(model)
    t_contrasts, f_contrasts = run_contrasts(run)
    values = {
        "runs_are_subjects": dataset is not None and subject is None,
        "contrast": t_contrasts, "f_contrast": f_contrasts, "run_node": run_node_json(run),
        "hrf_model": run.hrf.model if run.hrf else "spm",
        "drift_model": "cosine" if run.high_pass else "none",
        "group_inputs": contrast_filter(model, run),
    }
    if run.high_pass:
        values["high_pass"] = run.high_pass
    for entity, wanted in (model.input or {}).items():
        if entity not in INPUT_ENTITIES:
            raise InputError(f"{model.source}: Input.{entity}: not supported (supported: "
                             f"{', '.join(INPUT_ENTITIES)})")
        wanted = [str(w) for w in (wanted if isinstance(wanted, list) else [wanted])]
        if entity in ("task", "space"):
            if len(wanted) != 1:
                raise InputError(f"{model.source}: Input.{entity}: one {entity} per run of "
                                 f"glm-workflows, got {wanted}")
            wanted = wanted[0]
        values[entity] = wanted
    if dataset is not None:
        values.update(_dataset_settings(dataset))
    return values


def _dataset_settings(dataset: NodeSpec) -> dict:
    """The group flags of the Dataset node: one-sample, covariates, group contrasts."""
    _dummy_conditions_known(dataset)
    covariates = [str(x) for x in dataset.x if x != INTERCEPT]
    contrasts = []
    for index, contrast in enumerate(dataset.expanded_contrasts()):
        where = f"{dataset.path}.Contrasts[{index}]"
        if contrast.test == "F":
            raise InputError(f"{where}.Test: F contrasts are not supported at the Dataset "
                             "level")
        if contrast.conditions == (INTERCEPT,) and contrast.weights == ((1.0,),):
            contrasts.append(None)  # the group mean, named after the incoming contrast
            continue
        row = _expression(contrast.conditions, contrast.weights[0], where)
        contrasts.append(f"{contrast_label(contrast.name)}={row}")
    if contrasts == [None]:
        contrasts = []  # the default: the mean, without a group- entity
    else:
        contrasts = [c or f"{INTERCEPT_NAME}={INTERCEPT_NAME}" for c in contrasts]
    return {"group": "one-sample", "group_covariates": ",".join(covariates) or None,
            "group_contrast": contrasts}
