"""What a built workflow is, as provenance records it: its nodes and edges, named as in
the graph Nipype flattens it into."""

from __future__ import annotations

from nipype.pipeline.engine import Workflow


def graph_summary(workflow) -> dict:
    """Nodes and edges of the workflow graph (before iterables are expanded).

    Named as in the graph Nipype flattens the nested workflows into
    (``top_wf.sub_wf.node``), but read from the nested workflows themselves: flattening
    starts with a deep copy of the whole workflow (tenths of a second for 64 tiny runs,
    growing with the study).
    """
    nodes: set = set()
    edges: set = set()
    _add_flat_graph(workflow, workflow.name, nodes, edges)
    return {"Nodes": sorted(nodes), "Edges": sorted(list(edge) for edge in edges)}


def _add_flat_graph(workflow, prefix: str, nodes: set, edges: set) -> None:
    """Add the full names of ``workflow``'s nodes (those of its nested workflows too) and
    of the pairs of nodes its connections join."""
    for node in workflow._graph.nodes():
        if isinstance(node, Workflow):
            _add_flat_graph(node, f"{prefix}.{node.name}", nodes, edges)
        else:
            nodes.add(f"{prefix}.{node.name}")
    for source, target, data in workflow._graph.edges(data=True):
        for output, field in data["connect"]:
            edges.add((_connected_node(source, output, prefix),
                       _connected_node(target, field, prefix)))


def _connected_node(node, port, prefix: str) -> str:
    """Full name of the node a connection reaches through ``port``: ``node`` itself, or,
    when ``node`` is a nested workflow, the node that ``port`` (``inner.node.field``, or
    a tuple starting with it for a connection through a function) names in it."""
    if not isinstance(node, Workflow):
        return f"{prefix}.{node.name}"
    path = port[0] if isinstance(port, tuple) else port
    return f"{prefix}.{node.name}.{path.rsplit('.', 1)[0]}"
