"""What the command line prints once a run is committed: where the outputs are, and each
contrast's threshold and cluster table of the models the study's plan
(:class:`~glm_workflows.plan.study.StudyPlan`) wrote, read back from the written files."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nb
import numpy as np

from ..core.analyses import group_output_analysis
from ..core.lazy import pandas as pd
from ..core.naming import (
    GROUP_FOLDER,
    GROUP_OUTPUTS,
    contrast_file,
    contrast_names,
    group_file,
    output_folder,
)
from ..plan.study import RunPlan, StudyPlan, subject_plans


def result_prefixes(runs, by_session: bool = False) -> list[tuple[str, str]]:
    """The models whose results are written: each run, and each subject's fixed effects
    when it has several runs (:meth:`~glm_workflows.plan.study.StudyPlan.result_prefixes`).

    Parameters
    ----------
    runs : StudyPlan or list of glm_workflows.inputs.runs.RunInputs
        The study's plan, or its runs.
    by_session : bool
        With runs: a Session node combines each session's runs (their fixed effects too).

    Returns
    -------
    prefixes : list of (str, str)
        ``(subject, BIDS prefix)``, runs first.
    """
    if isinstance(runs, StudyPlan):
        return runs.result_prefixes()
    run_plans = tuple(RunPlan(run, ()) for run in runs)
    return StudyPlan(None, runs=run_plans,
                     subjects=subject_plans(run_plans, by_session)).result_prefixes()


def print_results(runs, output_dir, printer=print, analysis: str | None = None) -> None:
    """Print where the outputs are, and each contrast's threshold and cluster table.

    Parameters
    ----------
    runs : StudyPlan or list of glm_workflows.inputs.runs.RunInputs
        The study's plan (:func:`glm_workflows.execution.prepare.prepare`), or its runs.
    output_dir : str or PathLike
        The derivatives root the results were committed to.
    printer : callable
        Called with each block of text (default :func:`print`).
    analysis : str or None
        The run's analysis (:func:`~glm_workflows.core.analyses.analysis_label`): only its
        group contrasts are printed (None: every group contrast of the folder).
    """
    printer(f"Outputs in {Path(output_dir).absolute()}")
    for _, prefix in result_prefixes(runs):
        folder = Path(output_dir) / output_folder(prefix)  # a subject's, or a session's
        names = [p.name for p in folder.iterdir()] if folder.is_dir() else []
        for contrast in contrast_names(names, prefix, "cluster_tables"):
            for text in contrast_summary(folder, prefix, contrast):
                printer(text)
    group = Path(output_dir) / GROUP_FOLDER
    for stem in _group_stems(group, analysis):
        for text in group_summary(group, stem):
            printer(text)


def _group_stems(group: Path, analysis: str | None) -> list[str]:
    """The stems of the thresholded group contrasts in ``group`` (of ``analysis`` alone
    unless None), sorted."""
    suffix = GROUP_OUTPUTS["threshold_jsons"]
    stems = (sidecar.name[:-len(suffix) - 1]
             for sidecar in sorted(group.glob(f"*_{suffix}")) if group.is_dir())
    return [stem for stem in stems
            if analysis is None or group_output_analysis(stem) == analysis]


def group_warnings(output_dir, analysis: str | None = None) -> list[str]:
    """One line per group analysis whose model left voxels out (not finite in every
    subject's map), read from the group contrast sidecars; each line once.

    Parameters
    ----------
    output_dir : str or PathLike
        The derivatives root the results were committed to.
    analysis : str or None
        Only this analysis' group contrasts (None: every one of the folder).
    """
    from ..core.group_mask import left_out_line

    group = Path(output_dir) / GROUP_FOLDER
    lines = []
    for stem in _group_stems(group, analysis):
        path = group / group_file(stem, "contrast_jsons")
        meta = json.loads(path.read_text())
        line = left_out_line(meta["FirstLevelContrast"], meta["MaskVoxels"],
                             meta["SubjectMasksVoxels"], meta["NonFiniteVoxels"])
        if line and line not in lines:
            lines.append(line)
    return lines


def group_summary(folder: Path, stem: str) -> list[str]:
    """A group contrast's parametric threshold line and table, and the strongest
    permutation FWE p of each kind computed (as :func:`contrast_summary`)."""
    lines = _threshold_summary(folder / group_file(stem, "threshold_jsons"),
                               folder / group_file(stem, "cluster_tables"),
                               f"group {stem}")
    for output in ("logp_max_t", "logp_max_size", "logp_max_mass", "logp_max_tfce"):
        path = folder / group_file(stem, output)
        if path.exists():
            best = 10 ** -float(np.max(nb.load(path).get_fdata()))
            lines.append(f"  permutations {GROUP_OUTPUTS[output].split('desc-')[1].split('_')[0]}"
                         f": smallest FWE p = {best:.4f}")
    return lines


def contrast_summary(folder: Path, prefix: str, contrast: str) -> list[str]:
    """A contrast's threshold line and, if any voxel survives, its cluster table.

    Parameters
    ----------
    folder : pathlib.Path
        The model's folder (a subject's, or a session's).
    prefix : str
        The model's BIDS prefix.
    contrast : str
        The contrast name.

    Returns
    -------
    blocks : list of str
        E.g. ``"\\nsub-01_task-auditory contrast activeMinusRest: fdr alpha=0.05 ->
        z > 2.931, 5 cluster(s)"`` and the table.
    """
    return _threshold_summary(folder / contrast_file(prefix, contrast, "threshold_jsons"),
                              folder / contrast_file(prefix, contrast, "cluster_tables"),
                              f"{prefix} contrast {contrast}")


def _threshold_summary(sidecar: Path, table_file: Path, title: str) -> list[str]:
    """The threshold line (and the cluster table, if any voxel survives) of a z map."""
    settings = json.loads(sidecar.read_text())
    how = ("fixed threshold" if settings["HeightControl"] == "none"
           else f"{settings['HeightControl']} alpha={settings['Alpha']}")
    threshold = settings["Threshold"]  # null: no voxel can pass (fdr)
    head = f"\n{title}: {how} -> "
    statistic = "|z|" if settings.get("TwoSided") else "z"
    head += f"{statistic} > {threshold:.3f}, " if threshold is not None else ""
    if settings.get("NoSurvivingVoxels"):
        return [f"{head}no voxel survives"]
    table = pd.read_csv(table_file, sep="\t", keep_default_na=False)
    # a volume table's sub-peaks have no size; a surface table has one row per cluster
    n_clusters = (table["Cluster Size (mm3)"] != "").sum() \
        if "Cluster Size (mm3)" in table else len(table)
    return [f"{head}{n_clusters} cluster(s)",
            table.to_string(index=False) if len(table) else "  (no cluster)"]
