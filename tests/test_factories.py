"""Every factory, built and flattened over a grid of specs, without reading data.

Each spec of the grid (the seed's flags, a multi-run study with a one-sample, two-sample
or paired group level, a model whose runs are the subjects, the group level alone on a
derivatives folder, fMRIPrep confounds) is planned from synthetic
:class:`~glm_workflows.inputs.runs.RunInputs` (fake paths, nothing read: the plan is built by
hand as :func:`~glm_workflows.execution.prepare.prepare` builds it after its checks), its
workflow built by walking the plan's graph
(:func:`~glm_workflows.workflows.study.init_analysis_wf`) and flattened by Nipype. The
graph has no iterables, grows linearly with the runs, and every node belongs to a
workflow of the level of the spec node it came from.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from glm_workflows.cli import spec_from_args
from glm_workflows.inputs.derivatives import SubjectMaps
from glm_workflows.inputs.runs import RunInputs
from glm_workflows.plan.study import LEVEL_FACTORIES, StudyPlan, group_plans, plan_study
from glm_workflows.spec.analysis import Edge
from glm_workflows.workflows.study import init_analysis_wf

FOLDERS = ["--output-dir", "/nonexistent/out", "--work-dir", "/nonexistent/work"]
PAIR = ["--contrast", "a=active", "--contrast", "b=rest", "--contrast", "aMinusB=active - rest"]

#: name -> (arguments of spec_from_args, runs per subject; 0: the group level alone)
GRID = {
    "seed": (["--data-dir", "/nonexistent/data"], 1),
    "seed_runs": (["--bids-dir", "/nonexistent/bids", "--task", "t"], 2),
    "one_sample": (["--bids-dir", "/nonexistent/bids", "--task", "t", "--group",
                    "one-sample", *PAIR], 2),
    "two_sample": (["--bids-dir", "/nonexistent/bids", "--task", "t", "--group",
                    "two-sample", "--group-column", "g", "--permutations", "20",
                    *PAIR], 3),
    "paired": (["--bids-dir", "/nonexistent/bids", "--task", "t", "--group", "paired",
                "--pair", "a,b", *PAIR], 2),
    "runs_are_subjects": (["--bids-dir", "/nonexistent/bids", "--task", "t", "--group",
                           "one-sample", *PAIR], 1),
    "fmriprep": (["--bids-dir", "/nonexistent/bids", "--derivatives", "/nonexistent/prep",
                  "--task", "t", "--confounds-strategy", "simple", "--group", "one-sample"],
                 2),
    "group_only": (["--from-derivatives", "/nonexistent/derivatives", "--task", "t",
                    "--group", "one-sample"], 0),
}


def _spec(name):
    argv, _ = GRID[name]
    spec, _ = spec_from_args([*argv, *FOLDERS])
    if name == "runs_are_subjects":  # a model file's Run -> Dataset: one run per subject
        run, dataset = spec.run_node, spec.dataset_node
        spec = replace(spec, nodes=(run, dataset), edges=(Edge(run.name, dataset.name),))
    return spec


def _runs(n_subjects: int, runs_per_subject: int, fmriprep: bool) -> list:
    runs = []
    for subject in range(1, n_subjects + 1):
        for run in range(1, runs_per_subject + 1):
            stem = f"/nonexistent/sub-{subject:02d}_task-t_run-{run}"
            runs.append(RunInputs(
                subject=f"{subject:02d}", task="t", bold_files=[f"{stem}_bold.nii.gz"],
                events_file=f"{stem}_events.tsv", t_r=2.0,
                run=str(run) if runs_per_subject > 1 else None,
                confounds_file=f"{stem}_confounds.tsv" if fmriprep else None,
                mask_file=f"{stem}_mask.nii.gz" if fmriprep else None))
    return runs


def _plan(name: str, n_subjects: int) -> StudyPlan:
    """The plan ``prepare`` would make of the grid's spec ``name`` on synthetic runs."""
    spec = _spec(name)
    group = spec.group_settings()
    if spec.inputs.kind == "derivatives":
        maps = tuple(SubjectMaps(
            f"{s:02d}", f"sub-{s:02d}_task-t", f"/nonexistent/sub-{s:02d}_mask.nii.gz",
            f"/nonexistent/sub-{s:02d}_mean.nii.gz",
            {c: f"/nonexistent/sub-{s:02d}_{c}.nii.gz" for c in ("a", "b")},
            {"a": "t", "b": "t"}, {"a": ("active",), "b": ("rest",)})
            for s in range(1, n_subjects + 1))
        contrasts = (("a", "t", ("active",)), ("b", "t", ("rest",)))
        plans, _ = group_plans([RunInputs(m.subject, "t", [], "", 1.0) for m in maps],
                               contrasts, {}, group)
        return StudyPlan(output_dir="/nonexistent/out", contrasts=contrasts, spec=spec,
                         nodes=tuple((n.level, n.name) for n in spec.nodes),
                         group=group, group_plans=tuple(plans), subject_maps=maps,
                         task="t", analysis="task-t",
                         from_derivatives="/nonexistent/derivatives")
    runs = _runs(n_subjects, GRID[name][1], spec.inputs.kind == "fmriprep")
    contrasts = spec.contrasts()
    skipped = {runs[-1].label: [contrasts[0][0]]} if GRID[name][1] > 1 else {}
    plans, _ = group_plans(runs, contrasts, skipped, group, lambda subjects: ["con", "pat"])
    return plan_study(runs, output_dir="/nonexistent/out", contrasts=contrasts,
                      skipped=skipped, spec=spec, model=spec.model_settings(),
                      inference=spec.inference, confounds=spec.confounds, group=group,
                      group_plans=plans, participants_file=__file__  # exists; not read
                      if group.group_column else None, n_chunks=2)


