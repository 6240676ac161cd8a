"""Command line: ``glm-workflows`` / ``python run_workflow.py``."""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
import time
from dataclasses import asdict, fields
from pathlib import Path

from .core.errors import InputError, one_line
from .settings import (
    CONFOUND_STRATEGIES,
    DEFAULT_CONFOUNDS,
    DEFAULT_GROUP,
    DEFAULT_INFERENCE,
    DEFAULT_MODEL,
    DRIFT_MODELS,
    GROUP_MODELS,
    HEIGHT_CONTROLS,
    NOISE_MODELS,
    PLUGINS,
    SEED_CONTRASTS,
    ConfoundSettings,
    ExecutionSettings,
    GroupSettings,
    InferenceSettings,
    ModelSettings,
)
from .validation import (
    check_contrasts_estimated,
    check_memory,
    check_output_dir,
    check_work_dir,
    load_design_checks,
    save_design_checks,
    validate_runs,
)

DEFAULT_EXECUTION = ExecutionSettings()
#: ``--analysis-level`` choices (BIDS Apps' names).
ANALYSIS_LEVELS = ("participant", "group")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, in groups: inputs, model, contrasts, inference, execution."""
    parser = argparse.ArgumentParser(
        prog="glm-workflows",
        description="First-level fMRI GLM as a Nipype workflow. With no input flags, runs the "
                    "SPM auditory analysis on the data found under --data-dir.",
    )
    data = parser.add_argument_group("inputs")
    data.add_argument("--bids-dir", help="BIDS dataset root (TR read from the sidecar JSON)")
    data.add_argument("--task", default="auditory", help="task label (default: %(default)s)")
    data.add_argument("--participant-label", "--subject", dest="subject", nargs="+",
                      metavar="LABEL",
                      help="participant label(s) (--subject is the same); with --func, the "
                           "one label of that run (default: all participants / 01)")
    data.add_argument("--session", nargs="+", metavar="LABEL", help="BIDS session label(s)")
    data.add_argument("--run", nargs="+", metavar="INDEX", help="BIDS run index(es)")
    data.add_argument("--func", nargs="+", metavar="FILE",
                      help="3D scans or 4D image(s) of one run, in order")
    data.add_argument("--events", metavar="TSV", help="events.tsv of the --func run")
    data.add_argument("--confounds", metavar="TSV", help="confounds TSV of the --func run")
    data.add_argument("--tr", type=float, help="repetition time in seconds (with --func)")
    data.add_argument("--derivatives", nargs="+", metavar="DIR",
                      help="fMRIPrep output folder(s): fit the preprocessed bold of each run "
                           "of --bids-dir (events from --bids-dir)")
    data.add_argument("--space", help="space of the preprocessed bold (default: the only one)")
    data.add_argument("--desc", default="preproc",
                      help="desc of the preprocessed bold (default: %(default)s)")
    data.add_argument("--res", help="res of the preprocessed bold, when a run has several")
    data.add_argument("--den", help="den of the preprocessed bold, when a run has several")
    data.add_argument("--mask", metavar="FILE",
                      help="brain mask for every run (default: fMRIPrep's desc-brain_mask of "
                           "the run, else nilearn's EPI mask)")
    data.add_argument("--model", metavar="FILE",
                      help="a BIDS Stats Models file (*_smdl.json): its Run, Subject and "
                           "Dataset nodes replace the model, contrast and group flags")
    data.add_argument("--from-derivatives", metavar="DIR",
                      help="run only the group level (needs --group) on the subject maps of "
                           "a derivatives folder this tool wrote (--bids-dir: only for its "
                           "participants.tsv)")
    data.add_argument("--data-dir",
                      help="where to find the SPM auditory data when no input flag is given "
                           "(default: $NILEARN_DATA or ~/nilearn_data)")

    model = parser.add_argument_group("model")
    model.add_argument("--noise-model", default=DEFAULT_MODEL.noise_model, choices=NOISE_MODELS,
                       help="temporal noise model (default %(default)s)")
    model.add_argument("--hrf-model", default=DEFAULT_MODEL.hrf_model,
                       help="nilearn HRF model: spm, glover, 'spm + derivative', ... "
                            "(default %(default)s)")
    model.add_argument("--drift-model", default=DEFAULT_MODEL.drift_model, choices=DRIFT_MODELS,
                       help="slow drift regressors (default %(default)s: per run, cosine "
                            "drifts at --high-pass unless the confounds the design takes hold "
                            "cosine regressors, e.g. fMRIPrep's cosineXX, then none; the "
                            "design sidecar records what was used)")
    model.add_argument("--high-pass", type=float, default=DEFAULT_MODEL.high_pass,
                       help="high-pass cut-off in Hz (default %(default)s)")
    model.add_argument("--drift-order", type=int, default=DEFAULT_MODEL.drift_order,
                       help="order of polynomial drifts (default %(default)s)")
    model.add_argument("--slice-time-ref", type=float,
                       default=DEFAULT_MODEL.slice_time_ref,
                       help="reference slice time as a fraction of the TR (default %(default)s)")

    confounds = parser.add_argument_group(
        "confounds and censoring (fMRIPrep confounds; nilearn's load_confounds options)")
    confounds.add_argument("--confounds-strategy", choices=CONFOUND_STRATEGIES,
                           help="nilearn's denoising preset (default: no confounds)")
    confounds.add_argument("--confounds-columns", nargs="+", default=[], metavar="PATTERN",
                           help="confound columns by shell-style pattern, e.g. 'trans_*' "
                                "'rot_*' (instead of a strategy)")
    for option, help_text in (("--motion", "motion: basic, power2, derivatives or full"),
                              ("--wm-csf", "white matter/CSF: basic, power2, derivatives or "
                                           "full"),
                              ("--global-signal", "global signal: basic, power2, derivatives "
                                                  "or full"),
                              ("--compcor", "CompCor: anat_combined, anat_separated, temporal, "
                                            "temporal_anat_combined, temporal_anat_separated"),
                              ("--n-compcor", "CompCor components: a number or all")):
        confounds.add_argument(option, help=f"{help_text} (default: the strategy's)")
    confounds.add_argument("--fd-threshold", type=float,
                           help="scrubbing: framewise displacement (mm) above which a volume "
                                "is censored (default: the strategy's)")
    confounds.add_argument("--std-dvars-threshold", type=float,
                           help="scrubbing: standardized DVARS above which a volume is "
                                "censored (default: the strategy's)")
    confounds.add_argument("--scrub", type=int,
                           help="scrubbing: also censor kept segments shorter than this many "
                                "volumes (default: the strategy's)")
    confounds.add_argument("--no-demean", dest="demean", action="store_false",
                           help="keep the confounds' means (nilearn demeans them by default)")
    confounds.add_argument("--min-kept-volumes", type=int,
                           default=DEFAULT_CONFOUNDS.min_kept_volumes,
                           help="refuse a run left with fewer volumes after censoring "
                                "(default %(default)s)")
    confounds.add_argument("--strict", action="store_true",
                           help="refuse a contrast naming a condition absent from a run; "
                                "without it, that run's contrast is skipped with a warning")

    group = parser.add_argument_group(
        "group level (over the subjects' maps; participants.tsv of --bids-dir)")
    group.add_argument("--group", choices=GROUP_MODELS,
                       help="group model of every first-level t contrast (default: none)")
    group.add_argument("--group-column", metavar="COLUMN",
                       help="two-sample: the participants.tsv column of the groups")
    group.add_argument("--pair", metavar="CONTRAST_A,CONTRAST_B",
                       help="paired: two first-level t contrasts; tests A - B")
    group.add_argument("--group-covariates", metavar="COL1,COL2",
                       help="numeric participants.tsv columns added to the group design")
    group.add_argument("--demean", dest="group_demean", action="store_true",
                       help="demean the group covariates")
    group.add_argument("--group-contrast", action="append", default=[], metavar="NAME=EXPR",
                       help="group contrast over the group design's columns (repeatable; "
                            "default: the mean, or the two-sample difference)")
    group.add_argument("--permutations", type=int, default=DEFAULT_GROUP.permutations,
                       help="permutation inference with this many permutations "
                            "(default %(default)s: none)")
    group.add_argument("--seed", type=int, default=DEFAULT_GROUP.seed,
                       help="seed of the permutations (default %(default)s)")
    group.add_argument("--permutation-chunks", type=int, metavar="K",
                       help="permutation nodes run in parallel (default: --n-procs, else 1)")
    group.add_argument("--cluster-forming-p", type=float,
                       default=DEFAULT_GROUP.cluster_forming_p,
                       help="cluster-forming threshold (p) of the permutation cluster "
                            "inference (default %(default)s)")
    group.add_argument("--tfce", action="store_true", help="add TFCE to the permutations")

    contrasts = parser.add_argument_group("contrasts (default: the seed's two)")
    contrasts.add_argument("--contrast", action="append", default=[], metavar="NAME=EXPR",
                           help="t contrast, e.g. activeMinusRest='active - rest' (repeatable)")
    contrasts.add_argument("--f-contrast", action="append", default=[],
                           metavar="NAME=EXPR1,EXPR2",
                           help="F contrast, e.g. effectsOfInterest=active,rest (repeatable)")

    inference = parser.add_argument_group("thresholds and tables")
    inference.add_argument("--height-control", default=DEFAULT_INFERENCE.height_control,
                           choices=HEIGHT_CONTROLS,
                           help="how the z threshold is chosen (default %(default)s)")
    inference.add_argument("--alpha", type=float, default=DEFAULT_INFERENCE.alpha,
                           help="error rate for fpr/fdr/bonferroni (default %(default)s)")
    inference.add_argument("--threshold", type=float, default=DEFAULT_INFERENCE.threshold,
                           help="z threshold with --height-control none (default %(default)s)")
    inference.add_argument("--cluster-threshold", type=int,
                           default=DEFAULT_INFERENCE.cluster_threshold,
                           help="remove clusters smaller than this many voxels "
                                "(default %(default)s)")
    sided = inference.add_mutually_exclusive_group()
    two_sided = DEFAULT_INFERENCE.two_sided
    sided.add_argument("--two-sided", dest="two_sided", action="store_true",
                       help="threshold and tabulate negative effects too"
                            + (" (default)" if two_sided else ""))
    sided.add_argument("--one-sided", dest="two_sided", action="store_false",
                       help="positive effects only" + ("" if two_sided else " (default)"))
    inference.add_argument("--table-min-cluster-size", type=int,
                           default=DEFAULT_INFERENCE.table_min_cluster_size,
                           help="smallest cluster (voxels) listed in the tables "
                                "(default %(default)s)")

    execution = parser.add_argument_group("execution")
    execution.add_argument("--output-dir", default=DEFAULT_EXECUTION.output_dir,
                           help="derivatives root (default: %(default)s)")
    execution.add_argument("--work-dir", default=DEFAULT_EXECUTION.work_dir,
                           help="Nipype cache; reruns reuse it (default: %(default)s)")
    execution.add_argument("--plugin", default=DEFAULT_EXECUTION.plugin, choices=PLUGINS,
                           help="Nipype execution plugin (default %(default)s)")
    execution.add_argument("--n-procs", type=int, help="processes for MultiProc")
    execution.add_argument("--mem-gb", type=float,
                           help="memory MultiProc may use at once, in GB (default: 90%% of "
                                "the machine's); nodes declare their needs from the data size")
    execution.add_argument("--plugin-args", default="{}", metavar="JSON",
                           help='extra plugin arguments, e.g. \'{"sbatch_args": "-p short"}\'')
    execution.add_argument("--analysis-level", choices=ANALYSIS_LEVELS,
                           help="BIDS-App levels: 'participant' writes each participant's "
                                "derivatives and nothing else; 'group' runs the group level "
                                "(--group) on the participants' outputs in --output-dir "
                                "(default: both)")
    execution.add_argument("--debug", action="store_true", help="show tracebacks")

    cluster = parser.add_argument_group(
        "SLURM array jobs (one task per batch of participants, then one group job)")
    cluster.add_argument("--slurm-array", action="store_true",
                         help="submit the participant level as SLURM array jobs and the "
                              "group level as one job after them, then return")
    cluster.add_argument("--participants-per-task", type=int, metavar="M",
                         help="participants per array task (default: 1, or the fewest that "
                              "keep the submission within half the cluster's MaxJobCount)")
    cluster.add_argument("--dry-run", action="store_true",
                         help="with --slurm-array: write the scripts and print the sbatch "
                              "commands without submitting")
    cluster.add_argument("--resubmit-failed", action="store_true",
                         help="with --slurm-array: resubmit the tasks of the last submission "
                              "(same command and --work-dir) that did not finish, and a new "
                              "group job")
    # Set by --model only: the Run node's design, the contrasts the Dataset node takes.
    parser.set_defaults(two_sided=DEFAULT_INFERENCE.two_sided, run_node="", group_inputs=(),
                        runs_are_subjects=False)
    return parser


def _contrasts(args):
    from .core.contrasts import parse_contrast_option

    parsed = [parse_contrast_option(c, "t") for c in args.contrast]
    parsed += [parse_contrast_option(c, "F") for c in args.f_contrast]
    names = [c[0] for c in parsed]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(f"--contrast: name(s) used twice: {', '.join(duplicates)}")
    return parsed or list(SEED_CONTRASTS)


def _runs(args, notes: list | None = None):
    from .inputs import file_list_run, find_bids_runs, find_derivative_runs, find_spm_auditory

    if args.func and args.bids_dir:
        raise InputError("give either --bids-dir or --func, not both")
    if args.func:
        if not args.events or args.tr is None:
            raise InputError("--func needs --events and --tr")
        if args.subject and len(args.subject) > 1:
            raise InputError("--func takes one --subject label")
        return [file_list_run(
            args.func, args.events, args.tr, subject=(args.subject or ["01"])[0], task=args.task,
            session=(args.session or [None])[0], run=(args.run or [None])[0],
            confounds=args.confounds)]
    derivative_flags = [flag for flag, value in (("--space", args.space), ("--res", args.res),
                                                  ("--den", args.den)) if value]
    if args.derivatives and not args.bids_dir:
        raise InputError("--derivatives needs --bids-dir (the raw dataset: events, sidecars)")
    if derivative_flags and not args.derivatives:
        raise InputError(f"{derivative_flags[0]}: needs --derivatives")
    if args.bids_dir and args.derivatives:
        found = find_derivative_runs(args.bids_dir, args.derivatives, args.task, space=args.space,
                                     desc=args.desc, res=args.res, den=args.den,
                                     subjects=args.subject, sessions=args.session, runs=args.run)
    elif args.bids_dir:
        found = find_bids_runs(args.bids_dir, args.task, args.subject, args.session, args.run)
    else:
        found = [find_spm_auditory(args.data_dir)]
    return _with_mask_and_confounds(found, args, notes)


def _check_one_run_per_subject(model_file, runs) -> None:
    """A model whose Dataset node takes the Run node's outputs directly models one run per
    subject; several runs would need a Subject node to combine them."""
    from .study import subject_groups

    for subject, subject_runs in subject_groups(runs).items():
        if len(subject_runs) > 1:
            raise InputError(f"{model_file}: the Dataset node takes the Run node's outputs "
                             f"directly, but sub-{subject} has {len(subject_runs)} runs; add "
                             "a Subject node (Model.Type 'meta') to combine them")


def _whole_study(args, runs):
    """A callable giving every run of the study, also those ``--participant-label`` leaves
    out: a condition absent from a participant's runs is one that some run of the study
    has (a name no run has is a typo), whichever participants this run covers."""
    if not args.subject or args.func:
        return lambda: runs
    return lambda: _runs(argparse.Namespace(**{**vars(args), "subject": None}))


def _with_mask_and_confounds(runs, args, notes: list | None = None):
    """Apply --mask, and keep fMRIPrep confounds files only when confounds are asked for
    (a note, appended to ``notes`` if given, says a confounds file was found and not
    used; it is printed once every check has passed)."""
    from dataclasses import replace

    mask = None
    if args.mask:
        if not Path(args.mask).is_file():
            raise InputError(f"--mask {args.mask}: file not found")
        mask = str(Path(args.mask).absolute())
    selects = bool(args.confounds_strategy or args.confounds_columns)
    if args.run_node:  # the model's X names the confound columns it takes
        selects = True
    elif selects and not args.derivatives:
        flag = "--confounds-strategy" if args.confounds_strategy else "--confounds-columns"
        raise InputError(f"{flag}: needs fMRIPrep outputs (--bids-dir with --derivatives)")
    kept = []
    unused = 0
    for run in runs:
        if args.derivatives and run.confounds_file and not selects:
            run, unused = replace(run, confounds_file=None), unused + 1
        if mask:
            run = replace(run, mask_file=mask,
                          sources={**run.sources, "MaskSource": f"--mask {mask}"},
                          fallbacks={k: v for k, v in run.fallbacks.items()
                                     if k != "MaskSource"})
        kept.append(run)
    if unused and notes is not None:
        notes.append(f"{unused} run(s) have an fMRIPrep confounds file, not used (choose "
                     "with --confounds-strategy or --confounds-columns)")
    return kept


def fallback_lines(runs) -> list[str]:
    """One warning line per input that fell back for lack of a file or field (a mask
    computed for want of fMRIPrep's, say), naming the runs it applies to (the first
    three, and how many).

    Parameters
    ----------
    runs : list of RunInputs

    Returns
    -------
    lines : list of str
        In the order the fallbacks were first met.
    """
    which: dict = {}
    for run in runs:
        for key, why in run.fallbacks.items():
            which.setdefault((key, why), []).append(run.prefix)
    lines = []
    for (key, why), prefixes in which.items():
        named = ", ".join(prefixes[:3]) + (", ..." if len(prefixes) > 3 else "")
        runs_text = named if len(prefixes) == 1 else f"{len(prefixes)} runs ({named})"
        lines.append(f"{runs_text}: {why} (recorded as {key} in the design sidecar)")
    return lines


def _plugin_args(args) -> dict:
    try:
        plugin_args = json.loads(args.plugin_args)
    except json.JSONDecodeError as exc:
        raise InputError(f"--plugin-args: not valid JSON ({exc.msg})") from None
    if not isinstance(plugin_args, dict):
        raise InputError("--plugin-args: expected a JSON object")
    if args.n_procs is not None:
        if args.n_procs < 1:
            raise InputError(f"--n-procs: expected a positive number, got {args.n_procs}")
        plugin_args["n_procs"] = args.n_procs
    if args.mem_gb is not None:
        if args.mem_gb <= 0:
            raise InputError(f"--mem-gb: expected a positive number, got {args.mem_gb}")
        plugin_args["memory_gb"] = args.mem_gb
    return plugin_args


def _crash_summary(work_dir: Path, since: float) -> list[str]:
    """One line per crash file written since ``since``: node, exception, file."""
    lines = []
    for crash in sorted((work_dir / "crash").glob("crash-*.txt")):
        if crash.stat().st_mtime < since:
            continue
        text = crash.read_text(errors="replace").strip().splitlines()
        node = next((ln.split(":", 1)[1].strip() for ln in text if ln.startswith("Node:")), "?")
        starts = [i for i, ln in enumerate(text) if re.match(r"^\s*[\w.]+(Error|Exception)\b", ln)]
        reason = one_line(" ".join(text[starts[-1]:])) if starts else text[-1].strip()
        lines.append(f"node {node} failed: {reason} (crash file: {crash})")
    return lines


def prepare(args) -> tuple[dict, dict]:
    """Check every input and setting before any work; raise InputError on the first problem.

    Returns the keyword arguments of :func:`~glm_workflows.study.init_glm_wf`, and the
    plugin arguments.
    """

    if args.from_derivatives is not None:
        return _prepare_from_derivatives(args)
    model = ModelSettings(**{f.name: getattr(args, f.name) for f in fields(ModelSettings)})
    inference = InferenceSettings(**{f.name: getattr(args, f.name)
                                     for f in fields(InferenceSettings)})
    contrasts = _contrasts(args)
    confounds = _confound_settings(args)
    plugin_args = _plugin_args(args)
    notes: list = []
    runs = _runs(args, notes)
    if args.runs_are_subjects:
        _check_one_run_per_subject(args.model, runs)
    warnings = fallback_lines(runs)
    design_checks = load_design_checks(args.work_dir)
    checked = validate_runs(runs, [model.for_run(run.slice_time_ref).design() for run in runs],
                            contrasts, output_dir=args.output_dir, design_checks=design_checks,
                            warnings=warnings, study_runs=_whole_study(args, runs),
                            confounds=confounds.selection(),
                            min_kept_volumes=confounds.min_kept_volumes, strict=args.strict)
    mem_gb = [estimates for estimates, _ in checked]
    skipped = {run.label: names for run, (_, names) in zip(runs, checked, strict=True) if names}
    if not args.subject or args.func:  # every run of the analysis was checked
        check_contrasts_estimated(contrasts, runs, skipped, warnings)
    group, participants_file = _group_settings(args, contrasts, runs)
    plans = _group_plans(runs, contrasts, skipped, group, participants_file, warnings,
                         args.model)
    check_memory(mem_gb, plugin_args.get("memory_gb") if args.plugin == "MultiProc" else None)
    output_dir = check_output_dir(args.output_dir)
    check_own_outputs(output_dir, run_analysis(runs), runs,
                      runs[0].task if group.model else None)
    save_design_checks(check_work_dir(args.work_dir), design_checks)
    for line in notes:
        print(f"glm-workflows: note: {line}", file=sys.stderr)
    for line in warnings:
        print(f"glm-workflows: warning: {line}", file=sys.stderr)
    n_chunks = _n_chunks(args, plugin_args)
    return dict(runs=runs, output_dir=output_dir, model=model, contrasts=contrasts,
                inference=inference, confounds=confounds, mem_gb=mem_gb,
                skipped=skipped, group=group, group_plans=plans,
                participants_file=participants_file, n_chunks=n_chunks), plugin_args


def run_analysis(runs) -> str:
    """The analysis of a run of the first level (its runs share task and space)."""
    from .core.naming import analysis_label

    return analysis_label(runs[0].task, runs[0].space)


def group_analysis(folder, maps, task: str) -> str:
    """The analysis of a run of the group level alone: the one whose record, in the
    subject folders of ``folder``, lists the subject maps read (task ``task`` alone
    when no record does, e.g. a folder of an older glm-workflows)."""
    from .core.naming import analysis_label, subject_folder
    from .outputs import folder_analyses, recorded_outputs

    found = set()
    for subject_maps in maps:
        subject = Path(folder) / subject_folder(subject_maps.subject)
        found.update(analysis for analysis in folder_analyses(subject)
                     if Path(subject_maps.mask_file).name in recorded_outputs(subject, analysis))
    if len(found) > 1:
        raise InputError(f"--from-derivatives {folder}: the subject maps of task {task} come "
                         f"from several analyses ({', '.join(sorted(found))})")
    return found.pop() if found else analysis_label(task)


def check_own_outputs(output_dir, analysis: str, runs, group_task: str | None) -> None:
    """Before any work: refuse a run of ``analysis`` that would replace, in a subject
    folder of its ``runs`` or (with a group level of task ``group_task``) in the group
    folder, a file no earlier run of the same analysis wrote
    (:func:`~glm_workflows.outputs.check_replaces_only_its_own`)."""
    from .core.naming import GROUP_FOLDER, group_output_task, parse_output_name, subject_folder
    from .outputs import check_replaces_only_its_own
    from .summary import result_prefixes

    prefixes: dict = {}
    for subject, prefix in result_prefixes(runs):
        prefixes.setdefault(subject, set()).add(prefix)
    for subject, own in prefixes.items():
        check_replaces_only_its_own(
            Path(output_dir) / subject_folder(subject), analysis,
            lambda name, own=own: getattr(parse_output_name(name), "prefix", None) in own)
    if group_task:
        check_replaces_only_its_own(Path(output_dir) / GROUP_FOLDER, analysis,
                                    lambda name: group_output_task(name) == group_task)


def _n_chunks(args, plugin_args: dict) -> int:
    """Permutation nodes of each group contrast: ``--permutation-chunks``, else the
    MultiProc processes, else 1."""
    return args.permutation_chunks or (plugin_args.get("n_procs") or os.cpu_count() or 1
                                       if args.plugin == "MultiProc" else 1)


#: Flags of the first-level inputs, refused with ``--from-derivatives``.
_FIRST_LEVEL_INPUTS = ("func", "derivatives", "events", "tr", "confounds", "space", "res",
                       "den", "mask", "session", "run")


def _prepare_from_derivatives(args) -> tuple[dict, dict]:
    """:func:`prepare` for ``--from-derivatives DIR``: the group level alone, on the
    subject maps DIR holds (:func:`~glm_workflows.from_derivatives.find_subject_maps`).

    Returns the keyword arguments of :func:`~glm_workflows.study.init_group_only_wf`
    (and ``contrasts``, ``skipped``, ``inputs``, ``from_derivatives``), and the plugin
    arguments.
    """
    from .core.contrasts import check_contrast_name, parse_contrast_option
    from .core.naming import check_label
    from .from_derivatives import (
        check_plan_files,
        find_subject_maps,
        input_files,
        study_contrasts,
    )

    level = "--analysis-level group" if args.analysis_level == "group" else "--from-derivatives"
    if not args.group:
        raise InputError(f"{level}: needs --group (it runs only the group level)")
    given = [f"--{name.replace('_', '-')}" for name in _FIRST_LEVEL_INPUTS
             if getattr(args, name) is not None]
    if given:
        raise InputError(f"{given[0]}: not with {level} (the subject maps are read "
                         "as they were written)")
    if args.f_contrast:
        raise InputError("--f-contrast: not with --from-derivatives (the group level takes "
                         "t contrasts)")
    inference = InferenceSettings(**{f.name: getattr(args, f.name)
                                     for f in fields(InferenceSettings)})
    plugin_args = _plugin_args(args)
    task = check_label(args.task, "task")
    requested = [parse_contrast_option(text, "t")[::2] if "=" in text
                 else (check_contrast_name(text.strip()), None) for text in args.contrast]
    names = [name for name, _ in requested]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InputError(f"--contrast: name(s) used twice: {', '.join(duplicates)}")
    maps, warnings = find_subject_maps(args.from_derivatives, task, args.subject)
    contrasts = study_contrasts(maps, args.from_derivatives, requested)
    if not any(stat_type == "t" for _, stat_type, _ in contrasts):
        raise InputError(f"--from-derivatives {args.from_derivatives}: no first-level t "
                         f"contrast of task {task} (found: "
                         f"{', '.join(name for name, _, _ in contrasts) or 'none'})")
    skipped = {m.label: [name for name, _, _ in contrasts if name not in m.effect_maps]
               for m in maps}
    group, participants_file = _group_settings(args, contrasts, maps)
    plans = _group_plans(maps, contrasts, skipped, group, participants_file, warnings,
                         args.model)
    check_plan_files(maps, plans)  # reads every map: the last check but the folders'
    output_dir = check_output_dir(args.output_dir)  # creates it
    analysis = group_analysis(args.from_derivatives, maps, task)
    check_own_outputs(output_dir, analysis, [], task)
    check_work_dir(args.work_dir)
    for line in warnings:
        print(f"glm-workflows: warning: {line}", file=sys.stderr)
    return dict(subject_maps=maps, task=task, analysis=analysis, output_dir=output_dir,
                group_plans=plans,
                group=group, inference=inference, participants_file=participants_file,
                n_chunks=_n_chunks(args, plugin_args), contrasts=contrasts, skipped=skipped,
                inputs=input_files(maps, contrasts),
                from_derivatives=str(Path(args.from_derivatives).absolute())), plugin_args


def _group_settings(args, contrasts, runs) -> tuple[GroupSettings, str | None]:
    """The group settings of the command line, checked, and the participants.tsv used."""
    from .core.contrasts import parse_contrast_option

    given = [flag for flag, value in (
        ("--group-column", args.group_column), ("--pair", args.pair),
        ("--group-covariates", args.group_covariates), ("--demean", args.group_demean),
        ("--group-contrast", args.group_contrast), ("--permutations", args.permutations),
        ("--permutation-chunks", args.permutation_chunks), ("--tfce", args.tfce)) if value]
    if not args.group:
        if given:
            raise InputError(f"{given[0]}: needs --group")
        return DEFAULT_GROUP, None
    if args.group == "two-sample" and not args.group_column:
        raise InputError("--group two-sample: needs --group-column COLUMN (participants.tsv)")
    if args.group_column and args.group != "two-sample":
        raise InputError("--group-column: only with --group two-sample")
    pair = tuple(p.strip() for p in (args.pair or "").split(",") if p.strip())
    if args.group == "paired":
        t_names = [name for name, stat_type, _ in contrasts if stat_type == "t"]
        if len(pair) != 2 or pair[0] == pair[1] or any(p not in t_names for p in pair):
            raise InputError(f"--pair: expected two different first-level t contrasts "
                             f"A,B among {', '.join(t_names)}; got {args.pair!r}")
    elif pair:
        raise InputError("--pair: only with --group paired")
    covariates = tuple(c.strip() for c in (args.group_covariates or "").split(",")
                       if c.strip())
    group_contrasts = tuple((name, rows[0]) for name, _, rows in (
        parse_contrast_option(text, "t") for text in args.group_contrast))
    participants_file = None
    if args.group_column or covariates:
        if not args.bids_dir:
            raise InputError("--group-column/--group-covariates: need --bids-dir "
                             "(its participants.tsv)")
        participants_file = str((Path(args.bids_dir) / "participants.tsv").absolute())
        if not Path(participants_file).is_file():
            raise InputError(f"{participants_file}: participants.tsv not found (needed by "
                             "--group-column/--group-covariates)")
    return GroupSettings(model=args.group, group_column=args.group_column, pair=pair,
                         covariates=covariates, demean=args.group_demean,
                         contrasts=group_contrasts, permutations=args.permutations,
                         seed=args.seed, chunks=args.permutation_chunks,
                         cluster_forming_p=args.cluster_forming_p,
                         tfce=args.tfce, inputs=_group_inputs(args, contrasts)), participants_file


def _group_inputs(args, contrasts) -> tuple:
    """The first-level t contrasts a model file's edge filter lets through (() = all)."""
    t_names = [name for name, stat_type, _ in contrasts if stat_type == "t"]
    unknown = [name for name in args.group_inputs if name not in t_names]
    if unknown:
        raise InputError(f"{args.model}: Edges Filter: no first-level t contrast "
                         f"{unknown[0]!r} (t contrasts: {', '.join(t_names)})")
    return tuple(args.group_inputs)


