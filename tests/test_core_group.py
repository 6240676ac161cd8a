"""Group level core: designs, nilearn's SecondLevelModel, chunked permutations."""

import warnings
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd
import pytest

from glm_workflows.core.choices import GROUP_MODELS
from glm_workflows.core.errors import InputError
from glm_workflows.core.group import fit_group, group_design, read_participants
from glm_workflows.core.group_mask import difference_images, finite_group_mask
from glm_workflows.core.permutation_results import combine_permutations
from glm_workflows.core.permutations import check_permutations, permutation_chunk

SHAPE = (10, 10, 10)
N_PERM = 40
SEED = 7
SUBJECTS = [f"{i:02d}" for i in range(1, 11)]
GROUPS = ["patient", "control"] * 5


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _smooth(data, sigma=1.0):
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(data, sigma)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """10 subjects' effect maps with a smooth effect in a block, a mask, participants."""
    root = tmp_path_factory.mktemp("group")
    rng = np.random.default_rng(0)
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    effect = np.zeros(SHAPE)
    effect[2:6, 2:6, 3:7] = 1.0
    effect = _smooth(effect)
    files, files_b = [], []
    for i, subject in enumerate(SUBJECTS):
        shift = 0.8 if GROUPS[i] == "patient" else 0.0
        data = effect * (1.0 + shift) + 0.6 * _smooth(rng.standard_normal(SHAPE), 0.8)
        data_b = 0.5 * effect + 0.6 * _smooth(rng.standard_normal(SHAPE), 0.8)
        for data_, name, out in ((data, "a", files), (data_b, "b", files_b)):
            path = root / f"sub-{subject}_{name}.nii.gz"
            nb.Nifti1Image(data_, affine).to_filename(path)
            out.append(str(path))
    mask = np.zeros(SHAPE, dtype=np.uint8)
    mask[1:9, 1:9, 1:9] = 1
    mask[1, 1, :] = 0
    mask_path = root / "mask.nii.gz"
    nb.Nifti1Image(mask, affine).to_filename(mask_path)
    table = root / "participants.tsv"
    ages = 20 + rng.permutation(10) * 3.0
    lines = ["participant_id\tgroup\tage\tsex"]
    lines += [f"sub-{s}\t{g}\t{a:g}\t{'MF'[i % 2]}"
              for i, (s, g, a) in enumerate(zip(SUBJECTS, GROUPS, ages, strict=True))]
    table.write_text("\n".join(lines) + "\n")
    return {"files": files, "files_b": files_b, "mask": str(mask_path),
            "participants": read_participants(table), "root": root}


# ------------------------------------------------------------------ participants, designs


def test_read_participants(tmp_path):
    path = tmp_path / "participants.tsv"
    path.write_text("participant_id\tage\tgroup\nsub-01\t30\tA\n02\tn/a\tB\n")
    table = read_participants(path)
    assert list(table.index) == ["01", "02"]
    assert table.loc["01", "age"] == "30" and pd.isna(table.loc["02", "age"])
    with pytest.raises(InputError, match="not found"):
        read_participants(tmp_path / "nope.tsv")
    path.write_text("subject\tage\n01\t3\n")
    with pytest.raises(InputError, match="no 'participant_id' column.*subject, age"):
        read_participants(path)


