"""Benchmark: the command line against FitLins on one BIDS Stats Model, time and maps.

FitLins (https://github.com/poldracklab/fitlins) runs BIDS Stats Models with pybids and
nilearn in a Nipype graph. It pins old nilearn, pybids and Nipype, so it lives in its own
virtualenv (``--fitlins``, default ``/work/venv-fitlins/bin/fitlins``)::

    python -m venv /work/venv-fitlins
    /work/venv-fitlins/bin/pip install fitlins==0.11.0 "numpy<1.25" "pandas<2" \\
        "matplotlib<3.7" "scipy<1.11" "scikit-learn<1.3" "nibabel<5" "tables<3.9"

(the pins: fitlins 0.11.0 alone resolves to numpy 2 and matplotlib 3.11, with which its
nilearn 0.9.2 fails to import ``nilearn.plotting``).

The study (generated into the work folder the first time): ``--subjects`` subjects x one
run of 12x14x12 voxels x ``--scans`` scans, TR 2 s, conditions ``a``/``b``
(:func:`glm_workflows.synthetic.write_tiny_bids`) and their fMRIPrep-like derivatives in
space ``MNI152NLin2009cAsym`` (:func:`glm_workflows.synthetic.write_fmriprep_derivatives`:
preprocessed bold, brain mask, confounds). The model (:data:`MODEL`): a Run node with
``a``, ``b`` (SPM HRF), the six motion parameters and an intercept, contrast ``a - b`` (t);
a Subject node (``meta``: fixed effects, a pass-through with one run); a Dataset node (a
one-sample t test). The settings both tools allow are the same: AR(1) (FitLins' nilearn
default; ours by default), cosine drifts at 0.01 Hz (FitLins ``--drift-model cosine``,
nilearn's default cut-off, since FitLins ignores ``Model.Options``; ours
``HighPassFilterCutoffHz``), no smoothing, the fMRIPrep brain mask, mean scaling to
percent signal change (nilearn's ``signal_scaling=0`` in both).

Then, each in a fresh process, side by side in every repetition (the order of the two
tools alternates), with an empty work and output folder unless said:

1. ``FitLins, 1 CPU`` and ``FitLins, 2 CPUs``: ``fitlins RAW OUT dataset -d DERIV -m
   MODEL --n-cpus 1|2 --estimator nilearn --drift-model cosine`` (MultiProc, its only
   plugin), with ``NIPYPE_NO_ET=1`` (no version check over the network, as ours);
2. ``ours, Linear`` and ``ours, MultiProc 2``: ``glm-workflows RAW OUT participant
   --derivatives DERIV --model MODEL`` then ``glm-workflows RAW OUT group --model
   MODEL`` (two processes, their times summed), ``--plugin Linear`` or ``--plugin
   MultiProc --n-procs 2``;
3. ``ours, cached rerun``: the two Linear commands again.

Printed: the medians of the wall and CPU (user + system) times with their range, the
ratios ours/FitLins within each repetition, and the load average. The CPU times include
every descendant: this process adopts the orphans a command leaves (FitLins' Nipype runs
its nodes in a multiprocessing forkserver's workers, which nobody waits for) and waits for
them. Then the maps (the last repetition's): the Run-level z, t and effect of subject 01
and the Dataset-level z, max |diff| over the voxels both maps cover; the largest
difference between the two designs' convolved ``a``/``b`` columns (FitLins' comes from
pybids: convolved on a 10 Hz grid, low-passed and resampled at the scans; ours is
nilearn's ``compute_regressor`` at the scan times); and this environment's nilearn run on
FitLins' own inputs (``FirstLevelModel`` on its design of subject 01, ``SecondLevelModel``
on its subject maps) against FitLins' z maps, which isolates the design.

FitLins 0.11.0 runs a ``meta`` node only when its type is spelt ``"Meta"`` (it compares
with ``'Meta'``), so it is given a copy of the model with that spelling
(:func:`fitlins_model`); the specification's ``"meta"`` makes it fit a GLM to each
subject's single map, which fails.

Usage::

    python benchmarks/bench_fitlins.py [--subjects 8] [--scans 100] [--repeat 3]
                                       [--fitlins PATH] [--work-dir DIR]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import Timing, fresh, print_repetition, print_table, timed  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_FITLINS = Path("/work/venv-fitlins/bin/fitlins")
INSTALL = ("python -m venv /work/venv-fitlins && /work/venv-fitlins/bin/pip install "
           "fitlins==0.11.0 'numpy<1.25' 'pandas<2' 'matplotlib<3.7' 'scipy<1.11' "
           "'scikit-learn<1.3' 'nibabel<5' 'tables<3.9'")

TASK = "tiny"
SPACE = "MNI152NLin2009cAsym"
T_R = 2.0
CONTRAST = "aMinusB"
HIGH_PASS = 0.01  # Hz: nilearn's default cut-off, the one FitLins' cosine drifts use
MOTION = ["trans_x", "trans_y", "trans_z", "rot_x", "rot_y", "rot_z"]
CONDITIONS = ["trial_type.a", "trial_type.b"]
MODEL = {
    "Name": "fitlins_benchmark", "BIDSModelVersion": "1.0.0", "Input": {"task": [TASK]},
    "Nodes": [
        {"Level": "Run", "Name": "run", "GroupBy": ["run", "subject"],
         "Transformations": {"Transformer": "pybids-transforms-v1", "Instructions": [
             {"Name": "Factor", "Input": ["trial_type"]},
             {"Name": "Convolve", "Input": CONDITIONS, "Model": "spm"}]},
         "Model": {"Type": "glm", "X": [*CONDITIONS, *MOTION, 1],
                   "Options": {"HighPassFilterCutoffHz": HIGH_PASS}},
         "Contrasts": [{"Name": CONTRAST, "ConditionList": CONDITIONS, "Weights": [1, -1],
                        "Test": "t"}]},
        {"Level": "Subject", "Name": "subject", "GroupBy": ["subject", "contrast"],
         "Model": {"Type": "meta", "X": [1]}, "DummyContrasts": {"Test": "t"}},
        {"Level": "Dataset", "Name": "dataset", "GroupBy": ["contrast"],
         "Model": {"Type": "glm", "X": [1]}, "DummyContrasts": {"Test": "t"}},
    ],
    "Edges": [{"Source": "run", "Destination": "subject"},
              {"Source": "subject", "Destination": "dataset"}],
}
MEASURES = ("FitLins, 1 CPU", "FitLins, 2 CPUs", "ours, Linear", "ours, MultiProc 2",
            "ours, cached rerun")
#: The ratios printed: name, numerator, denominator (its anchor).
RATIOS = (("Linear / FitLins 1 CPU", "ours, Linear", "FitLins, 1 CPU"),
          ("MultiProc / FitLins 2", "ours, MultiProc 2", "FitLins, 2 CPUs"),
          ("cached / FitLins 1 CPU", "ours, cached rerun", "FitLins, 1 CPU"))


def fitlins_model(model: dict) -> dict:
    """The model as FitLins 0.11.0 reads it: ``"Meta"`` for a ``meta`` node.

    FitLins compares the type with ``'Meta'`` (``fitlins/interfaces/nistats.py``,
    ``SecondLevelModel``); the specification's (and our) ``"meta"`` makes it fit a GLM on
    each subject's single map, which fails ("At least two inputs are required").
    """
    model = copy.deepcopy(model)
    for node in model["Nodes"]:
        if node["Model"]["Type"] == "meta":
            node["Model"]["Type"] = "Meta"
    return model


def make_study(root: Path, n_subjects: int, n_scans: int) -> tuple[Path, Path]:
    """Write the study once (``.complete`` marks a finished one) and both model files;
    return the raw BIDS root and the derivatives folder."""
    from glm_workflows.synthetic import write_fmriprep_derivatives, write_tiny_bids

    raw, derivatives = root / "raw", root / "fmriprep"
    if not (root / ".complete").exists():
        fresh(root)
        write_tiny_bids(raw, [f"{i:02d}" for i in range(1, n_subjects + 1)],
                        n_scans=n_scans, t_r=T_R)
        write_fmriprep_derivatives(raw, derivatives, space=SPACE)
        (root / "model_smdl.json").write_text(json.dumps(MODEL, indent=2))
        (root / "model-fitlins_smdl.json").write_text(
            json.dumps(fitlins_model(MODEL), indent=2))
        (root / ".complete").write_text("ok\n")
    return raw, derivatives


def fitlins_command(fitlins: Path, root: Path, out: Path, work: Path, cpus: int) -> list:
    """FitLins on the study, every level, ``cpus`` processes."""
    return [str(fitlins), str(root / "raw"), str(out), "dataset", "-d",
            str(root / "fmriprep"), "-m", str(root / "model-fitlins_smdl.json"),
            "-w", str(work), "--n-cpus", str(cpus), "--estimator", "nilearn",
            "--drift-model", "cosine"]


def our_commands(root: Path, out: Path, work: Path, plugin: list[str]) -> list[list]:
    """Our participant level, then our group level (a BIDS App's two calls)."""
    base = [sys.executable, "-m", "glm_workflows.cli", str(root / "raw"), str(out)]
    model = ["--model", str(root / "model_smdl.json"), "-w", str(work), *plugin]
    return [base + ["participant", "--derivatives", str(root / "fmriprep"), *model],
            base + ["group", *model]]


def adopt_orphans() -> None:
    """Make this process the reaper of its orphaned descendants (Linux's
    ``PR_SET_CHILD_SUBREAPER``): FitLins' Nipype runs its nodes in workers of a
    multiprocessing forkserver that nobody waits for, so their CPU time would otherwise
    not reach this process's children's times."""
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def timed_all(commands: list[list], env: dict | None = None) -> Timing:
    """The summed times of commands run one after the other, each in a fresh process; the
    CPU time includes the descendants each leaves behind (waited for once it returns)."""
    import resource

    def children_cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    wall, cpu = 0.0, children_cpu()
    for command in commands:
        wall += timed(command, env=env).wall
        while True:  # the orphans adopted (a forkserver exits when its parent has)
            try:
                os.wait()
            except ChildProcessError:
                break
    return Timing(wall, children_cpu() - cpu)


def fitlins_env() -> dict:
    """This environment without our PYTHONPATH, with Nipype's network check off."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env["NIPYPE_NO_ET"] = "1"
    return env


def repetition(fitlins: Path, root: Path, scratch: Path, fitlins_first: bool) -> dict:
    """One measurement of each kind, FitLins first or after ours."""
    times = {}

    def run_fitlins():
        for cpus, name in ((1, "FitLins, 1 CPU"), (2, "FitLins, 2 CPUs")):
            out, work = scratch / f"fitlins{cpus}", scratch / f"fitlins{cpus}_work"
            fresh(out, work)
            times[name] = timed_all([fitlins_command(fitlins, root, out, work, cpus)],
                                    env=fitlins_env())

    def run_ours():
        linear = our_commands(root, scratch / "ours", scratch / "ours_work",
                              ["--plugin", "Linear"])
        multi = our_commands(root, scratch / "ours_mp", scratch / "ours_mp_work",
                             ["--plugin", "MultiProc", "--n-procs", "2"])
        fresh(scratch / "ours", scratch / "ours_work", scratch / "ours_mp",
              scratch / "ours_mp_work")
        times["ours, Linear"] = timed_all(linear)
        times["ours, cached rerun"] = timed_all(linear)
        times["ours, MultiProc 2"] = timed_all(multi)

    for step in ((run_fitlins, run_ours) if fitlins_first else (run_ours, run_fitlins)):
        step()
    return times


def _one(folder: Path, pattern: str) -> Path:
    """The one file of ``folder`` matching ``pattern`` (recursively)."""
    found = sorted(folder.glob(pattern))
    if len(found) != 1:
        raise SystemExit(f"{folder}: expected one {pattern}, found {len(found)}")
    return found[0]


def max_difference(ours: Path, theirs: Path) -> tuple[float, int, int, int]:
    """Max |ours - theirs| over the voxels where both maps are finite and non-zero, that
    number of voxels, and the voxels each map alone covers."""
    import nibabel as nb
    import numpy as np

    a, b = (np.asarray(nb.load(p).get_fdata(), dtype=np.float64) for p in (ours, theirs))
    in_a, in_b = np.isfinite(a) & (a != 0), np.isfinite(b) & (b != 0)
    both = in_a & in_b
    diff = float(np.max(np.abs(a[both] - b[both]))) if both.any() else float("nan")
    return diff, int(both.sum()), int((in_a & ~in_b).sum()), int((in_b & ~in_a).sum())


def regressor_difference(ours: Path, theirs: Path) -> float:
    """Max |diff| between the two design TSVs' convolved ``a`` and ``b`` columns, each
    scaled by its peak (pybids and nilearn name and scale them alike)."""
    import numpy as np
    import pandas as pd

    mine, fl = (pd.read_csv(p, sep="\t") for p in (ours, theirs))
    worst = 0.0
    for column in CONDITIONS:
        x, y = mine[column].to_numpy(), fl[column].to_numpy()
        worst = max(worst, float(np.max(np.abs(x - y))) / float(np.max(np.abs(x))))
    return worst


def compare_maps(root: Path, scratch: Path) -> None:
    """Print the maps' differences (ours Linear against FitLins 1 CPU)."""
    ours, theirs = scratch / "ours", scratch / "fitlins1"
    prefix = f"sub-01_task-{TASK}_space-{SPACE}_contrast-{CONTRAST}"
    pairs = [("Run z, sub-01", f"sub-01/{prefix}_stat-z_statmap.nii.gz",
              f"node-run/sub-01/sub-01_*contrast-{CONTRAST}_stat-z_statmap.nii.gz"),
             ("Run t, sub-01", f"sub-01/{prefix}_stat-t_statmap.nii.gz",
              f"node-run/sub-01/sub-01_*contrast-{CONTRAST}_stat-t_statmap.nii.gz"),
             ("Run effect (% signal), sub-01", f"sub-01/{prefix}_stat-effect_statmap.nii.gz",
              f"node-run/sub-01/sub-01_*contrast-{CONTRAST}_stat-effect_statmap.nii.gz"),
             ("Dataset z", f"group/task-{TASK}_space-{SPACE}_contrast-{CONTRAST}"
                           "_stat-z_statmap.nii.gz",
              f"node-dataset/*contrast-{CONTRAST}_stat-z_statmap.nii.gz")]
    print("\n  maps (ours Linear - FitLins 1 CPU), over the voxels both cover:")
    for name, mine, fl in pairs:
        diff, n, only_ours, only_fl = max_difference(_one(ours, mine), _one(theirs, fl))
        print(f"    {name:<30} max |diff| {diff:.3g} over {n} voxels"
              f" (ours alone {only_ours}, FitLins alone {only_fl})")
    design = regressor_difference(
        _one(ours, f"sub-01/sub-01_task-{TASK}_space-{SPACE}_design.tsv"),
        _one(theirs, "node-run/sub-01/sub-01_*design.tsv"))
    print(f"    convolved a/b regressors, sub-01: max |diff| / peak {design:.3g}")
    run_z, group_z = nilearn_on_fitlins_inputs(root, theirs)
    print(f"    nilearn {nilearn_version()} on FitLins' own inputs - FitLins: Run z (its "
          f"design.tsv, sub-01) {run_z:.3g}, Dataset z (its subject effect maps) "
          f"{group_z:.3g}")


def nilearn_version() -> str:
    import nilearn

    return nilearn.__version__


def nilearn_on_fitlins_inputs(root: Path, theirs: Path) -> tuple[float, float]:
    """Max |z diff| between FitLins' maps and this environment's nilearn run on FitLins'
    inputs: ``FirstLevelModel`` (its defaults, as FitLins calls it) on sub-01's bold, mask
    and FitLins' design matrix; ``SecondLevelModel`` on FitLins' subject effect maps."""
    import warnings

    import numpy as np
    import pandas as pd
    from nilearn.glm.first_level import FirstLevelModel
    from nilearn.glm.second_level import SecondLevelModel

    func = root / "fmriprep" / "sub-01" / "func"
    stem = f"sub-01_task-{TASK}_space-{SPACE}"
    design = pd.read_csv(_one(theirs, "node-run/sub-01/sub-01_*design.tsv"), sep="\t")
    weights = np.array([{CONDITIONS[0]: 1, CONDITIONS[1]: -1}.get(c, 0)
                        for c in design.columns])
    effects = sorted(theirs.glob(f"node-subject/sub-*/sub-*_contrast-{CONTRAST}"
                                 "_stat-effect_statmap.nii.gz"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = FirstLevelModel(mask_img=str(func / f"{stem}_desc-brain_mask.nii.gz"))
        run.fit(str(func / f"{stem}_desc-preproc_bold.nii.gz"), design_matrices=design)
        run_z = run.compute_contrast(weights, "t", output_type="z_score")
        group = SecondLevelModel().fit([str(e) for e in effects], design_matrix=pd.DataFrame(
            {"intercept": np.ones(len(effects))}))
        group_z = group.compute_contrast("intercept", output_type="z_score")
    found = []
    for ours, fl in ((run_z, f"node-run/sub-01/sub-01_*contrast-{CONTRAST}_stat-z_statmap.nii.gz"),
                     (group_z, f"node-dataset/*contrast-{CONTRAST}_stat-z_statmap.nii.gz")):
        path = theirs / "nilearn_check.nii.gz"
        ours.to_filename(path)
        found.append(max_difference(path, _one(theirs, fl))[0])
        path.unlink()
    return found[0], found[1]


def fitlins_version(fitlins: Path) -> str:
    """``fitlins --version`` (``fitlins v0.11.0``), and the nilearn and pybids it runs."""
    import subprocess

    version = subprocess.run([str(fitlins), "--version"], capture_output=True, text=True,
                             env=fitlins_env(), check=True).stdout.strip()
    python = fitlins.parent / "python"
    libs = subprocess.run(
        [str(python), "-c", "import nilearn, bids, nipype, numpy; print(f'nilearn "
         "{nilearn.__version__}, pybids {bids.__version__}, nipype {nipype.__version__}, "
         "numpy {numpy.__version__}')"], capture_output=True, text=True, env=fitlins_env(),
        check=False).stdout.strip()
    return f"{version} ({libs})"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", type=int, default=8, help="subjects (one run each)")
    parser.add_argument("--scans", type=int, default=100, help="scans per run (TR 2 s)")
    parser.add_argument("--repeat", type=int, default=1, help="repetitions (medians shown)")
    parser.add_argument("--fitlins", type=Path, default=DEFAULT_FITLINS,
                        help=f"the fitlins program (default {DEFAULT_FITLINS})")
    parser.add_argument("--work-dir", type=Path,
                        default=Path(tempfile.gettempdir()) / "glm-workflows-bench-fitlins",
                        help="where the study is kept between runs")
    args = parser.parse_args(argv)
    if not (args.fitlins.is_file() and os.access(args.fitlins, os.X_OK)):
        parser.exit(2, f"--fitlins {args.fitlins}: no FitLins there; install it in its own "
                    f"virtualenv: {INSTALL}\n")
    if args.subjects < 2:
        parser.exit(2, f"--subjects {args.subjects}: the Dataset node needs at least 2\n")
    root = args.work_dir / f"fitlins_{args.subjects}x{args.scans}"
    make_study(root, args.subjects, args.scans)
    adopt_orphans()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; {fitlins_version(args.fitlins)}"
          f"; study {root} ({args.subjects} subjects x 1 run, 12x14x12 x {args.scans} "
          f"scans); load average {os.getloadavg()[0]:.2f}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(dir=args.work_dir) as scratch:
        for index in range(args.repeat):
            rows.append(repetition(args.fitlins, root, Path(scratch), index % 2 == 0))
            print_repetition(index, rows[-1], digits=1)
            print("    ours/FitLins: " + ", ".join(
                f"{name} {rows[-1][a].wall / rows[-1][b].wall:.3f} "
                f"({rows[-1][a].cpu / rows[-1][b].cpu:.3f} CPU)" for name, a, b in RATIOS),
                flush=True)
        print_table(rows, MEASURES, RATIOS)
        compare_maps(root, Path(scratch))
    print(f"\n  load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
