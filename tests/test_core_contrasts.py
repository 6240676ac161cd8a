"""Contrast expressions: parsed safely, equal to nilearn's (no Nipype)."""

import numpy as np
import pandas as pd
import pytest
from nilearn.glm.contrasts import expression_to_contrast_vector

from glm_workflows.core.contrasts import (
    contrast_matrix,
    expression_to_vector,
    parse_contrast_option,
)
from glm_workflows.core.errors import InputError
from glm_workflows.core.estimability import (
    check_contrasts,
    estimability_problem,
    is_estimable,
    non_estimable_part,
    rank_tolerance,
)

COLUMNS = ["active", "rest", "drift_1", "constant"]


@pytest.mark.parametrize("expression", [
    "active - rest", "active", "rest - active", "0.5*active + rest/2", "2*(active - rest)",
    "-active", "active - 0.25*drift_1", "active - -rest", "2*-active + rest", "(active)-rest",
    "-(active - rest) + constant/4",
])
def test_expressions_equal_nilearn(expression):
    """Valid expressions give nilearn's weights."""
    np.testing.assert_array_equal(expression_to_vector(expression, COLUMNS),
                                  expression_to_contrast_vector(expression, COLUMNS))


@pytest.mark.parametrize("text", ["[1, -1, 0, 0]", "1 -1 0 0", [1, -1, 0, 0]])
def test_weight_vectors(text):
    """Weights may be given as text or numbers."""
    np.testing.assert_array_equal(expression_to_vector(text, COLUMNS), [1, -1, 0, 0])


def test_unknown_column_lists_available():
    """An unknown column names itself and the available columns."""
    with pytest.raises(InputError, match=r"unknown column 'activ'; available columns: "
                                         r"active, rest, drift_1, constant"):
        expression_to_vector("activ - rest", COLUMNS)


def test_wrong_length_vector():
    """A vector of the wrong length says how many weights are needed."""
    with pytest.raises(InputError, match=r"2 weights for 4 design columns"):
        expression_to_vector("[1, -1]", COLUMNS)


@pytest.mark.parametrize("attack", [
    "__import__('os').system('touch /tmp/pwned')", "open('/etc/passwd')", "active.__class__",
    "[c for c in ()]", "lambda: 0", "active**2", "active if rest else rest",
])
def test_code_is_never_executed(attack, tmp_path):
    """Anything but names, numbers and + - * / is refused without being run."""
    with pytest.raises(InputError):
        expression_to_vector(attack, COLUMNS)


def test_non_linear_and_constant_terms_refused():
    """Products of columns and constant offsets are not contrasts."""
    with pytest.raises(InputError, match="not linear"):
        expression_to_vector("active*rest", COLUMNS)
    with pytest.raises(InputError, match="without a constant term"):
        expression_to_vector("active + 1", COLUMNS)


def test_f_option_and_matrix():
    """NAME=EXPR1,EXPR2 gives an F contrast with one row per expression."""
    name, stat_type, rows = parse_contrast_option("effectsOfInterest=active,rest", "F")
    assert (name, stat_type, rows) == ("effectsOfInterest", "F", ("active", "rest"))
    np.testing.assert_array_equal(contrast_matrix(rows, COLUMNS, "F"),
                                  [[1, 0, 0, 0], [0, 1, 0, 0]])
    with pytest.raises(InputError, match="use letters and digits only"):
        parse_contrast_option("../evil=active", "t")