def test_designs(study):
    participants = study["participants"]
    assert GROUP_MODELS == ("one-sample", "two-sample", "paired")
    one = group_design(SUBJECTS, "one-sample")
    assert list(one.columns) == ["intercept"] and list(one.index) == SUBJECTS
    two = group_design([f"sub-{s}" for s in SUBJECTS], "two-sample", participants,
                       group_column="group", covariates=["age"], demean=True)
    assert list(two.columns) == ["control", "patient", "age"]
    assert list(two.index) == SUBJECTS
    np.testing.assert_array_equal(two["patient"], [g == "patient" for g in GROUPS])
    assert abs(two["age"].mean()) < 1e-12
    paired = group_design(SUBJECTS, "paired", participants, covariates=["age"])
    assert list(paired.columns) == ["intercept", "age"]
    assert paired["age"].iloc[0] == float(participants.loc["01", "age"])
    from nilearn.glm.second_level import make_second_level_design_matrix

    nilearn_design = make_second_level_design_matrix(SUBJECTS)
    np.testing.assert_array_equal(nilearn_design["intercept"], one["intercept"])


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"subjects": SUBJECTS, "kind": "two-sample", "group_column": "group"},
     "participants.tsv is needed"),
    ({"subjects": SUBJECTS, "kind": "two-sample", "group_column": "arm"},
     r"no column 'arm'.*available columns: group, age, sex"),
    ({"subjects": [*SUBJECTS, "99"], "kind": "one-sample", "covariates": ["age"]},
     "subject 'sub-99' is not listed"),
    ({"subjects": SUBJECTS, "kind": "one-sample", "covariates": ["sex"]},
     "covariate 'sex' of subject 'sub-01' is 'M'; expected a number"),
    ({"subjects": ["01"], "kind": "one-sample"}, "at least two needed"),
    ({"subjects": ["01", "02", "04"], "kind": "two-sample", "group_column": "group"},
     "group 'patient' .* has 1 subject"),
    ({"subjects": SUBJECTS, "kind": "one-sample", "covariates": ["age", "age2"]},
     "rank deficient: columns intercept, age, age2 are linearly dependent"),
    ({"subjects": SUBJECTS, "kind": "three-sample"}, "expected one of"),
])
def test_design_errors(study, kwargs, message):
    participants = study["participants"].copy()
    participants["age2"] = (participants["age"].astype(float) * 2 + 1).astype(str)
    if "participants.tsv is needed" not in message:
        kwargs = {**kwargs, "participants": participants}
    with pytest.raises(InputError, match=message) as error:
        group_design(**kwargs)
    assert "\n" not in str(error.value)


def test_missing_covariate_value(study):
    participants = study["participants"].copy()
    participants.loc["03", "age"] = np.nan
    with pytest.raises(InputError, match="covariate 'age' of subject 'sub-03' is n/a"):
        group_design(SUBJECTS, "one-sample", participants, covariates=["age"])


# ------------------------------------------------------------------ parametric fit


def _nilearn_fit(files, design, mask, weights):
    from nilearn.glm.second_level import SecondLevelModel

    model = SecondLevelModel(mask_img=mask).fit(list(files), design_matrix=design)
    return model.compute_contrast(weights, output_type="all")


@pytest.mark.parametrize(("kind", "covariates", "contrast", "weights"), [
    ("one-sample", (), "intercept", [1.0]),
    ("two-sample", (), "patient - control", [-1.0, 1.0]),
    ("one-sample", ("age",), "age", [0.0, 1.0]),
    ("two-sample", ("age",), [-1, 1, 0], [-1.0, 1.0, 0.0]),
])
def test_fit_group_equals_nilearn(study, kind, covariates, contrast, weights):
    design = group_design(SUBJECTS, kind, study["participants"], group_column="group",
                          covariates=covariates, demean=True)
    ours = fit_group(study["files"], design, study["mask"], contrast)
    theirs = _nilearn_fit(study["files"], design, study["mask"], np.array(weights))
    for key, name in (("effect", "effect_size"), ("variance", "effect_variance"),
                      ("stat", "stat"), ("z", "z_score"), ("p", "p_value")):
        np.testing.assert_allclose(ours[key].get_fdata(), theirs[name].get_fdata(),
                                   rtol=1e-10, atol=1e-10)


def test_paired_is_one_sample_of_differences(study):
    differences = difference_images(study["files"], study["files_b"])
    design = group_design(SUBJECTS, "paired")
    ours = fit_group(differences, design, study["mask"], "intercept")
    manual = [nb.Nifti1Image(nb.load(a).get_fdata() - nb.load(b).get_fdata(),
                             nb.load(a).affine)
              for a, b in zip(study["files"], study["files_b"], strict=True)]
    theirs = _nilearn_fit(manual, design, study["mask"], np.array([1.0]))
    np.testing.assert_allclose(ours["stat"].get_fdata(), theirs["stat"].get_fdata(),
                               rtol=1e-10, atol=1e-10)
    with pytest.raises(InputError, match="one pair per subject"):
        difference_images(study["files"], study["files_b"][:-1])


