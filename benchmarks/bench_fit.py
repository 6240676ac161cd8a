"""Benchmark: the project's GLM fit against nilearn's FirstLevelModel, side by side.

Two runs, each fitted with an AR(1) model and one t contrast (``active - rest``):

* ``spm_auditory``: the 96 SPM auditory scans (64x64x64), concatenated once into an
  int16 NIfTI, as the workflow's concatenate step writes it;
* ``synthetic_2mm``: a deterministic 2 mm MNI-sized run (97x115x97, 300 scans, int16
  ``.nii.gz``, AR(1) noise, block design; ``benchmarks/synthetic.py``), generated into
  the work folder the first time.

Each tool runs in its own fresh process on the same file and design matrix (the file
is read once beforehand so all find it in the page cache): nilearn's
``FirstLevelModel.fit`` + ``compute_contrast`` (``nilearn``); the project's ``FitGLM``
+ ``EstimateContrast`` Nipype interfaces, which also write every map to files
(``project``); and the project's core ``fit_glm`` + ``compute_contrast``, in memory
like nilearn's (``core``), and the same with the calibrated noise models
(``ar1-corrected``, ``ar2-corrected``: their time against ``core``'s is their cost); and,
like for like with what a workflow's fit node does, the fit node with its diagnostics
(R², the whitening check: ``project-diag``, as the workflow runs it) against nilearn's fit
keeping R² and residuals (``minimize_memory=False``: ``nilearn-r2``), its R² map computed
(nilearn computes it when it is first read) and written within the fit's time. Each
worker imports what it uses before its timer (nilearn's model; the project's interfaces
and ``nilearn.masking``, which the fit imports when it computes the mask). The ``project``
fit node runs as the workflow runs it, writing the mean image too (``save_mean``); on a
checkout from before that input, the mean node's time is measured after it and printed.
Printed per run and tool: fit seconds and CPU seconds, fit + contrast, peak RSS of the
process; then the ratios (wall: median of the ratios within each repetition; CPU: of the
medians), issue 28's goals, how each side inflates ``.nii.gz`` (nibabel with or without
``indexed_gzip``; the project with or without ``isal``), and max |z_project - z_nilearn|
over the (identical) mask. Medians over ``--repeat`` runs.

Usage::

    python benchmarks/bench_fit.py [--data-dir ../shared/data] [--work-dir DIR]
                                   [--repeat 3] [--only spm_auditory|synthetic_2mm]
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

CONTRAST = "active - rest"
#: nilearn's FirstLevelModel; the project's Nipype interfaces (fit and contrast maps
#: written to files); the project's core functions (fit kept in memory, as nilearn's), with
#: ar1 and with ar1-corrected; nilearn keeping R² and residuals, and the fit node writing
#: its diagnostics too (as the workflow runs it).
TOOLS = ("nilearn", "project", "core", "ar1-corrected", "ar2-corrected", "nilearn-r2",
         "project-diag")
#: Issue 28's goals for the fit node (``project``): (times faster than nilearn's fit, peak
#: RSS in GB or None).
GOALS = {"spm_auditory": (25, None), "synthetic_2mm": (12, 1.5)}


def prepare_spm_auditory(data_dir: Path, work_dir: Path) -> dict:
    """Concatenate the 96 scans (once) and write the seed design matrix."""
    from glm_workflows.core.design import make_design_matrix
    from glm_workflows.core.images import concatenate_images
    from glm_workflows.core.run_tables import read_events, save_design_matrix
    from glm_workflows.inputs.bids import find_spm_auditory

    run = find_spm_auditory(data_dir)
    folder = work_dir / "spm_auditory"
    folder.mkdir(parents=True, exist_ok=True)
    bold = folder / "bold.nii"
    if not bold.exists():
        concatenate_images(run.bold_files).to_filename(folder / "bold.part.nii")
        (folder / "bold.part.nii").replace(bold)
    events = read_events(run.events_file, len(run.bold_files), run.t_r, 0.0)
    design = make_design_matrix(events, len(run.bold_files), run.t_r, hrf_model="spm",
                                drift_model="cosine", high_pass=1 / 160, drift_order=1,
                                slice_time_ref=0.0)
    save_design_matrix(design, folder / "matrix.tsv")
    return {"bold": bold, "design": folder / "matrix.tsv"}


def prepare_synthetic(work_dir: Path) -> dict:
    """Generate the 2 mm run (once, about 20 s) and write its design matrix."""
    import synthetic

    from glm_workflows.core.design import make_design_matrix
    from glm_workflows.core.run_tables import read_events, save_design_matrix

    folder = work_dir / "synthetic_2mm"
    bold, events_file = folder / "bold.nii.gz", folder / "events.tsv"
    n_scans, t_r = 300, 2.0
    if not bold.exists():
        print(f"generating {bold} (97x115x97x300, int16) ...", flush=True)
        synthetic.write_run(bold, events_file, n_scans=n_scans, t_r=t_r)
    events = read_events(events_file, n_scans, t_r, 0.0)
    design = make_design_matrix(events, n_scans, t_r, hrf_model="spm", drift_model="cosine",
                                high_pass=1 / 160, drift_order=1, slice_time_ref=0.0)
    save_design_matrix(design, folder / "matrix.tsv")
    return {"bold": bold, "design": folder / "matrix.tsv"}


def worker(tool: str, bold: str, design_file: str, out_dir: str) -> dict:
    """Fit + contrast with one tool in this process; return timings and peak RSS."""
    import warnings

    from glm_workflows.core.contrasts import contrast_matrix
    from glm_workflows.core.run_tables import load_design_matrix

    warnings.simplefilter("ignore")
    if tool != "nilearn":  # imported before the timer, as nilearn's worker imports its model
        import nilearn.masking  # noqa: F401  (the fit imports it when it computes the mask)
    out = Path(out_dir)
    mean_s = mean_cpu_s = 0.0
    design = load_design_matrix(design_file)
    weights = contrast_matrix([CONTRAST], list(design.columns), "t")[0]
    if tool in ("nilearn", "nilearn-r2"):
        from nilearn.glm.first_level import FirstLevelModel

        start, start_cpu = time.perf_counter(), time.process_time()
        model = FirstLevelModel(noise_model="ar1", standardize=False, signal_scaling=0,
                                minimize_memory=tool == "nilearn")
        model.fit(bold, design_matrices=[design])
        if tool == "nilearn-r2":  # nilearn computes R² when it is first read
            model.r_square_[0].to_filename(out / "r_square.nii.gz")
        fitted, fitted_cpu = time.perf_counter(), time.process_time()
        z_img = model.compute_contrast(weights, stat_type="t", output_type="z_score")
        z_img.to_filename(out / "z.nii.gz")
        done, done_cpu = time.perf_counter(), time.process_time()
        model.masker_.mask_img_.to_filename(out / "mask.nii.gz")
        z_path, mask_path = out / "z.nii.gz", out / "mask.nii.gz"
    elif tool in ("core", "ar1-corrected", "ar2-corrected"):
        import nibabel as nb
        from threadpoolctl import threadpool_limits

        from glm_workflows.core.estimates import compute_contrast
        from glm_workflows.core.glm import fit_glm

        noise_model = "ar1" if tool == "core" else tool
        with threadpool_limits(limits=1):  # as the FitGLM node
            start, start_cpu = time.perf_counter(), time.process_time()
            fit = fit_glm(bold, design, noise_model=noise_model, smoothing_fwhm=None)
            fitted, fitted_cpu = time.perf_counter(), time.process_time()
            maps = compute_contrast(fit, weights, "t")
            done, done_cpu = time.perf_counter(), time.process_time()
        maps["z"].to_filename(out / "z.nii.gz")
        nb.Nifti1Image(fit.mask.astype("uint8"), fit.affine).to_filename(out / "mask.nii.gz")
        z_path, mask_path = out / "z.nii.gz", out / "mask.nii.gz"
    else:
        from glm_workflows.interfaces import EstimateContrast, FitGLM, MeanImage

        for folder in ("fit", "contrast", "mean"):
            (out / folder).mkdir()
        fit_node = FitGLM(bold_file=bold, design_file=design_file, noise_model="ar1")
        # as the workflow runs it: the fit also writes the mean image (the run read once);
        # before that input existed, a mean node of its own read the run again
        reads_once = fit_node.inputs.trait("save_mean") is not None
        if reads_once:
            fit_node.inputs.save_mean = True
        if tool == "project-diag" and fit_node.inputs.trait("save_diagnostics") is not None:
            fit_node.inputs.save_diagnostics = True
        start, start_cpu = time.perf_counter(), time.process_time()
        os.chdir(out / "fit")
        fit = fit_node.run().outputs
        fitted, fitted_cpu = time.perf_counter(), time.process_time()
        os.chdir(out / "contrast")
        contrast = EstimateContrast(
            betas=fit.betas, dispersion=fit.dispersion, ar1=fit.ar1, mask_file=fit.mask_file,
            model_sidecar=fit.model_sidecar, contrast_name="activeMinusRest", stat_type="t",
            contrast_rows=[CONTRAST],
        ).run().outputs
        done, done_cpu = time.perf_counter(), time.process_time()
        z_path, mask_path = contrast.z, fit.mask_file
        if not reads_once:
            os.chdir(out / "mean")
            MeanImage(in_file=bold).run()
            mean_s = time.perf_counter() - done
            mean_cpu_s = time.process_time() - done_cpu
    return {
        "fit_s": fitted - start,
        "total_s": done - start,
        "fit_cpu_s": fitted_cpu - start_cpu,
        "total_cpu_s": done_cpu - start_cpu,
        "mean_s": mean_s,
        "mean_cpu_s": mean_cpu_s,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
        "z": str(z_path),
        "mask": str(mask_path),
    }


def run_worker(tool: str, files: dict, out_dir: Path) -> dict:
    """Run :func:`worker` in a fresh Python process."""
    out_dir.mkdir(parents=True)
    cmd = [sys.executable, __file__, "--worker", tool, str(files["bold"]),
           str(files["design"]), str(out_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{tool} worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def compare(nilearn_result: dict, project_result: dict) -> tuple[bool, float]:
    """(masks identical, max |Δz| over the mask)."""
    import nibabel as nb
    import numpy as np

    mask_a = np.asanyarray(nb.load(nilearn_result["mask"]).dataobj) > 0
    mask_b = np.asanyarray(nb.load(project_result["mask"]).dataobj) > 0
    z_a = nb.load(nilearn_result["z"]).get_fdata()
    z_b = nb.load(project_result["z"]).get_fdata()
    return bool(np.array_equal(mask_a, mask_b)), float(np.abs(z_a - z_b)[mask_a].max())


def bench(name: str, files: dict, repeat: int, scratch: Path) -> None:
    """Print the figures of one run."""
    with open(files["bold"], "rb") as handle:  # warm the page cache for both tools
        while handle.read(1 << 24):
            pass
    results = {tool: [] for tool in TOOLS}
    for index in range(repeat):
        for tool in TOOLS:
            results[tool].append(run_worker(tool, files, scratch / f"{name}-{tool}-{index}"))
    same_mask, max_dz = compare(results["nilearn"][-1], results["project"][-1])
    keys = ("fit_s", "total_s", "fit_cpu_s", "total_cpu_s", "mean_s", "mean_cpu_s",
            "peak_rss_gb")
    median = {tool: {key: statistics.median(r[key] for r in results[tool]) for key in keys}
              for tool in TOOLS}
    print(f"\n{name}  ({files['bold'].name}, median of {repeat})")
    print(f"  {'tool':<14} {'fit s':>8} {'fit CPU s':>10} {'fit+contrast s':>15} "
          f"{'(CPU s)':>8} {'peak RSS GB':>12}")
    for tool in TOOLS:
        m = median[tool]
        print(f"  {tool:<14} {m['fit_s']:8.3f} {m['fit_cpu_s']:10.3f} {m['total_s']:15.3f} "
              f"{m['total_cpu_s']:8.3f} {m['peak_rss_gb']:12.2f}")
    n = median["nilearn"]
    for tool in ("project", "core"):
        p = median[tool]
        fit_ratio = within_ratio(results, tool)
        print(f"  {tool} vs nilearn: fit {fit_ratio:.1f}x faster (CPU "
              f"{n['fit_cpu_s'] / p['fit_cpu_s']:.1f}x), fit+contrast "
              f"{n['total_s'] / p['total_s']:.1f}x (CPU {n['total_cpu_s'] / p['total_cpu_s']:.1f}x)"
              f"; peak RSS {p['peak_rss_gb']:.2f} GB, {p['peak_rss_gb'] / n['peak_rss_gb']:.2f} "
              f"of nilearn's")
    d, r = median["project-diag"], median["nilearn-r2"]
    print(f"  project-diag vs nilearn-r2 (the fit node with its diagnostics, as the workflow "
          f"runs it, against nilearn's fit keeping R² and residuals): fit "
          f"{within_ratio(results, 'project-diag', 'nilearn-r2'):.1f}x faster (CPU "
          f"{r['fit_cpu_s'] / d['fit_cpu_s']:.1f}x); peak RSS {d['peak_rss_gb']:.2f} GB, "
          f"{d['peak_rss_gb'] / r['peak_rss_gb']:.2f} of nilearn's")
    p = median["project"]
    if p["mean_s"]:
        print(f"  project's mean node (a second read of the run, before the fit wrote the "
              f"mean): {p['mean_s']:.3f} s (CPU {p['mean_cpu_s']:.3f} s); fit + mean nodes "
              f"{p['fit_s'] + p['mean_s']:.3f} s (CPU {p['fit_cpu_s'] + p['mean_cpu_s']:.3f} s)")
    else:
        print("  project's fit node also wrote the mean image (the run read once; no mean node)")
    goal_ratio, goal_gb = GOALS[name]
    fit_ratio = within_ratio(results, "project")
    print(f"  goal (issue 28): fit node >= {goal_ratio}x nilearn"
          + (f", peak RSS <= {goal_gb} GB" if goal_gb else "")
          + f": {fit_ratio:.1f}x wall, {n['fit_cpu_s'] / p['fit_cpu_s']:.1f}x CPU"
          + (f", {p['peak_rss_gb']:.2f} GB" if goal_gb else "")
          + f" (with its diagnostics against nilearn keeping R²: "
            f"{within_ratio(results, 'project-diag', 'nilearn-r2'):.1f}x wall, "
            f"{r['fit_cpu_s'] / d['fit_cpu_s']:.1f}x CPU"
          + (f", {d['peak_rss_gb']:.2f} GB)" if goal_gb else ")"))
    print(f"  masks identical: {'yes' if same_mask else 'NO'}; max |z_project - z_nilearn| = "
          f"{max_dz:.2e}")
    for model in ("ar1-corrected", "ar2-corrected"):
        c, a = median[model], median["core"]
        print(f"  {model} (core) vs ar1 (core): fit {c['fit_s'] / a['fit_s']:.2f}x the time, "
              f"fit+contrast {c['total_s'] / a['total_s']:.2f}x")


def within_ratio(results: dict, tool: str, anchor: str = "nilearn") -> float:
    """Median over repetitions of the ``anchor``'s fit time / ``tool``'s, each ratio taken
    within one repetition (the machine may be shared: a busy spell slows both alike)."""
    return statistics.median(a["fit_s"] / b["fit_s"]
                             for a, b in zip(results[anchor], results[tool], strict=True))


def project_reader() -> str:
    """How the project inflates ``.nii.gz`` here (``isal`` when installed)."""
    try:
        import isal
    except ImportError:
        return "Python's gzip (zlib; isal not installed)"
    return f"isal {isal.__version__} (ISA-L igzip)"


def gzip_reader() -> str:
    """How nibabel (and so nilearn) inflates ``.nii.gz`` here: with ``indexed_gzip`` when it
    is installed, else Python's ``gzip`` (zlib)."""
    try:
        import indexed_gzip
    except ImportError:
        return "nibabel + Python's gzip (zlib; no indexed_gzip)"
    return f"nibabel + indexed_gzip {indexed_gzip.__version__}"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=HERE.parent.parent / "shared" / "data",
                        help="folder holding spm_auditory/ (default: ../shared/data)")
    parser.add_argument("--work-dir", type=Path,
                        default=Path(tempfile.gettempdir()) / "glm-workflows-bench",
                        help="where the inputs are prepared and kept between runs")
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool (median shown)")
    parser.add_argument("--only", choices=("spm_auditory", "synthetic_2mm"),
                        help="benchmark one run only")
    args = parser.parse_args(argv)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; work dir {args.work_dir}")
    print(f"anchor (nilearn) reads .nii.gz through {gzip_reader()}; the project through "
          f"{project_reader()}")
    with tempfile.TemporaryDirectory(dir=args.work_dir) as scratch:
        if args.only in (None, "spm_auditory"):
            bench("spm_auditory", prepare_spm_auditory(args.data_dir.resolve(), args.work_dir),
                  args.repeat, Path(scratch))
        if args.only in (None, "synthetic_2mm"):
            bench("synthetic_2mm", prepare_synthetic(args.work_dir), args.repeat, Path(scratch))


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--worker":
        print(json.dumps(worker(*sys.argv[2:])))
    else:
        main()
