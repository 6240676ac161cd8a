"""The model zoo's NARPS model (``model-narps_smdl.json``, copied verbatim into
tests/data/model_zoo) as published: its ``Input`` value is a string (``"task": "MGT"``)
and its Dataset nodes have no ``Model.Type``, both read as pybids reads them (a
one-element list; ``glm``)."""

import json
from pathlib import Path

from glm_workflows.core.stats_model_read import stats_model

ZOO = Path(__file__).resolve().parent / "data" / "model_zoo"
MODEL = ZOO / "model-narps_smdl.json"
TASK = "MGT"


def _published():
    return json.loads(MODEL.read_text())


def _read(published=None):
    """The published model, read (its last node's categorical formula left out)."""
    published = published or _published()
    published["Nodes"] = published["Nodes"][:4]
    published["Edges"] = published["Edges"][:3]
    return stats_model(published, str(MODEL))


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
    assert [n.model_type for n in model.nodes] == ["glm", "meta", "glm", "glm"]