def test_fit_group_errors(study):
    design = group_design(SUBJECTS, "one-sample")
    with pytest.raises(InputError, match="10 rows for 9 effect maps"):
        fit_group(study["files"][:-1], design, study["mask"], "intercept")
    with pytest.raises(InputError, match="unknown column"):
        fit_group(study["files"], design, study["mask"], "patient")


# ------------------------------------------------------------------ non-finite values


@pytest.fixture(scope="module")
def non_finite(study):
    """The study's maps with sub-02's NaN in a slab of the mask and sub-04's infinite in
    one voxel; the mask less those voxels, computed here."""
    files = list(study["files"])
    for index, region, value in ((1, (slice(None), slice(1, 4)), np.nan),
                                 (3, (5, 5, 5), np.inf)):
        img = nb.load(files[index])
        data = img.get_fdata()
        data[region] = value
        files[index] = str(study["root"] / f"non_finite_{index}.nii.gz")
        nb.Nifti1Image(data, img.affine).to_filename(files[index])
    mask_img = nb.load(study["mask"])
    mask = mask_img.get_fdata() > 0
    finite = np.all([np.isfinite(nb.load(f).get_fdata()) for f in files], axis=0)
    counts = [int((~np.isfinite(nb.load(f).get_fdata()) & mask).sum()) for f in files]
    reduced = nb.Nifti1Image((mask & finite).astype(np.uint8), mask_img.affine)
    return {"files": files, "mask": reduced, "counts": counts, "n_given": int(mask.sum())}


def test_non_finite_voxels_leave_the_group_mask(study, non_finite):
    """The model and the permutations fit the mask less the voxels not finite in every map:
    equal to SecondLevelModel and non_parametric_inference given that mask."""
    from nilearn.glm.second_level import non_parametric_inference

    files, reduced = non_finite["files"], non_finite["mask"]
    design = _design(study, "two-sample")
    ours = fit_group(files, design, study["mask"], [-1.0, 1.0])
    theirs = _nilearn_fit(files, design, reduced, np.array([-1.0, 1.0]))
    for key, name in (("effect", "effect_size"), ("variance", "effect_variance"),
                      ("stat", "stat"), ("z", "z_score"), ("p", "p_value")):
        np.testing.assert_allclose(ours[key].get_fdata(), theirs[name].get_fdata(),
                                   rtol=1e-10, atol=1e-10)
    group_mask = ours["mask"]
    assert group_mask.n_voxels == int(reduced.get_fdata().sum())
    assert (group_mask.n_given, list(group_mask.non_finite)) == (non_finite["n_given"],
                                                                 non_finite["counts"])
    assert group_mask.non_finite[1] > 0 and group_mask.non_finite[3] == 1
    chunks = [permutation_chunk(files, design, study["mask"], [-1.0, 1.0], n_perm=N_PERM,
                                seed=SEED, start=a, stop=b, threshold=0.01, tfce=True)
              for a, b in _splits(N_PERM, 2)]
    maps = combine_permutations(files, design, study["mask"], [-1.0, 1.0], chunks,
                                n_perm=N_PERM, threshold=0.01, tfce=True)
    reference = non_parametric_inference(
        second_level_input=files, design_matrix=design, second_level_contrast=[-1.0, 1.0],
        mask=reduced, n_perm=N_PERM, random_state=SEED, n_jobs=1, threshold=0.01, tfce=True)
    for key in ("logp_max_t", "logp_max_size", "logp_max_mass", "logp_max_tfce"):
        assert np.array_equal(maps[key].get_fdata(), reference[key].get_fdata()), key


