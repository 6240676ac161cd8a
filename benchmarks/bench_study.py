"""Benchmark: per-node overhead on a study of many tiny runs, and the cost of a rerun.

A tiny synthetic BIDS study (``--subjects`` subjects x one run of 12x14x12 voxels x 60
scans, TR 2 s, conditions ``a``/``b``; :func:`glm_workflows.synthetic.write_tiny_bids`) is generated
into the work folder the first time. Then, each in a fresh process, side by side:

1. ``ours, cold``: the command line, ``--plugin Linear``, one t contrast ``a - b``, with
   an empty work folder and an empty output folder;
2. ``ours, cached rerun``: the same command again;
3. ``ours, MultiProc``: the cold command with ``--plugin MultiProc --n-procs N``
   (``--n-procs``, default the machine's CPUs), an empty work and output folder again:
   what the graph's parallel runs give on the same machine (the nilearn loop uses one
   process; numpy may use more threads in both);
4. ``nilearn loop``: a plain Python loop doing, per run, what the command line does
   with its defaults: ``FirstLevelModel`` (AR(1), SPM HRF, cosine drifts at 1/160 Hz)
   ``.fit``, ``compute_contrast`` (effect, variance, t, z and p maps written as
   ``.nii.gz``), ``threshold_stats_img`` (fdr 0.05, clusters of 10 voxels, within the
   fit's mask), ``get_clusters_table`` (written as TSV) and two figures over the mean
   image (three axial cuts, an orthogonal view through the peak; PNG at 100 dpi);
5. ``seed, cold`` and ``seed, cached rerun``: the seed analysis (``--data-dir``, the
   96 SPM auditory scans) with an empty cache, then again.

Each measurement is repeated ``--repeat`` times; in every other repetition the nilearn
loop runs before our cold run rather than after our MultiProc run, so that a change in the
load of the machine does not favour one side. Printed: the medians with their range, the
ratios ours/nilearn (cold, Linear and MultiProc) and cached/cold (the tiny study and the
seed), each against its anchor measured in the same repetition, the load average at the
start and after each repetition, and the largest difference between our z maps (both
runs') and nilearn's. Besides the wall times, the CPU times (user + system) of each
process are shown: they depend less on what else the machine runs.

Usage::

    python benchmarks/bench_study.py [--subjects 64] [--repeat 3] [--n-procs 2]
                                     [--work-dir DIR] [--data-dir ../shared/data]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nilearn_loop import write_contrast_outputs  # noqa: E402
from timing import fresh, print_repetition, print_table, timed  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

TASK = "tiny"
CONTRAST = ("aMinusB", "a - b")
#: The command line's defaults (``glm_workflows/cli.py``), as nilearn's arguments.
MODEL = dict(noise_model="ar1", hrf_model="spm", drift_model="cosine", high_pass=1 / 160,
             slice_time_ref=0.0)
MEASURES = ("ours, cold", "ours, cached rerun", "ours, MultiProc", "nilearn loop",
            "seed, cold", "seed, cached rerun")


def make_study(root: Path, n_subjects: int) -> Path:
    """Write the tiny study once (``.complete`` marks a finished one)."""
    from glm_workflows.synthetic import write_tiny_bids

    done = root / ".complete"
    if not done.exists():
        shutil.rmtree(root, ignore_errors=True)
        write_tiny_bids(root, [f"{i:02d}" for i in range(1, n_subjects + 1)])
        done.write_text("ok\n")
    return root


def cli_command(inputs: list[str], out: Path, work: Path, n_procs: int = 1) -> list[str]:
    """Our command line with Linear (``n_procs`` 1) or MultiProc, writing to ``out`` and
    caching in ``work``."""
    plugin = ["--plugin", "Linear"] if n_procs == 1 else ["--plugin", "MultiProc",
                                                          "--n-procs", str(n_procs)]
    return [sys.executable, "-m", "glm_workflows.cli", *inputs, "--output-dir", str(out),
            "--work-dir", str(work), *plugin]


def nilearn_loop(bids: Path, out: Path) -> None:
    """The same analysis as a plain nilearn loop over the study's runs (one process)."""
    import json

    import pandas as pd
    from nilearn import image, plotting
    from nilearn.glm.first_level import FirstLevelModel

    t_r = json.loads((bids / f"task-{TASK}_bold.json").read_text())["RepetitionTime"]
    for bold in sorted(bids.glob(f"sub-*/func/*_task-{TASK}_bold.nii.gz")):
        prefix = bold.name[:-len("_bold.nii.gz")]
        events = pd.read_csv(bold.with_name(f"{prefix}_events.tsv"), sep="\t")
        model = FirstLevelModel(t_r=t_r, standardize=False, **MODEL).fit(bold, events=events)
        folder = out / bold.parent.parent.name
        folder.mkdir(parents=True, exist_ok=True)
        stem = folder / f"{prefix}_contrast-{CONTRAST[0]}"
        thresholded, threshold = write_contrast_outputs(model, CONTRAST[1], stem)
        mean = image.mean_img(bold, copy_header=True)
        for mode, cuts, suffix in (("z", 3, "thresholded"), ("ortho", None, "thresholdedOrtho")):
            display = plotting.plot_stat_map(thresholded, bg_img=mean, threshold=threshold,
                                             display_mode=mode, cut_coords=cuts, black_bg=True,
                                             title=CONTRAST[0])
            display.savefig(f"{stem}_stat-z_desc-{suffix}_statmap.png", dpi=100)
            display.close()


