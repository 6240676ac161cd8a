"""What a BIDS Stats Model means to this project, typed: contrast labels and rows, the
node chain it can run, the edge filters and the Dataset node's group model.

Read by :mod:`glm_workflows.spec.from_model` (a model file straight to a spec) and
:mod:`glm_workflows.execution.prepare` (the Dataset node's path in a group design's refusal).
"""

from __future__ import annotations

import keyword
import re

from ..core.errors import InputError
from ..core.stats_model import INTERCEPT, INTERCEPT_NAME, NodeSpec, StatsModel

#: Names a contrast row can hold: dotted names, also with levels (``fake_patient_grp.1``)
#: and interactions (``a.1:b.2``).
_IDENTIFIER = re.compile(r"^[A-Za-z_]\w*([.:]\w+)*$")


def contrast_label(name: str) -> str:
    """A BIDS ``contrast-<label>`` (letters and digits) from a model's name:
    ``trial_type.active`` -> ``trialTypeActive``; ``active_vs_rest`` -> ``activeVsRest``."""
    parts = [p for p in re.split(r"[^A-Za-z0-9]+", str(name)) if p]
    if not parts:
        raise InputError(f"contrast name {name!r}: no letter or digit to name it by")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


def expression(conditions, weights, where: str) -> str:
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


def dummy_conditions_known(node: NodeSpec) -> None:
    """Refuse DummyContrasts over every ``X`` entry when some are globs: the columns they
    match are known only from each run's data, so the contrasts would differ by run."""
    dummy = node.dummy_contrasts
    if dummy is not None and dummy.conditions is None and any(
            isinstance(x, str) and any(ch in x for ch in "*?[") for x in node.x):
        raise InputError(f"{node.path}.DummyContrasts: list its Contrasts (X holds glob "
                         "patterns, whose columns each run's data decides)")


def run_contrasts(node: NodeSpec) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    """The Run node's contrasts (dummy contrasts expanded) as (label, test, rows): ``pass``
    is estimated as ``t``; two names giving one BIDS label are refused."""
    dummy_conditions_known(node)
    result, labels = [], {}
    for index, contrast in enumerate(node.expanded_contrasts()):
        where = f"{node.path}.Contrasts[{index}]"
        rows = tuple(expression(contrast.conditions, row, where) for row in contrast.weights)
        label = contrast_label(contrast.name)
        if label in labels:
            raise InputError(f"{where}.Name: {contrast.name!r} and {labels[label]!r} both "
                             f"become the BIDS label {label!r}; rename one")
        labels[label] = contrast.name
        test = "F" if contrast.test == "F" else "t"
        result.append((label, test, rows if test == "F" else rows[:1]))
    return tuple(result)


def node_label(name: str) -> str:
    """A node's BIDS label (``node-<label>`` in output names): its name's letters and digits,
    camelCase as :func:`contrast_label` makes a contrast's (``F-test`` -> ``FTest``,
    ``run level`` -> ``runLevel``)."""
    try:
        return contrast_label(name)
    except InputError:
        raise InputError(f"node name {name!r}: no letter or digit to name it by") from None


