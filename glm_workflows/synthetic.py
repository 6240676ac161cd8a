"""Small synthetic BIDS studies with a known effect: for tests, benchmarks and trying
the tool without data (no Nipype; numpy, pandas and nibabel only)."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd


def write_tiny_bids(root, subjects=("01", "02"), n_scans: int = 60, t_r: float = 2.0,
                    seed: int = 0, runs: int = 1, sessions=()) -> Path:
    """Write a tiny BIDS study: ``runs`` runs per subject (task ``tiny``, conditions a and b).

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
    runs : int
        Runs per subject, or per session (``run-<i>`` in the names when more than one).
    sessions : sequence of str
        Session labels: each subject's runs in each (``sub-<s>/ses-<t>/func``).

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
    for subject, session, run in itertools.product(subjects, sessions or [None],
                                                   range(1, runs + 1)):
        func = root / f"sub-{subject}" / (f"ses-{session}" if session else "") / "func"
        func.mkdir(parents=True, exist_ok=True)
        data = rng.normal(0, 10, (12, 14, 12, n_scans))
        data[brain] += 1000  # a bright "brain" on a dark background, as EPI masks expect
        data[4:8, 4:9, 4:8] += 30 * boxcar
        stem = func / (f"sub-{subject}" + (f"_ses-{session}" if session else "")
                       + "_task-tiny" + (f"_run-{run}" if runs > 1 else ""))
        nb.Nifti1Image(data.astype(np.float32), affine).to_filename(f"{stem}_bold.nii.gz")
        events.to_csv(f"{stem}_events.tsv", sep="\t", index=False)
    return root


#: fMRIPrep's high-pass cutoff for its discrete-cosine regressors (s).
FMRIPREP_COSINE_PERIOD = 128.0


def write_fmriprep_derivatives(raw_bids, out_dir, *, space: str = "MNI152NLin2009cAsym",
                               seed: int = 0) -> Path:
    """Write an fMRIPrep-like derivatives folder for every bold run of a raw BIDS dataset.

    For each raw ``*_bold.nii[.gz]`` (prefix ``sub-X[_ses-Y]_task-T[...]``), in
    ``out_dir/sub-X/[ses-Y/]func/``: ``<prefix>_space-<space>_desc-preproc_bold.nii.gz``
    (the raw data as float32, same affine) and its JSON sidecar, the EPI mask
    ``<prefix>_space-<space>_desc-brain_mask.nii.gz`` (uint8) and
    ``<prefix>_desc-confounds_timeseries.tsv`` with its JSON, with the columns fMRIPrep
    writes (see :func:`fmriprep_confounds`). Raw runs that differ only by ``echo-``
    are one multi-echo run, written as fMRIPrep writes it: one set of files named
    without ``echo-``, the bold being the echoes' combination
    (:func:`combine_echoes`), and each echo as ``<prefix>_echo-<N>_desc-preproc_bold``
    (no space, as ``--me-output-echos``). Nothing is written into ``raw_bids``.

    Parameters
    ----------
    raw_bids : str or PathLike
        Raw BIDS dataset (read only).
    out_dir : str or PathLike
        Derivatives folder (created).
    space : str
        ``space-`` label of the images.
    seed : int
        Seed of the simulated confounds (the output is deterministic given it).

    Returns
    -------
    out_dir : pathlib.Path
    """
    from nilearn.masking import compute_epi_mask

    from .inputs.runs import _sidecar_metadata

    raw, out = Path(raw_bids), Path(out_dir)
    bolds = [p for p in sorted(raw.glob("sub-*/**/func/sub-*_bold.nii*"))
             if p.name.endswith(("_bold.nii", "_bold.nii.gz"))]
    if not bolds:
        raise FileNotFoundError(f"{raw}: no sub-*/func/*_bold.nii[.gz] to preprocess")
    acquisitions: dict = {}
    for bold in bolds:
        prefix = bold.name[: bold.name.index("_bold.nii")]
        acquisitions.setdefault((bold.parent, re.sub(r"_echo-[a-zA-Z0-9]+", "", prefix)),
                                []).append(bold)
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    (out / "dataset_description.json").write_text(json.dumps({
        "Name": "fMRIPrep - fMRI PREProcessing workflow (synthetic)",
        "BIDSVersion": "1.8.0", "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "fMRIPrep", "Version": "synthetic",
                         "Description": "glm_workflows.synthetic.write_fmriprep_derivatives"}],
    }, indent=2))
    for (folder, prefix), echoes in acquisitions.items():
        func = out / folder.relative_to(raw)
        func.mkdir(parents=True, exist_ok=True)
        metadata = _sidecar_metadata(echoes[0], raw)[0]
        t_r = float(metadata["RepetitionTime"])
        img = nb.load(echoes[0])
        if len(echoes) == 1:
            data = np.asarray(img.dataobj, dtype=np.float32)
        else:
            echo_data = [np.asarray(nb.load(bold).dataobj, dtype=np.float32) for bold in echoes]
            echo_times = [_sidecar_metadata(bold, raw)[0]["EchoTime"] for bold in echoes]
            data = combine_echoes(echo_data, echo_times)
            for bold, values in zip(echoes, echo_data, strict=True):
                stem = bold.name[: bold.name.index("_bold.nii")]
                _fmriprep_image(values, img.affine, t_r).to_filename(
                    func / f"{stem}_desc-preproc_bold.nii.gz")
        preproc = _fmriprep_image(data, img.affine, t_r)
        stem = func / f"{prefix}_space-{space}"
        preproc.to_filename(f"{stem}_desc-preproc_bold.nii.gz")
        sidecar = {"RepetitionTime": t_r, "SkullStripped": False}
        sidecar.update({k: metadata[k] for k in ("StartTime", "SliceTiming") if k in metadata})
        if "TaskName" in metadata:
            sidecar["TaskName"] = metadata["TaskName"]
        Path(f"{stem}_desc-preproc_bold.json").write_text(json.dumps(sidecar, indent=2))
        mask_img = compute_epi_mask(preproc)
        mask = np.asarray(mask_img.dataobj).astype(bool)
        nb.Nifti1Image(mask.astype(np.uint8), img.affine).to_filename(
            f"{stem}_desc-brain_mask.nii.gz")
        confounds, sidecar = fmriprep_confounds(data, mask, t_r, rng)
        confounds.to_csv(func / f"{prefix}_desc-confounds_timeseries.tsv", sep="\t",
                         index=False, na_rep="n/a")
        (func / f"{prefix}_desc-confounds_timeseries.json").write_text(
            json.dumps(sidecar, indent=2))
    return out


