"""Command line: ``glm-workflows`` / ``python run_workflow.py``: a parser
(:func:`build_parser`), the one reader of its values (:func:`spec_from_args`: an
:class:`~glm_workflows.spec.analysis.AnalysisSpec` and its
:class:`~glm_workflows.settings.ExecutionSettings`) and a dispatcher (:func:`main`: a
SLURM array submission, or :func:`glm_workflows.execution.analysis.run_analysis`)."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, fields
from pathlib import Path

from ..core.errors import InputError
from ..core.mesh_sources import templateflow_home
from ..outputs.invocation import invocation
from ..settings import (
    DEFAULT_CONFOUNDS,
    DEFAULT_GROUP,
    SEED_CONTRASTS,
    ConfoundSettings,
    ExecutionSettings,
    GroupSettings,
    InferenceSettings,
)
from .bids_app import bids_filters, expand_home, given_spaces, merge_positionals
from .parser import DEFAULT_EXECUTION, build_parser, first_level_model_flags
from .stamp import stamped_command


def _contrasts(args):
    from ..core.contrasts import parse_contrast_option

    parsed = [parse_contrast_option(c, "t") for c in args.contrast]
    parsed += [parse_contrast_option(c, "F") for c in args.f_contrast]
    return parsed or list(SEED_CONTRASTS)  # a name used twice: the Run node refuses it


def _plugin_args(args) -> dict:
    """``--plugin-args`` with ``--n-procs`` and ``--mem-gb`` merged in, checked."""
    from ..execution.prepare import plugin_args

    return plugin_args(ExecutionSettings(plugin_args=args.plugin_args, n_procs=args.n_procs,
                                         mem_gb=args.mem_gb))


def _confound_settings(args) -> ConfoundSettings:
    """The confounds settings of the command line, checked (nilearn only warns)."""
    from ..core.confounds import check_confound_options

    flags = {"strategy": "confounds_strategy", "columns": "confounds_columns"}
    settings = ConfoundSettings(**{f.name: getattr(args, flags.get(f.name, f.name))
                                   for f in fields(ConfoundSettings)})
    settings = ConfoundSettings(**{**asdict(settings), "columns": tuple(settings.columns)})
    check_confound_options(settings.strategy, settings.columns, settings.options())
    return settings


#: Flags the model file replaces (refused with ``--model``).
MODEL_FLAGS = ("contrast", "f_contrast", "hrf_model", "drift_model", "high_pass",
               "drift_order", "confounds_strategy", "confounds_columns", "group",
               "group_column", "pair", "group_covariates", "group_contrast",
               "smoothing_fwhm")
#: Flags of the array submission (but --slurm-array: only with it).
_ARRAY_FLAGS = ("slurm_array", "participants_per_task", "dry_run", "resubmit_failed")
#: Flags of the group level (refused with ``--analysis-level participant``).
_GROUP_FLAGS = ("group", "group_column", "pair", "group_covariates", "group_demean",
                "group_contrast", "permutations", "seed", "permutation_chunks",
                "cluster_forming_p", "tfce", "group_estimator", "exchangeability_blocks",
                "whole_blocks")


def spec_from_args(argv=None):
    """The analysis and its execution from a command line of one ``--space`` at most
    (several: :func:`analyses_from_args`).

    Raises
    ------
    InputError
        Several spaces given, or the command line's own one-line messages.
    """
    analyses = analyses_from_args(argv)
    if len(analyses) > 1:
        raise InputError("--space: several spaces are several analyses (analyses_from_args)")
    return analyses[0]


def analyses_from_args(argv=None) -> list[tuple]:
    """One ``(spec, execution)`` per ``--space`` (one without it), each checked
    (:func:`_analysis_from_args`)."""
    parser = build_parser()
    parsed = merge_positionals(parser.parse_args(argv))
    return [_analysis_from_args(argparse.Namespace(**{**vars(parsed), "space": space}), parser)
            for space in given_spaces(parsed)]


def _analysis_from_args(parsed, parser):
    """The analysis and its execution from the command line's values (``parsed``, of one
    space), checked: the only reader of argparse's values.

    With ``--model``, the model file is read straight into the spec
    (:func:`glm_workflows.spec.from_model.read_model`) and the input flags given
    override its ``Input`` (``dataclasses.replace``); the flags the model replaces are
    refused.

    Returns
    -------
    spec : glm_workflows.spec.analysis.AnalysisSpec
    execution : glm_workflows.settings.ExecutionSettings

    Raises
    ------
    InputError
        The command line's own one-line messages.
    """
    from ..core.contrasts import parse_contrast_option
    from ..spec.analysis import (
        AnalysisSpec,
        Contrast,
        Edge,
        GroupModel,
        InputSpec,
        MetaModel,
        NilearnDesign,
        Node,
        RunFiles,
        RunModel,
    )
    from ..spec.from_model import read_model
    from ..spec.rules import FIRST_LEVEL_INPUTS

    values = vars(parsed)
    if parsed.analysis_level == "group" and parsed.from_derivatives is None:
        values = {**values, "from_derivatives": parsed.output_dir}
    args = argparse.Namespace(**values)
    _check_levels(args)
    group_only = args.from_derivatives is not None
    if args.model:
        given = [name for name in MODEL_FLAGS if getattr(args, name) != parser.get_default(name)]
        if given:
            raise InputError(f"--{given[0].replace('_', '-')}: not with --model (the model "
                             "file sets it)")
    _check_flag_values(args)
    if group_only:
        level = ("--analysis-level group" if args.analysis_level == "group"
                 else "--from-derivatives")
        given = [f"--{name.replace('_', '-')}" for name in FIRST_LEVEL_INPUTS
                 if getattr(args, name) is not None]
        given += [_flag(parser, name) for name in first_level_model_flags(parser)
                  if getattr(args, name) != parser.get_default(name)]
        if given:
            raise InputError(f"{given[0]}: not with {level} (the subject maps are read "
                             "as they were written)")
        if args.f_contrast and not args.model:
            raise InputError("--f-contrast: not with --from-derivatives (the group level "
                             "takes t contrasts)")
        if not args.group and not args.model:
            raise InputError(f"{level}: needs --group (it runs only the group level)")
    filters = bids_filters(args)
    group = _group_from_flags(args)
    execution = ExecutionSettings(
        output_dir=args.output_dir, work_dir=args.work_dir, plugin=args.plugin,
        plugin_args=json.dumps(_plugin_args(args), sort_keys=True), n_procs=args.n_procs,
        mem_gb=args.mem_gb, permutation_chunks=args.permutation_chunks, debug=args.debug,
        verbosity=args.verbosity, analysis_level=args.analysis_level, slurm_array=args.slurm_array,
        participants_per_task=args.participants_per_task, dry_run=args.dry_run,
        resubmit_failed=args.resubmit_failed)
    files = None
    if any(v is not None for v in (args.func, args.events, args.confounds, args.tr)):
        files = RunFiles(tuple(args.func or ()), args.events, args.confounds, args.tr)
    labels = {"subjects": args.subject, "sessions": args.session, "runs": args.run}
    selection = dict(
        bids_dir=args.bids_dir, derivatives=tuple(args.derivatives or ()),
        from_derivatives=args.from_derivatives, space=args.space, desc=args.desc,
        res=args.res, den=args.den, mask=args.mask, files=files, data_dir=args.data_dir,
        bids_filters=filters, templateflow_home=templateflow_home(args.templateflow_home),
        **{k: None if v is None else tuple(v) for k, v in labels.items()})
    inference = InferenceSettings(**{f.name: getattr(args, f.name)
                                     for f in fields(InferenceSettings)})
    if args.model:
        task = None if args.task == parser.get_default("task") else args.task
        spec = read_model(args.model, task=task, **selection)
        return _model_flags(spec, args, parser, inference), execution
    parsed_contrasts = (parse_contrast_option(text, "t") if "=" in text else None
                        for text in args.contrast)
    requested = tuple((parsed[0], parsed[2][0]) if parsed else (text.strip(), None)
                      for text, parsed in zip(args.contrast, parsed_contrasts, strict=True)
                      ) if group_only else ()
    inputs = InputSpec(task=args.task, contrasts=requested, **selection)
    nodes = []
    if not group_only:
        confounds = _confound_settings(args)
        design = NilearnDesign(**{f: getattr(args, f) for f in (
            "hrf_model", "drift_model", "high_pass", "drift_order", "slice_time_ref")})
        nodes.append(Node("Run", "run", RunModel(design, args.noise_model, confounds,
                                                 args.strict, args.smoothing_fwhm,
                                                 args.save_residuals),
                          group_by=("run", "subject"),
                          contrasts=tuple(Contrast(*c) for c in _contrasts(args))))
        nodes.append(Node("Subject", "subject", MetaModel(), group_by=("subject", "contrast")))
    if group.model:
        nodes.append(Node("Dataset", "dataset", GroupModel(group), group_by=("contrast",)))
    edges = [Edge(a.name, b.name) for a, b in zip(nodes[:-1], nodes[1:], strict=True)]
    spec = AnalysisSpec(inputs, tuple(nodes), tuple(edges), inference)
    return spec, execution


def _group_from_flags(args) -> GroupSettings:
    """The group flags as GroupSettings (no chunks: an execution setting); a group flag
    without ``--group`` refused."""
    from ..core.contrasts import parse_contrast_option

    given = [flag for flag, value in (
        ("--group-column", args.group_column), ("--pair", args.pair),
        ("--group-covariates", args.group_covariates), ("--demean", args.group_demean),
        ("--group-contrast", args.group_contrast), ("--permutations", args.permutations),
        ("--permutation-chunks", args.permutation_chunks), ("--tfce", args.tfce),
        ("--group-estimator", args.group_estimator != DEFAULT_GROUP.estimator),
        ("--exchangeability-blocks", args.exchangeability_blocks),
        ("--whole-blocks", args.whole_blocks)) if value]
    if not args.group:
        if given and not args.model:
            raise InputError(f"{given[0]}: needs --group")
        return DEFAULT_GROUP
    return GroupSettings(
        model=args.group, group_column=args.group_column,
        pair=tuple(p.strip() for p in (args.pair or "").split(",") if p.strip()),
        covariates=tuple(c.strip() for c in (args.group_covariates or "").split(",")
                         if c.strip()),
        demean=args.group_demean, contrasts=tuple((name, rows[0]) for name, _, rows in (
            parse_contrast_option(text, "t") for text in args.group_contrast)),
        permutations=args.permutations, seed=args.seed,
        cluster_forming_p=args.cluster_forming_p, tfce=args.tfce,
        estimator=args.group_estimator, exchangeability_blocks=args.exchangeability_blocks,
        whole_blocks=args.whole_blocks)


def _model_flags(spec, args, parser, inference):
    """A model file's spec with the flags it does not replace applied where given."""
    from dataclasses import replace

    def given(name):
        return getattr(args, name) != parser.get_default(name)

    if any(given(f.name) for f in fields(InferenceSettings)):
        spec = replace(spec, inference=replace(spec.inference, **{
            f.name: getattr(args, f.name) for f in fields(InferenceSettings)
            if given(f.name)}))
    nodes = list(spec.nodes)
    for index, node in enumerate(nodes):
        if node.level == "Run":
            model = node.model
            design = replace(model.design, **{name: getattr(args, name) for name in (
                "slice_time_ref", "drift_order") if given(name)})
            confounds = _confound_settings(args)
            changed = {f.name: getattr(confounds, f.name) for f in fields(confounds)
                       if getattr(confounds, f.name) != getattr(DEFAULT_CONFOUNDS, f.name)}
            nodes[index] = replace(node, model=replace(
                model, design=design, confounds=replace(model.confounds, **changed),
                noise_model=args.noise_model if given("noise_model") else model.noise_model,
                strict=model.strict or args.strict,
                save_residuals=model.save_residuals or args.save_residuals))
        if node.level == "Dataset":
            flags = {"demean": "group_demean", "permutations": "permutations",
                     "seed": "seed", "cluster_forming_p": "cluster_forming_p",
                     "tfce": "tfce", "estimator": "group_estimator",
                     "exchangeability_blocks": "exchangeability_blocks",
                     "whole_blocks": "whole_blocks"}
            nodes[index] = replace(node, model=replace(node.model, group=replace(
                node.model.group, **{k: getattr(args, v) for k, v in flags.items()
                                     if given(v)})))
    if args.analysis_level == "participant":  # the Dataset node is the group level's
        kept = [n for n in nodes if n.level != "Dataset"]
        names = {n.name for n in kept}
        return replace(spec, nodes=tuple(kept), edges=tuple(
            e for e in spec.edges if e.destination in names))
    return replace(spec, nodes=tuple(nodes))