def _flat(plan):
    workflow = init_analysis_wf(plan)
    return workflow, workflow._create_flat_graph()


@pytest.mark.parametrize("name", sorted(GRID))
def test_the_factory_walks_the_spec_graph(name):
    """Every node of the flattened graph sits in a workflow built for an item of a spec
    node (a run, a subject with several runs, a group analysis), by that node's level's
    factory; every item has its workflow; no iterables."""
    plan = _plan(name, 3)
    spec_levels = [node.level for node in plan.spec.nodes]
    assert [level for level, _ in plan.nodes if level in spec_levels] == spec_levels
    walk = plan.workflows()
    level_of = {item.workflow_name: level for level, _, items in walk for item in items}
    assert len(level_of) == sum(len(items) for _, _, items in walk)
    workflow, flat = _flat(plan)
    seen: dict = {}
    for node in flat.nodes():
        assert node.iterables is None and not node.itersource, node.fullname
        top, child = node.fullname.split(".")[:2]
        assert top == workflow.name and child in level_of, node.fullname
        seen.setdefault(level_of[child], set()).add(child)
    assert seen == {level: {item.workflow_name for item in items}
                    for level, _, items in walk if items}
    assert set(seen) <= set(LEVEL_FACTORIES)
    if plan.group_only:
        assert set(seen) == {"Dataset"} and workflow.name == "glm_workflows_group_wf"
    else:
        assert "Run" in seen and workflow.name == "glm_workflows_wf"
        assert ("Subject" in seen) == (GRID[name][1] > 1)
    assert ("Dataset" in seen) == (plan.spec.dataset_node is not None)


@pytest.mark.parametrize("name", sorted(GRID))
def test_graph_size_grows_linearly_with_the_runs(name):
    """Nodes and connections per added subject are the same at 2, 3, 4 and 6 subjects
    (the group level alone: none, its merge nodes take every subject's file)."""
    sizes = []
    for n_subjects in (2, 3, 4, 6):
        _, flat = _flat(_plan(name, n_subjects))
        sizes.append((flat.number_of_nodes(), flat.number_of_edges()))
    (n2, e2), (n3, e3), (n4, e4), (n6, e6) = sizes
    assert n3 - n2 == n4 - n3 == (n6 - n4) / 2
    assert (n3 - n2 > 0) == (GRID[name][1] > 0)
    assert e3 - e2 == e4 - e3 == (e6 - e4) / 2


def test_a_subject_with_several_runs_is_combined_without_a_subject_node():
    """A graph without a Subject node (no Dataset node either) combines a subject's runs
    by fixed effects, as it always did: the plan adds the Subject step after the Run
    node."""
    spec = _spec("seed_runs")
    spec = replace(spec, nodes=(spec.run_node,), edges=())
    runs = _runs(2, 2, False)
    plan = plan_study(runs, output_dir="/nonexistent/out", contrasts=spec.contrasts(),
                      spec=spec, model=spec.model_settings())
    assert [level for level, _ in plan.nodes] == ["Run", "Subject"]
    assert plan.edges == (("run", "run_subject"),)
    _, flat = _flat(plan)
    assert {node.fullname.split(".")[1] for node in flat.nodes()} >= {
        "sub_01_fixed_effects_wf", "sub_02_fixed_effects_wf"}


def test_the_plan_is_frozen_and_reads_as_the_summary_and_array_planner_read_it():
    plan = _plan("one_sample", 3)
    with pytest.raises(AttributeError):
        plan.n_chunks = 4
    assert plan.participants == ["01", "02", "03"]
    assert [label for label, _ in plan.result_prefixes()] == ["01"] * 2 + ["02"] * 2 + [
        "03"] * 2 + ["01", "02", "03"]
    assert plan.runs[-1].skipped == ("a",) and plan.skipped == {plan.runs[-1].run.label: ["a"]}
    assert plan.subjects[-1].contrast_runs(plan.contrasts)["a"] == [0]
    assert len(plan.mem_gb) == len(plan.run_inputs) == 6