def _fmriprep_image(data, affine, t_r: float) -> nb.Nifti1Image:
    """A float32 4D image with fMRIPrep's units and TR in its header."""
    img = nb.Nifti1Image(np.asarray(data, dtype=np.float32), affine)
    img.header.set_xyzt_units("mm", "sec")
    img.header["pixdim"][4] = t_r
    return img


#: The T2* (s) :func:`combine_echoes` weights the echoes for.
T2_STAR = 0.04


def combine_echoes(echoes, echo_times) -> np.ndarray:
    """The echoes of a run combined as fMRIPrep's (tedana's) optimal combination does for
    one T2* everywhere: a mean weighted by ``TE * exp(-TE / T2*)`` (:data:`T2_STAR`).

    Parameters
    ----------
    echoes : sequence of numpy.ndarray
        The 4D data of each echo.
    echo_times : sequence of float
        Their echo times (s).

    Returns
    -------
    combined : numpy.ndarray of float32
    """
    weights = np.array([te * np.exp(-te / T2_STAR) for te in echo_times])
    weights /= weights.sum()
    return sum(w * np.asarray(e, dtype=np.float64)
               for w, e in zip(weights, echoes, strict=True)).astype(np.float32)


def write_multi_echo_bids(root, subjects=("01",), echo_times=(0.015, 0.035, 0.055),
                          n_scans: int = 60, t_r: float = 2.0, seed: int = 0) -> Path:
    """Write a tiny multi-echo BIDS study: the runs of :func:`write_tiny_bids`, each as
    ``echo-1``, ``echo-2``, ... (the signal decaying as ``exp(-TE / T2*)`` plus noise
    of its own), with one events file per run (no ``echo-``) and each echo's
    ``EchoTime`` in a root sidecar ``task-tiny_echo-<N>_bold.json``.

    Parameters
    ----------
    root : str or PathLike
        Dataset root (created).
    subjects : sequence of str
        Subject labels.
    echo_times : sequence of float
        Echo times (s), one echo each.
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
    root = write_tiny_bids(root, subjects=subjects, n_scans=n_scans, t_r=t_r, seed=seed)
    rng = np.random.default_rng(seed + 1)
    for echo, te in enumerate(echo_times, start=1):
        (root / f"task-tiny_echo-{echo}_bold.json").write_text(json.dumps({"EchoTime": te}))
    for bold in sorted(root.glob("sub-*/func/*_bold.nii.gz")):
        img = nb.load(bold)
        data = np.asarray(img.dataobj, dtype=np.float64)
        stem = bold.name[: bold.name.index("_bold.nii")]
        for echo, te in enumerate(echo_times, start=1):
            values = data * np.exp(-te / T2_STAR) * 3 + rng.normal(0, 5, data.shape)
            nb.Nifti1Image(values.astype(np.float32), img.affine).to_filename(
                bold.parent / f"{stem}_echo-{echo}_bold.nii.gz")
        bold.unlink()
    return root


def fmriprep_confounds(data, mask, t_r: float, rng) -> tuple:
    """fMRIPrep-like confounds of a run: a table and its JSON metadata.

    Tissue signals come from the data (global, and the brightest / darkest in-mask
    voxels standing in for CSF / white matter); motion is a small smooth random walk
    (mm, radians) with three jumps, from which framewise displacement (Power) follows;
    DVARS is computed from the data with spikes at the jumps; cosines are fMRIPrep's
    128 s DCT basis; CompCor columns are orthonormal noise with fMRIPrep's JSON keys;
    volumes 0 and 1 are non-steady-state outliers.

    Parameters
    ----------
    data : numpy.ndarray
        4D run.
    mask : numpy.ndarray of bool
        3D brain mask.
    t_r : float
        Repetition time (s).
    rng : numpy.random.Generator
        Source of the simulated parts.

    Returns
    -------
    confounds : pandas.DataFrame
        Derivative columns are NaN in row 0 (written as ``n/a``).
    metadata : dict
        The JSON sidecar (CompCor components).
    """
    n_scans = data.shape[-1]
    series = data[mask].astype(np.float64)  # voxels x time
    mean = series.mean(axis=1)
    low, high = np.percentile(mean, [10, 30]), np.percentile(mean, 95)
    columns = {
        "global_signal": series.mean(axis=0),
        "csf": series[mean >= high].mean(axis=0),
        "white_matter": series[(mean >= low[0]) & (mean <= low[1])].mean(axis=0),
    }
    table = {}
    for name, values in columns.items():
        table.update(_expansions(name, values))
    table.update(_expansions("csf_wm", (columns["csf"] + columns["white_matter"]) / 2,
                             expand=False))
    spikes = np.sort(rng.choice(np.arange(10, n_scans - 10), size=3, replace=False))
    motion = {}
    for axis in "xyz":
        motion[f"trans_{axis}"] = _random_walk(rng, n_scans, 0.02, spikes, 0.4)
    for axis in "xyz":
        motion[f"rot_{axis}"] = _random_walk(rng, n_scans, 0.0003, spikes, 0.002)
    steps = {k: np.abs(np.diff(v, prepend=np.nan)) for k, v in motion.items()}
    fd = sum(steps[f"trans_{a}"] for a in "xyz") + 50 * sum(steps[f"rot_{a}"] for a in "xyz")
    dvars = np.r_[np.nan, np.sqrt((np.diff(series, axis=1) ** 2).mean(axis=0))]
    dvars[spikes] *= 3
    table["std_dvars"] = dvars / np.nanmedian(dvars)
    table["dvars"] = dvars
    table["framewise_displacement"] = fd
    for name, values in motion.items():
        table.update(_expansions(name, values))
    frame_times = np.arange(n_scans) * t_r
    cosines = _fmriprep_cosines(frame_times)
    for k in range(cosines.shape[1]):
        table[f"cosine{k:02d}"] = cosines[:, k]
    metadata = {}
    for prefix, count, method, mask_name in (("t", 3, "tCompCor", None),
                                             ("c", 3, "aCompCor", "CSF"),
                                             ("w", 3, "aCompCor", "WM"),
                                             ("a", 6, "aCompCor", "combined")):
        components, singular = _compcor(rng, n_scans, count, cosines)
        explained = singular ** 2 / (singular ** 2).sum() * rng.uniform(0.4, 0.6)
        for k in range(count):
            name = f"{prefix}_comp_cor_{k:02d}"
            table[name] = components[:, k]
            metadata[name] = {"CumulativeVarianceExplained": float(explained[:k + 1].sum()),
                              "Method": method, "Retained": True,
                              "SingularValue": float(singular[k]),
                              "VarianceExplained": float(explained[k])}
            if mask_name:
                metadata[name]["Mask"] = mask_name
    for k in range(2):
        table[f"non_steady_state_outlier{k:02d}"] = (np.arange(n_scans) == k).astype(float)
    return pd.DataFrame(table), metadata


def _expansions(name, values, expand=True) -> dict:
    """A column with fMRIPrep's ``_derivative1``, ``_power2`` and both (n/a in row 0)."""
    values = np.asarray(values, dtype=float)
    if not expand:
        return {name: values}
    derivative = np.diff(values, prepend=np.nan)
    return {name: values, f"{name}_derivative1": derivative,
            f"{name}_power2": values ** 2, f"{name}_derivative1_power2": derivative ** 2}