def _flag(parser, dest: str) -> str:
    """The (first) option string of the flag storing into ``dest``."""
    return next(action.option_strings[0] for action in parser._actions if action.dest == dest)


def _check_flag_values(args) -> None:
    """Refuse flag values that are wrong whatever the data (numbers out of range, plugin
    arguments, thresholds, confound options), before any run is read or any file written."""
    from ..core.inference import check_threshold_settings
    from ..execution.plugins import check_plugin
    from ..spec.rules import check_setting_values

    check_threshold_settings(args.height_control, args.alpha, args.threshold,
                             args.cluster_threshold)
    check_plugin(args.plugin)
    _plugin_args(args)
    _confound_settings(args)
    for flag, value in (("--permutation-chunks", args.permutation_chunks),
                        ("--participants-per-task", args.participants_per_task)):
        if value is not None and value < 1:
            raise InputError(f"{flag}: expected a number >= 1, got {value}")
    check_setting_values(table_min_cluster_size=args.table_min_cluster_size,
                         min_kept_volumes=args.min_kept_volumes,
                         permutations=args.permutations, alpha=args.alpha,
                         cluster_forming_p=args.cluster_forming_p,
                         smoothing_fwhm=args.smoothing_fwhm)


def _check_levels(args) -> None:
    """Refuse flags of one analysis level or of the array submission used out of place."""
    if not args.slurm_array:
        given = [name for name in _ARRAY_FLAGS[1:] if getattr(args, name)]
        if given:
            raise InputError(f"--{given[0].replace('_', '-')}: only with --slurm-array")
    else:
        if args.dry_run and args.resubmit_failed:
            raise InputError("--dry-run: not with --resubmit-failed (it resubmits)")
        if args.mem_gb is not None:
            raise InputError("--mem-gb: not with --slurm-array (tasks are sized from the "
                             "nodes' estimates; override with --plugin-args "
                             "'{\"sbatch_args\": \"--mem=...\"}')")
        if args.plugin != DEFAULT_EXECUTION.plugin:
            raise InputError("--plugin: not with --slurm-array (each task is a MultiProc "
                             "run of --n-procs processes)")
        if args.analysis_level or args.from_derivatives or args.func:
            raise InputError("--slurm-array: submits both levels of a --bids-dir study; not "
                             "with --analysis-level, --from-derivatives or --func")
    if args.analysis_level == "participant":
        if args.from_derivatives:
            raise InputError("--from-derivatives: not with --analysis-level participant")
        parser = build_parser()
        given = [name for name in _GROUP_FLAGS
                 if getattr(args, name) != parser.get_default(name)]
        if given:
            raise InputError(f"--{given[0].replace('_', '-')}: not with --analysis-level "
                             "participant (run the group level with --analysis-level group)")


