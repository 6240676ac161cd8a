"""Benchmark: the seed analysis (SPM auditory, 96 scans) cold and as a cached rerun, against
a nilearn script producing the same maps, tables and figures.

Each measurement in a fresh process, side by side in every repetition:

1. ``nilearn script``: ``FirstLevelModel`` (AR(1), SPM HRF, cosine drifts at 1/160 Hz,
   ``minimize_memory=False`` for R²) fitted on the 96 scans; mean image, mask, design
   matrix (TSV), R² map; per contrast (``active - rest``, t; ``effectsOfInterest``, F)
   its effect, variance, statistic, z and p maps, ``threshold_stats_img`` (fdr 0.05,
   clusters of 10 voxels, within the fit's mask), ``get_clusters_table`` (from 20 voxels,
   TSV); figures (PNG, 100 dpi): the design matrix, its correlations, each contrast's
   matrix, and the thresholded map over the mean as three axial cuts and an orthogonal
   view. Ours writes more (an HTML report, whitened-residual diagnostics, sidecars,
   provenance);
2. ``ours, cold``: ``run_workflow.py --data-dir DATA`` (the README's command) with an empty
   work folder and an empty output folder;
3. ``ours, cached``: the same command again (nothing changed: the recorded results are
   printed, :mod:`glm_workflows.execution.up_to_date`);
4. ``ours, recheck``: the same command with ``--recheck`` (Nipype builds the graph and
   finds every node in its cache), for a checkout that has the flag.

With ``--baseline CHECKOUT`` (e.g. ``../main``) the same two measurements are also made with
that checkout's code (``PYTHONPATH``), in the same repetitions, for a before/after in one
run. Printed: medians and ranges (wall, CPU), and per repetition the ratios ours/nilearn
(cold) and cached/cold, each against its anchor measured in the same repetition.

Usage::

    python benchmarks/bench_seed.py [--repeat 3] [--baseline ../main] [--data-dir ../shared/data]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nilearn_loop import INFERENCE, TABLE_MIN_CLUSTER_SIZE  # noqa: E402
from timing import REPO, fresh, print_repetition, print_table, timed  # noqa: E402

MODEL = dict(noise_model="ar1", hrf_model="spm", drift_model="cosine", high_pass=1 / 160,
             slice_time_ref=0.0, standardize=False, minimize_memory=False)


def nilearn_script(data_dir: Path, out: Path) -> None:
    """The seed analysis as a plain nilearn script (measurement 1)."""
    import numpy as np
    import pandas as pd
    from nilearn import image, plotting
    from nilearn.glm import threshold_stats_img
    from nilearn.glm.first_level import FirstLevelModel
    from nilearn.reporting import get_clusters_table

    scans_dir = data_dir / "spm_auditory" / "sub001" / "fM00223"
    bold = image.concat_imgs(sorted(str(p) for p in scans_dir.glob("fM00223_*.img")))
    events = pd.read_csv(scans_dir / "fM00223_events.tsv", sep="\t")
    model = FirstLevelModel(t_r=7.0, **MODEL).fit(bold, events=events)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / "sub-01_task-auditory"
    mean = image.mean_img(bold, copy_header=True)
    mean.to_filename(f"{stem}_desc-mean_bold.nii.gz")
    model.masker_.mask_img_.to_filename(f"{stem}_desc-brain_mask.nii.gz")
    model.r_square[0].to_filename(f"{stem}_stat-rsquared_statmap.nii.gz")
    design = model.design_matrices_[0]
    design.to_csv(f"{stem}_design.tsv", sep="\t")
    plotting.plot_design_matrix(design, output_file=f"{stem}_design.png")
    plotting.plot_design_matrix_correlation(design, output_file=f"{stem}_desc-correlation_"
                                                                "design.png")
    columns = list(design.columns)
    f_matrix = np.array([[c == name for c in columns] for name in ("active", "rest")], float)
    for name, contrast, stat in (("activeMinusRest", "active - rest", "t"),
                                 ("effectsOfInterest", f_matrix, "F")):
        prefix = f"{stem}_contrast-{name}"
        plotting.plot_contrast_matrix(contrast, design, output_file=f"{prefix}_contrastmatrix"
                                                                    ".png")
        maps = model.compute_contrast(contrast, stat_type=stat, output_type="all")
        for key, suffix in (("effect_size", "effect"), ("effect_variance", "variance"),
                            ("stat", stat), ("z_score", "z"), ("p_value", "p")):
            maps[key].to_filename(f"{prefix}_stat-{suffix}_statmap.nii.gz")
        thresholded, threshold = threshold_stats_img(
            maps["z_score"], mask_img=model.masker_.mask_img_, two_sided=False, **INFERENCE)
        thresholded.to_filename(f"{prefix}_stat-z_desc-thresholded_statmap.nii.gz")
        get_clusters_table(thresholded, threshold, TABLE_MIN_CLUSTER_SIZE).to_csv(
            f"{prefix}_clusters.tsv", sep="\t", index=False)
        for mode, cuts, suffix in (("z", 3, "thresholded"), ("ortho", None,
                                                             "thresholdedOrtho")):
            display = plotting.plot_stat_map(thresholded, bg_img=mean, threshold=threshold,
                                             display_mode=mode, cut_coords=cuts,
                                             black_bg=True, title=name)
            display.savefig(f"{prefix}_stat-z_desc-{suffix}_statmap.png", dpi=100)
            display.close()


def repetition(data_dir: Path, scratch: Path, checkouts: dict, nilearn_first: bool) -> dict:
    """One measurement of each kind, the nilearn script first or last."""
    script = [sys.executable, str(Path(__file__).resolve()), "--nilearn-script",
              str(data_dir), str(scratch / "nilearn")]
    times = {}
    fresh(scratch / "nilearn")
    if nilearn_first:
        times["nilearn script"] = timed(script)
    for tag, checkout in checkouts.items():
        out, work = scratch / f"{tag}_out", scratch / f"{tag}_work"
        fresh(out, work)
        env = {**os.environ, "PYTHONPATH": str(checkout)}
        cmd = [sys.executable, str(checkout / "run_workflow.py"), "--data-dir", str(data_dir),
               "--output-dir", str(out), "--work-dir", str(work)]
        times[f"{tag}, cold"] = timed(cmd, cwd=checkout, env=env)
        times[f"{tag}, cached"] = timed(cmd, cwd=checkout, env=env)
        if _has_recheck(checkout):
            times[f"{tag}, recheck"] = timed([*cmd, "--recheck"], cwd=checkout, env=env)
    if not nilearn_first:
        times["nilearn script"] = timed(script)
    return times


def _has_recheck(checkout: Path) -> bool:
    """Whether the checkout's command line has ``--recheck``."""
    return "--recheck" in (checkout / "glm_workflows" / "cli" / "parser.py").read_text()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="repetitions (medians shown)")
    parser.add_argument("--baseline", type=Path, help="another checkout measured alongside")
    parser.add_argument("--data-dir", type=Path,
                        default=Path(os.environ.get("GLM_WORKFLOWS_TEST_DATA",
                                                    REPO.parent / "shared" / "data")),
                        help="folder holding spm_auditory/")
    parser.add_argument("--nilearn-script", nargs=2, type=Path, metavar=("DATA", "OUT"),
                        help=argparse.SUPPRESS)  # the child process of measurement 1
    args = parser.parse_args(argv)
    if args.nilearn_script:
        nilearn_script(*args.nilearn_script)
        return
    checkouts = {"ours": REPO}
    if args.baseline:
        checkouts = {"baseline": args.baseline.resolve(), **checkouts}
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; load average "
          f"{os.getloadavg()[0]:.2f}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for index in range(args.repeat):
            rows.append(repetition(args.data_dir.resolve(), Path(scratch), checkouts,
                                   index % 2 == 1))
            print_repetition(index, rows[-1])
    kinds = {tag: ("cold", "cached", "recheck") if _has_recheck(checkout) else ("cold", "cached")
             for tag, checkout in checkouts.items()}
    measures = ["nilearn script"] + [f"{tag}, {kind}" for tag in checkouts
                                     for kind in kinds[tag]]
    ratios = [ratio for tag in checkouts for ratio in (
        (f"{tag} cold/nilearn", f"{tag}, cold", "nilearn script"),
        *((f"{tag} {kind}/cold", f"{tag}, {kind}", f"{tag}, cold")
          for kind in kinds[tag][1:]))]
    print_table(rows, measures, ratios)


if __name__ == "__main__":
    main()
