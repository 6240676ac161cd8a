"""Nipype's ``Workflow`` with connections checked once per node, not once per port.

``Workflow.connect`` (Nipype 1.11) checks that each connected port exists by building the
node's output specification afresh for every port (a new traited object each time, 60 %
of the time spent building a study's graph), turns each connection function into its
source text with ``inspect`` for every connection, and looks for new nodes across every
nested workflow (quadratic in the number of runs, as is ``add_nodes``). :class:`Workflow`
connects exactly as Nipype does (the same checks, errors, edges and edge data, so the same
flat graph, node names and hashes) with each node's outputs built at most once (a plain
interface's read from its output specification's class), each function's
source read once, and a node no workflow holds (``_hierarchy`` None) known as new without
a search. One of Nipype's checks is left out: ``add_nodes`` of workflows no workflow holds
yet does not look for their nodes among this one's (a node held twice, which Nipype refuses;
no factory here shares a node). With a Nipype release it was not checked against, it is
Nipype's ``Workflow``.
"""

from __future__ import annotations

import functools
import weakref

import nipype
from nipype.interfaces.base.core import BaseInterface
from nipype.pipeline import engine as pe
from nipype.pipeline.engine.base import EngineBase
from nipype.utils.functions import getsource

#: The Nipype releases whose ``Workflow.connect`` :class:`Workflow` repeats.
CHECKED_NIPYPE = ("1.11.",)

#: Each node's outputs (a traited object Nipype builds afresh on every access), built once.
_OUTPUTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
#: Each connection function's source text, read once.
_SOURCES: dict = {}
#: The lineage of a name first met among the new nodes (Nipype: always a duplicate).
_NEW = object()
#: A name not in the graph.
_ABSENT = object()


