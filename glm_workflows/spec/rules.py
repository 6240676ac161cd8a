"""Every cross-field rule of an :class:`~glm_workflows.spec.analysis.AnalysisSpec`,
checked when it is made, each refusal one line (the command line's own texts: flag
names for what flags set, the model file and JSON path for what a model set)."""

from __future__ import annotations

from ..core.bids_filter import check_filters
from ..core.choices import DRIFT_MODELS, GROUP_ESTIMATORS, GROUP_MODELS, NOISE_MODELS
from ..core.errors import InputError
from ..settings import DEFAULT_MODEL, ModelSettings
from .frozen import thaw
from .graph_rules import check_graph, check_pooled

INPUT_KINDS = ("bids", "fmriprep", "files", "spm_auditory", "derivatives")
LEVELS = ("Run", "Session", "Subject", "Dataset")
#: The input flags of the first level (refused for the group level alone, which reads the
#: subject maps as they were written; ``--space``, ``--res`` and ``--den`` choose among the
#: maps' templates there).
FIRST_LEVEL_INPUTS = ("func", "derivatives", "events", "tr", "confounds", "mask", "session",
                      "run", "bids_filter_file")
_MODELS = {"Run": "RunModel", "Session": "MetaModel", "Subject": "MetaModel",
           "Dataset": "GroupModel"}


def check_setting_values(*, table_min_cluster_size=None, min_kept_volumes=None,
                         permutations=None, alpha=None, cluster_forming_p=None,
                         smoothing_fwhm=None) -> None:
    """The range of each setting given (None: not checked), one line naming its flag.

    Shared by the spec's rules and the command line, which checks every value given
    before any data is read, whichever node would take it.
    """
    from ..core.permutations import check_permutations
    from ..core.smoothing import check_fwhm_value

    check_fwhm_value(smoothing_fwhm, "--smoothing-fwhm")
    for flag, value, smallest in (("--table-min-cluster-size", table_min_cluster_size, 0),
                                  ("--min-kept-volumes", min_kept_volumes, 1),
                                  ("--permutations", permutations, 0)):
        if value is not None and value < smallest:
            raise InputError(f"{flag}: expected a number >= {smallest}, got {value}")
    if permutations:
        check_permutations(permutations, alpha)
    if cluster_forming_p is not None and not 0 < cluster_forming_p < 1:
        raise InputError(f"--cluster-forming-p: expected a p value in (0, 1), got "
                         f"{cluster_forming_p}")


def check_contrast(contrast) -> None:
    from ..core.contrasts import check_contrast_name

    if contrast.test not in ("t", "F"):
        raise InputError(f"contrast {contrast.name}: test {contrast.test!r}: expected 't' or "
                         "'F'")
    check_contrast_name(contrast.name)
    if not isinstance(contrast.rows, tuple) or not contrast.rows or not all(
            isinstance(row, str) and row.strip() for row in contrast.rows):
        raise InputError(f"contrast {contrast.name}: expected rows as a tuple of "
                         "expressions")
    if contrast.test == "t" and len(contrast.rows) != 1:
        raise InputError(f"contrast {contrast.name}: a t contrast has one row")


def infer_kind(inputs) -> str:
    if inputs.from_derivatives is not None:
        return "derivatives"
    if inputs.files is not None and inputs.files.func:
        return "files"
    if inputs.derivatives:
        return "fmriprep"
    return "bids" if inputs.bids_dir else "spm_auditory"


def _tuple_or_none(inputs, name):
    value = getattr(inputs, name)
    if value is not None and not (isinstance(value, tuple)
                                  and all(isinstance(v, str) for v in value)):
        raise InputError(f"inputs.{name}: expected a tuple of labels or None, got {value!r}")


