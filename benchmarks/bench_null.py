"""Calibration audit: first-level z maps on pure noise, per noise model.

Under the null a first-level z map should be N(0, 1). With nilearn's AR(1) model it is
not quite: the lag-1 Yule-Walker estimate on the OLS residuals is biased towards 0 (and
noisy), so the whitening leaves some autocorrelation, the variance of the estimates is
underestimated and the z map is too wide. This script measures by how much, for every
noise model of :data:`glm_workflows.core.choices.NOISE_MODELS` (or those of ``--noise-models``).

Each repetition simulates one null run per noise case and scan count: ``--voxels`` (20,000)
independent voxels, as a float32 NIfTI of shape ``(voxels / 200, 200, 1, n_scans)``
holding ``1000 + 10 * noise`` (so the mean scaling to percent signal change is sane),
TR 2 s, fitted with this project's core (:func:`glm_workflows.core.glm.fit_glm` with an
all-ones mask, :func:`~glm_workflows.core.estimates.compute_contrast`) on a design of two
conditions ``a``/``b`` (``--design blocks``: 10 s blocks ``a``, rest, ``b``, rest, ...;
``--design events``: 1 s events of random type every 3-7 s, fixed seed), SPM HRF, cosine
drifts at 1/160 Hz, t contrast ``a - b``. Noise cases, every voxel's series stationary
(exact initialisation for AR(1), 500 scans of burn-in for AR(2) and the sum):

* ``AR(1) rho=0``, ``rho=0.3``, ``rho=0.5``;
* ``AR(1) rho 0-0.6``: rho growing linearly along the 200 axis from 0 to 0.6;
* ``AR(2) .4/.2``: phi1 = 0.4, phi2 = 0.2 (stationary; lag-1 autocorrelation 0.5);
* ``AR(1) .5 + white``: AR(1) rho = 0.5 plus white noise of the same variance (an
  ARMA(1, 1) process; lag-1 autocorrelation 0.25).

The same noise draw is fitted with every noise model (a paired comparison); repetition
``r`` of a case draws from ``SeedSequence(--seed, spawn_key=(n_scans, case, r))``.

Printed, one table per scan count, per noise model and case, pooled over the
``--repetitions`` runs (R x N independent z values): the mean and standard deviation of z
(with a 95 % interval of the SD, normal theory), ``P(z > 3.09)`` (nominal 0.001) and
``P(z > 2.33)`` (nominal 0.01) with their Clopper-Pearson 95 % intervals and their ratio
to the nominal rate, the family-wise error of a one-sided Bonferroni threshold (alpha
0.05 over the N voxels of a run): the fraction of runs with any voxel above it, with its
Clopper-Pearson interval (an exactly N(0, 1) map gives ``1 - (1 - 0.05 / N) ** N``), and
the median seconds of one ``fit_glm`` call (single-threaded BLAS).

Usage::

    python benchmarks/bench_null.py [--voxels 20000] [--repetitions 20]
                                    [--n-scans 120 300] [--noise-models ar1 ols ...]
                                    [--design blocks] [--seed 0]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from null_rates import clopper_pearson  # noqa: E402

T_R = 2.0
WIDTH = 200  # voxels along the second axis (the one rho varies along)
BURN_IN = 500
ALPHA_FWE = 0.05
TAILS = ((3.090232306167813, 0.001), (2.3263478740408408, 0.01))  # (z, nominal P(z > z))
#: name: (kind, parameters)
CASES = {
    "AR(1) rho=0": ("ar1", 0.0),
    "AR(1) rho=0.3": ("ar1", 0.3),
    "AR(1) rho=0.5": ("ar1", 0.5),
    "AR(1) rho 0-0.6": ("ar1-gradient", (0.0, 0.6)),
    "AR(2) .4/.2": ("ar2", (0.4, 0.2)),
    "AR(1) .5 + white": ("ar1+white", 0.5),
}


def design_events(kind: str, n_scans: int, seed: int):
    """The run's events: conditions ``a``/``b``, onsets before the last frame."""
    import pandas as pd

    last = (n_scans - 1) * T_R
    if kind == "blocks":  # a, rest, b, rest: 40 s cycles, 10 s blocks
        onsets = np.arange(0.0, last, 20.0)
        types = ["a" if i % 2 == 0 else "b" for i in range(len(onsets))]
        durations = np.full(len(onsets), 10.0)
    else:
        rng = np.random.default_rng(seed)
        onsets = 2.0 + np.cumsum(rng.uniform(3.0, 7.0, size=int(last // 3) + 1))
        onsets = np.concatenate([[2.0], onsets])
        onsets = onsets[onsets < last]
        types = list(rng.choice(["a", "b"], size=len(onsets)))
        durations = np.full(len(onsets), 1.0)
    return pd.DataFrame({"onset": onsets, "duration": durations, "trial_type": types})


def ar1_series(rho, innovations: np.ndarray) -> np.ndarray:
    """Stationary AR(1) series, unit variance: exact start ``x0 = e0``, then
    ``x_t = rho x_{t-1} + sqrt(1 - rho^2) e_t`` (``rho`` a scalar or one per voxel)."""
    rho = np.broadcast_to(np.asarray(rho, dtype=np.float64), innovations.shape[1:])
    scale = np.sqrt(1 - rho**2)
    out = np.empty_like(innovations)
    out[0] = innovations[0]
    for t in range(1, len(innovations)):
        out[t] = rho * out[t - 1] + scale * innovations[t]
    return out


def simulate(case: str, n_scans: int, n_voxels: int, rng) -> np.ndarray:
    """Noise of one run, shape ``(n_scans, n_voxels)``, voxels in C order of the grid
    ``(n_voxels / WIDTH, WIDTH)``; every voxel stationary, unit variance."""
    from scipy.signal import lfilter

    kind, params = CASES[case]
    if kind == "ar1":
        return ar1_series(params, rng.standard_normal((n_scans, n_voxels)))
    if kind == "ar1-gradient":
        low, high = params
        rho = np.tile(np.linspace(low, high, WIDTH), n_voxels // WIDTH)
        return ar1_series(rho, rng.standard_normal((n_scans, n_voxels)))
    e = rng.standard_normal((BURN_IN + n_scans, n_voxels))
    if kind == "ar2":
        phi1, phi2 = params
        x = lfilter([1.0], [1.0, -phi1, -phi2], e, axis=0)[BURN_IN:]
        return x / x.std()  # the scale does not matter to z; keeps 10 * noise ~ 1 %
    rho = params  # ar1+white: AR(1) of unit variance plus white noise of unit variance
    x = lfilter([math.sqrt(1 - rho**2)], [1.0, -rho], e, axis=0)[BURN_IN:]
    x += rng.standard_normal((n_scans, n_voxels))
    return x / math.sqrt(2)


def run_image(noise: np.ndarray):
    """The run as a float32 NIfTI ``(n_voxels / WIDTH, WIDTH, 1, n_scans)``: 1000 + 10 noise."""
    import nibabel as nb

    n_scans, n_voxels = noise.shape
    data = (1000.0 + 10.0 * noise).astype(np.float32)
    data = data.T.reshape(n_voxels // WIDTH, WIDTH, 1, n_scans)
    return nb.Nifti1Image(data, np.eye(4))


def measure(args, n_scans: int, models: list[str]) -> dict:
    """{(model, case): accumulated statistics} over the repetitions of one scan count."""
    import nibabel as nb
    from scipy.stats import norm

    from glm_workflows.core.contrasts import contrast_matrix
    from glm_workflows.core.design import make_design_matrix
    from glm_workflows.core.estimates import compute_contrast
    from glm_workflows.core.glm import fit_glm

    events = design_events(args.design, n_scans, args.seed)
    design = make_design_matrix(events, n_scans, T_R, hrf_model="spm", drift_model="cosine",
                                high_pass=1 / 160, drift_order=1, slice_time_ref=0.0)
    contrast = contrast_matrix(["a - b"], list(design.columns), "t")
    bonferroni = float(norm.isf(ALPHA_FWE / args.voxels))
    shape = (args.voxels // WIDTH, WIDTH, 1)
    mask = nb.Nifti1Image(np.ones(shape, dtype=np.uint8), np.eye(4))
    stats = {(model, case): {"n": 0, "sum": 0.0, "squares": 0.0, "tails": [0] * len(TAILS),
                             "fwe": 0, "runs": 0, "seconds": []}
             for model in models for case in CASES}
    for case_index, case in enumerate(CASES):
        for rep in range(args.repetitions):
            rng = np.random.default_rng(
                np.random.SeedSequence(args.seed, spawn_key=(n_scans, case_index, rep)))
            img = run_image(simulate(case, n_scans, args.voxels, rng))
            for model in models:
                begin = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    fit = fit_glm(img, design, mask_img=mask, noise_model=model,
                                  smoothing_fwhm=None,
                                  run_name=f"null {case}")
                    seconds = time.perf_counter() - begin
                    z = compute_contrast(fit, contrast, "t")["z"].get_fdata().ravel()
                del fit
                entry = stats[model, case]
                entry["n"] += z.size
                entry["sum"] += float(z.sum())
                entry["squares"] += float(np.dot(z, z))
                for i, (threshold, _) in enumerate(TAILS):
                    entry["tails"][i] += int((z > threshold).sum())
                entry["fwe"] += bool(z.max() > bonferroni)
                entry["runs"] += 1
                entry["seconds"].append(seconds)
            del img
        print(f"  ... {n_scans} scans, {case}: done", file=sys.stderr, flush=True)
    return {"stats": stats, "bonferroni": bonferroni, "regressors": design.shape[1]}


def print_table(n_scans: int, result: dict, args) -> None:
    n_voxels = args.voxels
    exact_fwe = 1 - (1 - ALPHA_FWE / n_voxels) ** n_voxels
    print(f"\n{n_scans} scans ({result['regressors']} regressors), {n_voxels} voxels x "
          f"{args.repetitions} runs per case; Bonferroni: one-sided z > "
          f"{result['bonferroni']:.3f} (FWE of an exact N(0,1) map: {exact_fwe:.4f})")
    tail_heads = "".join(f" {f'P(z>{z:.2f}) [95% CI]':>28} {'/nom':>5}" for z, _ in TAILS)
    print(f"  {'model':<14} {'case':<17} {'z mean':>7} {'z SD [95% CI]':>22}{tail_heads} "
          f"{'FWE':>5} {'runs':>6} {'[95% CI]':>15} {'fit s':>6}")
    for (model, case), entry in result["stats"].items():
        n = entry["n"]
        mean = entry["sum"] / n
        sd = math.sqrt(max(entry["squares"] / n - mean**2, 0.0) * n / (n - 1))
        half = 1.959963984540054 / math.sqrt(2 * (n - 1))
        sd_text = f"{sd:.3f} [{sd * (1 - half):.3f}, {sd * (1 + half):.3f}]"
        tails = ""
        for (_, nominal), k in zip(TAILS, entry["tails"], strict=True):
            lo, hi = clopper_pearson(k, n)
            tails += f" {f'{k / n:.4f} [{lo:.4f}, {hi:.4f}]':>28} {k / n / nominal:5.2f}"
        runs, k = entry["runs"], entry["fwe"]
        lo, hi = clopper_pearson(k, runs)
        print(f"  {model:<14} {case:<17} {mean:7.3f} {sd_text:>22}{tails} {k / runs:5.2f} "
              f"{f'{k}/{runs}':>6} {f'[{lo:.3f}, {hi:.3f}]':>15} "
              f"{float(np.median(entry['seconds'])):6.2f}")


def main(argv=None) -> None:
    from glm_workflows.core.choices import NOISE_MODELS

    available = tuple(NOISE_MODELS)  # read now: the list may grow
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--voxels", type=int, default=20000,
                        help=f"voxels per run, a multiple of {WIDTH}")
    parser.add_argument("--repetitions", type=int, default=20,
                        help="runs (noise draws) per case and scan count")
    parser.add_argument("--n-scans", type=int, nargs="+", default=[120, 300],
                        help="scan counts, one table each")
    parser.add_argument("--noise-models", nargs="+", default=list(available),
                        choices=available, help="noise models to compare (default: all)")
    parser.add_argument("--design", choices=("blocks", "events"), default="blocks",
                        help="10 s blocks a/rest/b/rest, or random 1 s events")
    parser.add_argument("--seed", type=int, default=0, help="master seed")
    args = parser.parse_args(argv)
    if args.voxels <= 0 or args.voxels % WIDTH:
        parser.error(f"--voxels: expected a positive multiple of {WIDTH}, got {args.voxels}")
    if args.repetitions < 1:
        parser.error("--repetitions: expected at least 1")
    import nilearn
    from threadpoolctl import threadpool_limits

    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, nilearn "
          f"{nilearn.__version__}, {os.cpu_count()} CPUs (BLAS limited to 1 thread); noise "
          f"models {', '.join(args.noise_models)}; {args.design} design, TR {T_R} s, SPM HRF, "
          f"cosine drifts 1/160 Hz, contrast a - b; seed {args.seed}; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    begin = time.perf_counter()
    with threadpool_limits(1):
        for n_scans in args.n_scans:
            print_table(n_scans, measure(args, n_scans, args.noise_models), args)
    print(f"\n  wall {time.perf_counter() - begin:.1f} s; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
