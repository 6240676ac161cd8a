"""The plan of a study, without Nipype: what each run, subject and group analysis computes.

:func:`~glm_workflows.execution.prepare.prepare` checks the data and returns a frozen
:class:`StudyPlan`; the workflow factory (:func:`glm_workflows.workflows.study.init_analysis_wf`),
the SLURM array planner (:func:`glm_workflows.execution.submit.submit_array`), the closing summary
(:mod:`glm_workflows.report.summary`) and the provenance record all read it. The plan keeps the
spec's graph (:attr:`StudyPlan.nodes`, :attr:`StudyPlan.edges`): the factory walks it and
builds, per node, the workflows of its level (:meth:`StudyPlan.workflows`).

Each run's outputs are named after all its BIDS entities (``RunInputs.prefix``: sub,
ses, task, acq, ce, rec, dir, run, echo). A subject's fixed effects are named
``sub-<label>[_ses-<label>]_task-<label>`` plus each of ``acq``, ``ce``, ``rec``, ``dir``
and ``echo`` that all the subject's runs share with the same value
(:func:`subject_session`, :func:`subject_entities`); an entity whose value differs
between the runs, or that some run lacks, is left out, and ``run`` always is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..core.deflate import ONE_CALL_BYTES
from ..core.entities import bids_prefix
from ..settings import (
    DEFAULT_CONFOUNDS,
    DEFAULT_GROUP,
    DEFAULT_INFERENCE,
    DEFAULT_MODEL,
    SEED_CONTRASTS,
    ConfoundSettings,
    GroupSettings,
    InferenceSettings,
    ModelSettings,
)
from .groups import (  # noqa: F401 (their import paths)
    GroupPlan,
    group_plans,
    pooled_plan,
    subject_groups,
)

#: The workflow a level's factory builds per item: a run, a subject with several runs,
#: a group analysis.
LEVEL_FACTORIES = {"Run": "init_first_level_wf", "Session": "init_fixed_effects_wf",
                   "Subject": "init_fixed_effects_wf", "Dataset": "init_group_wf"}


def estimate_memory_gb(n_voxels: int, n_scans: int) -> dict:
    """Per-node memory estimates (GB) for a run of ``n_voxels`` x ``n_scans``.

    ``data_gb`` is the size of the run as float64. About 0.3 GB is the Python
    process with nilearn loaded. Concatenation holds the scans and their
    concatenation in the stored type. The fit holds the run in its stored type
    (int16: a quarter of ``data_gb``) while masking, then two float32 copies of the
    masked series and float64 chunks; measured peaks: 0.30 GB on the SPM auditory
    run (0.19 GB as float64) and 1.43 GB on a 2 mm 97x115x97x300 run (2.6 GB).
    Contrasts hold a few float64 maps; thresholds, tables and their figures about 0.5 GB
    whatever the run (measured when matplotlib drew the figures: an upper bound). The
    fit's diagnostics are collected from the fit's own float64 chunks, within the fit's
    peak; ``residuals`` is what writing the residuals adds (the masked residuals and
    their 4D image, float64, and three times the image while it is compressed when it is
    small enough to be compressed in one call,
    :data:`~glm_workflows.core.deflate.ONE_CALL_BYTES`).
    """
    data_gb = n_voxels * n_scans * 8 / 1024**3
    serialized_gb = 3 * data_gb if n_voxels * n_scans * 8 <= ONE_CALL_BYTES else 0.0
    return {
        "concatenate": round(0.3 + data_gb, 2),
        "fit": round(0.3 + 0.5 * data_gb, 2),
        "residuals": round(2 * data_gb + serialized_gb, 2),
        "light": round(0.3 + 0.5 * data_gb, 2),
        "inference": 0.5,
    }


def fit_memory_gb(estimates: dict, save_residuals: bool) -> float:
    """The fit node's memory (GB) from a run's estimates: the fit's, and what writing the
    residuals adds when it writes them."""
    return estimates["fit"] + (estimates.get("residuals", 0) if save_residuals else 0)


# ------------------------------------------------------------------ the pure helpers


def run_contrasts(contrasts, run, skipped: dict) -> list:
    """The contrasts of ``run``: all but those ``skipped`` lists for its label."""
    return [c for c in contrasts if c[0] not in skipped.get(run.label, ())]


def subject_session(runs) -> str | None:
    """The session entity of a subject's combined outputs: set only if all runs share it."""
    sessions = {run.session for run in runs}
    return sessions.pop() if len(sessions) == 1 else None


def subject_entities(runs) -> dict:
    """The other entities of a subject's combined outputs: those all runs share."""
    first, *others = [run.entities for run in runs]
    return {key: value for key, value in first.items()
            if all(other.get(key) == value for other in others)}


# ------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class RunPlan:
    """One run: its inputs, its contrasts, the contrasts it does not have (a condition
    absent from the run) and its nodes' memory estimates (:func:`estimate_memory_gb`)."""

    run: Any  # glm_workflows.inputs.runs.RunInputs
    contrasts: tuple
    skipped: tuple[str, ...] = ()
    mem_gb: dict = field(default_factory=dict)

    @property
    def workflow_name(self) -> str:
        return f"{self.run.label}_wf"


