"""Every setting of an analysis and its default, defined once.

Frozen dataclasses (no Nipype): the command line takes its defaults from them, the
workflow factories take them as arguments, the interfaces' trait defaults and the
numeric core's keyword defaults are these values, and provenance records them with
:func:`dataclasses.asdict`. Nodes still receive plain values, so Nipype's hashes (and
the cache) depend on the values alone.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

#: The seed analysis' contrasts: (name, stat_type, rows).
SEED_CONTRASTS = (
    ("activeMinusRest", "t", ("active - rest",)),
    ("effectsOfInterest", "F", ("active", "rest")),
)

#: The Nipype plugins this project handles itself (``--plugin``: any other plugin Nipype
#: has is passed to it as it is).
PLUGINS = ("Linear", "MultiProc", "SLURM", "SLURMGraph")
#: Plugins that submit the whole graph at once and report nothing per node.
GRAPH_PLUGINS = ("SLURMGraph",)
#: ``ExecutionSettings.verbosity`` levels (``-q``, default, ``-v``, ``-vv``).
QUIET, DEFAULT_VERBOSITY, VERBOSE, VERY_VERBOSE = -1, 0, 1, 2


def seed_data_dir(data_dir=None) -> Path:
    """Where the seed analysis looks for the SPM auditory data: ``data_dir`` (``--data-dir``),
    else ``$NILEARN_DATA``, else ``~/nilearn_data``."""
    return Path(data_dir or os.environ.get("NILEARN_DATA") or Path.home() / "nilearn_data")


def default_first(default, choices) -> tuple:
    """``choices`` with ``default`` first and nowhere else.

    A ``traits.Enum(*values)`` defaults to its first value, whatever the settings say:
    ``traits.Enum(*default_first(DEFAULT_MODEL.noise_model, NOISE_MODELS))`` defaults to
    the settings' value.

    Raises
    ------
    ValueError
        If ``default`` is not one of ``choices``.
    """
    if default not in choices:
        raise ValueError(f"default {default!r} is not one of {choices}")
    return (default, *(choice for choice in choices if choice != default))


@dataclass(frozen=True)
class ModelSettings:
    """The first-level model, as nilearn's ``FirstLevelModel`` names its settings.

    Attributes
    ----------
    noise_model : {'ar1', 'ols', 'ar1-corrected', 'ar2-corrected'}
        Temporal noise model: ``ar1`` and ``ols`` exactly as nilearn's; ``ar1-corrected``
        and ``ar2-corrected``: AR(1) or AR(2) models whose coefficients are corrected for
        the bias of estimating them from OLS residuals (:mod:`glm_workflows.core.noise`).
    hrf_model : str
        nilearn HRF model (``spm``, ``glover``, ``spm + derivative``, ..., ``fir``).
    drift_model : {'auto', 'cosine', 'polynomial', 'none'}
        Slow drift regressors. ``auto`` (the default): cosine drifts unless the run's
        confounds hold cosine regressors (fMRIPrep's ``cosineXX``), decided per run.
    high_pass : float
        High-pass cut-off of cosine drifts, in Hz (1/160, SPM's default period).
    drift_order : int
        Order of polynomial drifts.
    slice_time_ref : float
        Time of the reference slice, as a fraction of the TR.
    run_node : str
        A BIDS Stats Models Run node (:func:`glm_workflows.core.model_design.run_node_json`)
        that makes the design instead of the HRF and drift settings ('': none).
    smoothing_fwhm : float or None
        Spatial smoothing before the fit: FWHM (mm) of the Gaussian kernel applied to each
        volume, as nilearn's ``smoothing_fwhm`` (:mod:`glm_workflows.core.smoothing`);
        None: no smoothing.
    save_residuals : bool
        Also write each run's residual time series (nilearn's ``residuals_``, FitLins'
        ``--error-ts``): the fit node's ``residuals_file``
        (:mod:`glm_workflows.core.diagnostics`); off: none.
    """

    noise_model: str = "ar1"
    hrf_model: str = "spm"
    drift_model: str = "auto"
    high_pass: float = 1 / 160
    drift_order: int = 1
    slice_time_ref: float = 0.0
    run_node: str = ""
    smoothing_fwhm: float | None = None
    save_residuals: bool = False

    def for_run(self, slice_time_ref: float | None) -> ModelSettings:
        """These settings for a run whose sidecar gives its slice-time reference (None:
        the settings' own)."""
        if slice_time_ref is None or slice_time_ref == self.slice_time_ref:
            return self
        return replace(self, slice_time_ref=float(slice_time_ref))

    def design(self) -> dict:
        """The settings the design matrix depends on (all but the noise model and the
        smoothing, which only the fit takes, and the residuals, which only the
        diagnostics write)."""
        settings = asdict(self)
        del settings["noise_model"], settings["smoothing_fwhm"], settings["save_residuals"]
        return settings


@dataclass(frozen=True)
class InferenceSettings:
    """Thresholds of the z maps and the cluster tables.

    Attributes
    ----------
    height_control : {'fdr', 'fpr', 'bonferroni', 'none'}
        How the z threshold is chosen (``none``: use ``threshold``).
    alpha : float
        Error rate for fdr/fpr/bonferroni.
    threshold : float
        z threshold used with ``height_control='none'``.
    cluster_threshold : int
        Clusters smaller than this many voxels are removed from the thresholded maps.
    two_sided : bool
        Threshold and tabulate negative effects too.
    table_min_cluster_size : int
        Smallest cluster (voxels) listed in the cluster tables.
    """

    height_control: str = "fdr"
    alpha: float = 0.05
    threshold: float = 3.09
    cluster_threshold: int = 10
    two_sided: bool = False
    table_min_cluster_size: int = 20

    def threshold_inputs(self) -> dict:
        """The ThresholdMap inputs."""
        return {"height_control": self.height_control, "alpha": self.alpha,
                "threshold": self.threshold, "cluster_threshold": self.cluster_threshold,
                "two_sided": self.two_sided}

    def table_inputs(self) -> dict:
        """The ClusterTable inputs."""
        return {"min_cluster_size": self.table_min_cluster_size, "two_sided": self.two_sided}


#: nilearn's denoising presets this project offers (``ica_aroma`` needs outputs
#: fMRIPrep no longer writes).
CONFOUND_STRATEGIES = ("simple", "scrubbing", "compcor")


@dataclass(frozen=True)
class ConfoundSettings:
    """Which confounds of an fMRIPrep confounds file enter the design, and which volumes
    are censored, as nilearn's ``load_confounds_strategy`` / ``load_confounds`` choose them.

    Attributes
    ----------
    strategy : {None, 'simple', 'scrubbing', 'compcor'}
        nilearn's preset; None: no confounds (unless ``columns``).
    columns : tuple of str
        Shell-style patterns of confound columns (instead of a strategy).
    motion, wm_csf, global_signal, compcor : str or None
        nilearn's options of those names; None: the preset's value.
    fd_threshold, std_dvars_threshold : float or None
        Scrubbing thresholds (mm, standardized DVARS); None: the preset's.
    scrub : int or None
        Scrubbing: segments shorter than this many volumes are censored too.
    n_compcor : str or None
        CompCor components: a number or ``all``.
    demean : bool
        Demean the confounds (on the kept volumes), as nilearn does by default.
    min_kept_volumes : int
        A run left with fewer volumes after censoring is refused before any work.
    """

    strategy: str | None = None
    columns: tuple = ()
    motion: str | None = None
    wm_csf: str | None = None
    global_signal: str | None = None
    compcor: str | None = None
    n_compcor: str | None = None
    fd_threshold: float | None = None
    std_dvars_threshold: float | None = None
    scrub: int | None = None
    demean: bool = True
    min_kept_volumes: int = 10

    def options(self) -> dict:
        """nilearn's loader options given (not None), by their nilearn names."""
        names = ("motion", "wm_csf", "global_signal", "compcor", "n_compcor", "fd_threshold",
                 "std_dvars_threshold", "scrub")
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}

    def selection(self) -> dict:
        """What the design node needs to select the confounds (plain values)."""
        return {"strategy": self.strategy or "", "columns": list(self.columns),
                "options": self.options(), "demean": self.demean}

    @property
    def selects(self) -> bool:
        """Whether confounds are selected from an fMRIPrep confounds file."""
        return bool(self.strategy or self.columns)


@dataclass(frozen=True)
class GroupSettings:
    """The group level: a model over the subjects' maps and its inference.

    Attributes
    ----------
    model : {None, 'one-sample', 'two-sample', 'paired'}
        None: no group level.
    group_column : str or None
        Two-sample: the ``participants.tsv`` column holding each subject's group.
    pair : tuple of str
        Paired: two first-level contrasts ``(A, B)``; the model is the one-sample test of
        ``A - B`` (which also makes sign flipping valid).
    covariates : tuple of str
        Numeric ``participants.tsv`` columns added to the design.
    demean : bool
        Demean the covariates over the subjects used.
    contrasts : tuple of (name, expression)
        Group contrasts over the design's columns; default: the group mean (one-sample,
        paired) or the difference of the two groups (two-sample).
    permutations : int
        Permutations (0: parametric inference only).
    seed : int
        Seed of the permutations: the same seed gives the same maps whatever the chunks.
    chunks : int or None
        Permutation nodes run in parallel (None: the plugin's processes).
    cluster_forming_p : float
        Cluster-forming threshold (p) of the cluster-size and cluster-mass inference.
    tfce : bool
        Add TFCE (about 0.8 s per permutation on 64x64x64 maps).
    inputs : tuple of str
        The first-level t contrasts taken to the group level (a model file's edge
        filter); empty: every one.
    transformations : tuple
        A model file's Dataset node ``Transformations.Instructions`` (frozen: see
        :func:`glm_workflows.spec.frozen.freeze`), applied to ``participants.tsv``'s
        columns before ``covariates`` are taken from them
        (:func:`glm_workflows.core.group_variables.dataset_design`).
    intercept : bool
        One-sample: whether the design has the ``intercept`` column (a model file's
        ``Model.X`` without ``1``: the covariates alone, e.g. a cell-means design).
    estimator : {'ols', 'mixed'}
        ``ols``: ordinary least squares on the effect maps (nilearn's SecondLevelModel);
        ``mixed``: the first-level variances used and the between-subject variance
        estimated per voxel by REML, Knapp-Hartung statistics
        (:mod:`glm_workflows.core.mixed_effects`).
    exchangeability_blocks : str or None
        A ``participants.tsv`` column: the permutations respect its blocks (sign flips of
        whole blocks; row shuffles within blocks, or of whole blocks with
        ``whole_blocks``). None: every subject exchangeable.
    whole_blocks : bool
        With ``exchangeability_blocks``, shuffle whole blocks (of one size).

    A group contrast is ``(name, expression)`` (t) or ``(name, (row, ...))`` (F).
    """

    model: str | None = None
    group_column: str | None = None
    pair: tuple = ()
    covariates: tuple = ()
    demean: bool = False
    contrasts: tuple = ()
    permutations: int = 0
    seed: int = 0
    chunks: int | None = None
    cluster_forming_p: float = 0.001
    tfce: bool = False
    inputs: tuple = ()
    transformations: tuple = ()
    intercept: bool = True
    estimator: str = "ols"
    exchangeability_blocks: str | None = None
    whole_blocks: bool = False


@dataclass(frozen=True)
class ExecutionSettings:
    """Where and how the workflow runs (apart from the analysis: an
    :class:`~glm_workflows.spec.analysis.AnalysisSpec` says what is computed).

    Attributes
    ----------
    output_dir : str
        Derivatives root.
    work_dir : str
        Nipype cache; reruns reuse it.
    plugin : str
        Nipype execution plugin: ``Linear``, ``MultiProc``, ``SLURM``, ``SLURMGraph``
        (:data:`PLUGINS`) or any other plugin Nipype has (``SGE``, ``PBS``, ...).
    plugin_args : str
        The plugin's arguments as JSON text (``--n-procs`` and ``--mem-gb`` merged in as
        ``n_procs`` and ``memory_gb`` by the command line); :meth:`plugin_arguments`.
    n_procs : int or None
        MultiProc processes.
    mem_gb : float or None
        Memory MultiProc may use at once (GB).
    permutation_chunks : int or None
        Permutation nodes run in parallel (None: the plugin's processes).
    debug : bool
        Show tracebacks and Nipype's own log.
    verbosity : int
        What a run prints (everything goes to its log file, ``<output_dir>/logs/``):
        -1 (:data:`QUIET`) errors and the final results only; 0 the progress lines;
        1 Nipype's workflow log at INFO too; 2 Nipype's logs at DEBUG.
    analysis_level : {None, 'participant', 'group'}
        BIDS-App level (None: both).
    slurm_array, participants_per_task, dry_run, resubmit_failed
        SLURM array submission options.
    """

    output_dir: str = "derivatives"
    work_dir: str = "work"
    plugin: str = "Linear"
    plugin_args: str = "{}"
    n_procs: int | None = None
    mem_gb: float | None = None
    permutation_chunks: int | None = None
    debug: bool = False
    verbosity: int = DEFAULT_VERBOSITY
    analysis_level: str | None = None
    slurm_array: bool = False
    participants_per_task: int | None = None
    dry_run: bool = False
    resubmit_failed: bool = False

    def plugin_arguments(self) -> dict:
        """:attr:`plugin_args` as a dict."""
        import json

        return json.loads(self.plugin_args)


#: The defaults, as the factories' default arguments (frozen: safe to share).
DEFAULT_MODEL = ModelSettings()
DEFAULT_INFERENCE = InferenceSettings()
DEFAULT_CONFOUNDS = ConfoundSettings()
DEFAULT_GROUP = GroupSettings()
