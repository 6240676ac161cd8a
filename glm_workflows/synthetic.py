"""Small synthetic BIDS studies with a known effect: for tests, benchmarks and trying
the tool without data (no Nipype; numpy, pandas and nibabel only)."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd


def write_tiny_bids(root, subjects=("01", "02"), n_scans: int = 60, t_r: float = 2.0,
                    seed: int = 0) -> Path:
    """Write a tiny BIDS study: one run per subject (task ``tiny``, conditions a and b).

    Each run is 12x14x12 voxels, float32: an ellipsoid "brain" on a dark background, a
    true ``a - b`` effect in a block of voxels and noise elsewhere; TR from a root sidecar.

    Parameters
    ----------
    root : str or PathLike
        Dataset root (created).
    subjects : sequence of str
        Subject labels; the noise of a subject depends on those before it.
    n_scans : int
        Volumes per run.
    t_r : float
        Repetition time (s).
    seed : int
        Seed of the noise.

    Returns
    -------
    root : pathlib.Path
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    onsets = np.arange(0, n_scans * t_r - 20, 20.0)
    events = pd.DataFrame({"onset": onsets, "duration": 10.0,
                           "trial_type": ["a" if i % 2 == 0 else "b" for i in range(len(onsets))]})
    frame_times = np.arange(n_scans) * t_r
    boxcar = np.zeros(n_scans)
    for onset, kind in zip(events.onset, events.trial_type, strict=True):
        boxcar[(frame_times >= onset) & (frame_times < onset + 10)] = 1 if kind == "a" else 0
    root.mkdir(parents=True, exist_ok=True)
    (root / "dataset_description.json").write_text(
        json.dumps({"Name": "tiny synthetic", "BIDSVersion": "1.8.0"}))
    (root / "task-tiny_bold.json").write_text(json.dumps({"RepetitionTime": t_r}))
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    grid = np.indices((12, 14, 12)) - np.array([5.5, 6.5, 5.5])[:, None, None, None]
    brain = ((grid / np.array([5.0, 6.0, 5.0])[:, None, None, None]) ** 2).sum(axis=0) < 1
    for subject in subjects:
        data = rng.normal(0, 10, (12, 14, 12, n_scans))
        data[brain] += 1000  # a bright "brain" on a dark background, as EPI masks expect
        data[4:8, 4:9, 4:8] += 30 * boxcar
        func = root / f"sub-{subject}" / "func"
        func.mkdir(parents=True, exist_ok=True)
        stem = func / f"sub-{subject}_task-tiny"
        nb.Nifti1Image(data.astype(np.float32), affine).to_filename(f"{stem}_bold.nii.gz")
        events.to_csv(f"{stem}_events.tsv", sep="\t", index=False)
    return root