@dataclass(frozen=True)
class SubjectPlan:
    """One subject (or, at a Session node, one session of a subject): its runs and the
    entities of its combined outputs (its fixed effects, when it has several runs).
    ``sessions``: after a Session node, the subject's session plans, combined in turn
    (the subject's fixed effects when it has several sessions)."""

    subject: str
    runs: tuple[RunPlan, ...]
    session: str | None = None
    entities: dict = field(default_factory=dict)
    sessions: tuple = ()

    @property
    def combined(self) -> bool:
        """Several runs (after a Session node: several sessions): combined by fixed
        effects."""
        return len(self.sessions or self.runs) > 1

    @property
    def prefix(self) -> str:
        """The BIDS prefix of the subject's combined outputs."""
        return bids_prefix(self.subject, self.runs[0].run.task, self.session, None,
                           **self.entities)

    @property
    def workflow_name(self) -> str:
        return (f"sub_{self.subject}{'_ses_' + self.session if self.session else ''}"
                "_fixed_effects_wf")

    def contrast_runs(self, contrasts) -> dict:
        """Per contrast name, the indices of the runs that have it."""
        return {name: [index for index, r in enumerate(self.runs) if name not in r.skipped]
                for name, _, _ in contrasts}

    def contrast_parts(self, contrasts) -> dict:
        """Per contrast name, the indices of what is combined (the sessions after a
        Session node, else the runs) that have it."""
        if not self.sessions:
            return self.contrast_runs(contrasts)
        return {name: [index for index, session in enumerate(self.sessions)
                       if any(name not in r.skipped for r in session.runs)]
                for name, _, _ in contrasts}


def subject_plans(runs: tuple[RunPlan, ...], by_session: bool = False
                  ) -> tuple[SubjectPlan, ...]:
    """The subjects of ``runs``, in the order of their first run; ``by_session`` (a
    Session node): each with its sessions' plans (:func:`session_plans`)."""
    groups: dict = {}
    for run_plan in runs:
        groups.setdefault(run_plan.run.subject, []).append(run_plan)
    sessions = session_plans(runs) if by_session else ()
    return tuple(SubjectPlan(subject, tuple(plans),
                             subject_session([p.run for p in plans]),
                             subject_entities([p.run for p in plans]),
                             tuple(s for s in sessions if s.subject == subject))
                 for subject, plans in groups.items())


def session_plans(runs: tuple[RunPlan, ...]) -> tuple[SubjectPlan, ...]:
    """A Session node's items: per subject and session, in the order of their first run,
    its runs and the entities they share (outputs ``sub-<s>_ses-<t>_task-<T>...``)."""
    groups: dict = {}
    for run_plan in runs:
        groups.setdefault((run_plan.run.subject, run_plan.run.session), []).append(run_plan)
    return tuple(SubjectPlan(subject, tuple(plans), session,
                             subject_entities([p.run for p in plans]))
                 for (subject, session), plans in groups.items())