def test_maps_refused_naming_them(study, tmp_path):
    """A map not finite in most of the mask, on another grid or truncated: one line naming
    it (or the name given)."""
    img = nb.load(study["files"][0])
    mask = nb.load(study["mask"]).get_fdata() > 0
    data = img.get_fdata()
    data[:6] = np.nan  # 5 of the mask's 8 planes
    bad = tmp_path / "mostly_nan.nii.gz"
    nb.Nifti1Image(data, img.affine).to_filename(bad)
    with pytest.raises(InputError, match=r"^sub-01 map: not finite .* in \d+ of the "
                                         f"{int(mask.sum())} voxels"):
        finite_group_mask([bad, *study["files"][1:]], study["mask"],
                          ["sub-01 map", *study["files"][1:]])
    shifted = tmp_path / "shifted.nii.gz"
    affine = img.affine.copy()
    affine[0, 3] += 2.0
    nb.Nifti1Image(img.get_fdata(), affine).to_filename(shifted)
    with pytest.raises(InputError, match=f"^{shifted}: not on the group mask's grid "
                                         r"\(its affine differs by up to 2\)"):
        fit_group([*study["files"][1:], shifted], _design(study, "one-sample"),
                  study["mask"], "intercept")
    truncated = tmp_path / "truncated.nii.gz"
    truncated.write_bytes(Path(study["files"][2]).read_bytes()[:-200])
    with pytest.raises(InputError, match=f"^{truncated}: cannot be inflated"):
        finite_group_mask([*study["files"][:2], truncated], study["mask"])


# ------------------------------------------------------------------ permutations


def _splits(n_perm, k):
    edges = np.linspace(0, n_perm, k + 1).round().astype(int)
    return list(zip(edges[:-1], edges[1:], strict=True))


def _design(study, kind, covariates=()):
    return group_design(SUBJECTS, kind, study["participants"], group_column="group",
                        covariates=covariates, demean=True)


CASES = {  # design, contrast weights
    "one-sample": ("one-sample", (), [1.0]),
    "two-sample": ("two-sample", (), [-1.0, 1.0]),
    "one-sample+age": ("one-sample", ("age",), [1.0, 0.0]),
    "two-sample+age": ("two-sample", ("age",), [-1.0, 1.0, 0.0]),
}


def _reference(study, design, weights, two_sided, threshold, tfce):
    from nilearn.glm.second_level import non_parametric_inference

    out = non_parametric_inference(
        second_level_input=list(study["files"]), design_matrix=design,
        second_level_contrast=np.array(weights), mask=study["mask"], n_perm=N_PERM,
        two_sided_test=two_sided, random_state=SEED, n_jobs=1, threshold=threshold,
        tfce=tfce, smoothing_fwhm=None)
    return out if isinstance(out, dict) else {"logp_max_t": out}


def _ours(study, design, weights, two_sided, threshold, tfce, k):
    chunks = [permutation_chunk(study["files"], design, study["mask"], weights,
                                n_perm=N_PERM, seed=SEED, start=a, stop=b,
                                two_sided=two_sided, threshold=threshold, tfce=tfce)
              for a, b in _splits(N_PERM, k)]
    maps = combine_permutations(study["files"], design, study["mask"], weights,
                                chunks[::-1], n_perm=N_PERM, two_sided=two_sided,
                                threshold=threshold, tfce=tfce)
    return maps, chunks


@pytest.mark.slow
@pytest.mark.parametrize("two_sided", [False, True])
@pytest.mark.parametrize("case", ["one-sample", "two-sample"])
def test_permutations_equal_nilearn(study, case, two_sided):
    kind, covariates, weights = CASES[case]
    design = _design(study, kind, covariates)
    for threshold, tfce in ((None, False), (0.01, True)):
        theirs = _reference(study, design, weights, two_sided, threshold, tfce)
        previous = None
        for k in (1, 3, 8):
            ours, chunks = _ours(study, design, weights, two_sided, threshold, tfce, k)
            assert set(theirs) <= set(ours)
            for key, image in theirs.items():
                assert np.array_equal(ours[key].get_fdata(), image.get_fdata()), (key, k)
            null = {key: np.concatenate([c[key] for c in chunks]) for key in chunks[0]
                    if key.startswith("max_")}
            if previous is not None:
                for key, values in null.items():
                    assert np.array_equal(values, previous[key]), (key, k)
            previous = null
        if threshold is not None:  # the test is not trivial: the effect is found
            assert ours["logp_max_size"].get_fdata().max() > 1.0


