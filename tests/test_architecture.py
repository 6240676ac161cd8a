"""The shape of the code, checked (docs ARCHITECTURE §3.5 and §5 items 1-3).

Every module of glm_workflows/ and interfaces/ (installed as glm_workflows.interfaces) is
parsed with :mod:`ast`; its imports, at module level and inside functions alike (a lazy
import cannot hide an edge), make the import graph the rules below are asserted on:

* the numeric core (``glm_workflows.core``) imports no Nipype and, outside itself, only
  the package's version (no settings: the core takes model settings as required arguments
  and owns the choices it accepts, ``core.choices``);
* no import circle (strongly connected component of more than one module);
* imports go one way, ``cli -> execution -> workflows -> interfaces -> core``, the services
  (spec, plan, inputs, outputs, report, the planner) beside the graph: :data:`LAYERS` places
  every module by its package, :data:`ALLOWED` says which layers each layer may import;
* the layers in :data:`NO_NIPYPE` (everything but interfaces, workflows, execution and the
  cli) import no Nipype, not even through other modules;
* no module grows past :data:`MAX_LINES` lines but the listed ones, a list that may only
  get shorter.
"""

from __future__ import annotations

import ast
import hashlib
import itertools
from functools import cache
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"glm_workflows": ROOT / "glm_workflows",
            "glm_workflows.interfaces": ROOT / "interfaces"}

#: Layer of each module: a module takes the layer of the longest listed prefix of its
#: name. Packages are concerns; every module must be placed (a new one is placed on purpose).
LAYERS = {
    "glm_workflows": "ground",                 # __version__, the public names, moved paths
    "glm_workflows.core": "core",              # numeric core: numpy/nibabel/nilearn
    "glm_workflows.settings": "settings",      # every setting's default (choices: core)
    "glm_workflows.spec": "spec",              # AnalysisSpec, its builders and forms
    "glm_workflows.plan": "plan",              # the frozen StudyPlan
    "glm_workflows.inputs": "inputs",          # runs found, selected, checked; derivatives read
    "glm_workflows.report": "report",          # HTML reports, the closing summary
    "glm_workflows.outputs": "outputs",        # output folder, records, provenance, publishing
    "glm_workflows.interfaces": "interfaces",  # Nipype SimpleInterfaces over core
    "glm_workflows.workflows": "workflows",    # init_*_wf factories: Nipype graphs
    "glm_workflows.execution": "execution",    # run_analysis, plugins, SLURM arrays
    "glm_workflows.execution.prepare": "planner",  # checks the data, makes the plan
    "glm_workflows.execution.combinations": "planner",  # a node design's weights, planned
    "glm_workflows.execution.group_planning": "planner",  # the Dataset nodes' analyses
    "glm_workflows.execution.resources": "planner",  # the CPUs and memory a run may use
    "glm_workflows.cli": "cli",                # the command line and what array jobs run
    "glm_workflows.synthetic": "tools",        # example datasets (python -m ...synthetic)
    "glm_workflows.synthetic_surface": "tools",  # a surface (GIFTI) fMRIPrep-like study
    "glm_workflows.synthetic_cifti": "tools",  # a CIFTI (fsLR 91k) fMRIPrep-like study
}

#: The layers each layer may import (its own included): cli -> execution -> workflows ->
#: interfaces -> core, with the services (planner, inputs, outputs, report, plan, spec)
#: beside the graph: they never import interfaces or workflow modules.
_BASE = {"settings", "core", "ground"}
ALLOWED = {
    "ground": {"ground"},
    "core": {"core", "ground"},
    "settings": _BASE,
    "spec": {"spec"} | _BASE,
    "plan": {"plan"} | _BASE,
    "inputs": {"inputs", "plan"} | _BASE,
    "report": {"report", "plan"} | _BASE,
    "outputs": {"outputs", "report"} | _BASE,
    "planner": {"planner", "inputs", "outputs", "report", "plan", "spec"} | _BASE,
    "interfaces": {"interfaces"} | _BASE,
    "workflows": {"workflows", "interfaces", "plan", "spec"} | _BASE,
    "execution": {"execution", "workflows", "interfaces", "planner", "inputs", "outputs",
                  "report", "plan", "spec"} | _BASE,
    "cli": {"cli", "execution", "workflows", "interfaces", "planner", "inputs", "outputs",
            "report", "plan", "spec"} | _BASE,
    "tools": {"tools", "inputs", "plan"} | _BASE,
}

#: Layers whose modules must not reach Nipype, directly or through what they import: the
#: spec, the plan and the planner with everything it reads and writes.
NO_NIPYPE = {"ground", "core", "settings", "spec", "plan", "planner", "inputs", "report",
             "outputs", "tools"}

