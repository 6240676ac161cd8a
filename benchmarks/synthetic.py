"""Deterministic synthetic fMRI data for the benchmarks (never used by the package).

:func:`write_run` writes an int16 NIfTI on a 2 mm MNI-sized grid: an ellipsoid "brain"
of about 390,000 voxels, AR(1) noise whose coefficient varies across the brain, and two
regions that respond to a block design of ``active``/``rest`` blocks.

:func:`write_tiny_bids` (from :mod:`glm_workflows.synthetic`, which the tests use too)
writes a BIDS study of tiny runs (12x14x12 voxels).
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd

SHAPE = (97, 115, 97)
AFFINE = np.array([[2.0, 0, 0, -96], [0, 2.0, 0, -132], [0, 0, 2.0, -78], [0, 0, 0, 1]])
BLOCK_SECONDS = 30.0


def block_events(n_scans: int, t_r: float) -> pd.DataFrame:
    """Alternating ``rest``/``active`` blocks of 30 s covering the run."""
    onsets = np.arange(0.0, n_scans * t_r, BLOCK_SECONDS)
    kinds = ["rest" if i % 2 == 0 else "active" for i in range(len(onsets))]
    return pd.DataFrame({"onset": onsets, "duration": BLOCK_SECONDS, "trial_type": kinds})


def write_run(bold_path, events_path, *, n_scans: int = 300, t_r: float = 2.0,
              shape=SHAPE, seed: int = 0, chunk: int = 65536) -> None:
    """Write one synthetic run and its events.tsv (same seed, same bytes)."""
    from nilearn.glm.first_level import make_first_level_design_matrix

    rng = np.random.default_rng(seed)
    events = block_events(n_scans, t_r)
    design = make_first_level_design_matrix(np.arange(n_scans) * t_r, events,
                                            hrf_model="spm", drift_model=None)
    response = (design["active"] - design["active"].mean()).to_numpy()

    grid = np.indices(shape, dtype=np.float32)
    centre = (np.array(shape, dtype=np.float32) - 1) / 2
    radii = np.array([0.42, 0.46, 0.47]) * np.array(shape)
    radius = np.sqrt(sum(((grid[i] - centre[i]) / radii[i]) ** 2 for i in range(3)))
    brain = radius <= 1
    # AR(1) coefficient from 0.05 at the centre to 0.45 at the edge of the brain
    rho = (0.05 + 0.4 * radius[brain]).astype(np.float32)
    # two responsive blobs, left and right, 2 % signal change
    blobs = np.zeros(shape, dtype=np.float32)
    for side in (-1, 1):
        offset = centre + np.array([side * 0.5 * radii[0], 0, 0.2 * radii[2]])
        dist2 = sum((grid[i] - offset[i]) ** 2 for i in range(3))
        blobs += np.exp(-dist2 / (2 * 4.0**2))
    gain = blobs[brain] * 0.02
    del grid, radius, blobs

    data = np.empty(shape + (n_scans,), dtype=np.int16, order="F")
    flat = data.reshape(-1, n_scans, order="F")
    flat[:] = rng.integers(20, 40, size=flat.shape, dtype=np.int16)  # background
    index = np.flatnonzero(brain.ravel(order="F"))
    baseline = 800 + 100 * rng.random(index.size, dtype=np.float32)
    for start in range(0, index.size, chunk):
        part = slice(start, min(start + chunk, index.size))
        innovations = rng.standard_normal((index[part].size, n_scans), dtype=np.float32)
        noise = np.empty_like(innovations)
        noise[:, 0] = innovations[:, 0]
        for t in range(1, n_scans):
            noise[:, t] = rho[part] * noise[:, t - 1] + innovations[:, t]
        series = baseline[part, None] * (1 + gain[part, None] * response[None, :]) \
            + 8 * noise
        flat[index[part]] = np.rint(series).astype(np.int16)
    img = nb.Nifti1Image(data, AFFINE)
    img.header.set_xyzt_units("mm", "sec")
    img.header["pixdim"][4] = t_r
    Path(bold_path).parent.mkdir(parents=True, exist_ok=True)
    partial = Path(str(bold_path) + ".part.nii.gz")
    img.to_filename(partial)
    partial.replace(bold_path)
    events.to_csv(events_path, sep="\t", index=False)