def main(argv=None) -> int:
    """Run the command line; return the exit code (2: bad input, 1: a node failed,
    128 + signal number: interrupted by SIGINT or SIGTERM)."""
    args = expand_home(build_parser().parse_args(argv))  # argparse's errors: exit 2 here
    stamped = stamped_command(args, _given(argv))
    if stamped is not None and not args.recheck:
        from ..execution.up_to_date import replay

        if replay(*stamped):
            return 0
    from ..execution.analysis import interrupted
    from ..execution.garbage import collections_paused
    from ..execution.interrupts import RunInterrupted, interrupts_raise

    with interrupts_raise(), collections_paused():  # nodes: collections_of_new_objects
        try:
            analyses = analyses_from_args(argv)
            spec, execution = analyses[0]
            if execution.resubmit_failed:
                from ..execution.submit import resubmit_failed

                return resubmit_failed(spec, execution)
            if execution.slurm_array:
                from ..execution.submit import submit_array

                return submit_array(spec, execution, _array_command(argv))
            from ..execution.up_to_date import run_stamped

            return run_stamped(analyses, invocation(argv), stamped)
        except InputError as exc:
            if args.debug:
                raise
            print(f"glm-workflows: error: {exc}", file=sys.stderr)
            return 2
        except RunInterrupted as exc:
            return interrupted(exc, Path(args.work_dir).absolute())


def _given(argv) -> list[str]:
    """The command line's arguments (``argv``, or the process's)."""
    return list(sys.argv[1:] if argv is None else argv)


def _array_command(argv) -> list[str]:
    """The command line of an array submission, without ``--resubmit-failed`` (how a
    resubmission finds its submission)."""
    return [token for token in _given(argv) if token != "--resubmit-failed"]


def run() -> None:
    """Console-script entry point."""
    sys.exit(exit_code(main()))


def exit_code(code: int) -> int:
    """``code``, once every live object is left out of the interpreter's collections at
    exit (:func:`~glm_workflows.execution.garbage.freeze_for_exit`): call it last."""
    from ..execution.garbage import freeze_for_exit

    freeze_for_exit()
    return code