def check_node_graph(model: StatsModel) -> tuple[NodeSpec | None, tuple[NodeSpec, ...]]:
    """The Subject node after the Run node, or after the Session node (or None), and the
    Dataset nodes after it (or after the Run node), in file order, refusing what this
    project cannot run: the Run node feeds a Session node, a Subject node or Dataset
    nodes; a Session node feeds the Subject node; a Subject node feeds Dataset nodes; a
    Dataset node feeds nothing. The Session node (or None) is :func:`session_node`'s."""
    run = model.root
    for node in model.nodes:
        if node.level == "Run" and node is not run:
            raise InputError(f"{node.path}: one Run node is supported")
    for level in ("Session", "Subject"):
        found = [n for n in model.nodes if n.level == level]
        if len(found) > 1:
            raise InputError(f"{found[1].path}: one {level} node is supported (the "
                             f"{level.lower()}s' fixed effects are {found[0].name!r})")
    session = session_node(model)
    subjects = [n for n in model.nodes if n.level == "Subject"]
    subject = subjects[0] if subjects else None
    per_subject = session is not None and set(session.group_by) == {"subject", "contrast"}
    if session is not None and subject is None and not per_subject:
        raise InputError(f"{session.path}: a Session node grouped by session feeds a Subject "
                         "node (each subject's sessions combined before the Dataset level); "
                         "add one, or group the Session node by ['subject', 'contrast']")
    if per_subject and subject is not None:
        raise InputError(f"{subject.path}: the Session node {session.name!r} is grouped by "
                         "subject, so each subject has one map: nothing left to combine")
    datasets = tuple(n for n in model.nodes if n.level == "Dataset")
    feeding = subject or session or run
    for node in (session, subject, *datasets):
        if node is None:
            continue
        edges = model.inputs(node.name)
        source = run if node is session else (session or run) if node is subject \
            else feeding
        if len(edges) != 1 or edges[0].source != source.name:
            came = ", ".join(e.source for e in edges) or "no node"
            raise InputError(f"{model.source}: Edges: {node.level} node {node.name!r} is fed "
                             f"by {came}; expected one edge from the {source.level} node "
                             f"{source.name!r} (Run -> [Session ->] [Subject ->] Dataset "
                             "nodes)")
    labels = {}
    for node in model.nodes:
        label = node_label(node.name)
        if label in labels:
            raise InputError(f"{node.path}.Name: {node.name!r} and {labels[label]!r} both "
                             f"become the BIDS label {label!r} (node-{label}); rename one")
        labels[label] = node.name
    for node in (session, subject):
        if node is not None:
            _check_meta(model, node, feeds_datasets=node is feeding, after_run=(
                node is session or session is None))
    if session is not None and set(session.group_by) not in (
            {"subject", "session", "contrast"}, {"subject", "contrast"}):
        raise InputError(f"{session.path}.GroupBy: expected ['subject', 'session', "
                         "'contrast'] (each session's runs combined) or ['subject', "
                         f"'contrast'] (each subject's), got {list(session.group_by)}")
    if subject is not None:
        if set(subject.group_by) == {"subject"}:
            arriving = _arriving(model, run, subject)
            if len(arriving) != 1:
                raise InputError(f"{subject.path}.GroupBy: ['subject'] would pool the "
                                 f"{len(arriving)} contrasts arriving "
                                 f"({', '.join(arriving)}) in one model; expected "
                                 "['subject', 'contrast']")
        elif set(subject.group_by) != {"subject", "contrast"}:
            raise InputError(f"{subject.path}.GroupBy: expected ['subject', 'contrast'], got "
                             f"{list(subject.group_by)}")
    for dataset in datasets:
        if dataset.model_type != "glm":
            raise InputError(f"{dataset.path}.Model.Type: expected 'glm' at the Dataset level")
        split_column(dataset.group_by, dataset.path)
        if not dataset.group_by:
            pooled_columns(model, dataset)
    return subject, datasets


#: Entities a Dataset node is not grouped by beside ``contrast`` (its maps are a
#: subject's; a participants.tsv column splits the subjects).
_NOT_COLUMNS = ("subject", "session", "run", "task", "space", "acquisition", "echo",
                "direction", "reconstruction", "ceagent")


def split_column(group_by, where: str) -> str | None:
    """The participants.tsv column a Dataset node is grouped by beside ``contrast``
    (``GroupBy: ["contrast", "group"]``: a model per incoming contrast and level of
    ``group``, over that level's subjects), or None (``["contrast"]`` or ``[]``); other
    groupings refused in one line naming ``where`` (the node)."""
    rest = [g for g in group_by if g != "contrast"]
    if not rest and set(group_by) in ({"contrast"}, set()):
        return None
    if "contrast" in group_by and len(rest) == 1 and rest[0] not in _NOT_COLUMNS:
        return rest[0]
    raise InputError(f"{where}.GroupBy: expected ['contrast'] (a model per incoming "
                     "contrast), ['contrast', <participants.tsv column>] (a model per "
                     "incoming contrast and level of the column) or [] (the contrasts as a "
                     f"variable), got {list(group_by)}")