def check_inputs(inputs) -> None:
    """The data-free checks of today's ``_runs`` and ``_prepare_from_derivatives``."""
    from ..core.contrasts import check_contrast_name
    from ..core.entities import check_space_label

    if inputs.kind not in INPUT_KINDS:
        raise InputError(f"inputs.kind: expected one of {', '.join(INPUT_KINDS)}, got "
                         f"{inputs.kind!r}")
    if inputs.space:
        check_space_label(inputs.space)
    for name in ("subjects", "sessions", "runs"):
        _tuple_or_none(inputs, name)
    if not isinstance(inputs.derivatives, tuple):
        raise InputError(f"inputs.derivatives: expected a tuple of folders, got "
                         f"{inputs.derivatives!r}")
    files = inputs.files or _NO_FILES
    if inputs.kind == "derivatives":
        given = {"func": files.func, "derivatives": inputs.derivatives,
                 "events": files.events, "tr": files.tr, "confounds": files.confounds,
                 "mask": inputs.mask, "session": inputs.sessions, "run": inputs.runs,
                 "bids_filter_file": inputs.bids_filters}
        flags = [f"--{name.replace('_', '-')}" for name in FIRST_LEVEL_INPUTS
                 if given[name] is not None and given[name] != ()]
        if flags:
            raise InputError(f"{flags[0]}: not with --from-derivatives (the subject maps "
                             "are read as they were written)")
        names = [check_contrast_name(name) for name, _ in inputs.contrasts]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise InputError(f"--contrast: name(s) used twice: {', '.join(duplicates)}")
        return
    if inputs.contrasts:
        raise InputError("inputs.contrasts: only for the group level alone "
                         "(from_derivatives); the Run node holds the contrasts")
    if files.func and inputs.bids_dir:
        raise InputError("give either --bids-dir or --func, not both")
    if inputs.bids_filters:
        if not inputs.bids_dir:
            raise InputError("--bids-filter-file: needs --bids-dir (it selects BIDS runs)")
        check_filters(inputs.bids_filters, "inputs.bids_filters", bool(inputs.derivatives))
    if files.func:
        if not files.events or files.tr is None:
            raise InputError("--func needs --events and --tr")
        if inputs.subjects and len(inputs.subjects) > 1:
            raise InputError("--func takes one --subject label")
        return
    given = [flag for flag, value in (("--space", inputs.space), ("--res", inputs.res),
                                      ("--den", inputs.den)) if value]
    if inputs.derivatives and not inputs.bids_dir:
        raise InputError("--derivatives needs --bids-dir (the raw dataset: events, sidecars)")
    if given and not inputs.derivatives:
        raise InputError(f"{given[0]}: needs --derivatives")


class _NoFiles:
    func, events, confounds, tr = (), None, None, None


_NO_FILES = _NoFiles()


def check_node(node) -> None:
    """A node's own rules: its level, its model's type, its settings."""
    if node.level not in _MODELS:
        raise InputError(f"node {node.name!r}: level {node.level!r}: expected one of Run, "
                         "Session, Subject, Dataset")
    if type(node.model).__name__ != _MODELS[node.level]:
        raise InputError(f"node {node.name!r}: a {node.level} node takes a "
                         f"{_MODELS[node.level]}, got {type(node.model).__name__}")
    if not node.name:
        raise InputError("node: expected a non-empty name")
    designed = node.level in ("Session", "Subject") and node.model.designed
    if node.level != "Run" and not designed and (node.contrasts or node.transformations):
        raise InputError(f"node {node.name!r}: only the Run node and a Session or Subject "
                         "node with a design (Model.X) have contrasts and transformations")
    if designed:
        _check_designed(node)
    if node.level == "Session" and set(node.group_by) not in (
            {"subject", "session", "contrast"}, {"subject", "contrast"}):
        raise InputError(f"node {node.name!r}.GroupBy: expected ['subject', 'session', "
                         f"'contrast'] (each session's runs) or ['subject', 'contrast'] "
                         f"(each subject's), got {list(node.group_by)}")
    if node.level == "Subject" and set(node.group_by) != {"subject", "contrast"}:
        raise InputError(f"node {node.name!r}.GroupBy: expected ['subject', 'contrast'], got "
                         f"{list(node.group_by)}")
    if node.level == "Dataset":
        from .bsm import split_column

        split_column(node.group_by, f"node {node.name!r}")
    if node.level == "Run":
        _check_run(node)


