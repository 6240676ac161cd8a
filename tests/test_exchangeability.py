"""Exchangeability blocks of the group permutations (``--exchangeability-blocks COLUMN``,
``--whole-blocks``): the draws respect the blocks, a split into chunks changes nothing,
and the FWE maps equal a brute-force permutation test written here with numpy."""

import json

import nibabel as nb
import numpy as np
import pandas as pd
import pytest

from glm_workflows.core.errors import InputError
from glm_workflows.core.exchangeability import block_labels, check_blocks, distinct_permutations
from glm_workflows.core.permutations import block_draws, permutation_chunk

BLOCKS = (0, 0, 1, 1, 1, 2, 2, 2, 3, 3)


def test_sign_flips_flip_whole_blocks():
    for signs in block_draws(3, True, BLOCKS, False, 50):
        for block in set(BLOCKS):
            assert len({int(signs[i, 0]) for i, b in enumerate(BLOCKS) if b == block}) == 1


def test_shuffles_stay_within_blocks_or_move_whole_blocks():
    blocks = np.array(BLOCKS)
    for order in block_draws(3, False, BLOCKS, False, 50):
        assert (blocks[order] == blocks).all() and sorted(order) == list(range(len(blocks)))
    even = np.repeat(np.arange(4), 3)
    moved = 0
    for order in block_draws(5, False, even, True, 50):
        rows = order.reshape(4, 3)
        assert (np.diff(rows, axis=1) == 1).all()  # each block whole, in its order
        assert len({int(even[r[0]]) for r in rows}) == 4
        moved += int((rows[:, 0] != np.arange(0, 12, 3)).any())
    assert moved > 40


def test_distinct_permutations_and_refusals():
    assert distinct_permutations(BLOCKS, sign_flips=True) == 16
    assert distinct_permutations(BLOCKS, sign_flips=False) == 2 * 6 * 6 * 2
    assert distinct_permutations(np.repeat(np.arange(4), 3), False, whole_blocks=True) == 24
    with pytest.raises(InputError, match="the 4 blocks allow only 16 distinct sign flips of "
                                         "whole blocks; p >= 1/16 cannot reach alpha 0.05"):
        check_blocks(BLOCKS, sign_flips=True, whole_blocks=False, alpha=0.05)
    with pytest.raises(InputError, match="needs blocks of one size \\(sizes: 2, 3, 3, 2\\)"):
        check_blocks(BLOCKS, sign_flips=False, whole_blocks=True, alpha=0.05)
    participants = pd.DataFrame({"family": ["a", "a", None]}, index=["01", "02", "03"])
    with pytest.raises(InputError, match="has no value for sub-03"):
        block_labels(participants, ["01", "02", "03"], "family")
    with pytest.raises(InputError, match="has a single level"):
        block_labels(participants, ["01", "02"], "family")
    with pytest.raises(InputError, match="no column 'site'"):
        block_labels(participants, ["01", "02"], "site")


def _maps(tmp_path, n=12, seed=0):
    rng = np.random.default_rng(seed)
    mask = tmp_path / "mask.nii.gz"
    nb.Nifti1Image(np.ones((5, 5, 5), np.uint8), np.eye(4)).to_filename(mask)
    files = []
    for index in range(n):
        files.append(str(tmp_path / f"effect_{index}.nii.gz"))
        nb.Nifti1Image(rng.normal(0.3, 1, (5, 5, 5)), np.eye(4)).to_filename(files[-1])
    return files, mask