def _group_plans(runs, contrasts, skipped, group, participants_file, warnings,
                 model_file=None) -> list:
    """The group analyses, each design and group contrast checked before any work; with a
    model file, a design's refusal names the file and its Dataset node's ``Model.X``."""
    if not group.model:
        return []
    from .core.contrasts import contrast_matrix
    from .core.group import group_design, read_participants
    from .core.naming import check_label
    from .study import group_plans

    participants = read_participants(participants_file) if participants_file else None

    def design(subjects):
        try:
            return group_design(list(subjects), group.model, participants,
                                group_column=group.group_column, covariates=group.covariates,
                                demean=group.demean)
        except InputError as exc:
            if not model_file:
                raise
            raise InputError(f"{_dataset_x_path(model_file)}: {exc}") from None

    plans, lines = group_plans(runs, contrasts, skipped, group,
                               lambda subjects: list(design(subjects).columns))
    for plan in plans:
        columns = [str(c) for c in design(plan.subjects).columns]
        for name, expression in plan.group_contrasts:
            if name:
                check_label(name, "group contrast")
            try:
                contrast_matrix([expression], columns, "t")
            except InputError as exc:
                raise InputError(f"group contrast {name or plan.name}: {exc}") from None
    warnings.extend(lines)
    return plans


def _dataset_x_path(model_file) -> str:
    """``<model file>: Nodes[i].Model.X``: where a model file's group design comes from."""
    from .core.stats_model import read_stats_model
    from .stats_models import check_node_chain

    model = read_stats_model(model_file)
    _, dataset = check_node_chain(model)
    return f"{model.source}: {dataset.path}.Model.X"


