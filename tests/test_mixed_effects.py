"""The mixed-effects group model (``--group-estimator mixed``): REML between-subject
variance, weighted least squares and Knapp-Hartung statistics
(:mod:`glm_workflows.core.mixed_effects`).

Checked against independent references: the REML log-likelihood maximized numerically
with scipy, PyMARE's REML estimator (pinned in the test extra), and, with equal
first-level variances, the ordinary least-squares t and F wherever tau2 > 0.
"""

import json
import warnings

import nibabel as nb
import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

from glm_workflows.core.errors import InputError
from glm_workflows.core.mixed_effects import fit_group_mixed, mixed_contrast, reml_tau2


def _study(seed=0, n=16, v=300, p=2):
    rng = np.random.default_rng(seed)
    design = np.column_stack([np.ones(n), rng.normal(size=(n, p - 1))])
    variances = rng.uniform(0.3, 4.0, (n, v))
    tau2 = rng.uniform(0, 2, v) * (rng.uniform(size=v) > 0.2)
    effects = (design @ rng.normal(size=(p, 1)) * 0.5
               + rng.normal(size=(n, v)) * np.sqrt(variances + tau2))
    return design, effects, variances


def _negative_reml_loglik(tau2, y, v, design):
    w = 1.0 / (v + tau2)
    gram = design.T @ (w[:, None] * design)
    beta = np.linalg.solve(gram, design.T @ (w * y))
    r = y - design @ beta
    return 0.5 * (np.log(v + tau2).sum() + np.linalg.slogdet(gram)[1] + (w * r * r).sum())


@pytest.mark.parametrize("p", [1, 3])
def test_reml_maximizes_the_restricted_likelihood(p):
    design, effects, variances = _study(p=p)
    ours = reml_tau2(effects, variances, design)
    reference = np.array([optimize.minimize_scalar(
        _negative_reml_loglik, bounds=(0, 50), method="bounded",
        args=(effects[:, i], variances[:, i], design), options={"xatol": 1e-12}).x
        for i in range(effects.shape[1])])
    assert np.abs(ours - reference).max() < 1e-5
    assert (ours == 0).any() and (ours > 0).any()  # both regimes are exercised


def test_reml_equals_pymare():
    pymare = pytest.importorskip("pymare")
    from pymare.estimators import VarianceBasedLikelihoodEstimator

    design, effects, variances = _study(seed=3, p=2)
    estimator = VarianceBasedLikelihoodEstimator(method="REML")
    estimator.fit(y=effects, v=variances, X=design)  # X holds the intercept already
    summary = estimator.summary()
    ours = reml_tau2(effects, variances, design)
    assert np.abs(ours - summary.tau2.ravel()).max() < 1e-5, pymare.__version__
    result = mixed_contrast(effects, variances, design, np.array([0.0, 1.0]), tau2=ours)
    assert np.abs(result["effect"] - summary.get_fe_stats()["est"][1]).max() < 1e-5