@pytest.mark.parametrize("n_terms", [1000, 10000])
def test_sums_of_any_length(n_terms):
    """Long sums and differences (beyond Python's recursion limit) give their weights."""
    assert np.array_equal(expression_to_vector(" + ".join(["active"] * n_terms), COLUMNS),
                          [n_terms, 0, 0, 0])
    alternating = " - ".join(["active", "rest"] * (n_terms // 2))  # a - r - a - r ...
    assert np.array_equal(expression_to_vector(alternating, COLUMNS),
                          [1 - (n_terms // 2 - 1), -(n_terms // 2), 0, 0])
    scaled = " + ".join(["0.5*active - rest/4"] * n_terms)
    assert np.array_equal(expression_to_vector(scaled, COLUMNS),
                          [0.5 * n_terms, -0.25 * n_terms, 0, 0])


def test_long_sum_in_parentheses():
    """A long sum inside parentheses is walked without recursion too."""
    expression = "(" + " + ".join(["rest"] * 900) + ")/3 - drift_1"
    assert np.array_equal(expression_to_vector(expression, COLUMNS), [0, 300, -1, 0])


@pytest.mark.parametrize("expression", ["-" * 5000 + "active", "(" * 300 + "active" + ")" * 300,
                                        "active" + "*2" * 5000])
def test_too_deeply_nested_is_one_line(expression):
    """What the parser cannot take is refused with one short line, not a RecursionError."""
    with pytest.raises(InputError) as error:
        expression_to_vector(expression, COLUMNS)
    message = str(error.value)
    assert "\n" not in message and len(message) < 300
    assert "too deeply nested to parse" in message or "not a valid expression" in message


@pytest.mark.parametrize("expression", ["active -", "active + * rest", "(active - rest",
                                        "active - rest)", "active rest"])
def test_malformed_sums_are_refused(expression):
    """Splitting at + and - never makes a malformed expression valid."""
    with pytest.raises(InputError, match="not a valid expression"):
        expression_to_vector(expression, COLUMNS)


def test_dependent_f_rows_are_refused():
    """An F contrast whose rows are linearly dependent cannot be inverted: refused."""
    with pytest.raises(InputError, match=r"its 3 rows are linearly dependent \(rank 2\)"):
        contrast_matrix(["active", "rest", "active - 2*rest"], COLUMNS, "F")


def _rank_deficient(seed, n_scans=40, n_columns=7):
    """A random design whose last column is the sum of the first two, and whose 4th is zero."""
    values = np.random.default_rng(seed).standard_normal((n_scans, n_columns))
    values[:, -1] = values[:, 0] + values[:, 1]
    values[:, 3] = 0
    return values


def test_rank_tolerance_is_matrix_ranks():
    """S.max() * max(M, N) * eps, the tolerance numpy's matrix_rank uses."""
    values = _rank_deficient(0)
    singular = np.linalg.svd(values, compute_uv=False)
    assert rank_tolerance(values) == singular.max() * 40 * np.finfo(float).eps
    assert (singular > rank_tolerance(values)).sum() == np.linalg.matrix_rank(values) == 5


@pytest.mark.parametrize("seed", range(5))
def test_non_estimable_part_is_c_minus_c_pinv_x_x(seed):
    """The part of c outside the row space is c - c @ pinv(X) @ X."""
    values = _rank_deficient(seed)
    weights = np.random.default_rng(seed + 100).standard_normal(7)
    pinv = np.linalg.pinv(values, rcond=max(values.shape) * np.finfo(float).eps)
    np.testing.assert_allclose(non_estimable_part(weights, values),
                               weights - weights @ pinv @ values, atol=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_estimable_agrees_with_matrix_rank(seed):
    """c is estimable exactly when stacking it (scaled to the design's largest singular
    value) on X leaves matrix_rank unchanged: rows of X's row space are, others are not."""
    values = _rank_deficient(seed)
    rng = np.random.default_rng(seed + 100)
    candidates = [rng.standard_normal(40) @ values, rng.standard_normal(7),
                  np.eye(7)[3], np.eye(7)[0], np.eye(7)[0] + np.eye(7)[1] - np.eye(7)[6],
                  np.eye(7)[0] - np.eye(7)[1], np.eye(7)[0] + np.eye(7)[6], np.eye(7)[2]]
    scale = np.linalg.svd(values, compute_uv=False).max()
    rank = np.linalg.matrix_rank(values)
    expected = [np.linalg.matrix_rank(np.vstack([values, c * scale / np.linalg.norm(c)]))
                == rank for c in candidates]
    assert [is_estimable(c, values) for c in candidates] == expected
    assert expected == [True, False, False, False, False, True, True, True]


def test_estimability_problem_names_the_columns():
    """Zero columns and the columns of a linear dependency are named; estimable rows pass."""
    design = pd.DataFrame(_rank_deficient(0), columns=list("abcdefg"))
    assert estimability_problem(np.eye(7)[2], design) is None
    assert estimability_problem(np.eye(7)[0] - np.eye(7)[1], design) is None  # g = a + b
    assert estimability_problem(np.eye(7)[3], design) == "column 'd' is zero in every scan"
    assert estimability_problem(np.eye(7)[3] + np.eye(7)[0], design) == \
        "column 'd' is zero in every scan"
    assert estimability_problem(np.eye(7)[0], design) == \
        "columns a, b, g are linearly dependent"
    with pytest.raises(InputError, match=r"^contrast x: not estimable: columns a, b, g are "
                                         r"linearly dependent \(design of run\.tsv\)$"):
        check_contrasts([("y", "t", ("a - b",)), ("x", "F", ("c", "a + b - g"))], design,
                        "run.tsv")
