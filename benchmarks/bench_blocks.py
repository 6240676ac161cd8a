"""Benchmark: family-wise error of group permutations on data with block-correlated noise,
every subject exchangeable (nilearn's sign flips) against exchangeability blocks (whole
families flipped together, :func:`glm_workflows.core.permutations.block_draws`).

``--studies`` null one-sample studies of ``--families`` families of ``--size`` subjects,
each subject's effect map (``--voxels`` voxels on a small grid) the sum of a family
effect shared by its members (standard deviation ``--family-sd``, 0.7) and its own noise (SD 1),
mean 0. Each study runs :func:`~glm_workflows.core.permutations.permutation_chunk` and
:func:`~glm_workflows.core.permutation_results.combine_permutations` (``--permutations``)
both ways; a study is a family-wise error when some voxel's FWE p is at most 0.05.
Printed: each way's FWE rate with its binomial 95 % interval.

Run: ``python benchmarks/bench_blocks.py`` (a few minutes; ``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from glm_workflows.core.permutation_results import combine_permutations  # noqa: E402
from glm_workflows.core.permutations import permutation_chunk  # noqa: E402


def _study(folder: Path, rng, families: int, size: int, shape, family_sd: float):
    import nibabel as nb

    files = []
    for family in range(families):
        shared = rng.normal(0, family_sd, shape)
        for member in range(size):
            files.append(str(folder / f"effect_{family}_{member}.nii.gz"))
            nb.Nifti1Image(shared + rng.normal(0, 1, shape), np.eye(4)).to_filename(files[-1])
    return files


def main(argv=None) -> int:
    import nibabel as nb
    import pandas as pd

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=200)
    parser.add_argument("--families", type=int, default=6)
    parser.add_argument("--size", type=int, default=4)
    parser.add_argument("--family-sd", type=float, default=0.7)
    parser.add_argument("--voxels", type=int, default=64)
    parser.add_argument("--permutations", type=int, default=99)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.studies = 20
    side = round(args.voxels ** (1 / 3))
    shape = (side, side, side)
    n = args.families * args.size
    blocks = [i // args.size for i in range(n)]
    design = pd.DataFrame({"intercept": np.ones(n)}, index=[f"{i:02d}" for i in range(n)])
    rng = np.random.default_rng(0)
    errors = {"every subject exchangeable": 0, "exchangeability blocks": 0}
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        mask = folder / "mask.nii.gz"
        nb.Nifti1Image(np.ones(shape, np.uint8), np.eye(4)).to_filename(mask)
        for study in range(args.studies):
            files = _study(folder, rng, args.families, args.size, shape, args.family_sd)
            for name, kwargs in (("every subject exchangeable", {}),
                                 ("exchangeability blocks", {"blocks": blocks})):
                common = dict(n_perm=args.permutations, two_sided=False)
                chunk = permutation_chunk(files, design, mask, "intercept", seed=study,
                                          start=0, stop=args.permutations, **common, **kwargs)
                maps = combine_permutations(files, design, mask, "intercept", [chunk],
                                            **common)
                errors[name] += int(maps["logp_max_t"].get_fdata().max() >= -np.log10(0.05))
    print(f"{args.studies} null studies: {args.families} families x {args.size} subjects, "
          f"family SD {args.family_sd}, own SD 1, {int(np.prod(shape))} voxels, "
          f"{args.permutations} permutations (one-sample, sign flips)")
    for name, count in errors.items():
        low, high = stats.binomtest(count, args.studies).proportion_ci(0.95)
        print(f"  {name:28} FWE {count / args.studies:.3f} [{low:.3f}, {high:.3f}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
