"""Benchmark: the command line on an fMRIPrep-like study against a plain nilearn loop.

The study is nilearn's fake BIDS dataset
(``nilearn._utils.data_gen.create_fake_bids_dataset``: ``--subjects`` subjects,
``--sessions`` 0 or 1, task ``main``, two runs each of 4x4x4 voxels x 30 scans, TR 1.5 s,
conditions ``c0``/``c1``/``c2``, some events after the last frame), with its fMRIPrep-like
``derivatives/`` (spaces ``MNI`` and ``T1w``, brain masks, confounds with cosine and
non-steady-state columns). It is generated into the work folder the first time. Then,
each in a fresh process, side by side:

1. ``ours, cold``: the command line on ``--derivatives``, ``--space`` (default ``MNI``),
   ``--confounds-strategy simple --motion basic --wm-csf basic``, one t contrast
   ``c0 - c1``, ``--plugin Linear``, with an empty work folder and output folder;
2. ``ours, cached rerun``: the same command again;
3. ``nilearn loop``: a plain Python loop doing, per run, what the command line does:
   ``load_confounds_strategy(bold, "simple", motion="basic", wm_csf="basic")``,
   ``FirstLevelModel`` (AR(1), SPM HRF, no drift model since the confounds hold
   fMRIPrep's cosines, the run's fMRIPrep brain mask, the slice-time reference from the
   sidecar's ``StartTime``/``SliceTiming`` else 0) ``.fit`` with the confounds and the
   sample mask, ``compute_contrast`` (effect, variance, t, z and p maps written as
   ``.nii.gz``), ``threshold_stats_img`` (fdr 0.05, clusters of 10 voxels, within the
   fit's mask) and ``get_clusters_table`` (written as TSV).

The loop does less than the command line, which also combines each subject's runs by
fixed effects (maps, thresholds and tables again), draws the design, contrast and
statistical figures, and writes the HTML report and provenance records.

Each measurement is repeated ``--repeat`` times; in every other repetition the nilearn
loop runs before our cold run rather than after our rerun. Printed: the medians of the
wall and CPU (user + system) times with their range, the ratios ours/nilearn (cold) and
cached/cold, each against its anchor measured in the same repetition, the warnings of
our cold run, and the largest difference between our run-level z maps and nilearn's.

Usage::

    python benchmarks/bench_fmriprep.py [--subjects 20] [--sessions 0] [--space MNI]
                                        [--repeat 3] [--work-dir DIR]
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

TASK = "main"
CONTRAST = ("c0MinusC1", "c0 - c1")
#: The confounds options given to the command line, as nilearn's arguments.
CONFOUNDS = dict(motion="basic", wm_csf="basic")
STRATEGY = "simple"
#: What the command line fits with these confounds (fMRIPrep's cosines: no drift model).
MODEL = dict(noise_model="ar1", hrf_model="spm", drift_model=None)
MEASURES = ("ours, cold", "ours, cached rerun", "nilearn loop")


def make_study(root: Path, n_subjects: int, n_sessions: int) -> Path:
    """Write the fake fMRIPrep study once (``.complete`` marks a finished one); return
    the raw BIDS root (its ``derivatives/`` holds the preprocessed runs)."""
    from nilearn._utils.data_gen import create_fake_bids_dataset

    done = root / ".complete"
    if not done.exists():
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        create_fake_bids_dataset(base_dir=root, n_sub=n_subjects, n_ses=n_sessions,
                                 tasks=[TASK], n_runs=[2], with_derivatives=True,
                                 with_confounds=True, rand_gen=0)
        done.write_text("ok\n")
    return root / "bids_dataset"


def cli_command(bids: Path, space: str, out: Path, work: Path) -> list[str]:
    """Our command line on the study's derivatives, writing to ``out``, caching in
    ``work``."""
    return [sys.executable, "-m", "glm_workflows.cli", "--bids-dir", str(bids),
            "--derivatives", str(bids / "derivatives"), "--task", TASK, "--space", space,
            "--confounds-strategy", STRATEGY,
            *(arg for key, value in CONFOUNDS.items()
              for arg in (f"--{key.replace('_', '-')}", value)),
            "--contrast", "=".join(CONTRAST), "--plugin", "Linear",
            "--output-dir", str(out), "--work-dir", str(work)]


def _sidecar(bids: Path, raw_folder: Path, prefix: str) -> dict:
    """The raw bold's metadata: the run's sidecar over the task's top-level one."""
    import json

    metadata = {}
    for path in (bids / f"task-{TASK}_bold.json", raw_folder / f"{prefix}_bold.json"):
        if path.exists():
            metadata.update(json.loads(path.read_text()))
    return metadata


def _slice_time_ref(metadata: dict) -> float:
    """As the command line: ``StartTime / TR``, else the middle of ``SliceTiming``, else 0."""
    t_r = metadata["RepetitionTime"]
    if metadata.get("StartTime") is not None:
        return metadata["StartTime"] / t_r
    if metadata.get("SliceTiming"):
        return (min(metadata["SliceTiming"]) + max(metadata["SliceTiming"])) / 2 / t_r
    return 0.0