def test_a_split_into_chunks_changes_nothing(tmp_path):
    files, mask = _maps(tmp_path)
    design = pd.DataFrame({"intercept": np.ones(12)}, index=[f"{i:02d}" for i in range(12)])
    blocks = [i // 2 for i in range(12)]
    whole = permutation_chunk(files, design, mask, "intercept", n_perm=40, seed=7, start=0,
                              stop=40, blocks=blocks)
    parts = [permutation_chunk(files, design, mask, "intercept", n_perm=40, seed=7,
                               start=a, stop=b, blocks=blocks) for a, b in ((0, 13), (13, 40))]
    np.testing.assert_array_equal(whole["max_t"],
                                  np.concatenate([p["max_t"] for p in parts]))


# ----------------------------------------------------------------- through the CLI


@pytest.mark.slow
def test_block_sign_flips_equal_a_brute_force_test(tmp_path):
    """One-sample group, 10 subjects in 5 families of 2, 99 permutations: the voxel FWE
    map equals the max-t permutation test computed here with numpy on the subjects' maps,
    flipping whole families with the same draws."""
    from glm_workflows.cli import main
    from glm_workflows.synthetic import write_tiny_bids

    subjects = [f"{i:02d}" for i in range(1, 11)]
    bids = write_tiny_bids(tmp_path / "bids", subjects=subjects, n_scans=30)
    families = [f"fam{(i // 2) + 1}" for i in range(10)]
    pd.DataFrame({"participant_id": [f"sub-{s}" for s in subjects], "family": families}
                 ).to_csv(bids / "participants.tsv", sep="\t", index=False)
    out = tmp_path / "out"
    assert main(["--bids-dir", str(bids), "--task", "tiny", "--contrast", "aMinusB=a - b",
                 "--group", "one-sample", "--permutations", "99", "--seed", "3",
                 "--exchangeability-blocks", "family", "--output-dir", str(out),
                 "--work-dir", str(tmp_path / "work")]) == 0
    stem = out / "group" / "task-tiny_contrast-aMinusB"
    record = json.loads((stem.parent / f"{stem.name}_desc-permutations_statmap.json")
                        .read_text())
    assert record["ExchangeabilityBlocks"] == [i // 2 for i in range(10)]
    inside = nb.load(f"{stem}_stat-t_statmap.nii.gz").get_fdata() != 0
    y = np.stack([nb.load(out / f"sub-{s}" / f"sub-{s}_task-tiny_contrast-aMinusB_stat-"
                          "effect_statmap.nii.gz").get_fdata()[inside] for s in subjects])

    def t_map(values):
        return values.mean(axis=0) / (values.std(axis=0, ddof=1) / np.sqrt(len(values)))

    original = t_map(y)
    null = np.array([t_map(signs * y).max()
                     for signs in block_draws(3, True, record["ExchangeabilityBlocks"], False,
                                              99)])
    expected = -np.log10(((null[None, :] >= original[:, None] - 1e-10).sum(axis=1) + 1)
                         / 100)
    ours = nb.load(f"{stem}_stat-logp_desc-voxelFWE_statmap.nii.gz").get_fdata()[inside]
    assert np.abs(ours - expected).max() < 1e-10


@pytest.mark.parametrize("flags, message", [
    (["--exchangeability-blocks", "family"], "--exchangeability-blocks: blocks restrict "
                                             "permutations; set --permutations"),
    (["--permutations", "99", "--whole-blocks"], "--whole-blocks: needs "
                                                 "--exchangeability-blocks COLUMN"),
    (["--permutations", "99", "--exchangeability-blocks", "family"],
     "the 2 blocks allow only 4 distinct sign flips of whole blocks"),
])
def test_refused_in_one_line(tmp_path, capsys, flags, message):
    from glm_workflows.cli import main
    from glm_workflows.synthetic import write_tiny_bids

    subjects = ("01", "02", "03", "04")
    bids = write_tiny_bids(tmp_path / "bids", subjects=subjects, n_scans=40)
    pd.DataFrame({"participant_id": [f"sub-{s}" for s in subjects],
                  "family": ["a", "a", "b", "b"]}).to_csv(bids / "participants.tsv",
                                                          sep="\t", index=False)
    code = main(["--bids-dir", str(bids), "--task", "tiny", "--contrast", "aMinusB=a - b",
                 "--group", "one-sample", *flags,
                 "--output-dir", str(tmp_path / "out"), "--work-dir", str(tmp_path / "w")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


@pytest.mark.parametrize("columns, contrast", [
    ({"intercept": 1.0}, "intercept"),
    ({"intercept": 1.0, "age": "age"}, "age"),          # nilearn flips signs here too
    ({"intercept": 1.0, "age": "age"}, "intercept"),
    ({"control": "control", "patient": "patient"}, "patient - control"),
    ({"control": "control", "patient": "patient"}, "patient"),
    ({"intercept": 1.0, "age": "age", "iq": "iq"}, "age"),
])
def test_the_plan_decides_sign_flips_as_the_permutations_do(tmp_path, columns, contrast):
    """The plan's choice (which relabellings the blocks must allow) is the one the
    permutation nodes make (nilearn's rule, in permutation_problem._problem)."""
    from glm_workflows.core.contrasts import contrast_matrix
    from glm_workflows.core.permutation_problem import _problem, sign_flip_test

    files, mask = _maps(tmp_path)
    rng = np.random.default_rng(1)
    group = np.array([0, 1] * 6)
    values = {"age": rng.normal(40, 10, 12), "iq": rng.normal(100, 15, 12),
              "control": (group == 0).astype(float), "patient": (group == 1).astype(float)}
    design = pd.DataFrame({name: np.full(12, 1.0) if value == 1.0 else values[value]
                           for name, value in columns.items()},
                          index=[f"{i:02d}" for i in range(12)])
    weights = contrast_matrix([contrast], list(design.columns), "t")[0]
    problem = _problem(files, design, str(mask), contrast, False, None)
    assert sign_flip_test(design, weights) == problem.intercept_test