def _confound_settings(args) -> ConfoundSettings:
    """The confounds settings of the command line, checked (nilearn only warns)."""
    from .core.confounds import check_confound_options

    flags = {"strategy": "confounds_strategy", "columns": "confounds_columns"}
    settings = ConfoundSettings(**{f.name: getattr(args, flags.get(f.name, f.name))
                                   for f in fields(ConfoundSettings)})
    settings = ConfoundSettings(**{**asdict(settings), "columns": tuple(settings.columns)})
    check_confound_options(settings.strategy, settings.columns, settings.options())
    return settings


def spec_from_args(argv=None):
    """The analysis and its execution from a command line, checked: the only reader of
    argparse's values (the command line itself still runs through :func:`prepare`).

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

    from .core.contrasts import parse_contrast_option
    from .spec.analysis import (
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
    from .spec.from_model import read_model
    from .stats_models import MODEL_FLAGS

    parser = build_parser()
    parsed = parser.parse_args(argv)
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
        given = [f"--{name.replace('_', '-')}" for name in _FIRST_LEVEL_INPUTS
                 if getattr(args, name) is not None]
        if given:
            raise InputError(f"{given[0]}: not with {level} (the subject maps are read "
                             "as they were written)")
        if args.f_contrast and not args.model:
            raise InputError("--f-contrast: not with --from-derivatives (the group level "
                             "takes t contrasts)")
        if not args.group and not args.model:
            raise InputError(f"{level}: needs --group (it runs only the group level)")
    group = _group_from_flags(args)
    execution = ExecutionSettings(
        output_dir=args.output_dir, work_dir=args.work_dir, plugin=args.plugin,
        plugin_args=json.dumps(_plugin_args(args), sort_keys=True), n_procs=args.n_procs,
        mem_gb=args.mem_gb, permutation_chunks=args.permutation_chunks, debug=args.debug,
        analysis_level=args.analysis_level, slurm_array=args.slurm_array,
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
        **{k: None if v is None else tuple(v) for k, v in labels.items()})
    inference = InferenceSettings(**{f.name: getattr(args, f.name)
                                     for f in fields(InferenceSettings)})
    if args.model:
        task = None if args.task == parser.get_default("task") else args.task
        spec = read_model(args.model, task=task, **selection)
        return _model_flags(spec, args, parser, inference), execution
    requested = tuple((parse_contrast_option(text, "t")[0], parse_contrast_option(text, "t")
                       [2][0]) if "=" in text else (text.strip(), None)
                      for text in args.contrast) if group_only else ()
    inputs = InputSpec(task=args.task, contrasts=requested, **selection)
    nodes = []
    if not group_only:
        confounds = _confound_settings(args)
        design = NilearnDesign(**{f: getattr(args, f) for f in (
            "hrf_model", "drift_model", "high_pass", "drift_order", "slice_time_ref")})
        nodes.append(Node("Run", "run", RunModel(design, args.noise_model, confounds,
                                                 args.strict), group_by=("run", "subject"),
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
    from .core.contrasts import parse_contrast_option

    given = [flag for flag, value in (
        ("--group-column", args.group_column), ("--pair", args.pair),
        ("--group-covariates", args.group_covariates), ("--demean", args.group_demean),
        ("--group-contrast", args.group_contrast), ("--permutations", args.permutations),
        ("--permutation-chunks", args.permutation_chunks), ("--tfce", args.tfce)) if value]
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
        cluster_forming_p=args.cluster_forming_p, tfce=args.tfce)


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
                strict=model.strict or args.strict))
        if node.level == "Dataset":
            flags = {"demean": "group_demean", "permutations": "permutations",
                     "seed": "seed", "cluster_forming_p": "cluster_forming_p",
                     "tfce": "tfce"}
            nodes[index] = replace(node, model=replace(node.model, group=replace(
                node.model.group, **{k: getattr(args, v) for k, v in flags.items()
                                     if given(v)})))
    if args.analysis_level == "participant":  # the Dataset node is the group level's
        kept = [n for n in nodes if n.level != "Dataset"]
        names = {n.name for n in kept}
        return replace(spec, nodes=tuple(kept), edges=tuple(
            e for e in spec.edges if e.destination in names))
    return replace(spec, nodes=tuple(nodes))


def main(argv=None) -> int:
    """Run the command line; return the exit code (2: bad input, 1: a node failed,
    128 + signal number: interrupted by SIGINT or SIGTERM)."""
    from .interrupts import RunInterrupted, interrupts_raise

    args = build_parser().parse_args(argv)
    if args.analysis_level == "group" and args.from_derivatives is None:
        args.from_derivatives = args.output_dir  # the participants' outputs
    with interrupts_raise():
        try:
            return _run(args, argv)
        except RunInterrupted as exc:
            return _interrupted(exc, Path(args.work_dir).absolute())


def _run(args, argv) -> int:
    """Check everything, run the workflow, commit its outputs, print the results."""
    started = time.time()
    command, cwd = invocation(argv), os.getcwd()  # for the provenance record
    try:
        _check_levels(args)
        _apply_model(args)
        _check_flag_values(args)
        if args.resubmit_failed:
            return _resubmit_failed(args, argv)
        settings, plugin_args = prepare(args)
        if args.slurm_array:
            return _submit_array(args, argv, settings, plugin_args)
    except InputError as exc:
        if args.debug:
            raise
        print(f"glm-workflows: error: {exc}", file=sys.stderr)
        return 2

    from nipype import config, logging

    # Failures are summarised below; Nipype's own tracebacks only with --debug.
    config.set("logging", "workflow_level", "DEBUG" if args.debug else "CRITICAL")
    config.set("logging", "interface_level", "DEBUG" if args.debug else "ERROR")
    config.set("logging", "utils_level", "DEBUG" if args.debug else "ERROR")
    logging.update_logging(config)
    if args.from_derivatives is not None:
        return _run_group_only(args, command, cwd, settings, plugin_args, started)
    from .core.naming import (
        GROUP_FOLDER,
        INDEX_FILE,
        PROVENANCE_FILE,
        analysis_record,
        report_page,
        subject_folder,
    )
    from .execution import run_workflow
    from .provenance import build_provenance, write_provenance
    from .report import write_subject_report
    from .study import init_glm_wf, subject_groups
    from .summary import print_results

    runs, output_dir = settings["runs"], settings["output_dir"]
    analysis = run_analysis(runs)
    subjects = list(subject_groups(runs))
    work_dir = Path(args.work_dir).absolute()

    def stage(transaction):
        workflow = init_glm_wf(**{**settings, "output_dir": transaction.staging})
        print(f"Running {len(runs)} run(s), {len(settings['contrasts'])} contrast(s), "
              f"plugin {args.plugin}; cache in {work_dir}", flush=True)
        records = run_workflow(workflow, work_dir=work_dir, plugin=args.plugin,
                               plugin_args=plugin_args)
        finished = time.time()
        record = build_provenance(
            runs=runs, workflow=workflow, records=records, started=started, finished=finished,
            command_line=command, working_directory=cwd,
            plugin=args.plugin, parameters=_parameters(settings, args, plugin_args),
        )
        if args.model:  # the report shows the model file
            record["StatsModel"] = json.loads(Path(args.model).read_text())
        write_provenance(transaction.staging, record, subjects, analysis)
        group_folder = Path(transaction.staging) / GROUP_FOLDER
        if group_folder.is_dir():  # the group level's record: the whole run's
            (group_folder / analysis_record(analysis)).write_text(
                json.dumps({**record, "Analysis": analysis}, indent=2, default=str))
        write_reports(transaction.staging, subjects,
                      plugin_args.get("n_procs", os.cpu_count() or 1)
                      if args.plugin == "MultiProc" else 1)
        participant_level = args.analysis_level == "participant"
        transaction.commit(subjects, description_file if participant_level else root_files,
                           analysis, write_subject_report)
        return records, finished

    code = _staged_run(stage, args, output_dir, started)
    if code:
        return code
    index = Path(output_dir) / INDEX_FILE
    report = index if len(subjects) > 1 and index.exists() \
        else Path(output_dir) / report_page(subjects[-1])
    print(f"Report: {report}")
    provenance = Path(output_dir) / PROVENANCE_FILE
    if args.analysis_level == "participant":  # no root listing at this level
        provenance = Path(output_dir) / subject_folder(subjects[-1]) / analysis_record(analysis)
    print(f"Provenance: {provenance}")
    print_results(runs, output_dir)
    _print_group_warnings(output_dir)
    return 0


def _given(argv) -> list[str]:
    """The command line's arguments (``argv``, or the process's)."""
    return list(sys.argv[1:] if argv is None else argv)


def invocation(argv=None) -> list[str]:
    """The command that runs :func:`main` with ``argv``, as the provenance records it.

    Parameters
    ----------
    argv : list of str or None
        :func:`main`'s arguments; None: the process's (``sys.argv[1:]``).

    Returns
    -------
    command : list of str
        :func:`entry_point` and the process's arguments; for ``argv`` given in-process (an
        array task, a test), ``glm-workflows`` and ``argv``. ``shlex.join`` of it, run
        from the same working directory, runs the same analysis.
    """
    if argv is not None:
        return ["glm-workflows", *argv]
    return [*entry_point(), *sys.argv[1:]]


def entry_point() -> list[str]:
    """How this process was started, without its arguments.

    Returns
    -------
    command : list of str
        ``[sys.executable, "-m", module]`` for ``python -m module``;
        ``[sys.executable, script]`` for a ``.py`` script (e.g. ``run_workflow.py``, as
        given: relative paths are from the working directory); for a console script, its
        name if it is the one the ``PATH`` finds, else its path; ``["glm-workflows"]`` when
        neither is known (``python -c``).
    """
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name:
        return [sys.executable, "-m", spec.name.removesuffix(".__main__")]
    script = sys.argv[0] if sys.argv else ""
    if not script or script == "-c":
        return ["glm-workflows"]
    if script.endswith(".py"):
        return [sys.executable, script]
    import shutil

    name = os.path.basename(script)
    found = shutil.which(name)
    same = found is not None and os.path.exists(script) and os.path.samefile(found, script)
    return [name if same else script]


def _staged_run(stage, args, output_dir, started: float) -> int:
    """Run ``stage(transaction)`` on a new :class:`~glm_workflows.outputs.OutputTransaction`
    of ``output_dir`` (it runs the workflow into ``transaction.staging``, writes its
    records and commits) and print the closing line; a failure discards what was staged.

    ``stage`` returns the run's node records and when the workflow finished. Returns 0,
    or 1 after a failure (:func:`_failed`); an interruption is re-raised, noting whether
    the outputs were already committed.
    """
    from .interrupts import RunInterrupted
    from .outputs import OutputTransaction

    transaction = OutputTransaction(output_dir)  # outputs move in only on success
    try:
        records, finished = stage(transaction)
    except RunInterrupted as exc:
        transaction.discard()
        exc.outputs_committed = transaction.committed
        raise
    except Exception as exc:
        transaction.discard()
        return _failed(exc, args, Path(args.work_dir).absolute(), started)
    _print_finished(records, finished - started, args.plugin)
    return 0


def _failed(exc, args, work_dir: Path, started: float) -> int:
    """After a failed run (its outputs discarded): the interruption it was, re-raised;
    else its crash files, one line each (exit code 1). Called in the ``except`` block."""
    from .interrupts import RunInterrupted, received_interrupt

    signum = received_interrupt()
    if signum is not None:  # a node's error that is the interruption, rebuilt
        raise RunInterrupted(signum) from None
    if args.debug:
        raise exc
    details = _crash_summary(work_dir, started) or [one_line(exc)]
    for line in details:
        print(f"glm-workflows: error: {line}", file=sys.stderr)
    return 1


def _run_group_only(args, command: list[str], cwd: str, settings: dict, plugin_args: dict,
                    started: float) -> int:
    """:func:`_run` for ``--from-derivatives``: the group workflow alone, committed
    into ``<output-dir>/group/`` (subject folders untouched), its provenance record (with
    ``command``, :func:`invocation`'s, run from ``cwd``) in
    ``group/<analysis>_provenance.json``, then the group results printed."""
    from .core.naming import GROUP_FOLDER, GROUP_REPORT, analysis_record
    from .execution import run_workflow
    from .provenance import build_provenance
    from .study import init_group_only_wf
    from .summary import print_results

    output_dir = settings["output_dir"]
    work_dir = Path(args.work_dir).absolute()
    build = {key: settings[key] for key in ("subject_maps", "task", "group_plans", "group",
                                            "inference", "participants_file", "n_chunks")}

    def stage(transaction):
        workflow = init_group_only_wf(**build, output_dir=transaction.staging)
        print(f"Running the group level of {len(settings['group_plans'])} contrast(s) over "
              f"{len(settings['subject_maps'])} subject(s) of {settings['from_derivatives']}, "
              f"plugin {args.plugin}; cache in {work_dir}", flush=True)
        records = run_workflow(workflow, work_dir=work_dir, plugin=args.plugin,
                               plugin_args=plugin_args)
        finished = time.time()
        parameters = {
            "from_derivatives": settings["from_derivatives"], "task": settings["task"],
            **asdict(settings["inference"]), "group": asdict(settings["group"]),
            "permutation_chunks": settings["n_chunks"],
            "skipped_contrasts": settings["skipped"],
            "contrasts": [{"name": name, "stat_type": stat, "rows": list(rows)}
                          for name, stat, rows in settings["contrasts"]],
            "group_subjects": {plan.name: list(plan.subjects)
                               for plan in settings["group_plans"]},
            "plugin": args.plugin,
            "plugin_args": {k: v for k, v in plugin_args.items() if k != "status_callback"},
            "work_dir": str(work_dir), "output_dir": str(Path(output_dir).absolute()),
        }
        record = build_provenance(
            runs=[], workflow=workflow, records=records, started=started, finished=finished,
            command_line=command, working_directory=cwd,
            plugin=args.plugin, parameters=parameters, inputs=settings["inputs"])
        group_folder = Path(transaction.staging) / GROUP_FOLDER
        group_folder.mkdir(parents=True, exist_ok=True)
        (group_folder / analysis_record(settings["analysis"])).write_text(
            json.dumps({**record, "Analysis": settings["analysis"]}, indent=2, default=str))
        transaction.commit([], root_files, settings["analysis"])
        return records, finished

    code = _staged_run(stage, args, output_dir, started)
    if code:
        return code
    report = Path(output_dir) / GROUP_REPORT
    if report.exists():
        print(f"Report: {report}")
    record = analysis_record(settings["analysis"])
    print(f"Provenance: {Path(output_dir) / GROUP_FOLDER / record}")
    print_results([], output_dir)
    _print_group_warnings(output_dir)
    return 0


def _print_group_warnings(output_dir) -> None:
    """After a run: one warning line per group analysis that left voxels out (maps not
    finite in every subject), read from the group sidecars (also after a cached run)."""
    from .summary import group_warnings

    for line in group_warnings(output_dir):
        print(f"glm-workflows: warning: {line}", file=sys.stderr)


def _print_finished(records, seconds: float, plugin: str) -> None:
    """The line closing a run: its time and what ran (or was submitted)."""
    from .execution import GRAPH_PLUGINS

    if plugin in GRAPH_PLUGINS:
        print(f"\nFinished in {seconds:.1f} s ({len(records)} SLURM job(s); "
              "nodes already complete were not resubmitted)")
    else:
        ran = sum(not r.cached for r in records)
        print(f"\nFinished in {seconds:.1f} s ({ran} node(s) run, {len(records) - ran} cached)")


#: Flags of the array submission (not passed to its jobs).
_ARRAY_FLAGS = ("slurm_array", "participants_per_task", "dry_run", "resubmit_failed")
#: Flags of the group level.
_GROUP_FLAGS = ("group", "group_column", "pair", "group_covariates", "group_demean",
                "group_contrast", "permutations", "seed", "permutation_chunks",
                "cluster_forming_p", "tfce")
#: Flags of how and where a command runs (each job of an array submission sets its own).
_EXECUTION_FLAGS = ("plugin", "plugin_args", "n_procs", "mem_gb", "work_dir",
                    "analysis_level")


def _check_flag_values(args) -> None:
    """Refuse flag values that are wrong whatever the data (numbers out of range, plugin
    arguments, thresholds, confound options), before any run is read or any file written."""
    from .core.group import check_permutations
    from .core.inference import check_threshold_settings

    check_threshold_settings(args.height_control, args.alpha, args.threshold,
                             args.cluster_threshold)
    _plugin_args(args)
    _confound_settings(args)
    for flag, value, smallest in (("--table-min-cluster-size", args.table_min_cluster_size, 0),
                                  ("--min-kept-volumes", args.min_kept_volumes, 1),
                                  ("--permutations", args.permutations, 0),
                                  ("--permutation-chunks", args.permutation_chunks, 1),
                                  ("--participants-per-task", args.participants_per_task, 1)):
        if value is not None and value < smallest:
            raise InputError(f"{flag}: expected a number >= {smallest}, got {value}")
    if args.permutations:
        check_permutations(args.permutations, args.alpha)
    if not 0 < args.cluster_forming_p < 1:
        raise InputError(f"--cluster-forming-p: expected a p value in (0, 1), got "
                         f"{args.cluster_forming_p}")


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


def _apply_model(args) -> None:
    """``--model FILE``: check the file (before any work) and set the flags it stands for
    (:func:`glm_workflows.stats_models.model_settings`) on ``args``."""
    if not args.model:
        return
    from .core.stats_model import read_stats_model
    from .stats_models import INPUT_ENTITIES, MODEL_FLAGS, model_settings

    parser = build_parser()
    given = [name for name in MODEL_FLAGS if getattr(args, name) != parser.get_default(name)]
    if given:
        raise InputError(f"--{given[0].replace('_', '-')}: not with --model (the model file "
                         "sets it)")
    model = read_stats_model(args.model)
    values = model_settings(model)
    task = values.pop("task", None)
    if task is not None:
        if args.task not in (parser.get_default("task"), task):
            raise InputError(f"--task {args.task}: the model file's Input.task is {task}")
        args.task = task
    for entity in INPUT_ENTITIES[1:]:  # the flags, if given, win
        wanted = values.pop(entity, None)
        group_only = args.from_derivatives and entity != "subject"  # maps already chosen
        if wanted is not None and getattr(args, entity) is None and not group_only:
            setattr(args, entity, wanted)
    if args.analysis_level == "participant":  # the Dataset node is the group level's
        values = {k: v for k, v in values.items() if k not in _GROUP_FLAGS}
    if args.from_derivatives:  # F contrasts are final: not passed to the group level
        values["f_contrast"] = []
    for name, value in values.items():
        setattr(args, name, value)
    args.model = str(Path(args.model).absolute())


def command_line(args, kept) -> list[str]:
    """The flags among ``kept`` (destinations) whose values differ from the defaults, as a
    command line that parses back to the same values."""
    parser = build_parser()
    line = []
    for action in parser._actions:
        if action.dest not in kept or not action.option_strings:
            continue
        value = getattr(args, action.dest)
        if value == parser.get_default(action.dest):
            continue
        flag = action.option_strings[0]
        if action.nargs == 0:  # store_true / store_false: the flag that gives the value
            if action.const == value:
                line.append(flag)
        elif isinstance(value, list) and action.nargs == "+":
            line += [flag, *map(str, value)]
        elif isinstance(value, list):  # repeatable
            line += [f"{flag}={item}" for item in value]
        else:
            line.append(f"{flag}={value}")
    return line


def _submit_array(args, argv, settings: dict, plugin_args: dict) -> int:
    """``--slurm-array``: plan the tasks within the cluster's limits, write the scripts,
    submit the arrays and the group job (or print the sbatch commands: ``--dry-run``)."""
    import math
    import shutil

    import nibabel as nb

    from .slurm_array import (
        JobSize,
        Submission,
        active_jobs,
        array_sbatch,
        describe_follow,
        group_sbatch,
        group_size,
        participants_of,
        plan_tasks,
        read_cluster_limits,
        sbatch_partition,
        split_arrays,
        submission_folder,
        submit,
        task_size,
        write_scripts,
    )
    from .stats_models import MODEL_FLAGS

    folder = submission_folder(args.work_dir, args.dry_run)
    if (folder / "submission.json").exists() and not args.dry_run:
        still = active_jobs(Submission.load(folder).job_ids())
        if still:
            raise InputError(f"--slurm-array: the last submission in {folder} still has "
                             f"{len(still)} job(s) queued or running; wait, scancel them, or "
                             "use another --work-dir")
    runs, estimates = settings["runs"], settings["mem_gb"]
    participants = participants_of(runs)
    sbatch_args = shlex.split(str(plugin_args.get("sbatch_args", "")))
    limits = read_cluster_limits(sbatch_partition(sbatch_args))
    tasks = plan_tasks(participants, limits, args.participants_per_task)
    run_estimates: dict = {}
    for run, run_mem in zip(runs, estimates, strict=True):
        run_estimates.setdefault(run.subject, []).append(run_mem)
    sizes = [task_size([m for label in task for m in run_estimates[label]], args.n_procs,
                       limits.node_cpus) for task in tasks]
    cpus = max(size.cpus for size in sizes)
    memory_gb = max(size.memory_gb for size in sizes)
    size = JobSize(cpus, memory_gb)  # one size for every task of the arrays
    n_voxels = math.prod(nb.load(runs[0].bold_files[0]).shape[:3])
    group = group_size(len(participants), n_voxels, args.n_procs)
    limits.check_job(size, "array task")
    limits.check_job(group, "group job")
    output_dir = str(Path(settings["output_dir"]).absolute())
    if folder.exists() and not args.dry_run:
        shutil.rmtree(folder / "done", ignore_errors=True)  # a new submission
    folder.mkdir(parents=True, exist_ok=True)
    if args.model:  # the jobs read a copy: editing the file later changes no pending job
        copy = folder / Path(args.model).name
        if Path(args.model) != copy:
            shutil.copyfile(args.model, copy)
        args.model = str(copy)
    outputs = {"output_dir"}
    from_model = set(MODEL_FLAGS) if args.model else set()  # the jobs read the model file
    task_argv = [*command_line(args, set(vars(args)) - set(_ARRAY_FLAGS) - set(_GROUP_FLAGS)
                               - set(_EXECUTION_FLAGS) - {"subject"} - outputs - from_model),
                 f"--output-dir={output_dir}", "--analysis-level=participant",
                 "--plugin=MultiProc", f"--n-procs={size.cpus}", f"--mem-gb={size.memory_gb}"]
    group_argv = None
    if settings["group"].model:
        group_argv = [*command_line(args, {"bids_dir", "task", "subject", "contrast", "debug",
                                           "model", *_GROUP_FLAGS, *(f.name for f in fields(
                                               InferenceSettings))} - from_model),
                      f"--output-dir={output_dir}", "--analysis-level=group",
                      "--plugin=MultiProc", f"--n-procs={group.cpus}",
                      f"--mem-gb={group.memory_gb}"]
    name = f"glm-{runs[0].task}"
    submission = Submission(
        command=_array_command(argv), cwd=os.getcwd(), python=sys.executable,
        output_dir=output_dir, tasks=tasks, task_argv=task_argv, group_argv=group_argv,
        task_job={"Name": name, "Cpus": size.cpus, "MemMB": size.mem_mb},
        group_job={"Name": f"{name}-group", "Cpus": group.cpus, "MemMB": group.mem_mb},
        limits={"MaxArraySize": limits.max_array_size, "MaxJobCount": limits.max_job_count,
                "Source": limits.source},
        arrays=[{"Offset": offset, "Count": count, "JobIds": [],
                 "Script": str(folder / f"array-{index:03d}.sh")}
                for index, (offset, count) in enumerate(split_arrays(
                    len(tasks), limits.max_array_size))],
        group={"Script": str(folder / "group.sh"), "JobIds": []},
        sbatch_args=sbatch_args)
    write_scripts(submission)
    per_task = max(len(task) for task in tasks)
    print(f"Array submission: {sum(map(len, tasks))} participant(s) in {len(tasks)} task(s) "
          f"of up to {per_task}, {len(submission.arrays)} array(s) + 1 group job "
          f"(MaxArraySize {limits.max_array_size}, MaxJobCount {limits.max_job_count}, from "
          f"{limits.source})")
    print(f"Each task: {size.cpus} CPU(s), {size.mem_mb} MB; group job: {group.cpus} CPU(s), "
          f"{group.mem_mb} MB. Scripts and record in {folder}")
    if args.dry_run:
        print("Dry run: nothing submitted. The commands would be:")
        for index in range(len(submission.arrays)):
            print("  " + shlex.join(array_sbatch(submission, index)))
        after = [f"<array-{index:03d}>" for index in range(len(submission.arrays))]
        print("  " + shlex.join(group_sbatch(submission, after)))
        return 0
    submit(submission)
    for line in describe_follow(submission):
        print(line)
    return 0


def _array_command(argv) -> list[str]:
    """The command line of an array submission, without ``--resubmit-failed`` (how a
    resubmission finds its submission)."""
    return [token for token in _given(argv) if token != "--resubmit-failed"]


def _resubmit_failed(args, argv) -> int:
    """``--slurm-array --resubmit-failed``: the tasks of the last submission that did not
    finish, resubmitted alone (each reuses its cache), and a new group job."""
    from .slurm_array import Submission, describe_follow, resubmit_failed, submission_folder

    submission = Submission.load(submission_folder(args.work_dir))
    if submission.command != _array_command(argv):
        raise InputError(f"--resubmit-failed: the command differs from the submission in "
                         f"{submission.folder} ({shlex.join(submission.command)}); "
                         "give the same command")
    if resubmit_failed(submission):
        for line in describe_follow(submission):
            print(line)
    return 0


def _interrupted(exc, work_dir: Path) -> int:
    """One line for an interrupted run; the exit code a shell gives a signalled job."""
    outputs = ("the outputs were already committed" if getattr(exc, "outputs_committed", False)
               else "no output was changed")
    print(f"glm-workflows: interrupted ({exc.signame}); {outputs}. Nodes that finished are "
          f"cached in {work_dir}: run the same command again to resume.",
          file=sys.stderr, flush=True)
    return 128 + exc.signum


def root_files(output_dir) -> None:
    """Rewrite the output folder's shared root files (see :mod:`glm_workflows.outputs`);
    with a group level in place, ``group.html`` from it first, so the index links it."""
    from .core.naming import GROUP_FOLDER
    from .outputs import write_root_files
    from .report import write_group_report, write_index

    if (Path(output_dir) / GROUP_FOLDER).is_dir():
        write_group_report(output_dir)
    write_root_files(output_dir, write_index)


def description_file(output_dir) -> None:
    """The participant level's only root file: ``dataset_description.json``, written if
    absent (the group level, or a run of both levels, lists the participants)."""
    from .outputs import write_description

    write_description(output_dir, replace=False)


def write_reports(output_dir, subjects, n_procs: int = 1) -> list[Path]:
    """One HTML report per subject (in ``n_procs`` processes), ``sub-<label>.html``."""
    from .report import write_subject_report

    if n_procs > 1 and len(subjects) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(n_procs, len(subjects)),
                                 mp_context=multiprocessing.get_context("fork")) as pool:
            return list(pool.map(write_subject_report, [output_dir] * len(subjects),
                                 subjects))
    return [write_subject_report(output_dir, subject) for subject in subjects]


def _parameters(settings: dict, args, plugin_args: dict) -> dict:
    """Every setting of the run, for the provenance record."""
    return {
        **asdict(settings["model"]), **asdict(settings["inference"]),
        "confounds": asdict(settings["confounds"]),
        "group": asdict(settings["group"]),
        "permutation_chunks": settings["n_chunks"],
        "skipped_contrasts": settings["skipped"],
        "contrasts": [{"name": name, "stat_type": stat, "rows": list(rows)}
                      for name, stat, rows in settings["contrasts"]],
        "plugin": args.plugin,
        "plugin_args": {k: v for k, v in plugin_args.items() if k != "status_callback"},
        "work_dir": str(Path(args.work_dir).absolute()),
        "output_dir": str(Path(settings["output_dir"]).absolute()),
        "node_memory_gb": settings["mem_gb"],
        "stats_model": args.model,
    }


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