def nilearn_loop(bids: Path, space: str, out: Path) -> None:
    """The same run-level analysis as a plain nilearn loop over the study's runs."""
    import warnings

    import pandas as pd
    from nilearn.glm.first_level import FirstLevelModel
    from nilearn.interfaces.fmriprep import load_confounds_strategy

    derivatives = bids / "derivatives"
    pattern = f"sub-*/**/func/*_task-{TASK}_*space-{space}_desc-preproc_bold.nii.gz"
    for bold in sorted(derivatives.glob(pattern)):
        prefix = bold.name.split("_space-")[0]
        raw_folder = bids / bold.parent.relative_to(derivatives)
        metadata = _sidecar(bids, raw_folder, prefix)
        events = pd.read_csv(raw_folder / f"{prefix}_events.tsv", sep="\t")
        mask = bold.with_name(bold.name.replace("_desc-preproc_bold", "_desc-brain_mask"))
        confounds, sample_mask = load_confounds_strategy(str(bold), STRATEGY, **CONFOUNDS)
        with warnings.catch_warnings():  # events after the last frame
            warnings.simplefilter("ignore")
            model = FirstLevelModel(t_r=metadata["RepetitionTime"], mask_img=str(mask),
                                    slice_time_ref=_slice_time_ref(metadata),
                                    standardize=False, **MODEL)
            model.fit(str(bold), events=events, confounds=confounds,
                      sample_masks=sample_mask)
        folder = out / bold.relative_to(derivatives).parts[0]
        folder.mkdir(parents=True, exist_ok=True)
        stem = folder / f"{prefix}_contrast-{CONTRAST[0]}"
        write_contrast_outputs(model, CONTRAST[1], stem)


def largest_z_difference(ours: Path, theirs: Path) -> tuple[float, int, int]:
    """Largest |z_ours - z_nilearn| over all run-level z maps of the nilearn folder, the
    number of maps compared, and the number of them our folder lacks."""
    import nibabel as nb
    import numpy as np

    differences, missing = [], 0
    for z in sorted(theirs.rglob("*_stat-z_statmap.nii.gz")):
        mine = ours / z.relative_to(theirs)
        if not mine.exists():
            missing += 1
            continue
        differences.append(float(np.nanmax(np.abs(
            nb.load(z).get_fdata() - nb.load(mine).get_fdata()))))
    return (max(differences) if differences else float("nan")), len(differences), missing


def repetition(bids: Path, space: str, scratch: Path, nilearn_first: bool,
               log: list[str]) -> dict:
    """One measurement of each kind, the nilearn loop first or after our rerun."""
    ours = cli_command(bids, space, scratch / "ours", scratch / "work")
    loop = [sys.executable, str(Path(__file__).resolve()), "--space", space,
            "--nilearn-loop", str(bids), str(scratch / "nilearn")]
    times = {}
    fresh(scratch / "ours", scratch / "work", scratch / "nilearn")
    if nilearn_first:
        times["nilearn loop"] = timed(loop)
    times["ours, cold"] = timed(ours, log)
    times["ours, cached rerun"] = timed(ours)
    if not nilearn_first:
        times["nilearn loop"] = timed(loop)
    return times


#: The ratios printed: name, numerator, denominator (its anchor).
RATIOS = (("ours/nilearn (cold)", "ours, cold", "nilearn loop"),
          ("ours cached/cold", "ours, cached rerun", "ours, cold"),
          ("ours cached/nilearn", "ours, cached rerun", "nilearn loop"))


def summarize_warnings(stderr: str) -> None:
    """The warnings of our cold run: how many, and the distinct messages (paths elided)."""
    lines = [line for line in stderr.splitlines() if "warning" in line.lower()]
    kinds = sorted({line.rsplit(": ", 1)[-1] for line in lines})
    print(f"\n  our cold run: {len(lines)} warning line(s), {len(kinds)} distinct message(s)")
    for kind in kinds[:5]:
        print(f"    {kind}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", type=int, default=20, help="subjects (two runs each)")
    parser.add_argument("--sessions", type=int, default=0, choices=(0, 1),
                        help="sessions (0: no ses- entity)")
    parser.add_argument("--space", default="MNI", choices=("MNI", "T1w"),
                        help="space of the preprocessed runs")
    parser.add_argument("--repeat", type=int, default=1, help="repetitions (medians shown)")
    parser.add_argument("--work-dir", type=Path,
                        default=Path(tempfile.gettempdir()) / "glm-workflows-bench-fmriprep",
                        help="where the study is kept between runs")
    parser.add_argument("--nilearn-loop", nargs=2, type=Path, metavar=("BIDS", "OUT"),
                        help=argparse.SUPPRESS)  # the child process of measurement 3
    args = parser.parse_args(argv)
    if args.nilearn_loop:
        nilearn_loop(args.nilearn_loop[0], args.space, args.nilearn_loop[1])
        return
    bids = make_study(args.work_dir / f"fmriprep_{args.subjects}_ses{args.sessions}",
                      args.subjects, args.sessions)
    n_runs = len(list((bids / "derivatives").glob(
        f"sub-*/**/func/*_task-{TASK}_*space-{args.space}_desc-preproc_bold.nii.gz")))
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; study {bids} "
          f"({args.subjects} subjects, {n_runs} runs in space {args.space}, 4x4x4 x 30 "
          f"scans); load average {os.getloadavg()[0]:.2f}", flush=True)
    rows, log = [], []
    with tempfile.TemporaryDirectory(dir=args.work_dir) as scratch:
        for index in range(args.repeat):
            rows.append(repetition(bids, args.space, Path(scratch), index % 2 == 1, log))
            print_repetition(index, rows[-1])
        difference, compared, missing = largest_z_difference(Path(scratch) / "ours",
                                                             Path(scratch) / "nilearn")
    print_table(rows, MEASURES, RATIOS)
    summarize_warnings(log[-1])
    print(f"\n  max |z ours - z nilearn| over {compared} run-level z maps: {difference:.2e}"
          + (f" ({missing} of nilearn's maps missing from ours)" if missing else "")
          + f"; load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