@pytest.mark.slow
@pytest.mark.parametrize("case", ["one-sample+age", "two-sample+age"])
def test_permutations_with_covariate_equal_nilearn(study, case):
    kind, covariates, weights = CASES[case]
    design = _design(study, kind, covariates)
    for two_sided in (False, True):
        theirs = _reference(study, design, weights, two_sided, 0.01, True)
        ours, _ = _ours(study, design, weights, two_sided, 0.01, True, 3)
        for key, image in theirs.items():
            assert np.array_equal(ours[key].get_fdata(), image.get_fdata()), key


@pytest.mark.slow
def test_null_distributions_equal_permuted_ols(study):
    """The chunks hold nilearn's h0 arrays themselves, not just maps that agree."""
    from nilearn.maskers import NiftiMasker
    from nilearn.mass_univariate import permuted_ols

    design = _design(study, "two-sample", ("age",))
    weights = [-1.0, 1.0, 0.0]
    masker = NiftiMasker(mask_img=study["mask"], standardize=None).fit()
    h0 = permuted_ols(design.to_numpy() @ np.array(weights),
                      masker.transform(study["files"]),
                      confounding_vars=design[["age"]].to_numpy(), n_perm=N_PERM,
                      two_sided_test=True, random_state=SEED, n_jobs=1, masker=masker,
                      threshold=0.01, tfce=True)
    _, chunks = _ours(study, design, weights, True, 0.01, True, 3)
    for key in ("t", "size", "mass", "tfce"):
        ours = np.concatenate([c[f"max_{key}"] for c in chunks])
        assert np.array_equal(ours, h0[f"h0_max_{key}"][0]), key


@pytest.mark.slow
def test_nilearn_depends_on_n_jobs(study):
    """A documented fact: nilearn seeds each job, so n_jobs=2 draws other permutations."""
    from nilearn.mass_univariate import permuted_ols

    rng = np.random.default_rng(3)
    data = rng.standard_normal((10, 200)) + 0.3
    one = permuted_ols(np.ones((10, 1)), data, n_perm=N_PERM, random_state=SEED, n_jobs=1)
    two = permuted_ols(np.ones((10, 1)), data, n_perm=N_PERM, random_state=SEED, n_jobs=2)
    assert not np.array_equal(np.sort(one["h0_max_t"]), np.sort(two["h0_max_t"]))


def test_chunk_errors(study):
    design = _design(study, "one-sample")
    kwargs = {"n_perm": N_PERM, "seed": SEED}
    with pytest.raises(InputError, match="expected 0 <= start <= stop <= n_perm"):
        permutation_chunk(study["files"], design, study["mask"], "intercept", start=30,
                          stop=50, **kwargs)
    with pytest.raises(InputError, match="seed"):
        permutation_chunk(study["files"], design, study["mask"], "intercept", n_perm=N_PERM,
                          seed=None, start=0, stop=1)
    chunks = [permutation_chunk(study["files"], design, study["mask"], "intercept",
                                start=a, stop=b, **kwargs) for a, b in ((0, 10), (20, 40))]
    with pytest.raises(InputError, match="permutation 10 is missing"):
        combine_permutations(study["files"], design, study["mask"], "intercept", chunks,
                             n_perm=N_PERM)
    with pytest.raises(InputError, match="'max_size' missing"):
        combine_permutations(study["files"], design, study["mask"], "intercept",
                             [permutation_chunk(study["files"], design, study["mask"],
                                                "intercept", start=0, stop=40, **kwargs)],
                             n_perm=N_PERM, threshold=0.01)


def test_check_permutations():
    assert check_permutations(19, alpha=0.05) == 19
    assert check_permutations(99, alpha=0.01) == 99
    with pytest.raises(InputError, match="at least 19 are needed for alpha 0.05"):
        check_permutations(18, alpha=0.05)
    with pytest.raises(InputError, match="at least 99"):
        check_permutations(50, alpha=0.01)