@dataclass(frozen=True)
class StudyPlan:
    """What a study computes, checked: read by the workflow factory, the SLURM array
    planner, the closing summary and the provenance record.

    ``nodes`` are the spec's ``(level, name)`` in order and ``edges`` its ``(source,
    destination)`` pairs; the first level (``runs``, ``subjects``) or the group level
    alone (``subject_maps``, ``task``, ``space`` and ``template_entities`` (its other
    template entities: ``cohort``, ``res``, ``den``), ``analysis``, ``inputs``,
    ``from_derivatives``).
    ``skipped`` is, per run (or subject maps) label, the contrasts it lacks.
    ``combinations``: a Session or Subject node with a design, per subject, per node
    contrast, ``(incoming contrast, weights of its runs)``
    (:func:`glm_workflows.execution.combinations.plan_combinations`).
    """

    output_dir: Any
    contrasts: tuple = ()
    runs: tuple[RunPlan, ...] = ()
    subjects: tuple[SubjectPlan, ...] = ()
    nodes: tuple[tuple[str, str], ...] = ()
    edges: tuple[tuple[str, str], ...] = ()
    spec: Any = None  # glm_workflows.spec.analysis.AnalysisSpec (None: built directly)
    model: ModelSettings = DEFAULT_MODEL
    inference: InferenceSettings = DEFAULT_INFERENCE
    confounds: ConfoundSettings = DEFAULT_CONFOUNDS
    group: GroupSettings = DEFAULT_GROUP
    group_plans: tuple[GroupPlan, ...] = ()
    participants_file: str | None = None
    n_chunks: int = 1
    skipped: dict = field(default_factory=dict)
    plugin_args: dict = field(default_factory=dict)
    subject_maps: tuple = ()
    task: str | None = None
    space: str | None = None
    template_entities: dict = field(default_factory=dict)
    analysis: str | None = None
    inputs: dict | None = None
    from_derivatives: str | None = None
    combinations: dict = field(default_factory=dict)

    @property
    def group_only(self) -> bool:
        """The group level alone, on the subject maps of a derivatives folder."""
        return self.from_derivatives is not None or bool(self.subject_maps)

    @property
    def run_inputs(self) -> list:
        """The runs' :class:`~glm_workflows.inputs.runs.RunInputs`, in order."""
        return [p.run for p in self.runs]

    @property
    def mem_gb(self) -> list:
        """Per run, its nodes' memory estimates."""
        return [p.mem_gb for p in self.runs]

    @property
    def participants(self) -> list[str]:
        """The subject labels, each once, in order."""
        if self.group_only:
            return [maps.subject for maps in self.subject_maps]
        return [s.subject for s in self.subjects]

    @property
    def sessions(self) -> list[SubjectPlan]:
        """A Session node's items: every subject's sessions (none without one)."""
        return [session for subject in self.subjects for session in subject.sessions]

    def result_prefixes(self) -> list[tuple[str, str]]:
        """``(subject, BIDS prefix)`` of each model whose results are written: each run,
        then each session's fixed effects when it has several runs (a Session node), then
        each subject's fixed effects when it has several runs (or sessions)."""
        return ([(p.run.subject, p.run.prefix) for p in self.runs]
                + [(s.subject, s.prefix) for s in self.sessions if s.combined]
                + [(s.subject, s.prefix) for s in self.subjects if s.combined])

    def workflows(self) -> list[tuple[str, str, list]]:
        """The graph walk: per node, in order, ``(level, node name, items)``: the items
        its level's factory builds a workflow for (:data:`LEVEL_FACTORIES`): the
        :class:`RunPlan` s, the :class:`SubjectPlan` s with several runs, the
        :class:`GroupPlan` s."""
        items = {"Run": list(self.runs),
                 "Session": [s for s in self.sessions if s.combined],
                 "Subject": [s for s in self.subjects if s.combined]}
        walk = []
        for level, name in self.nodes:
            if level == "Session" and not (self.spec is None or self.spec.by_session):
                level = "Subject"  # grouped by subject alone: each subject's runs combined
            walk.append((level, name, items[level] if level in items else
                         [g for g in self.group_plans if g.node in (None, name)]))
        return walk

    def ancestors(self, name: str) -> list[str]:
        """The nodes upstream of node ``name`` (along the edges), nearest first."""
        found, todo = [], [name]
        while todo:
            node = todo.pop(0)
            for source, destination in self.edges:
                if destination == node and source not in found:
                    found.append(source)
                    todo.append(source)
        return found


def graph_of(spec, subjects, groups) -> tuple[tuple, tuple]:
    """The plan's ``(nodes, edges)``: the spec's; without a spec (a factory called
    directly) the chain Run -> Subject [-> Dataset, with group plans]. A subject with
    several runs is combined by fixed effects as it always was: a graph without a
    Subject node (its runs-are-subjects Dataset node refuses them) gets one after the Run
    node."""
    if spec is None:
        nodes = [("Run", "run"), ("Subject", "subject")] + (
            [("Dataset", "dataset")] if groups else [])
        return tuple(nodes), tuple(zip([n for _, n in nodes[:-1]], [n for _, n in nodes[1:]],
                                       strict=True))
    nodes = [(node.level, node.name) for node in spec.nodes]
    edges = [(edge.source, edge.destination) for edge in spec.edges]
    levels = [level for level, _ in nodes]
    if "Run" in levels and "Subject" not in levels and "Session" not in levels and any(
            s.combined for s in subjects):
        run = nodes[levels.index("Run")][1]
        nodes.insert(levels.index("Run") + 1, ("Subject", f"{run}_subject"))
        edges.append((run, f"{run}_subject"))
    return tuple(nodes), tuple(edges)


def plan_study(runs, *, output_dir, contrasts=SEED_CONTRASTS, mem_gb=None, skipped=None,
               spec=None, **settings) -> StudyPlan:
    """A :class:`StudyPlan` of the first level from its runs and settings (the keyword
    arguments of :func:`glm_workflows.workflows.study.init_glm_wf`; ``settings``: the other fields
    of :class:`StudyPlan`)."""
    skipped = dict(skipped or {})
    mem_gb = mem_gb or [estimate_memory_gb(64 * 64 * 64, 96)] * len(runs)
    run_plans = tuple(RunPlan(run, tuple(run_contrasts(contrasts, run, skipped)),
                              tuple(skipped.get(run.label, ())), run_mem)
                      for run, run_mem in zip(runs, mem_gb, strict=True))
    subjects = subject_plans(run_plans, spec is not None and spec.by_session)
    group = tuple(settings.pop("group_plans", None) or ())
    nodes, edges = graph_of(spec, subjects, group)
    return StudyPlan(output_dir=output_dir, contrasts=tuple(contrasts), runs=run_plans,
                     subjects=subjects, nodes=nodes, edges=edges, spec=spec, skipped=skipped,
                     group_plans=group, **settings)
