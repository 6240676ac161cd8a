"""The surface benchmarks (benchmarks/bench_surface_null.py, benchmarks/bench_mesh_tfce.py):
their pieces checked against formulas and independent computations, and each run end to
end with tiny arguments."""

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
from nilearn.datasets import load_fsaverage
from scipy.sparse.csgraph import shortest_path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name):
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


null = _load("bench_surface_null")
rates = _load("null_rates")
tfce = _load("bench_mesh_tfce")


def test_mesh_noise_has_unit_variance_and_the_reported_smoothness():
    """Many draws of the left hemisphere's smoothed noise: each vertex's variance is 1 and
    the neighbours' correlation is the one the benchmark reports (and its FWHM formula)."""
    operator, norms = null.smoother(6)["L"]
    rng = np.random.default_rng(0)
    draws = (operator @ rng.standard_normal((null.N_HEMI, 300))) / norms[:, np.newaxis]
    assert abs(np.mean(np.var(draws, axis=1)) - 1) < 0.01
    faces = np.asarray(load_fsaverage("fsaverage5")["pial"].parts["left"].faces)
    a, b = faces[:, 0], faces[:, 1]
    centred = draws - draws.mean(axis=1, keepdims=True)
    empirical = np.mean(np.sum(centred[a] * centred[b], axis=1)
                        / np.sqrt(np.sum(centred[a] ** 2, axis=1)
                                  * np.sum(centred[b] ** 2, axis=1)))
    rho, fwhm, _ = null.smoothness(6)
    assert abs(empirical - rho) < 0.01
    # white noise smoothed by a Gaussian kernel of that FWHM has the autocorrelation
    # exp(-2 ln2 d^2 / FWHM^2) (the kernel convolved with itself), rho at d = 1 edge
    assert math.exp(-2 * math.log(2) / fwhm**2) == pytest.approx(rho, rel=1e-12)


def test_patch_is_the_vertices_within_its_radius():
    """The planted patch: the vertices at most 4 edges from its centre (graph distance),
    61 = 1 + 3 r (r + 1) on the regular part of the icosahedral mesh."""
    distance = shortest_path(null.geometry()["L"].adjacency, unweighted=True,
                             indices=null.PATCH_CENTRE)
    np.testing.assert_array_equal(null.patch(4), np.flatnonzero(distance <= 4))
    assert null.patch(4).size == 1 + 3 * 4 * 5


def test_subdivision_counts_and_topology():
    """One 1-to-4 subdivision of a closed hemisphere: V + E vertices (fsaverage6's 40,962),
    4 F faces, Euler characteristic 2, every new vertex on one old edge's two ends."""
    faces = np.asarray(load_fsaverage("fsaverage5")["pial"].parts["left"].faces)
    new, n = tfce.subdivide(faces, 10242)
    n_edges = 3 * len(faces) // 2
    assert n == 10242 + n_edges == 40962
    assert len(new) == 4 * len(faces)
    edges = {tuple(sorted(e)) for f in new.tolist() for e in ((f[0], f[1]), (f[1], f[2]),
                                                               (f[2], f[0]))}
    assert n - len(edges) + len(new) == 2


def test_textbook_tfce_equals_the_project_and_a_direct_sum():
    """On a fsaverage5 permutation map the textbook TFCE equals mesh_tfce (1e-9), and on
    a path of 4 vertices it equals the sum written out by hand."""
    from scipy import sparse

    from glm_workflows.core.mesh_permutations import mesh_tfce

    graph, space = tfce.mesh_and_space("fsaverage5")
    values = tfce.permutation_maps(graph, 6, 1)[0]
    for two_sided in (False, True):
        ours = mesh_tfce(values, space, two_sided)
        book = tfce.textbook_tfce(values, graph, two_sided)
        assert np.max(np.abs(ours - book)) <= 1e-9 * np.max(np.abs(book))
    path = sparse.csr_matrix(np.eye(4, k=1) + np.eye(4, k=-1))
    values = np.array([1.0, 2.0, 0.0, 1.0])
    heights = np.linspace(0, 2, 101)[1:]
    low = [h for h in heights if values[0] >= h]  # vertices 0, 1 joined; 3 alone
    high = [h for h in heights if values[0] < h]  # vertex 1 alone
    expected = [sum(2 * h**2 for h in low), sum(2 * h**2 for h in low)
                + sum(h**2 for h in high), 0.0, sum(h**2 for h in low)]
    np.testing.assert_allclose(tfce.textbook_tfce(values, path, False), expected, rtol=1e-12)


@pytest.mark.slow
def test_surface_null_runs(capsys):
    """bench_surface_null with tiny arguments prints its two tables with every method."""
    null.main(["--repetitions", "2", "--n-perm", "19", "--tfce-repetitions", "1",
               "--tfce-perm", "19", "--patch-repetitions", "1", "--cluster-p", "0.01",
               "--jobs", "1"])
    out = capsys.readouterr().out
    for method in ("Bonferroni 0.05", "perm max-t", "perm cluster size p<0.01",
                   "perm cluster mass p<0.01", "perm TFCE (19 perm)"):
        assert out.count(method) == 2  # null table and patch table
    assert out.split("planted patch")[1].count("/1 ") == 5


@pytest.mark.slow
def test_mesh_tfce_runs(capsys):
    """bench_mesh_tfce with tiny arguments: one mesh, one small run, chunks agreeing."""
    tfce.main(["--maps", "1", "--meshes", "L", "--n-perm", "19"])
    out = capsys.readouterr().out
    assert "10242" in out
    rows = [line.split() for line in out.splitlines() if line.strip().startswith(
        ("TFCE ", "clusters p<0.001"))]
    assert len(rows) == 4 and all(row[-1] == "True" for row in rows)


@pytest.mark.parametrize("n_perm", [19, 20, 100, 200])
def test_nominal_rates_enumerate_the_ranks(n_perm):
    """The exact FWE rates the null tables print (grid and mesh): the observed statistic
    equally likely at each of the n + 1 ranks (exchangeability), p by nilearn's null_to_p
    for clusters and by (1 + #{null >= observed}) / (n + 1) for max-t and TFCE;
    significant as the benchmarks read the -log10 p maps (at least -log10 0.05, to 1e-9:
    nilearn's ``1 - idx / n`` gives 0.05 as 0.050000000000000044)."""
    from nilearn.mass_univariate._utils import null_to_p

    def significant(p):
        return -math.log10(p) >= -math.log10(0.05) - 1e-9

    values = np.arange(n_perm + 1, dtype=np.float64)
    cluster = np.mean([significant(null_to_p(values[i], np.delete(values, i), "larger"))
                       for i in range(n_perm + 1)])
    ranked = np.mean([significant((1 + np.sum(np.delete(values, i) >= values[i]))
                                  / (n_perm + 1)) for i in range(n_perm + 1)])
    assert rates.exact_fwe_rate(n_perm, True) == pytest.approx(cluster, abs=1e-12)
    assert rates.exact_fwe_rate(n_perm, False) == pytest.approx(ranked, abs=1e-12)


def test_the_surface_fit_benchmark_compares_equal_maps():
    """bench_surface_fit's two fits (ours on the packed grid, nilearn's on the SurfaceImage)
    give the same z map on a small run, and its command line prints one row per size."""
    bench = _load("bench_surface_fit")
    data, design, packed, mask_img = bench._run(300, 40)
    _, ours = bench._ours(design, packed, mask_img)
    _, theirs = bench._nilearn(data, design, 300)
    np.testing.assert_allclose(ours[:600], theirs, atol=1e-10)
    bench.main(["--vertices", "300", "--scans", "40", "--repeat", "1"])