def session_node(model: StatsModel) -> NodeSpec | None:
    """The model's Session node (None: none)."""
    return next((n for n in model.nodes if n.level == "Session"), None)


def designed(node: NodeSpec) -> bool:
    """A Session or Subject node with a design: ``Model.X`` other than ``[1]``, or
    contrasts other than the intercept's dummy contrast
    (:mod:`glm_workflows.core.within_subject`)."""
    return any(x != INTERCEPT for x in node.x) or bool(node.contrasts) or bool(
        node.dummy_contrasts and node.dummy_contrasts.conditions not in (None, (INTERCEPT,)))


def designed_node(model: StatsModel) -> NodeSpec | None:
    """The model's Session or Subject node with a design (None: none)."""
    return next((n for n in model.nodes if n.level in ("Session", "Subject")
                 and designed(n)), None)


def _check_meta(model: StatsModel, node: NodeSpec, feeds_datasets: bool,
                after_run: bool) -> None:
    """A Session or Subject node: ``meta`` (fixed effects); a design only at the node
    after the Run node that feeds the Dataset nodes, with one incoming contrast (its
    outputs are named after its own contrasts) and table transformations."""
    if node.model_type != "meta":
        session = session_node(model)
        over = ("the session's runs" if node.level == "Session" else "the sessions' maps"
                if session is not None else "the runs")
        raise InputError(f"{node.path}.Model.Type: 'glm' at the {node.level} level is not "
                         f"supported; use 'meta' (fixed effects over {over})"
                         + (": a glm over a subject's session maps has no residual "
                            "degrees of freedom (one map per session)"
                            if node.level == "Subject" and session is not None else ""))
    if not designed(node):
        if node.transformations:
            raise InputError(f"{node.path}.Transformations: a node without a design "
                             "(Model.X [1]) has nothing to transform")
        return
    if not (feeds_datasets and after_run):
        raise InputError(f"{node.path}: a design (Model.X other than [1], or contrasts) is "
                         "supported at the node after the Run node that feeds the Dataset "
                         "nodes; here only X [1] and the intercept's DummyContrasts")
    arriving = arriving_contrasts(model, node)
    if len(arriving) != 1:
        raise InputError(f"{node.path}: {len(arriving)} contrasts arrive "
                         f"({', '.join(arriving) or 'none'}); a design names its maps after "
                         "its own contrasts, so filter the incoming edge to one contrast")
    for label, test, _ in run_contrasts(node):
        if test != "t":
            raise InputError(f"{node.path}: contrast {label}: only t contrasts combine a "
                             "subject's maps (an F over them has no residual to test)")


def check_node_chain(model: StatsModel) -> tuple[NodeSpec | None, NodeSpec | None]:
    """The Subject node and the first Dataset node (each may be absent), refusing what
    this project cannot run (:func:`check_node_graph`)."""
    subject, datasets = check_node_graph(model)
    return subject, datasets[0] if datasets else None


def arriving_contrasts(model: StatsModel, node: NodeSpec) -> list[str]:
    """The labels of the contrasts that reach ``node`` through the edges' filters: the
    Run node's t contrasts (F contrasts stop at the node after the Run node), or, after a
    node with a design (:func:`designed_node`), that node's contrasts."""
    source = designed_node(model)
    if source is None or source is node:
        source = model.root
        labels = [label for label, test, _ in run_contrasts(source) if test == "t"]
    else:
        labels = [label for label, _, _ in run_contrasts(source)]
    return _through_edges(model, source, node, labels)


def pooled_columns(model: StatsModel, dataset: NodeSpec) -> tuple[str, ...]:
    """A Dataset node grouped by nothing (``GroupBy: []``): the incoming contrasts are a
    variable, each ``X`` name the indicator of one of them (named as the Run node names
    it, or by its BIDS label), ``1`` the intercept. Refuses any other name, listing what
    arrives."""
    arriving = arriving_contrasts(model, dataset)
    columns = []
    for index, entry in enumerate(dataset.x):
        if entry == INTERCEPT:
            continue
        label = contrast_label(entry)
        if label not in arriving:
            raise InputError(f"{dataset.path}.Model.X[{index}]: {entry!r} is no contrast "
                             "arriving at this node (GroupBy [] makes each incoming contrast "
                             f"a variable; arriving: {', '.join(arriving) or 'none'})")
        columns.append(str(entry))
    if not columns:
        raise InputError(f"{dataset.path}.Model.X: GroupBy [] needs the incoming contrasts "
                         f"it models in X (arriving: {', '.join(arriving) or 'none'})")
    if dataset.transformations:
        raise InputError(f"{dataset.path}.Transformations: not supported at a node grouped "
                         "by nothing (its variables are the incoming contrasts)")
    return tuple(columns)