#: §5 item 3: modules over MAX_LINES lines. The list was emptied (every module was split
#: by concern) and may not grow again: a module past the limit is split.
MAX_LINES = 400
LONG_MODULES: set[str] = set()


def _module_files() -> dict[str, tuple[Path, bool]]:
    """Module name -> (file, is a package's __init__), for both source folders."""
    found = {}
    for package, folder in PACKAGES.items():
        stack = [folder]
        while stack:
            for path in sorted(stack.pop().iterdir()):
                if path.is_symlink() or path.name == "__pycache__":
                    continue  # glm_workflows/interfaces -> ../interfaces: listed once
                if path.is_dir():
                    stack.append(path)
                elif path.suffix == ".py":
                    parts = list(path.relative_to(folder).with_suffix("").parts)
                    is_package = parts[-1] == "__init__"
                    found[".".join([package, *parts[:-1 if is_package else None]])] = \
                        (path, is_package)
    return found


@cache
def import_graph() -> dict[str, frozenset[str]]:
    """Module -> every module it imports (third-party ones as written, e.g.
    ``nipype.pipeline``; this project's ones resolved to the module file)."""
    modules = _module_files()
    graph = {}
    for name, (path, is_package) in modules.items():
        package = name if is_package else name.rpartition(".")[0]
        imported = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[:len(parts) - node.level + 1]
                                    + ([node.module] if node.module else []))
                else:
                    base = node.module
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules
                           else base for alias in node.names]
            else:
                continue
            for target in targets:
                if target == "glm_workflows" or target.startswith("glm_workflows."):
                    while target not in modules:  # glm_workflows.core.design.X -> the module
                        target = target.rpartition(".")[0]
                imported.add(target)
        imported.discard(name)
        graph[name] = frozenset(imported)
    return graph


def layer(module: str) -> str:
    prefixes = [p for p in LAYERS if module == p or module.startswith(p + ".")]
    return LAYERS[max(prefixes, key=len)] if prefixes else "unplaced"


def own(module: str) -> bool:
    return module == "glm_workflows" or module.startswith("glm_workflows.")


def is_core(module: str) -> bool:
    return module.startswith("glm_workflows.core")


def imports_closure(module: str) -> set[str]:
    """This project's modules ``module`` imports, directly or through others."""
    graph, seen, todo = import_graph(), set(), [module]
    while todo:
        for target in graph[todo.pop()]:
            if own(target) and target not in seen:
                seen.add(target)
                todo.append(target)
    seen.discard(module)
    return seen


def circles(graph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []
    counter = itertools.count()

    def visit(node):
        index[node] = low[node] = next(counter)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in graph:
                continue
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _edges(where=lambda source, target: True) -> list[str]:
    return [f"{source} -> {target}" for source, targets in sorted(import_graph().items())
            for target in sorted(targets) if where(source, target)]


# ------------------------------------------------------------------------ the graph itself


def test_the_graph_sees_module_and_function_level_imports():
    """The parser resolves relative imports and finds imports inside functions."""
    graph = import_graph()
    assert "glm_workflows.core.errors" in graph["glm_workflows.core.tables"]  # from .errors
    assert "glm_workflows.core.confounds" in graph["glm_workflows.core.design"]  # in a function
    assert "glm_workflows.core.design" in graph["glm_workflows.interfaces.design"]  # absolute
    assert "nipype.interfaces.base" in graph["glm_workflows.interfaces.design"]
    assert "glm_workflows.interfaces.design" in graph["glm_workflows.interfaces"]


def test_every_module_is_placed_in_a_layer():
    unplaced = sorted(m for m in import_graph() if layer(m) == "unplaced")
    assert not unplaced, f"add to LAYERS in {Path(__file__).name}: {', '.join(unplaced)}"


# ------------------------------------------------------------------ (a) the numeric core


def test_core_imports_no_nipype_even_through_other_modules():
    reached = {module: imports_closure(module) | {module}
               for module in import_graph() if is_core(module)}
    offending = sorted(f"{module} (through {via})" for module, closure in reached.items()
                       for via in sorted(closure)
                       if any(t.split(".")[0] == "nipype" for t in import_graph()[via]))
    assert not offending, "core/ reaches Nipype: " + "; ".join(offending)


def test_core_imports_nothing_outside_core_but_the_version():
    outside = _edges(lambda s, t: is_core(s) and own(t) and not is_core(t)
                     and t != "glm_workflows")
    assert not outside, "core/ imports outside core/: " + "; ".join(outside)


def _reaches_nipype(module: str) -> list[str]:
    """The modules through which ``module`` imports Nipype (itself included)."""
    return sorted(via for via in imports_closure(module) | {module}
                  if any(t.split(".")[0] == "nipype" for t in import_graph()[via]))


def test_the_services_import_no_nipype_even_through_other_modules():
    """The study's plan is made without Nipype: the spec, the planner and what it reads
    and writes (inputs, outputs, the closing summary), the array planner load no
    interface or workflow module."""
    assert layer("glm_workflows.execution.prepare") == "planner"
    assert layer("glm_workflows.plan.study") == "plan"
    offending = {module: _reaches_nipype(module) for module in sorted(import_graph())
                 if layer(module) in NO_NIPYPE}
    offending = {module: via for module, via in offending.items() if via}
    assert not offending, "reaches Nipype: " + "; ".join(
        f"{module} (through {', '.join(via)})" for module, via in offending.items())


# ------------------------------------------------------------------------- (b) no circle


def test_no_import_circle():
    """No import circle anywhere (core/ included), function-level imports counted."""
    found = circles(import_graph())
    assert not found, "import circle(s): " + "; ".join(
        " <-> ".join(component) + " (edges: " + ", ".join(
            _edges(lambda s, t, c=set(component): s in c and t in c)) + ")"
        for component in found)


def test_the_circle_finder_finds_circles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"e"}}
    assert circles(graph) == [["a", "b", "c"]]


