"""A small synthetic fMRIPrep-like *surface* study: raw BIDS runs (for their events) and,
per run, fMRIPrep's GIFTI hemisphere pair on fsaverage5 (10242 vertices per hemisphere)
with a planted effect, its sidecars and confounds (no Nipype; numpy, pandas, nibabel)."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nb
import numpy as np

from .synthetic import fmriprep_confounds, write_tiny_bids

#: Vertices per hemisphere of fsaverage5.
FSAVERAGE5_VERTICES = 10242

#: The left-hemisphere vertices where condition ``a`` adds its effect.
EFFECT_VERTICES = slice(0, 400)

#: fMRIPrep's names of a surface series, by fMRIPrep version: ``{run}`` is the run's
#: prefix, ``{space}`` ``space-X[_den-Y]``.
SURFACE_NAMINGS = {
    "current": "{run}_hemi-{hemi}_{space}_bold.func.gii",
    "older": "{run}_{space}_hemi-{hemi}_bold.func.gii",
    "oldest": "{run}_{space}_hemi-{hemi}.func.gii",
}


def condition_a_blocks(n_scans: int, t_r: float) -> np.ndarray:
    """The boxcar of condition ``a`` in :func:`write_tiny_bids`'s runs (1 during its
    10 s blocks, every other block from 0 s, one every 40 s; 0 elsewhere), per scan."""
    frame_times = np.arange(n_scans) * t_r
    boxcar = np.zeros(n_scans)
    for i, onset in enumerate(np.arange(0, n_scans * t_r - 20, 20.0)):
        if i % 2 == 0:
            boxcar[(frame_times >= onset) & (frame_times < onset + 10)] = 1
    return boxcar


def start_fmriprep_study(root, name: str, **raw) -> tuple[Path, Path]:
    """``<root>/raw`` (:func:`write_tiny_bids` with ``raw``'s arguments) and an empty
    fMRIPrep derivatives folder ``<root>/fmriprep`` (its ``dataset_description.json``,
    ``Name`` ``name``): the start of a synthetic surface or CIFTI study."""
    root = Path(root)
    raw_dir = write_tiny_bids(root / "raw", **raw)
    out = root / "fmriprep"
    out.mkdir(parents=True, exist_ok=True)
    (out / "dataset_description.json").write_text(json.dumps({
        "Name": name, "BIDSVersion": "1.8.0", "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "fMRIPrep", "Version": "synthetic"}]}, indent=2))
    return raw_dir, out


def write_surface_study(root, subjects=("01",), *, n_scans: int = 60, t_r: float = 2.0,
                        runs: int = 1, space: str = "fsaverage5", den: str | None = None,
                        naming: str = "current", n_vertices: int = FSAVERAGE5_VERTICES,
                        constant_vertices: int = 25, sessions=(),
                        seed: int = 0, effect_vertices=None,
                        effect: float = 30.0, convolved: bool = False,
                        smoothing: int = 0) -> tuple[Path, Path]:
    """Write ``<root>/raw`` (BIDS, task ``tiny``, conditions a and b) and
    ``<root>/fmriprep`` (per run its ``hemi-L``/``hemi-R`` GIFTI series, their JSON
    sidecars with RepetitionTime, and ``desc-confounds_timeseries.tsv``).

    Each vertex is 1000 plus AR(1) noise (sd 10, coefficient from 0 to 0.5 along the
    vertices); the first 400 vertices of the left hemisphere add 30 during the blocks of
    condition ``a``; the last ``constant_vertices`` of each hemisphere are 0 throughout
    (as a zero-filled medial wall: out of the surface mask).

    Parameters
    ----------
    root : str or PathLike
        Created.
    subjects : sequence of str
    n_scans, t_r, runs, sessions, seed
        As :func:`glm_workflows.synthetic.write_tiny_bids` (the raw runs are its).
    space, den : str
        ``space-`` (and ``den-``) of the series.
    naming : str
        A key of :data:`SURFACE_NAMINGS` (fMRIPrep's name order, by version).
    n_vertices : int
        Per hemisphere (fsaverage5: 10242).
    effect_vertices : sequence of int or None
        The left hemisphere's vertices that add 30 during condition ``a`` (None: the
        first 400; a patch of neighbours gives a cluster on the mesh).
    effect : float
        What they add (30: 3 % of the baseline).
    convolved : bool
        The added signal is the blocks convolved with the model's default HRF (the fit's
        own regressor: large z); False: the blocks themselves.
    smoothing : int
        Iterations of neighbour averaging of the noise over fsaverage5's mesh
        (:func:`mesh_smoother`: spatially smooth noise of the same variance; 0: white
        across vertices). Needs ``n_vertices`` 10242.

    Returns
    -------
    raw, derivatives : pathlib.Path
    """
    raw, out = start_fmriprep_study(root, "fMRIPrep - surface outputs (synthetic)",
                                    subjects=subjects, n_scans=n_scans, t_r=t_r, seed=seed,
                                    runs=runs, sessions=sessions)
    rng = np.random.default_rng(seed + 1)
    frame_times = np.arange(n_scans) * t_r
    onsets = np.arange(0, n_scans * t_r - 20, 20.0)
    boxcar = condition_a_blocks(n_scans, t_r)
    if convolved:
        import pandas as pd
        from nilearn.glm.first_level import make_first_level_design_matrix

        from .settings import DEFAULT_MODEL

        blocks = pd.DataFrame({"onset": onsets[::2], "duration": 10.0, "trial_type": "a"})
        boxcar = make_first_level_design_matrix(frame_times, blocks,
                                                hrf_model=DEFAULT_MODEL.hrf_model,
                                                drift_model=None)["a"].to_numpy()
    space_label = f"space-{space}" + (f"_den-{den}" if den else "")
    rho = np.linspace(0, 0.5, n_vertices)
    smoothers = {hemi: mesh_smoother(hemi, smoothing) for hemi in ("L", "R")} \
        if smoothing else {}
    for bold in sorted(raw.glob("sub-*/**/func/*_bold.nii.gz")):
        prefix = bold.name[: bold.name.index("_bold.nii")]
        func = out / bold.parent.relative_to(raw)
        func.mkdir(parents=True, exist_ok=True)
        hemispheres = {}
        for hemi in ("L", "R"):
            noise = np.empty((n_vertices, n_scans))
            noise[:, 0] = rng.normal(0, 10, n_vertices)
            for t in range(1, n_scans):
                noise[:, t] = rho * noise[:, t - 1] + rng.normal(0, 10, n_vertices)
            data = 1000 + (smoothers[hemi] @ noise if smoothing else noise)
            if hemi == "L":
                data[EFFECT_VERTICES if effect_vertices is None
                     else np.asarray(effect_vertices, dtype=int)] += effect * boxcar
            if constant_vertices:
                data[-constant_vertices:] = 0
            hemispheres[hemi] = data.astype(np.float32)
            name = SURFACE_NAMINGS[naming].format(run=prefix, hemi=hemi, space=space_label)
            img = nb.gifti.GiftiImage(darrays=[
                nb.gifti.GiftiDataArray(np.ascontiguousarray(hemispheres[hemi][:, t]),
                                        intent="NIFTI_INTENT_TIME_SERIES",
                                        datatype="NIFTI_TYPE_FLOAT32")
                for t in range(n_scans)])
            nb.save(img, str(func / name))
            (func / (name.split(".")[0] + ".json")).write_text(
                json.dumps({"RepetitionTime": t_r}, indent=2))
        both = np.concatenate([hemispheres["L"], hemispheres["R"]])
        keep = both.std(axis=1) > 0
        confounds, sidecar = fmriprep_confounds(both[:, None, None, :],
                                                keep[:, None, None], t_r, rng)
        confounds.to_csv(func / f"{prefix}_desc-confounds_timeseries.tsv", sep="\t",
                         index=False, na_rep="n/a")
        (func / f"{prefix}_desc-confounds_timeseries.json").write_text(
            json.dumps(sidecar, indent=2))
    return raw, out


def _fsaverage5_adjacency(hemi: str):
    """fsaverage5's vertex adjacency of one hemisphere (nilearn's bundled mesh)."""
    from nilearn.datasets import load_fsaverage

    from .core.mesh import adjacency

    faces = load_fsaverage("fsaverage5")["pial"].parts["left" if hemi == "L" else "right"].faces
    return adjacency(np.asarray(faces), FSAVERAGE5_VERTICES)


def mesh_patch(center: int, edges: int) -> np.ndarray:
    """The left fsaverage5 vertices within ``edges`` edges of vertex ``center``: a patch
    of neighbours (one cluster on the mesh)."""
    from scipy.sparse.csgraph import shortest_path

    distance = shortest_path(_fsaverage5_adjacency("L"), unweighted=True, indices=center)
    return np.flatnonzero(distance <= edges)


def mesh_smoother(hemi: str, iterations: int):
    """The operator that averages each vertex with its neighbours ``iterations`` times,
    its rows scaled to unit norm, so white noise keeps its variance at every vertex and
    becomes smooth on the mesh (sparse, shape (10242, 10242))."""
    from scipy import sparse

    graph = _fsaverage5_adjacency(hemi).astype(np.float64)
    graph = graph + sparse.identity(graph.shape[0], format="csr")
    step = sparse.diags(1 / np.asarray(graph.sum(axis=1)).ravel()) @ graph
    operator = sparse.identity(graph.shape[0], format="csr")
    for _ in range(iterations):
        operator = step @ operator
    norms = np.sqrt(np.asarray(operator.multiply(operator).sum(axis=1)).ravel())
    return (sparse.diags(1 / norms) @ operator).tocsr()


def main(argv=None) -> None:
    """``python -m glm_workflows.synthetic_surface DIR [--subjects N] [--runs R] [--space S]
    [--den D] [--naming current|older|oldest] [--effect E] [--convolved]
    [--patch VERTEX EDGES] [--smoothing ITERATIONS]``: write DIR/raw and DIR/fmriprep, a
    surface study of N subjects of R runs (fsaverage5-sized GIFTI pairs, or fsLR 32k's with
    ``--space fsLR --den 32k``; a true ``a - b`` effect)."""
    import argparse

    from .core.surface_names import MESH_VERTICES
    from .synthetic import write_participants

    parser = argparse.ArgumentParser(prog="python -m glm_workflows.synthetic_surface",
                                     description=main.__doc__.split(":", 1)[1].strip())
    parser.add_argument("out_dir")
    parser.add_argument("--subjects", type=int, default=4)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--space", default="fsaverage5")
    parser.add_argument("--den", help="den- of the series (fsLR: 32k, 32492 vertices per "
                                      "hemisphere)")
    parser.add_argument("--naming", choices=sorted(SURFACE_NAMINGS), default="current")
    parser.add_argument("--effect", type=float, default=30.0,
                        help="what the effect vertices add during condition a (0: a null "
                             "study; default 30, 3 %% of the baseline)")
    parser.add_argument("--convolved", action="store_true",
                        help="the effect is the blocks convolved with the HRF")
    parser.add_argument("--patch", type=int, nargs=2, metavar=("VERTEX", "EDGES"),
                        help="the effect on the left vertices within EDGES edges of VERTEX "
                             "(default: the first 400 vertices, scattered on the mesh)")
    parser.add_argument("--smoothing", type=int, default=0, metavar="ITERATIONS",
                        help="noise smooth on the mesh: neighbour averages (default 0)")
    args = parser.parse_args(argv)
    mesh = args.space + (f"_den-{args.den}" if args.den else "")
    n_vertices = MESH_VERTICES.get(mesh, FSAVERAGE5_VERTICES)
    if n_vertices != FSAVERAGE5_VERTICES and (args.patch or args.smoothing):
        parser.error(f"--patch and --smoothing walk fsaverage5's mesh, not {mesh}'s")
    subjects = [f"{i:02d}" for i in range(1, args.subjects + 1)]
    raw, derivatives = write_surface_study(
        args.out_dir, subjects, runs=args.runs, space=args.space, den=args.den,
        naming=args.naming, n_vertices=n_vertices, effect=args.effect,
        convolved=args.convolved, smoothing=args.smoothing,
        effect_vertices=None if args.patch is None else mesh_patch(*args.patch))
    write_participants(raw, subjects)
    print(raw)
    print(derivatives)


if __name__ == "__main__":
    main()