class Workflow(pe.Workflow):
    """A Nipype ``Workflow`` whose ``connect`` and ``add_nodes`` cost the same for every
    node, however large the workflow (see the module's description)."""

    def connect(self, *args, **kwargs):
        """Connect nodes as ``nipype.pipeline.engine.Workflow.connect`` does."""
        if kwargs or len(args) not in (1, 4) or not nipype.__version__.startswith(
                CHECKED_NIPYPE):
            return super().connect(*args, **kwargs)
        connection_list = args[0] if len(args) == 1 else \
            [(args[0], args[2], [(args[1], args[3])])]
        newnodes = []
        for srcnode, destnode, _ in connection_list:
            if self in (srcnode, destnode):
                return super().connect(connection_list)  # Nipype's error
            for node in (srcnode, destnode):
                if node not in newnodes and not self._holds(node):
                    newnodes.append(node)
        if newnodes:
            self._check_nodes(newnodes)
            for node in newnodes:
                if node._hierarchy is None:
                    node._hierarchy = self.name
        not_found = []
        connected_ports: dict = {}
        for srcnode, destnode, connects in connection_list:
            if destnode not in connected_ports:
                connected_ports[destnode] = set()
            if destnode in self._graph:
                for _, _, data in self._graph.in_edges(destnode, data=True):
                    connected_ports[destnode].update(name for _, name in data["connect"])
            for source, dest in connects:
                if dest in connected_ports[destnode]:
                    raise Exception(
                        f"Trying to connect {srcnode}:{source} to {destnode}:{dest} but input "
                        f"'{dest}' of node '{destnode}' is already\nconnected.\n")
                if not _is_io(destnode) and not destnode._check_inputs(dest):
                    not_found.append(["in", destnode.name, dest])
                if not _is_io(srcnode):
                    if isinstance(source, tuple):
                        sourcename = source[0]
                    elif isinstance(source, (str, bytes)):
                        sourcename = source
                    else:
                        raise Exception(f"Unknown source specification in connection from "
                                        f"output of {srcnode.name}")
                    if sourcename and not _has_output(srcnode, sourcename):
                        not_found.append(["out", srcnode.name, sourcename])
                connected_ports[destnode].add(dest)
        if not_found:
            raise Exception("\n".join(["Some connections were not found"] + [
                f"Module {node} has no {kind}put called {port}\n"
                for kind, node, port in not_found]))
        for _, _, connects in connection_list:  # functions as their source text
            for index, (source, dest) in enumerate(connects):
                if isinstance(source, tuple) and not isinstance(source[1], (str, bytes)):
                    connects[index] = ((source[0], _source(source[1]), source[2:]), dest)
        for srcnode, destnode, connects in connection_list:
            edge_data = self._graph.get_edge_data(srcnode, destnode, None)
            if edge_data:
                for data in connects:
                    if data not in edge_data["connect"]:
                        edge_data["connect"].append(data)
                self._graph.add_edges_from([(srcnode, destnode, edge_data)])
            else:
                self._graph.add_edges_from([(srcnode, destnode, {"connect": connects})])
        if newnodes:
            self._cache_new(newnodes)

    def add_nodes(self, nodes):
        """Add nodes (or workflows) as ``nipype.pipeline.engine.Workflow.add_nodes`` does,
        those no workflow holds yet without searching the nested workflows."""
        if not nipype.__version__.startswith(CHECKED_NIPYPE) or any(
                node._hierarchy is not None or not isinstance(node, EngineBase)
                for node in nodes):
            return super().add_nodes(nodes)
        if not nodes:
            return None
        self._check_nodes(nodes)
        for node in nodes:
            node._hierarchy = self.name
        self._graph.add_nodes_from(nodes)
        self._cache_new(nodes)
        return None

    def _check_nodes(self, nodes):
        """Nipype's check that no new node has the name of one in the graph, against an
        index of the graph's names kept with it (Nipype lists them on every call, which
        makes adding runs one by one quadratic); rebuilt when the graph changed size
        other than through this class (Nipype's flattening edits the graph directly)."""
        count, lineage = getattr(self, "_names", (None, None))
        if count != len(self._graph):
            lineage = {}
            for node in self._graph.nodes():
                lineage.setdefault(node.name, node._hierarchy)
        new = {}
        for node in nodes:
            known = new.get(node.name, lineage.get(node.name, _ABSENT))
            if known is _NEW or (known is not _ABSENT and known in (node._hierarchy,
                                                                   self.name)):
                raise OSError(f'Duplicate node name "{node.name}" found.')
            if known is _ABSENT:
                new[node.name] = _NEW
        self._names = (len(self._graph), lineage)

    def _holds(self, node) -> bool:
        """Whether ``node`` is in this workflow or one nested in it (a node no workflow
        holds has no hierarchy: no search)."""
        return node in self._nodes_cache or (node._hierarchy is not None
                                             and self._has_node(node))

    def _cache_new(self, nodes) -> None:
        """Nipype's node caches and the name index, updated with ``nodes`` (just added to
        the graph, their hierarchy set)."""
        count, lineage = getattr(self, "_names", (None, None))
        if count is not None and count + len(nodes) == len(self._graph):
            for node in nodes:
                lineage.setdefault(node.name, node._hierarchy)
            self._names = (len(self._graph), lineage)
        for node in nodes:
            self._nodes_cache.add(node)
            if isinstance(node, pe.Workflow):
                self._nested_workflows_cache.add(node)

    def _has_attr(self, parameter, subtype="in"):
        """Nipype's check of a nested node's port, its outputs built once."""
        if subtype == "in":
            return super()._has_attr(parameter, subtype)
        path = parameter.split(".")
        if len(path) < 2:
            return False
        workflow = self
        for name in path[:-2]:
            workflow = _named(workflow, name)
            if not isinstance(workflow, pe.Workflow):
                return False
        node = _named(workflow, path[-2])
        if node is None or isinstance(node, pe.Workflow):
            return False
        return _has_output(node, path[-1])


def _named(workflow, name: str):
    """The node (or workflow) of ``workflow``'s graph named ``name`` (the first, as
    Nipype's search finds it), or None."""
    for node in workflow._graph.nodes():
        if node.name == name:
            return node
    return None


def _is_io(node) -> bool:
    """Nipype leaves the ports of its ``io`` interfaces (data sinks, grabbers) unchecked."""
    interface = getattr(node, "_interface", None)
    if interface is None:
        return False
    cls = interface.__class__
    return ".io" in str(cls) or any(".io" in str(base) for base in cls.__bases__)


def _has_output(node, name: str) -> bool:
    """``node`` has an output ``name`` (a nested workflow: Nipype's own check). A plain
    node whose interface's outputs are its output specification (``BaseInterface._outputs``)
    has every trait of that class: no object is built to find those."""
    if isinstance(node, pe.Workflow):
        return node._check_outputs(name)
    if type(node) is pe.Node and type(node._interface)._outputs is BaseInterface._outputs \
            and node._interface.output_spec is not None \
            and name in _class_outputs(node._interface.output_spec):
        return True
    if node in _OUTPUTS and hasattr(_OUTPUTS[node], name):
        return True
    _OUTPUTS[node] = node.outputs  # built afresh when not found (outputs that grew since)
    return hasattr(_OUTPUTS[node], name)


@functools.cache
def _class_outputs(spec) -> frozenset:
    """The traits every instance of an output specification class has."""
    return frozenset(spec.class_trait_names())


def _source(function) -> str:
    """A connection function's source text (as Nipype stores it), read once."""
    if function not in _SOURCES:
        _SOURCES[function] = getsource(function)
    return _SOURCES[function]
