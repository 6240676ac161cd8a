"""The command line's flags: :func:`build_parser` (their names, groups, defaults and
help; each default read from :mod:`glm_workflows.settings`).

A BIDS App's call works too: ``glm-workflows bids_dir output_dir {participant,group}``
(the positional arguments are ``--bids-dir``, ``--output-dir`` and ``--analysis-level``;
:func:`glm_workflows.cli.command.spec_from_args` merges them), with fMRIPrep's spellings
``--n-cpus``/``--nprocs``, ``--session-label`` and ``-w``. A usage error is one line and a
hint, exit code 2.
"""

from __future__ import annotations

import argparse

from .. import __version__
from ..core.choices import (
    DRIFT_MODELS,
    GROUP_ESTIMATORS,
    GROUP_MODELS,
    HEIGHT_CONTROLS,
    NOISE_MODELS,
)
from ..settings import (
    CONFOUND_STRATEGIES,
    DEFAULT_CONFOUNDS,
    DEFAULT_GROUP,
    DEFAULT_INFERENCE,
    DEFAULT_MODEL,
    PLUGINS,
    QUIET,
    ExecutionSettings,
)

DEFAULT_EXECUTION = ExecutionSettings()
#: ``--analysis-level`` choices (BIDS Apps' names).
ANALYSIS_LEVELS = ("participant", "group")
#: The positional arguments (a BIDS App's) -> the flag each one is.
POSITIONALS = {"bids_dir_arg": "bids_dir", "output_dir_arg": "output_dir",
               "analysis_level_arg": "analysis_level"}


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser whose usage errors are one line and a hint (exit code 2)."""

    def error(self, message):
        text = " ".join(str(message).split())
        self.exit(2, f"{self.prog}: error: {text} (see {self.prog} --help)\n")

    def parse_known_args(self, args=None, namespace=None):
        if isinstance(args, str):  # spec_from_args("--task x"): not one flag per letter
            self.error(f"expected the arguments as a list of words (shlex.split of the "
                       f"command line), got one string: {args!r}")
        return super().parse_known_args(args, namespace)


class _StoreGiven(argparse.Action):
    """``store``, noting the flag was given (``given_flags``), so that a positional
    argument and its flag can be told apart even when the flag repeats its default."""

    def __call__(self, parser, namespace, values, option_string=None):
        setattr(namespace, self.dest, values)
        namespace.given_flags = (getattr(namespace, "given_flags", None) or frozenset()) \
            | {self.dest}


#: The argument groups of the first level's model: their flags are refused at the group
#: level alone, which reads the subject maps as they were written.
FIRST_LEVEL_GROUPS = (
    "model",
    "confounds and censoring (fMRIPrep confounds; nilearn's load_confounds options)",
)


def first_level_model_flags(parser: argparse.ArgumentParser) -> tuple[str, ...]:
    """The destinations of the flags of :data:`FIRST_LEVEL_GROUPS` in ``parser``."""
    return tuple(action.dest for group in parser._action_groups  # argparse keeps them there
                 if group.title in FIRST_LEVEL_GROUPS for action in group._group_actions)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, in groups: inputs, model, contrasts, inference, execution."""
    parser = ArgumentParser(
        prog="glm-workflows",
        usage="%(prog)s [bids_dir [output_dir [{participant,group}]]] [options]",
        description="First-level fMRI GLM as a Nipype workflow. With no input flags, runs the "
                    "SPM auditory analysis on the data found under --data-dir. As a BIDS "
                    "App: glm-workflows bids_dir output_dir {participant,group} [options].",
    )
    parser.add_argument("--version", action="version", version=f"glm-workflows {__version__}")
    bids_app = parser.add_argument_group(
        "BIDS-App arguments (the same as --bids-dir, --output-dir, --analysis-level)")
    bids_app.add_argument("bids_dir_arg", nargs="?", metavar="bids_dir",
                          help="BIDS dataset root (raw; fMRIPrep outputs with --derivatives)")
    bids_app.add_argument("output_dir_arg", nargs="?", metavar="output_dir",
                          help="derivatives root")
    bids_app.add_argument("analysis_level_arg", nargs="?", metavar="analysis_level",
                          choices=ANALYSIS_LEVELS, help="participant or group")
    data = parser.add_argument_group("inputs")
    data.add_argument("--bids-dir", action=_StoreGiven,
                      help="BIDS dataset root (TR read from the sidecar JSON)")
    data.add_argument("--task", default="auditory", help="task label (default: %(default)s)")
    data.add_argument("--participant-label", "--subject", dest="subject", nargs="+",
                      metavar="LABEL",
                      help="participant label(s) (--subject is the same); with --func, the "
                           "one label of that run (default: all participants / 01)")
    data.add_argument("--session", "--session-label", dest="session", nargs="+",
                      metavar="LABEL",
                      help="BIDS session label(s) (--session-label, fMRIPrep's, is the same)")
    data.add_argument("--run", nargs="+", metavar="INDEX", help="BIDS run index(es)")
    data.add_argument("--bids-filter-file", metavar="FILE",
                      help="JSON file of pybids queries, as fMRIPrep's: its \"bold\" query "
                           "selects the runs (e.g. {\"bold\": {\"session\": \"01\", \"run\": "
                           "[1, 2]}}) and, with --derivatives, their images (space, res, den, "
                           "desc)")
    data.add_argument("--func", nargs="+", metavar="FILE",
                      help="3D scans or 4D image(s) of one run, in order")
    data.add_argument("--events", metavar="TSV", help="events.tsv of the --func run")
    data.add_argument("--confounds", metavar="TSV", help="confounds TSV of the --func run")
    data.add_argument("--tr", type=float, help="repetition time in seconds (with --func)")
    data.add_argument("--derivatives", nargs="+", metavar="DIR",
                      help="fMRIPrep output folder(s): fit the preprocessed bold of each run "
                           "of --bids-dir (events from --bids-dir)")
    data.add_argument("--space", nargs="+", metavar="SPACE",
                      help="space(s) of the preprocessed bold (default: the only volume "
                           "one); several spaces are analysed in turn, each its own "
                           "analysis, all checked first; a surface space (fsaverage5, "
                           "fsaverage6, fsaverage, fsnative) fits each run's GIFTI "
                           "hemisphere pair, fsLR its CIFTI-2 grayordinates (den-91k "
                           ".dtseries.nii), fsLR with --den 32k its fsLR 32k GIFTI pair "
                           "(also fsLR alone when no run has a CIFTI series; "
                           "docs/surfaces.md)")
    data.add_argument("--desc", default="preproc",
                      help="desc of the preprocessed bold (default: %(default)s)")
    data.add_argument("--res", help="res of the preprocessed bold, when a run has several "
                                    "(group level alone: of the subject maps)")
    data.add_argument("--den", help="den of the preprocessed bold, when a run has several "
                                    "(--space fsLR: 91k the CIFTI series, 32k the GIFTI "
                                    "pairs; group level alone: of the subject maps)")
    data.add_argument("--templateflow-home", metavar="DIR",
                      help="a TemplateFlow home (tpl-fsaverage/, tpl-fsLR/) holding the "
                           "surface meshes nilearn does not ship, for clusters, permutations "
                           "and figures on them (default: $TEMPLATEFLOW_HOME; nothing is "
                           "downloaded; docs/surfaces.md)")
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

    model = parser.add_argument_group(FIRST_LEVEL_GROUPS[0])
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
    model.add_argument("--smoothing-fwhm", type=float, metavar="MM",
                       default=DEFAULT_MODEL.smoothing_fwhm,
                       help="spatial smoothing before the fit: FWHM in mm of the Gaussian "
                            "kernel applied to each volume, as nilearn's FirstLevelModel "
                            "(the brain mask is the unsmoothed run's; default: none)")
    model.add_argument("--save-residuals", "--error-ts", dest="save_residuals",
                       action="store_true", default=DEFAULT_MODEL.save_residuals,
                       help="also write each run's residual time series, "
                            "<prefix>_stat-errorts_statmap.nii.gz (nilearn's residuals_; "
                            "--error-ts: FitLins' name; default: off)")

    confounds = parser.add_argument_group(FIRST_LEVEL_GROUPS[1])
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
    group.add_argument("--group-estimator", choices=GROUP_ESTIMATORS,
                       default=DEFAULT_GROUP.estimator,
                       help="ols: least squares on the effect maps (nilearn's); mixed: the "
                            "first-level variances used, the between-subject variance "
                            "estimated per voxel by REML (default %(default)s)")
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
    group.add_argument("--exchangeability-blocks", metavar="COLUMN",
                       help="participants.tsv column of exchangeability blocks (families, "
                            "sites): sign flips of whole blocks, row shuffles within blocks")
    group.add_argument("--whole-blocks", action="store_true",
                       help="with --exchangeability-blocks: shuffle whole blocks (of one "
                            "size) instead of rows within blocks")

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
                           action=_StoreGiven,
                           help="derivatives root (default: %(default)s)")
    execution.add_argument("-w", "--work-dir", default=DEFAULT_EXECUTION.work_dir,
                           help="Nipype cache; reruns reuse it (default: %(default)s)")
    execution.add_argument("--plugin", default=DEFAULT_EXECUTION.plugin, metavar="NAME",
                           help=f"Nipype execution plugin: {', '.join(PLUGINS)} or any other "
                                "plugin Nipype has (SGE, PBS, LSF, ...), given its "
                                "--plugin-args as they are (default %(default)s)")
    execution.add_argument("--n-procs", "--n-cpus", "--nprocs", type=int, dest="n_procs",
                           help="processes for MultiProc (default: the CPUs this process "
                                "may run on, e.g. a SLURM job's)")
    execution.add_argument("--mem-gb", type=float,
                           help="memory MultiProc may use at once, in GB (default: 90%% of "
                                "the machine's, or of the job's memory limit); nodes declare "
                                "their needs from the data size")
    execution.add_argument("--plugin-args", default="{}", metavar="JSON",
                           help='extra plugin arguments, e.g. \'{"sbatch_args": "-p short"}\'')
    execution.add_argument("--analysis-level", choices=ANALYSIS_LEVELS, action=_StoreGiven,
                           help="BIDS-App levels: 'participant' writes each participant's "
                                "derivatives and nothing else; 'group' runs the group level "
                                "(--group) on the participants' outputs in --output-dir "
                                "(default: both)")
    execution.add_argument("--recheck", action="store_true",
                           help="run the workflow even when nothing changed since this "
                                "command's last successful run (Nipype then checks every "
                                "node's cache; without it such a rerun prints the recorded "
                                "results at once)")
    execution.add_argument("--debug", action="store_true", help="show tracebacks")
    verbosity = execution.add_mutually_exclusive_group()
    verbosity.add_argument("-v", "--verbose", dest="verbosity", action="count",
                           default=DEFAULT_EXECUTION.verbosity,
                           help="more output: -v Nipype's workflow log (INFO), -vv its logs "
                                "at DEBUG (everything also goes to the run's log file, "
                                "<output-dir>/logs/)")
    verbosity.add_argument("-q", "--quiet", dest="verbosity", action="store_const", const=QUIET,
                           help="print only errors and the final results (the progress "
                                "lines still go to the log file)")

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
                        runs_are_subjects=False, given_flags=frozenset())
    return parser