def subject_group_by(node: NodeSpec) -> tuple[str, ...]:
    """A Subject node's GroupBy as run: ``['subject']`` (accepted by
    :func:`check_node_chain` when one contrast arrives, as pybids then groups the same
    maps) is ``['subject', 'contrast']``."""
    return ("contrast", "subject") if set(node.group_by) == {"subject"} else node.group_by


def _arriving(model: StatsModel, run: NodeSpec, subject: NodeSpec) -> list[str]:
    """The labels of the Run node's contrasts that reach the Subject node (through the
    Session node's edges too)."""
    return _through_edges(model, run, subject,
                          [label for label, _, _ in run_contrasts(run)])


def _through_edges(model: StatsModel, run: NodeSpec, node: NodeSpec, labels) -> list[str]:
    """``labels`` (of node ``run``'s contrasts) that every edge's filter from ``run`` up
    to ``node`` lets through."""
    current = node
    while current.name != run.name:
        edge = model.inputs(current.name)[0]
        kept = edge_filter(model, edge)
        if kept is not None:
            labels = [label for label in labels if label in kept]
        current = model.node(edge.source)
    return labels


def edge_filter(model: StatsModel, edge) -> tuple[str, ...] | None:
    """An edge's contrast filter as BIDS labels (None: no filter); other entities refused."""
    kept = None
    for entity, values in (edge.filter or {}).items():
        if entity != "contrast":
            raise InputError(f"{model.source}: Edges ({edge.source} -> "
                             f"{edge.destination}).Filter.{entity}: only filters on "
                             "'contrast' are supported")
        kept = tuple(contrast_label(v) for v in
                     (values if isinstance(values, (list, tuple)) else [values]))
    return kept


def filters_kept(source: str, filters) -> tuple[str, ...]:
    """The labels every given filter keeps, in the first filter's order (no filter: ())."""
    kept: tuple[str, ...] | None = None
    for edge_source, destination, labels in filters:
        if labels is None:
            continue
        kept = labels if kept is None else tuple(v for v in kept if v in labels)
        if not kept:
            raise InputError(f"{source}: Edges ({edge_source} -> {destination})"
                             ".Filter.contrast: no contrast passes the filters")
    return kept or ()


def dataset_contrasts(dataset: NodeSpec) -> tuple[tuple[str, str], ...]:
    """The Dataset node's group contrasts as (label, row) for t (and pass) contrasts and
    (label, (row, ...)) for F contrasts; () for the intercept's alone (the default: the
    group mean, named after the incoming contrast)."""
    dummy_conditions_known(dataset)
    contrasts = []
    for index, contrast in enumerate(dataset.expanded_contrasts()):
        where = f"{dataset.path}.Contrasts[{index}]"
        if contrast.conditions == (INTERCEPT,) and contrast.weights == ((1.0,),) \
                and contrast.test != "F" and contrast.name == INTERCEPT_NAME:
            contrasts.append(None)
            continue
        rows = tuple(expression(contrast.conditions, row, where) for row in contrast.weights)
        contrasts.append((contrast_label(contrast.name),
                          rows if contrast.test == "F" else rows[0]))
    if contrasts == [None]:
        return ()
    return tuple(c or (INTERCEPT_NAME, INTERCEPT_NAME) for c in contrasts)


def dataset_covariates(dataset: NodeSpec) -> tuple[str, ...]:
    """The Dataset design's columns other than the intercept (participants.tsv columns)."""
    return tuple(str(x) for x in dataset.x if x != INTERCEPT)