def _check_designed(node) -> None:
    """A Session or Subject node's design: t contrasts, each named once."""
    if not node.contrasts:
        raise InputError(f"node {node.name!r}: a design (Model.X) needs Contrasts or "
                         "DummyContrasts (what the maps' combination estimates)")
    names = [c.name for c in node.contrasts]
    for contrast in node.contrasts:
        if contrast.test != "t":
            raise InputError(f"node {node.name!r}: contrast {contrast.name!r}: only t "
                             "contrasts combine a subject's maps (an F over them has no "
                             "residual to test against)")
        if names.count(contrast.name) > 1:
            raise InputError(f"node {node.name!r}: contrast name {contrast.name!r} used twice")


def _check_run(node) -> None:
    from ..core.confounds import check_confound_options
    from ..core.hrf import HRF_MODELS

    model = node.model
    names = [c.name for c in node.contrasts]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(f"--contrast: name(s) used twice: {', '.join(duplicates)}")
    if model.noise_model not in NOISE_MODELS:
        raise InputError(f"--noise-model: expected one of {', '.join(NOISE_MODELS)}, got "
                         f"{model.noise_model!r}")
    if not isinstance(model.save_residuals, bool):
        raise InputError(f"--save-residuals: expected True or False, got "
                         f"{model.save_residuals!r}")
    design = model.design
    if type(design).__name__ == "NilearnDesign":
        if node.transformations:
            raise InputError(f"node {node.name!r}: transformations need a model design "
                             "(Model.X), not nilearn's")
        if design.hrf_model not in HRF_MODELS:
            raise InputError(f"hrf_model: expected one of {', '.join(HRF_MODELS)}, got "
                             f"{design.hrf_model!r}")
        if design.drift_model not in DRIFT_MODELS:
            raise InputError(f"drift_model: expected one of {', '.join(DRIFT_MODELS)}, "
                             f"got {design.drift_model!r}")
        if not design.high_pass > 0:
            raise InputError(f"high_pass: expected a frequency > 0 Hz, got "
                             f"{design.high_pass!r}")
    elif type(design).__name__ == "ModelDesign":
        if not design.x:
            raise InputError(f"{design.path or node.name}: Model.X: expected at least one "
                             "variable")
        if design.high_pass is not None and not design.high_pass > 0:
            raise InputError(f"{design.path or node.name}: HighPassFilterCutoffHz: expected "
                             f"a frequency > 0 Hz, got {design.high_pass!r}")
    else:
        raise InputError(f"node {node.name!r}: design: expected a NilearnDesign or a "
                         f"ModelDesign, got {type(design).__name__}")
    if not 0 <= design.slice_time_ref <= 1:
        raise InputError(f"slice_time_ref: expected a number in [0, 1], got "
                         f"{design.slice_time_ref!r}")
    if design.drift_order < 0:
        raise InputError(f"drift_order: expected an order >= 0, got {design.drift_order!r}")
    confounds = model.confounds
    check_confound_options(confounds.strategy, confounds.columns, confounds.options())
    check_setting_values(min_kept_volumes=confounds.min_kept_volumes,
                         smoothing_fwhm=model.smoothing_fwhm)