def test_equal_variances_give_the_ols_statistics_where_tau2_is_positive():
    rng = np.random.default_rng(7)
    n, v = 12, 400
    design = np.column_stack([np.ones(n), rng.normal(size=n), rng.normal(size=n)])
    effects = rng.normal(size=(n, v)) * 2.0
    variances = np.full((n, v), 0.5)
    beta, _, _, _ = np.linalg.lstsq(design, effects, rcond=None)
    residuals = effects - design @ beta
    sigma2 = (residuals ** 2).sum(axis=0) / (n - 3)
    inverse = np.linalg.inv(design.T @ design)
    c = np.array([0.0, 1.0, 0.0])
    t_ols = (c @ beta) / np.sqrt(sigma2 * (c @ inverse @ c))
    ours = mixed_contrast(effects, variances, design, c)
    positive = ours["tau2"] > 0
    assert positive.sum() > v / 2
    assert np.abs(ours["stat"][positive] - t_ols[positive]).max() < 1e-9
    np.testing.assert_allclose(ours["tau2"][positive], sigma2[positive] - 0.5, rtol=1e-9)
    z_ols = stats.norm.isf(stats.t.sf(t_ols, n - 3))
    assert np.abs(ours["z"][positive] - z_ols[positive]).max() < 1e-8
    rows = np.array([[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    effect = rows @ beta
    f_ols = np.einsum("rv,rs,sv->v", effect, np.linalg.inv(rows @ inverse @ rows.T),
                      effect) / (2 * sigma2)
    f_mixed = mixed_contrast(effects, variances, design, rows)["stat"]
    assert np.abs(f_mixed[positive] - f_ols[positive]).max() < 1e-8


def test_a_non_positive_variance_map_is_refused_naming_it(tmp_path):
    rng = np.random.default_rng(0)
    mask = tmp_path / "mask.nii.gz"
    nb.Nifti1Image(np.ones((4, 4, 4), np.uint8), np.eye(4)).to_filename(mask)
    effects, variances = [], []
    for index in range(5):
        effects.append(str(tmp_path / f"e{index}.nii.gz"))
        nb.Nifti1Image(rng.normal(size=(4, 4, 4)), np.eye(4)).to_filename(effects[-1])
        variances.append(str(tmp_path / f"v{index}.nii.gz"))
        value = np.zeros((4, 4, 4)) if index == 3 else rng.uniform(1, 2, (4, 4, 4))
        nb.Nifti1Image(value, np.eye(4)).to_filename(variances[-1])
    with pytest.raises(InputError, match=rf"^{variances[3]}: not finite and positive in 64 "
                                         "of the 64 voxels of the group mask"):
        fit_group_mixed(effects, variances, pd.DataFrame({"intercept": np.ones(5)}), mask,
                        "intercept")


# ----------------------------------------------------------------- through the CLI


@pytest.fixture(scope="module")
def mixed_study(tmp_path_factory):
    """Six tiny subjects (their noise differs), one run each, fitted once; the group level
    run with both estimators."""
    from glm_workflows.cli import main
    from glm_workflows.synthetic import write_tiny_bids

    root = tmp_path_factory.mktemp("mixed")
    subjects = ("01", "02", "03", "04", "05", "06")
    bids = write_tiny_bids(root / "bids", subjects=subjects, n_scans=40)
    outputs = {}
    for estimator in ("ols", "mixed"):
        out = root / estimator
        assert main(["--bids-dir", str(bids), "--task", "tiny", "--contrast", "aMinusB=a - b",
                     "--group", "one-sample", "--group-estimator", estimator,
                     "--output-dir", str(out), "--work-dir", str(root / "work")]) == 0
        outputs[estimator] = out
    return subjects, outputs


@pytest.mark.slow
def test_the_group_maps_equal_the_reml_formula(mixed_study):
    """The group t map is the Knapp-Hartung t of the subjects' effect and variance maps
    (z on the weights' effective number of subjects less 1)
    with the REML tau2 found by scipy's maximization of the restricted likelihood (no
    code of ours), and the tau2 map that REML's."""
    subjects, outputs = mixed_study
    out = outputs["mixed"]
    stem = out / "group" / "task-tiny_contrast-aMinusB"
    inside = nb.load(f"{stem}_stat-t_statmap.nii.gz").get_fdata() != 0

    def maps(stat):
        return np.stack([nb.load(out / f"sub-{s}" / f"sub-{s}_task-tiny_contrast-aMinusB_stat-"
                                 f"{stat}_statmap.nii.gz").get_fdata()[inside]
                         for s in subjects])

    effects, variances = maps("effect"), maps("variance")
    design = np.ones((len(subjects), 1))
    n = len(subjects)
    tau2 = np.array([optimize.minimize_scalar(
        _negative_reml_loglik, bounds=(0, 1e3 * variances[:, i].max()), method="bounded",
        args=(effects[:, i], variances[:, i], design), options={"xatol": 1e-14}).x
        for i in range(effects.shape[1])])
    w = 1.0 / (variances + tau2)
    beta = (w * effects).sum(axis=0) / w.sum(axis=0)
    q = (w * (effects - beta) ** 2).sum(axis=0) / (n - 1)
    t = beta / np.sqrt(q / w.sum(axis=0))
    dof = w.sum(axis=0) ** 2 / (w ** 2).sum(axis=0) - 1
    z = stats.norm.isf(stats.t.sf(t, dof))
    ours_t = nb.load(f"{stem}_stat-t_statmap.nii.gz").get_fdata()[inside]
    ours_tau2 = nb.load(f"{stem}_stat-tau2_statmap.nii.gz").get_fdata()[inside]
    scale = np.abs(effects).max() ** 2
    assert np.abs(ours_tau2 - tau2).max() < 1e-5 * scale
    assert np.abs(ours_t - t).max() < 1e-4
    ours_z = nb.load(f"{stem}_stat-z_statmap.nii.gz").get_fdata()[inside]
    assert np.abs(ours_z - z).max() < 1e-4
    sidecar = json.loads(open(f"{stem}_statmap.json").read())
    assert sidecar["GroupEstimator"] == "mixed"


@pytest.mark.slow
def test_the_ols_estimator_is_unchanged(mixed_study):
    """--group-estimator ols (the default) is nilearn's SecondLevelModel, as before."""
    from nilearn.glm.second_level import SecondLevelModel

    subjects, outputs = mixed_study
    out = outputs["ols"]
    effects = [str(out / f"sub-{s}" / f"sub-{s}_task-tiny_contrast-aMinusB_stat-effect_"
                         "statmap.nii.gz") for s in subjects]
    mask = out / "group" / "task-tiny_contrast-aMinusB_stat-t_statmap.nii.gz"
    inside = nb.load(mask).get_fdata() != 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SecondLevelModel(mask_img=nb.Nifti1Image(inside.astype(np.uint8),
                                                         nb.load(mask).affine)).fit(
            effects, design_matrix=pd.DataFrame({"intercept": np.ones(len(subjects))}))
    expected = model.compute_contrast("intercept", output_type="stat").get_fdata()
    assert np.abs(nb.load(mask).get_fdata()[inside] - expected[inside]).max() < 1e-9


@pytest.mark.parametrize("flags, message", [
    (["--permutations", "100"], "--group-estimator mixed: no permutation inference"),
    (["--contrast", "a=a", "--contrast", "b=b", "--pair", "a,b"],
     "--group-estimator mixed: not with --group paired"),
])
def test_refused_combinations_in_one_line(tmp_path, capsys, flags, message):
    from glm_workflows.cli import main
    from glm_workflows.synthetic import write_tiny_bids

    bids = write_tiny_bids(tmp_path / "bids", subjects=("01", "02"), n_scans=20)
    group = "paired" if "--pair" in flags else "one-sample"
    code = main(["--bids-dir", str(bids), "--task", "tiny", "--group", group,
                 "--group-estimator", "mixed", *flags, "--output-dir", str(tmp_path / "out")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_a_one_row_f_is_an_f_and_equals_ols_where_tau2_is_positive():
    rng = np.random.default_rng(7)
    n, v = 12, 400
    design = np.column_stack([np.ones(n), rng.normal(size=n)])
    effects = rng.normal(size=(n, v)) * 2.0
    variances = np.full((n, v), 0.5)
    beta, _, _, _ = np.linalg.lstsq(design, effects, rcond=None)
    sigma2 = ((effects - design @ beta) ** 2).sum(axis=0) / (n - 2)
    t_ols = beta[1] / np.sqrt(sigma2 * np.linalg.inv(design.T @ design)[1, 1])
    ours = mixed_contrast(effects, variances, design, np.array([[0.0, 1.0]]), f_test=True)
    positive = ours["tau2"] > 0
    assert np.abs(ours["stat"][positive] - t_ols[positive] ** 2).max() < 1e-8
    p_ols = stats.f.sf(t_ols ** 2, 1, n - 2)
    assert np.abs(ours["p"][positive] - p_ols[positive]).max() < 1e-12


def test_the_degrees_of_freedom_stay_at_least_one():
    """One subject's variance far below the others' and tau2 at 0: Kish's effective n
    tends to 1; the degrees of freedom are kept at 1 and the maps finite."""
    n = 12
    variances = np.ones((n, 3))
    variances[0] = 1e-4
    effects = np.random.default_rng(0).normal(size=(n, 3)) * 0.01
    ours = mixed_contrast(effects, variances, np.ones((n, 1)), np.array([1.0]))
    assert (ours["dof"] >= 1).all()
    assert np.isfinite(ours["z"]).all() and np.isfinite(ours["p"]).all()


def test_reml_does_not_depend_on_the_maps_units():
    design, effects, variances = _study(seed=5, p=2)
    tau2 = reml_tau2(effects, variances, design)
    for scale in (1e-2, 1e-4):
        scaled = reml_tau2(effects * scale, variances * scale ** 2, design)
        np.testing.assert_allclose(scaled, tau2 * scale ** 2, rtol=1e-6,
                                   atol=1e-9 * scale ** 2)
