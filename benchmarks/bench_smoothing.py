"""Benchmark: the fit with spatial smoothing on and off, against nilearn's.

The runs of ``bench_fit.py`` (the 96 SPM auditory scans, 64x64x64 int16; a synthetic
2 mm MNI-sized run, 97x115x97x300 int16), each fitted with an AR(1) model and the
``active - rest`` contrast by nilearn's ``FirstLevelModel`` (``smoothing_fwhm``) and by
the project's core ``fit_glm`` + ``compute_contrast`` (``smoothing_fwhm``; one BLAS
thread, as the FitGLM node), each in a fresh process, smoothing off and on (``--fwhm``,
default 6 mm). Printed per run: median wall and CPU seconds of fit + contrast and peak
RSS per tool and setting; the ratio nilearn / project with smoothing off and on, each
taken within one repetition (so the load of a shared machine cancels); what smoothing
adds to each tool's time; and max |z_project - z_nilearn| over the mask, smoothed.

Usage::

    python benchmarks/bench_smoothing.py [--data-dir ../shared/data] [--work-dir DIR]
                                         [--repeat 3] [--fwhm 6]
                                         [--only spm_auditory|synthetic_2mm]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from bench_fit import CONTRAST, compare, prepare_spm_auditory, prepare_synthetic  # noqa: E402

TOOLS = ("nilearn", "project")


def worker(tool: str, fwhm: str, bold: str, design_file: str, out_dir: str) -> dict:
    """Fit + contrast with one tool, smoothing at ``fwhm`` mm ('none': off)."""
    import warnings

    import nibabel as nb
    from threadpoolctl import threadpool_limits

    from glm_workflows.core.contrasts import contrast_matrix
    from glm_workflows.core.design import load_design_matrix

    warnings.simplefilter("ignore")
    fwhm = None if fwhm == "none" else float(fwhm)
    out = Path(out_dir)
    design = load_design_matrix(design_file)
    weights = contrast_matrix([CONTRAST], list(design.columns), "t")[0]
    cpu = time.process_time()
    if tool == "nilearn":
        from nilearn.glm.first_level import FirstLevelModel

        start = time.perf_counter()
        model = FirstLevelModel(noise_model="ar1", standardize=False, minimize_memory=True,
                                smoothing_fwhm=fwhm)
        model.fit(bold, design_matrices=[design])
        z_img = model.compute_contrast(weights, stat_type="t", output_type="z_score")
        done = time.perf_counter()
        mask_img = model.masker_.mask_img_
    else:
        from glm_workflows.core.estimates import compute_contrast
        from glm_workflows.core.glm import fit_glm

        with threadpool_limits(limits=1):  # as the FitGLM node
            start = time.perf_counter()
            fit = fit_glm(bold, design, noise_model="ar1", smoothing_fwhm=fwhm)
            z_img = compute_contrast(fit, weights, "t")["z"]
            done = time.perf_counter()
        mask_img = nb.Nifti1Image(fit.mask.astype("uint8"), fit.affine)
    cpu = time.process_time() - cpu
    z_img.to_filename(out / "z.nii.gz")
    mask_img.to_filename(out / "mask.nii.gz")
    return {"total_s": done - start, "cpu_s": cpu,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
            "z": str(out / "z.nii.gz"), "mask": str(out / "mask.nii.gz")}


def run_worker(tool: str, fwhm, files: dict, out_dir: Path) -> dict:
    """:func:`worker` in a fresh Python process."""
    out_dir.mkdir(parents=True)
    cmd = [sys.executable, __file__, "--worker", tool, str(fwhm or "none"),
           str(files["bold"]), str(files["design"]), str(out_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{tool} worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def bench(name: str, files: dict, repeat: int, fwhm: float, scratch: Path) -> None:
    with open(files["bold"], "rb") as handle:  # warm the page cache for both tools
        while handle.read(1 << 24):
            pass
    settings = {"off": None, "on": fwhm}
    rows = []
    for index in range(repeat):
        rows.append({(tool, key): run_worker(tool, value, files,
                                             scratch / f"{name}-{tool}-{key}-{index}")
                     for key, value in settings.items() for tool in TOOLS})
    print(f"\n{name}  ({files['bold'].name}, FWHM {fwhm:g} mm, median of {repeat})")
    print(f"  {'tool':<9} {'smoothing':<10} {'fit+contrast s':>15} {'CPU s':>8} "
          f"{'peak RSS GB':>12}")
    for key in settings:
        for tool in TOOLS:
            values = [row[tool, key] for row in rows]
            print(f"  {tool:<9} {key:<10} "
                  f"{statistics.median(v['total_s'] for v in values):15.2f} "
                  f"{statistics.median(v['cpu_s'] for v in values):8.2f} "
                  f"{statistics.median(v['peak_rss_gb'] for v in values):12.2f}")
    for key in settings:
        ratios = [row["nilearn", key]["total_s"] / row["project", key]["total_s"]
                  for row in rows]
        cpu = [row["nilearn", key]["cpu_s"] / row["project", key]["cpu_s"] for row in rows]
        print(f"  smoothing {key:<3}: project {statistics.median(ratios):.2f}x faster than "
              f"nilearn (wall; CPU {statistics.median(cpu):.2f}x), ratios "
              + ", ".join(f"{r:.2f}" for r in ratios))
    for tool in TOOLS:
        added = [row[tool, "on"]["total_s"] / row[tool, "off"]["total_s"] for row in rows]
        print(f"  {tool}: smoothing on takes {statistics.median(added):.2f}x the time of off")
    same_mask, max_dz = compare(rows[-1]["nilearn", "on"], rows[-1]["project", "on"])
    print(f"  smoothed: masks identical: {'yes' if same_mask else 'NO'}; "
          f"max |z_project - z_nilearn| = {max_dz:.2e}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=HERE.parent.parent / "shared" / "data",
                        help="folder holding spm_auditory/ (default: ../shared/data)")
    parser.add_argument("--work-dir", type=Path,
                        default=Path(tempfile.gettempdir()) / "glm-workflows-bench",
                        help="where the inputs are prepared and kept between runs")
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool and setting")
    parser.add_argument("--fwhm", type=float, default=6.0, help="smoothing FWHM in mm")
    parser.add_argument("--only", choices=("spm_auditory", "synthetic_2mm"),
                        help="benchmark one run only")
    args = parser.parse_args(argv)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; work dir {args.work_dir}")
    with tempfile.TemporaryDirectory(dir=args.work_dir) as scratch:
        if args.only in (None, "spm_auditory"):
            bench("spm_auditory", prepare_spm_auditory(args.data_dir.resolve(), args.work_dir),
                  args.repeat, args.fwhm, Path(scratch))
        if args.only in (None, "synthetic_2mm"):
            bench("synthetic_2mm", prepare_synthetic(args.work_dir), args.repeat, args.fwhm,
                  Path(scratch))


if __name__ == "__main__":
    if len(sys.argv) == 7 and sys.argv[1] == "--worker":
        print(json.dumps(worker(*sys.argv[2:])))
    else:
        main()