def _random_walk(rng, n_scans, step, spikes, jump):
    """A smooth random walk of ``step`` per volume, with jumps of about ``jump`` at spikes."""
    steps = rng.normal(0, step, n_scans)
    steps = np.convolve(steps, np.ones(3) / 3, mode="same")
    steps[0] = 0
    steps[spikes] += jump * rng.choice([-1, 1], size=len(spikes)) * rng.uniform(1, 1.5)
    return np.cumsum(steps)


def _fmriprep_cosines(frame_times) -> np.ndarray:
    """fMRIPrep's discrete cosine basis (128 s cutoff), without the constant."""
    n_scans = len(frame_times)
    t_r = frame_times[1] - frame_times[0]
    order = int(np.floor(2 * n_scans * t_r / FMRIPREP_COSINE_PERIOD))
    times = np.arange(n_scans)
    return np.column_stack([np.sqrt(2 / n_scans) * np.cos(np.pi / n_scans * (times + 0.5) * k)
                            for k in range(1, order)]) if order > 1 else np.empty((n_scans, 0))


def _compcor(rng, n_scans, count, cosines):
    """Orthonormal components of high-passed noise, and their singular values."""
    noise = rng.normal(size=(n_scans, 50))
    basis = np.column_stack([np.ones(n_scans), cosines])
    noise -= basis @ np.linalg.lstsq(basis, noise, rcond=None)[0]
    u, singular, _ = np.linalg.svd(noise, full_matrices=False)
    return u[:, :count], singular[:count]