def check_spec(spec) -> None:
    """The graph's shape, then the rules across nodes, inputs and inference."""
    from ..core.inference import check_threshold_settings

    if type(spec.inputs).__name__ != "InputSpec":
        raise InputError("inputs: expected an InputSpec")
    if not all(type(node).__name__ == "Node" for node in spec.nodes):
        raise InputError("nodes: expected Node objects")
    inference = spec.inference
    check_threshold_settings(inference.height_control, inference.alpha, inference.threshold,
                             inference.cluster_threshold)
    check_setting_values(table_min_cluster_size=inference.table_min_cluster_size)
    check_graph(spec)
    run, dataset = spec.run_node, spec.dataset_node
    if spec.inputs.kind == "derivatives":
        if run is not None:
            raise InputError("--from-derivatives: no Run node (the first level was run "
                             "already)")
        if dataset is None:
            raise InputError("--from-derivatives: needs --group (it runs only the group "
                             "level)")
    elif run is None:
        raise InputError("nodes: a Run node is needed (the group level alone reads a "
                         "--from-derivatives folder)")
    if run is not None:
        confounds = run.model.confounds
        model_design = type(run.model.design).__name__ == "ModelDesign"
        if confounds.selects and not model_design and spec.inputs.kind != "fmriprep":
            flag = "--confounds-strategy" if confounds.strategy else "--confounds-columns"
            raise InputError(f"{flag}: needs fMRIPrep outputs (--bids-dir with "
                             "--derivatives)")
    for node in spec.dataset_nodes:
        _check_group(spec, node)


def _check_group(spec, dataset) -> None:
    """The data-free rules of today's ``_group_settings``, ``_group_inputs`` and
    ``_check_flag_values``."""
    from ..core.contrasts import parse_contrast_option
    from ..core.entities import check_label

    group = dataset.model.group
    if group.model not in GROUP_MODELS:
        raise InputError(f"--group: expected one of {', '.join(GROUP_MODELS)}, got "
                         f"{group.model!r}")
    if group.chunks is not None:
        raise InputError("group.chunks: an execution setting (--permutation-chunks), not "
                         "part of the analysis")
    if group.estimator not in GROUP_ESTIMATORS:
        raise InputError(f"--group-estimator: expected one of {', '.join(GROUP_ESTIMATORS)}, "
                         f"got {group.estimator!r}")
    if group.estimator == "mixed" and group.permutations:
        raise InputError("--group-estimator mixed: no permutation inference (the mixed "
                         "statistic's null distribution would need each permutation's REML "
                         "fit; permute the OLS statistic with --group-estimator ols)")
    if group.exchangeability_blocks and not group.permutations:
        raise InputError("--exchangeability-blocks: blocks restrict permutations; set "
                         "--permutations")
    if group.whole_blocks and not group.exchangeability_blocks:
        raise InputError("--whole-blocks: needs --exchangeability-blocks COLUMN")
    if group.exchangeability_blocks and not spec.inputs.bids_dir:
        raise InputError("--exchangeability-blocks: needs --bids-dir (its participants.tsv)")
    if group.estimator == "mixed" and group.model == "paired":
        raise InputError("--group-estimator mixed: not with --group paired (the variance of "
                         "A - B is not the sum of the two maps' variances: make A - B a "
                         "first-level contrast and test it one-sample)")
    if group.estimator == "mixed" and not dataset.group_by:
        raise InputError("--group-estimator mixed: not at a Dataset node grouped by nothing "
                         "(the maps of one subject are not independent)")
    if group.model == "two-sample" and not group.group_column:
        raise InputError("--group two-sample: needs --group-column COLUMN (participants.tsv)")
    if group.group_column and group.model != "two-sample":
        raise InputError("--group-column: only with --group two-sample")
    if group.demean and not group.covariates:
        raise InputError("--demean: needs --group-covariates (it demeans them; nothing "
                         "else of the group design is demeaned)")
    t_names = [c.name for c in spec.run_node.contrasts if c.test == "t"] \
        if spec.run_node else None
    if group.model == "paired":
        pair = group.pair
        if len(pair) != 2 or pair[0] == pair[1] or (
                t_names is not None and any(p not in t_names for p in pair)):
            among = f" among {', '.join(t_names)}" if t_names is not None else ""
            raise InputError(f"--pair: expected two different first-level t contrasts "
                             f"A,B{among}; got {','.join(pair)!r}")
    elif group.pair:
        raise InputError("--pair: only with --group paired")
    if not dataset.group_by:
        check_pooled(spec, dataset, group, t_names)
    elif (group.group_column or group.covariates) and not spec.inputs.bids_dir:
        raise InputError("--group-column/--group-covariates: need --bids-dir "
                         "(its participants.tsv)")
    elif len(dataset.group_by) > 1 and not spec.inputs.bids_dir:
        raise InputError(f"node {dataset.name!r}.GroupBy {list(dataset.group_by)}: needs "
                         "--bids-dir (its participants.tsv)")
    for name, row in group.contrasts:
        if isinstance(row, str):
            parse_contrast_option(f"{name}={row}", "t")
        elif not row or not all(isinstance(r, str) and r.strip() for r in row):
            raise InputError(f"group contrast {name!r}: expected an expression (t) or "
                             "expressions (F rows)")
        elif group.permutations:
            raise InputError(f"group contrast {name!r}: an F contrast has no permutation "
                             "inference (nilearn's permutations test t contrasts); set "
                             "permutations to 0")
        check_label(name, "group contrast")
    if not group.intercept and (group.model != "one-sample" or not group.contrasts):
        raise InputError("group design without intercept: needs a one-sample model (the "
                         "covariates alone) and its contrasts")
    if group.transformations:
        from ..core.group_variables import check_table_instructions

        if group.model != "one-sample":
            raise InputError("group transformations: only with a one-sample model (the "
                             "design of a model file's Dataset node)")
        check_table_instructions(list(thaw(group.transformations)), "Dataset node")
    check_setting_values(permutations=group.permutations, alpha=spec.inference.alpha,
                         cluster_forming_p=group.cluster_forming_p)
    incoming = [e for e in spec.edges if e.destination == dataset.name]
    if incoming and group.inputs:
        raise InputError("group.inputs: the edges' filters hold the contrasts taken up")
    inputs = spec.group_inputs(dataset)
    if t_names is not None:
        unknown = [name for name in inputs if name not in t_names]
        if unknown:
            raise InputError(f"{spec.source}: Edges Filter: no first-level t contrast "
                             f"{unknown[0]!r} (t contrasts: {', '.join(t_names)})")


