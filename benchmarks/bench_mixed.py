"""Benchmark: the mixed-effects group model against ordinary least squares (OLS).

1. **Validity and power** (no images): ``--studies`` null studies of ``--voxels``
   independent voxels and ``--subjects`` subjects whose first-level variances differ
   (each subject's variance drawn once from a log-uniform range, as scans, censoring and
   noise make them differ: 4-, 16- and 33-fold ranges), a between-subject variance
   tau2 = 1 and no effect. Printed per estimator: the false-positive rate at p < 0.05 and p < 0.001
   (one-sided), with its binomial 95 % interval, and the family-wise error rate of a
   Bonferroni threshold over each study's voxels. Then the same studies with a planted
   effect (``--effect``, in units of the between-subject standard deviation): the
   fraction of voxels detected at p < 0.001, OLS against mixed.
2. **Speed**: a 2 mm brain-sized problem (``--brain-voxels``, 100 subjects, one-sample)
   fitted from files as the group node does: nilearn's SecondLevelModel (OLS,
   :func:`glm_workflows.core.group.fit_group`) against
   :func:`glm_workflows.core.mixed_effects.fit_group_mixed`, median of ``--repeat`` in
   the same run, and their ratio.

Run: ``python benchmarks/bench_mixed.py`` (about a minute; ``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from glm_workflows.core.mixed_effects import mixed_contrast  # noqa: E402


def _ols_t(effects, design, c):
    beta, _, _, _ = np.linalg.lstsq(design, effects, rcond=None)
    residuals = effects - design @ beta
    n, p = design.shape
    sigma2 = (residuals ** 2).sum(axis=0) / (n - p)
    inverse = np.linalg.inv(design.T @ design)
    return (c @ beta) / np.sqrt(sigma2 * (c @ inverse @ c)), n - p


#: The ranges (log-uniform) of the subjects' first-level variances, tau2 being 1.
RANGES = ((0.5, 2.0), (0.25, 4.0), (0.3, 10.0))


def _study(rng, n, voxels, effect, low, high):
    variances = np.exp(rng.uniform(np.log(low), np.log(high), n))[:, None] * np.ones(voxels)
    effects = effect + rng.normal(size=(n, voxels)) * np.sqrt(variances + 1.0)
    return effects, variances


def _interval(k, total):
    low, high = stats.binomtest(k, total).proportion_ci(0.95)
    return f"{k / total:.4f} [{low:.4f}, {high:.4f}]"


def validity(args, low, high) -> None:
    rng = np.random.default_rng(args.seed)
    design = np.ones((args.subjects, 1))
    c = np.array([1.0])
    false = {"ols": [0, 0, 0], "mixed": [0, 0, 0]}
    detected = {"ols": 0, "mixed": 0}
    for _ in range(args.studies):
        for planted, counts in ((0.0, None), (args.effect, detected)):
            effects, variances = _study(rng, args.subjects, args.voxels, planted, low, high)
            t_ols, dof = _ols_t(effects, design, c)
            p = {"ols": stats.t.sf(t_ols, dof),
                 "mixed": mixed_contrast(effects, variances, design, c)["p"]}
            for name, values in p.items():
                if counts is None:
                    false[name][0] += int((values < 0.05).sum())
                    false[name][1] += int((values < 0.001).sum())
                    false[name][2] += int((values < 0.05 / args.voxels).any())
                else:
                    counts[name] += int((values < 0.001).sum())
    total = args.studies * args.voxels
    print(f"null studies: {args.studies} x {args.voxels} voxels, {args.subjects} subjects, "
          f"first-level variances log-uniform in [{low}, {high}], tau2 = 1")
    print(f"{'':8} {'FPR p<0.05':>28} {'FPR p<0.001':>28} {'FWE (Bonferroni 0.05)':>28} "
          f"{'power p<0.001':>14}")
    for name in ("ols", "mixed"):
        a, b, fwe = false[name]
        print(f"{name:8} {_interval(a, total):>28} {_interval(b, total):>28} "
              f"{_interval(fwe, args.studies):>28} {detected[name] / total:>14.4f}")
    print(f"power: planted effect {args.effect} (between-subject SD 1); mixed / OLS = "
          f"{detected['mixed'] / max(detected['ols'], 1):.2f}")


def speed(args) -> None:
    import nibabel as nb
    import pandas as pd

    from glm_workflows.core.group import fit_group
    from glm_workflows.core.mixed_effects import fit_group_mixed

    rng = np.random.default_rng(1)
    shape = (91, 109, 91)  # the 2 mm MNI grid
    grid = np.indices(shape) - np.array(shape)[:, None, None, None] / 2
    radii = np.array([40, 52, 40])[:, None, None, None] * (args.brain_voxels / 228000) ** (1 / 3)
    brain = ((grid / radii) ** 2).sum(axis=0) < 1
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        mask = folder / "mask.nii.gz"
        nb.Nifti1Image(brain.astype(np.uint8), affine).to_filename(mask)
        effects, variances = [], []
        for index in range(args.brain_subjects):
            data = np.zeros(shape, np.float32)
            data[brain] = rng.normal(size=brain.sum())
            effects.append(folder / f"effect_{index}.nii.gz")
            nb.Nifti1Image(data, affine).to_filename(effects[-1])
            data[brain] = rng.uniform(0.5, 2.0, brain.sum())
            variances.append(folder / f"variance_{index}.nii.gz")
            nb.Nifti1Image(data, affine).to_filename(variances[-1])
        design = pd.DataFrame({"intercept": np.ones(args.brain_subjects)})
        times = {"ols": [], "mixed": []}
        for _ in range(args.repeat):
            start = time.perf_counter()
            fit_group([str(f) for f in effects], design, str(mask), "intercept")
            times["ols"].append(time.perf_counter() - start)
            start = time.perf_counter()
            fit_group_mixed([str(f) for f in effects], [str(f) for f in variances], design,
                            str(mask), "intercept")
            times["mixed"].append(time.perf_counter() - start)
    ratios = [m / o for m, o in zip(times["mixed"], times["ols"], strict=True)]
    print(f"speed: {int(brain.sum())} voxels, {args.brain_subjects} subjects, from files "
          f"(median of {args.repeat}): OLS (nilearn SecondLevelModel) "
          f"{median(times['ols']):.2f} s, mixed {median(times['mixed']):.2f} s, "
          f"mixed / OLS = {median(ratios):.2f} (range {min(ratios):.2f}-{max(ratios):.2f})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=200)
    parser.add_argument("--voxels", type=int, default=1000)
    parser.add_argument("--subjects", type=int, default=20)
    parser.add_argument("--effect", type=float, default=0.8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--brain-voxels", type=int, default=228000)
    parser.add_argument("--brain-subjects", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="a smoke run (small sizes)")
    args = parser.parse_args(argv)
    if args.quick:
        args.studies, args.voxels, args.brain_voxels, args.brain_subjects, args.repeat = (
            20, 200, 20000, 20, 1)
    for low, high in RANGES:
        validity(args, low, high)
    speed(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
