"""Contrast expressions: parsed safely, equal to nilearn's (no Nipype)."""

import numpy as np
import pytest
from nilearn.glm.contrasts import expression_to_contrast_vector

from glm_workflows.core.contrasts import (
    contrast_matrix,
    expression_to_vector,
    parse_contrast_option,
)
from glm_workflows.core.errors import InputError

COLUMNS = ["active", "rest", "drift_1", "constant"]


@pytest.mark.parametrize("expression", [
    "active - rest", "active", "rest - active", "0.5*active + rest/2", "2*(active - rest)",
    "-active", "active - 0.25*drift_1",
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