def model_settings(spec) -> ModelSettings:
    """The Run node's model as today's ModelSettings (a model design: its node as JSON)."""
    from ..core.model_design import run_node_json
    from ..core.stats_model import NodeSpec

    run = spec.run_node
    if run is None:
        return DEFAULT_MODEL
    model, design = run.model, run.model.design
    if type(design).__name__ == "NilearnDesign":
        return ModelSettings(noise_model=model.noise_model, hrf_model=design.hrf_model,
                             drift_model=design.drift_model, high_pass=design.high_pass,
                             drift_order=design.drift_order,
                             slice_time_ref=design.slice_time_ref,
                             smoothing_fwhm=model.smoothing_fwhm,
                             save_residuals=model.save_residuals)
    node = NodeSpec(name=run.name, level="Run", group_by=run.group_by, model_type="glm",
                    x=design.x, hrf=design.hrf, high_pass=design.high_pass,
                    transformations=tuple(thaw(t) for t in run.transformations),
                    path=design.path)
    return ModelSettings(
        noise_model=model.noise_model, hrf_model=design.hrf.model if design.hrf else "spm",
        drift_model="cosine" if design.high_pass else "none",
        high_pass=design.high_pass or DEFAULT_MODEL.high_pass,
        drift_order=design.drift_order, slice_time_ref=design.slice_time_ref,
        run_node=run_node_json(node), smoothing_fwhm=model.smoothing_fwhm,
        save_residuals=model.save_residuals)