def largest_z_difference(ours: Path, theirs: Path) -> float:
    """Largest |z_ours - z_nilearn| over all z maps of the two output folders."""
    import nibabel as nb
    import numpy as np

    differences = [
        float(np.abs(nb.load(z).get_fdata() - nb.load(ours / z.relative_to(theirs)).get_fdata())
              .max())
        for z in sorted(theirs.rglob("*_stat-z_statmap.nii.gz"))]
    return max(differences) if differences else float("nan")


def repetition(bids: Path, seed_data: Path, scratch: Path, nilearn_first: bool,
               n_procs: int) -> dict:
    """One measurement of each kind (see the module docstring), the nilearn loop first or
    after our cold run, rerun and MultiProc run."""
    study = ["--bids-dir", str(bids), "--task", TASK, "--contrast", "=".join(CONTRAST)]
    tiny = cli_command(study, scratch / "ours", scratch / "work")
    parallel = cli_command(study, scratch / "parallel", scratch / "parallel_work", n_procs)
    seed = cli_command(["--data-dir", str(seed_data)], scratch / "seed", scratch / "seed_work")
    loop = [sys.executable, str(Path(__file__).resolve()), "--nilearn-loop", str(bids),
            str(scratch / "nilearn")]
    times = {}
    fresh(scratch / "ours", scratch / "work", scratch / "nilearn", scratch / "seed",
          scratch / "seed_work", scratch / "parallel", scratch / "parallel_work")
    if nilearn_first:
        times["nilearn loop"] = timed(loop)
    times["ours, cold"] = timed(tiny)
    times["ours, cached rerun"] = timed(tiny)
    times["ours, MultiProc"] = timed(parallel)
    if not nilearn_first:
        times["nilearn loop"] = timed(loop)
    times["seed, cold"] = timed(seed)
    times["seed, cached rerun"] = timed(seed)
    return times


#: The ratios printed: name, numerator, denominator (its anchor).
RATIOS = (("ours/nilearn (cold)", "ours, cold", "nilearn loop"),
          ("parallel/nilearn (cold)", "ours, MultiProc", "nilearn loop"),
          ("ours cached/cold", "ours, cached rerun", "ours, cold"),
          ("seed cached/cold", "seed, cached rerun", "seed, cold"))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", type=int, default=64, help="subjects (one run each)")
    parser.add_argument("--repeat", type=int, default=1, help="repetitions (medians shown)")
    parser.add_argument("--n-procs", type=int, default=os.cpu_count() or 2,
                        help="processes of the MultiProc measurement (default: the CPUs)")
    parser.add_argument("--work-dir", type=Path,
                        default=Path(tempfile.gettempdir()) / "glm-workflows-bench-study",
                        help="where the study is kept between runs")
    parser.add_argument("--data-dir", type=Path,
                        default=Path(os.environ.get("GLM_WORKFLOWS_TEST_DATA",
                                                    REPO.parent / "shared" / "data")),
                        help="folder holding spm_auditory/ (the seed analysis)")
    parser.add_argument("--nilearn-loop", nargs=2, type=Path, metavar=("BIDS", "OUT"),
                        help=argparse.SUPPRESS)  # the child process of measurement 3
    args = parser.parse_args(argv)
    if args.nilearn_loop:
        nilearn_loop(*args.nilearn_loop)
        return
    bids = make_study(args.work_dir / f"tiny_{args.subjects}", args.subjects)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; study {bids} "
          f"({args.subjects} subjects x 1 run, 12x14x12 x 60 scans); "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(dir=args.work_dir) as scratch:
        for index in range(args.repeat):
            rows.append(repetition(bids, args.data_dir, Path(scratch), index % 2 == 1,
                                   args.n_procs))
            print_repetition(index, rows[-1])
        difference = max(largest_z_difference(Path(scratch) / ours, Path(scratch) / "nilearn")
                         for ours in ("ours", "parallel"))
    print_table(rows, MEASURES, RATIOS)
    print(f"\n  max |z ours - z nilearn| over {args.subjects} runs: {difference:.2e}; "
          f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
