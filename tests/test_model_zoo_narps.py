"""The model zoo's NARPS model (``model-narps_smdl.json``, copied verbatim into
tests/data/model_zoo) as published: its ``Input`` value is a string (``"task": "MGT"``)
and its Dataset nodes have no ``Model.Type``, both read as pybids reads them (a
one-element list; ``glm``)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from glm_workflows.core.contrasts import contrast_matrix
from glm_workflows.core.errors import InputError
from glm_workflows.core.group import read_participants
from glm_workflows.core.group_variables import dataset_design
from glm_workflows.core.stats_model_read import stats_model
from glm_workflows.spec.bsm import dataset_contrasts

ZOO = Path(__file__).resolve().parent / "data" / "model_zoo"
MODEL = ZOO / "model-narps_smdl.json"
TASK = "MGT"
GROUPS = ("equalIndifference", "equalRange")
SUBJECTS = [f"{i:03d}" for i in range(1, 9)]
#: Four subjects per group, interleaved (the design's rows follow the subjects' order).
PARTICIPANTS = pd.DataFrame({"participant_id": [f"sub-{s}" for s in SUBJECTS],
                             "group": [GROUPS[i % 2] for i in range(len(SUBJECTS))],
                             "age": [23, 31, 45, 27, 38, 29, 52, 34]})


def _published():
    return json.loads(MODEL.read_text())


def _read(published=None):
    """The published model (or ``published``, a changed copy), read and checked."""
    return stats_model(published or _published(), str(MODEL))


def test_input_string_is_a_one_element_list():
    """``"task": "MGT"`` is ``["MGT"]``, as pybids passes it to the layout's query; a
    list stays as written."""
    published = _published()
    assert published["Input"] == {"task": TASK}  # the file as the zoo has it
    assert _read().input == {"task": [TASK]}
    listed = _read({**published, "Input": {"task": [TASK], "run": 1}})
    assert listed.input == {"task": [TASK], "run": [1]}


def test_model_without_type_is_a_glm():
    """The Dataset nodes have no ``Model.Type``: ``glm``, pybids's default
    (``node.model.get('type', 'glm')``)."""
    published = _published()
    assert [("Type" in n["Model"]) for n in published["Nodes"]] == [True, True, False,
                                                                    False, False]
    model = _read()
    assert [n.model_type for n in model.nodes] == ["glm", "meta", "glm", "glm", "glm"]


def _between_groups(model):
    return next(n for n in model.nodes if n.name == "between-groups")


def _design(node, tmp_path, subjects=SUBJECTS):
    path = tmp_path / "participants.tsv"
    PARTICIPANTS.to_csv(path, sep="\t", index=False)
    return dataset_design(subjects, read_participants(path), [x for x in node.x if x != 1],
                          intercept=1 in node.x, transformations=node.transformations,
                          where=node.path)


@pytest.mark.parametrize("subjects", [SUBJECTS, SUBJECTS[1:6]])
def test_cell_means_design_equals_formulaic(tmp_path, subjects):
    """``Formula: 0 + C(group)`` over ``X: [1, "group"]``: formulaic's design (the
    library pybids builds a Formula with) -- one indicator per level, levels sorted, no
    intercept -- with its columns ``C(group)[<level>]`` named ``group.<level>``."""
    from formulaic import model_matrix

    node = _between_groups(_read())
    assert node.x == ("C(group)",)
    ours = _design(node, tmp_path, subjects)
    table = PARTICIPANTS.assign(participant_id=SUBJECTS).set_index("participant_id")
    theirs = model_matrix("0 + C(group)", table.loc[subjects])
    assert list(theirs.columns) == [f"C(group)[{g}]" for g in GROUPS]
    assert list(ours.columns) == [f"group.{g}" for g in GROUPS]
    np.testing.assert_array_equal(ours.to_numpy(), np.asarray(theirs, dtype=float))


@pytest.mark.parametrize("spelling", ["C(group)[T.{}]", "C(group)[{}]", "group.{}"])
def test_level_names_in_either_spelling(tmp_path, spelling):
    """The contrast names the levels as the published file does (``C(group)[T.level]``,
    treatment coding's spelling), as formulaic names the cell-means columns
    (``C(group)[level]``) or as Factor does (``group.level``): the same weights,
    equalRange - equalIndifference over the design's columns."""
    published = _published()
    contrast = published["Nodes"][4]["Contrasts"][0]
    contrast["ConditionList"] = [spelling.format("equalRange"),
                                 spelling.format("equalIndifference")]
    node = _between_groups(_read(published))
    ((label, row),) = dataset_contrasts(node)
    assert label == "rangeVsIndiference"
    columns = list(_design(node, tmp_path).columns)
    np.testing.assert_array_equal(contrast_matrix([row], columns, "t"), [[-1.0, 1.0]])


def test_level_no_column_has_is_refused_listing_the_columns(tmp_path):
    published = _published()
    published["Nodes"][4]["Contrasts"][0]["ConditionList"][0] = "C(group)[T.equalWidth]"
    node = _between_groups(_read(published))
    ((_, row),) = dataset_contrasts(node)
    with pytest.raises(InputError) as error:
        contrast_matrix([row], list(_design(node, tmp_path).columns), "t")
    assert str(error.value) == ("contrast 'group.equalWidth - group.equalIndifference': "
                                "unknown column 'group.equalWidth'; available columns: "
                                "group.equalIndifference, group.equalRange")


@pytest.mark.parametrize("formula", ["C(group)", "1 + C(group)", "0 + C(group) + C(sex)"])
def test_categorical_term_with_intercept_is_refused(formula):
    published = _published()
    published["Nodes"][4]["Model"]["Formula"] = formula
    published["Nodes"][4]["Model"]["X"] = [1, "group", "sex"]
    with pytest.raises(InputError) as error:
        _read(published)
    assert str(error.value) == (
        f"{MODEL}: Nodes[4].Model.Formula: C(group) is supported as the only categorical "
        "term of a formula without the intercept ('0 + C(group)': a column per level, the "
        "cell means)")


def test_categorical_column_missing_from_participants_is_refused(tmp_path):
    node = _between_groups(_read())
    path = tmp_path / "participants.tsv"
    PARTICIPANTS.drop(columns="group").to_csv(path, sep="\t", index=False)
    with pytest.raises(InputError) as error:
        dataset_design(SUBJECTS, read_participants(path), list(node.x), intercept=False,
                       where=node.path)
    assert str(error.value) == (f"{MODEL}: Nodes[4]: Model.Formula: no column 'group' in "
                                "participants.tsv for C(group) (columns: age)")
