"""Running a workflow as Nipype's ``Workflow.run`` does, less its redundant deep copy.

``Workflow.run`` (Nipype 1.11) deep-copies the workflow to flatten it
(``_create_flat_graph``), then deep-copies the flat graph again before expanding its
iterables (``generate_expanded_graph(deepcopy(flatgraph))``). The flat graph is already a
private copy that nothing else holds, so the second copy protects nothing; on a study of
1,000 runs (13,000 nodes) it costs seconds before the first node runs. :func:`run_graph`
does what ``Workflow.run`` does, step for step, without that second copy: the same flat
graph (node names, hierarchy, inputs and so hashes and work folders), the same
configuration of each node, the same plugin call. A caller that built the workflow for this
run alone (the command line) lets it flatten the workflow itself (``consume``), without
even the first copy. With a Nipype release it was not checked against it calls
``workflow.run`` unchanged.
"""

from __future__ import annotations

import os
import os.path as op
from copy import deepcopy

import nipype
from nipype import config
from nipype.pipeline.engine.nodes import MapNode
from nipype.pipeline.engine.utils import (
    generate_expanded_graph,
    merge_dict,
    write_workflow_prov,
    write_workflow_resources,
)
from nipype.utils.datetime import utcnow
from nipype.utils.misc import str2bool

from .garbage import collections_paused, freeze_new_objects

#: The Nipype releases whose ``Workflow.run`` :func:`run_graph` repeats (checked line by line).
CHECKED_NIPYPE = ("1.11.",)


def same_run_as_nipype() -> bool:
    """Whether the installed Nipype is one whose ``Workflow.run`` :func:`run_graph` repeats."""
    return nipype.__version__.startswith(CHECKED_NIPYPE)


def execution_graph(workflow, plugin: str = "Linear", plugin_args: dict | None = None,
                    *, consume: bool = False):
    """The graph of nodes a plugin runs: ``workflow`` flattened, each node told which of its
    outputs are needed, iterables expanded, each node configured; as ``Workflow.run`` makes
    it, with one deep copy of the workflow (not two). Automatic garbage collections are
    paused meanwhile (the copy allocates millions of objects, all kept), and within
    :func:`~glm_workflows.execution.garbage.collections_of_new_objects` (a command-line
    run) the graph is left out of its collections (``freeze_new_objects``).

    Parameters
    ----------
    workflow : nipype Workflow
        Its ``config`` and ``base_dir`` set (updated in place, as ``Workflow.run`` does).
    plugin : str
        The plugin's name (a MapNode is told it, as ``Workflow.run`` tells it).
    plugin_args : dict or None
        The plugin's arguments (likewise).
    consume : bool
        Flatten ``workflow`` itself rather than a deep copy of it (what Nipype flattens):
        the same graph, its nodes the workflow's own, and the workflow of no further use
        (for a caller that built it for this run only). The copy is most of the time
        before the first node runs: 2.3 s of CPU for 1,000 runs, against 0.5 s.

    Returns
    -------
    execgraph : networkx.DiGraph
        Copies of the workflow's nodes (the workflow itself is left as it was), or with
        ``consume`` the workflow's nodes.
    """
    with collections_paused():
        if consume:
            workflow._generate_flatgraph()
            flatgraph = workflow._graph
        else:
            flatgraph = workflow._create_flat_graph()  # a deep copy of the workflow: private
        workflow.config = merge_dict(deepcopy(config._sections), workflow.config)
        workflow._set_needed_outputs(flatgraph)
        execgraph = generate_expanded_graph(flatgraph)
        for index, node in enumerate(execgraph.nodes()):
            node.config = merge_dict(deepcopy(workflow.config), node.config)
            node.base_dir = workflow.base_dir
            node.index = index
            if isinstance(node, MapNode):
                node.use_plugin = (plugin, plugin_args)
        workflow._configure_exec_nodes(execgraph)
        freeze_new_objects()  # kept for the whole run: no collection scans them
    return execgraph


def run_graph(workflow, plugin="Linear", plugin_args: dict | None = None, *,
              consume: bool = False):
    """Run ``workflow`` as ``workflow.run(plugin, plugin_args)`` does (its reports,
    provenance and resource records as its configuration asks), its execution graph made by
    :func:`execution_graph`. Any other Nipype release: ``workflow.run`` itself.

    Parameters
    ----------
    workflow : nipype Workflow
    plugin : str or plugin object
        A Nipype plugin's name (``Linear``...) or an instance (its own ``plugin_args``).
    plugin_args : dict or None
        For a plugin given by name.
    consume : bool
        The workflow is flattened itself, not a copy (:func:`execution_graph`); it is of
        no further use.

    Returns
    -------
    execgraph : networkx.DiGraph
        The graph that ran.
    """
    if not same_run_as_nipype():
        return workflow.run(plugin=plugin, plugin_args=plugin_args)
    if isinstance(plugin, str):
        from nipype.pipeline import plugins

        runner = getattr(plugins, f"{plugin}Plugin")(plugin_args=plugin_args)
    else:
        runner, plugin = plugin, plugin.__class__.__name__[:-len("Plugin")]
        plugin_args = runner.plugin_args
    execgraph = execution_graph(workflow, plugin, plugin_args, consume=consume)
    if str2bool(workflow.config["execution"]["create_report"]):
        workflow._write_report_info(workflow.base_dir, workflow.name, execgraph)
    runner.run(execgraph, updatehash=False, config=workflow.config)
    if str2bool(workflow.config["execution"]["write_provenance"]):
        prov_base = op.join(workflow.base_dir,
                            f"workflow_provenance_{utcnow().strftime('%Y%m%dT%H%M%S')}")
        write_workflow_prov(execgraph, prov_base, format="all")
    if config.resource_monitor:
        write_workflow_resources(execgraph, filename=op.join(
            workflow.base_dir or os.getcwd(), workflow.name, "resource_monitor.json"))
    return execgraph

