"""The rules of a spec's graph: Run -> [Session ->] [Subject ->] Dataset nodes, the edges and their
filters, node labels, and a Dataset node grouped by nothing (its incoming contrasts a
variable). Checked by :func:`glm_workflows.spec.rules.check_spec`."""

from __future__ import annotations

from itertools import pairwise

from ..core.errors import InputError

LEVELS = ("Run", "Session", "Subject", "Dataset")


def check_graph(spec) -> None:
    """Run -> [Session ->] [Subject ->] Dataset nodes: one Run node (none for the group
    level alone), at most one Session node fed by it, at most one Subject node fed by the
    Session node (else the Run node), any Dataset nodes each fed by the Subject node (else
    the Session node, else the Run node); a Session node grouped by session feeds a
    Subject node (a subject's sessions are combined before the Dataset level), one grouped
    by subject alone feeds the Dataset nodes; a design (:class:`MetaModel` ``x``) only at
    the node after the Run node that feeds the Dataset nodes; node names whose labels
    collide refused."""
    from .bsm import node_label

    names = [node.name for node in spec.nodes]
    if len(set(names)) != len(names):
        raise InputError(f"nodes: a node name is used twice ({', '.join(names)})")
    labels: dict = {}
    for name in names:
        label = node_label(name)
        if label in labels:
            raise InputError(f"nodes: {name!r} and {labels[label]!r} both become the BIDS "
                             f"label {label!r}; rename one")
        labels[label] = name
    levels = [node.level for node in spec.nodes]
    session = spec.session_node
    per_subject = session is not None and "session" not in session.group_by
    if any(levels.count(level) > 1 for level in ("Run", "Session", "Subject")) or (
            session is not None and ("Subject" in levels) == per_subject):
        raise InputError(f"nodes {' -> '.join(levels)}: expected one Run node, then "
                         "optionally one Session node and one Subject node, then Dataset "
                         "nodes (a Session node grouped by session feeds a Subject node; "
                         "one grouped by subject alone combines each subject's runs and "
                         "feeds the Dataset nodes)")
    chain = sorted(spec.nodes, key=lambda node: LEVELS.index(node.level))
    if [n.level for n in chain] != levels:
        raise InputError(f"nodes {' -> '.join(levels)}: expected them in the order Run, "
                         "Session, Subject, Dataset")
    run, session, subject = spec.run_node, spec.session_node, spec.subject_node
    chained = [node for node in (run, session, subject) if node is not None]
    expected = [(a.name, b.name) for a, b in pairwise(chained)] if run else []
    feeding = subject or session or run
    designed = spec.designed_node
    if designed is not None and (run is None or chained.index(designed) != 1 or (
            designed.level == "Session" and not per_subject)):
        raise InputError(f"node {designed.name!r}: a design (Model.X) is supported at the "
                         "node after the Run node that feeds the Dataset nodes (a Session "
                         "node grouped by subject, or a Subject node over the runs)")
    if feeding is not None:
        expected += [(feeding.name, node.name) for node in spec.dataset_nodes]
    if spec.inputs.kind == "derivatives" and not spec.edges:
        expected = []
    given = [(e.source, e.destination) for e in spec.edges]
    if sorted(given) != sorted(expected) or len(set(given)) != len(given):
        shown = ", ".join(f"{a} -> {b}" for a, b in expected) or "(none)"
        raise InputError(f"{spec.source}: Edges: expected {shown} (Run -> [Session ->] "
                         "[Subject ->] Dataset nodes)")
    for edge in spec.edges:
        if any(entity != "contrast" for entity, _ in edge.filter):
            raise InputError(f"{spec.source}: Edges ({edge.source} -> {edge.destination})"
                             ".Filter: only filters on 'contrast' are supported")
        if edge.filter != tuple(sorted(edge.filter)):
            raise InputError(f"{spec.source}: Edges ({edge.source} -> {edge.destination})"
                             ".Filter: expected sorted (entity, values) pairs")


def check_pooled(spec, dataset, group, t_names) -> None:
    """A Dataset node grouped by nothing: a one-sample design whose columns (``covariates``)
    are incoming t contrasts (their indicators), and the intercept."""
    from .bsm import contrast_label

    where = f"node {dataset.name!r}"
    if group.model != "one-sample" or group.demean or group.transformations or \
            group.group_column:
        raise InputError(f"{where}: GroupBy []: the design is the incoming contrasts' "
                         "indicators (one-sample, no demean, transformations or group column)")
    if group.permutations:
        raise InputError(f"{where}: GroupBy []: no permutation inference (the maps of one "
                         "subject are not exchangeable); set permutations to 0")
    if not group.covariates:
        raise InputError(f"{where}: GroupBy []: Model.X names no incoming contrast")
    arriving = [name for name in (t_names or ()) if not spec.group_inputs(dataset)
                or name in spec.group_inputs(dataset)]
    for column in group.covariates:
        if t_names is not None and contrast_label(column) not in arriving:
            raise InputError(f"{spec.source}: {where}: Model.X: {column!r} is no contrast "
                             f"arriving at the node (arriving: {', '.join(arriving)})")