# ---------------------------------------------------------------- (c) one-way direction


def test_imports_go_one_way():
    """cli -> execution -> workflows -> interfaces -> core: each edge stays within
    ALLOWED; in particular interfaces never import workflow modules or the cli, core never
    imports interfaces, workflow modules or the cli."""
    upward = _edges(lambda s, t: own(t) and layer(t) not in ALLOWED[layer(s)])
    assert not upward, "imports against the direction: " + "; ".join(
        f"{edge} ({layer(edge.split(' -> ')[0])} -> {layer(edge.split(' -> ')[1])})"
        for edge in upward)


def test_nothing_below_the_cli_imports_the_cli():
    assert ALLOWED["cli"] >= set().union(*ALLOWED.values()) - {"tools"}
    assert all("cli" not in layers for name, layers in ALLOWED.items() if name != "cli")
    assert ALLOWED["core"] == {"core", "ground"}
    assert not {"workflows", "cli"} & ALLOWED["interfaces"]


def test_only_execution_and_the_cli_import_workflow_modules():
    """run_analysis (execution) builds the graph it runs; nothing it calls to collect,
    check, plan, write or report imports a workflow or interface module."""
    graph_layers = {"workflows", "interfaces"}
    below = _edges(lambda s, t: layer(s) not in graph_layers | {"execution", "cli"}
                   and layer(t) in graph_layers)
    assert not below, "; ".join(below)


# ------------------------------------------------------------------- size and topic guard


def test_no_module_grows_past_the_limit_and_the_long_list_only_shrinks():
    lengths = {name: len(path.read_text().splitlines())
               for name, (path, _) in _module_files().items()}
    too_long = sorted(f"{m} ({n} lines)" for m, n in lengths.items()
                      if n > MAX_LINES and m not in LONG_MODULES)
    assert not too_long, f"over {MAX_LINES} lines: " + ", ".join(too_long) + " (split it)"
    shrunk = sorted(m for m in LONG_MODULES if lengths.get(m, 0) <= MAX_LINES)
    assert not shrunk, "under the limit now: remove from LONG_MODULES: " + ", ".join(shrunk)


# ------------------------------------------------------- the code that decides a design


def test_the_design_modules_are_every_module_the_design_imports():
    """The list whose source keys the design-check cache (validation._design_code_version)
    names the design module and every module of this package it reaches, no other."""
    from glm_workflows.core.design import DESIGN_MODULES

    reached = {"glm_workflows.core.design"} | imports_closure("glm_workflows.core.design")
    assert len(set(DESIGN_MODULES)) == len(DESIGN_MODULES)
    assert set(DESIGN_MODULES) == reached, (
        f"missing: {sorted(reached - set(DESIGN_MODULES))}; "
        f"not imported: {sorted(set(DESIGN_MODULES) - reached)}")


def test_the_design_code_version_hashes_the_design_modules_and_is_stable():
    """Unchanged code gives the same key; the key is the digest of the listed modules'
    source (and nilearn's version), so an edit to any of them changes it."""
    from glm_workflows.core.design import DESIGN_MODULES
    from glm_workflows.inputs import checks as validation

    files = {name: _module_files()[name][0] for name in DESIGN_MODULES}
    first = validation._design_code_version()
    validation._design_code_version.cache_clear()
    assert validation._design_code_version() == first
    sources = b"".join(files[name].read_bytes() for name in DESIGN_MODULES)
    assert first == hashlib.sha1(sources + version("nilearn").encode()).hexdigest()
    assert len({files[name] for name in DESIGN_MODULES}) == len(DESIGN_MODULES)