def write_participants(root, subjects, seed: int = 0) -> Path:
    """Write ``participants.tsv``: a ``group`` column (``patient``/``control``,
    alternating) and an ``age`` column (random integers 20-60)."""
    rng = np.random.default_rng(seed)
    path = Path(root) / "participants.tsv"
    pd.DataFrame({"participant_id": [f"sub-{s}" for s in subjects],
                  "group": ["patient" if i % 2 == 0 else "control"
                            for i in range(len(subjects))],
                  "age": rng.integers(20, 61, len(subjects))}).to_csv(path, sep="\t",
                                                                      index=False)
    return path


def main(argv=None) -> None:
    """``python -m glm_workflows.synthetic DIR [--subjects N] [--runs R] [--sessions S ...]
    [--fmriprep RAW]``: write a tiny BIDS study of N subjects of R runs (in each session S;
    a true ``a - b`` effect, participants.tsv with group and age), or fMRIPrep-like
    derivatives of the raw BIDS dataset RAW into DIR."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m glm_workflows.synthetic",
                                     description=main.__doc__.split(":", 1)[1].strip())
    parser.add_argument("out_dir")
    parser.add_argument("--subjects", type=int, default=8)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--sessions", nargs="+", default=(), metavar="LABEL")
    parser.add_argument("--fmriprep", metavar="RAW",
                        help="write fMRIPrep-like derivatives of this raw BIDS dataset")
    args = parser.parse_args(argv)
    if args.fmriprep:
        print(write_fmriprep_derivatives(args.fmriprep, args.out_dir))
        return
    subjects = [f"{i:02d}" for i in range(1, args.subjects + 1)]
    root = write_tiny_bids(args.out_dir, subjects, runs=args.runs, sessions=args.sessions)
    write_participants(root, subjects)
    print(root)


if __name__ == "__main__":
    main()
