"""The model zoo's SPM FaceRep files (tests/data/model_zoo), on events shaped as the
FaceRep BIDS conversion writes them (``face_type`` famous/unfamiliar, ``repetition_type``
1/2, ``lag`` n/a at first presentations; 351 scans of 2 s, 26 famous and 26 unfamiliar
faces shown twice).

As published both are refused, precisely: their ``unfamiliar_1`` is ``face_type ==
unfamiliar AND repetition_type == famous`` (no event: a typo for ``1``), and the
parametric file's ``X`` names lag regressors no instruction makes. With the typo fixed,
``AND`` of ``<column>==<level>`` gives nilearn's condition columns exactly."""

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from glm_workflows.core.errors import InputError
from glm_workflows.core.stats_model_read import stats_model
from glm_workflows.core.transformations import apply_transformations
from glm_workflows.core.variables import run_variables

ZOO = Path(__file__).resolve().parent / "data" / "model_zoo"
T_R, N_SCANS = 2.0, 351


def _events():
    rng = np.random.default_rng(24)
    faces = [("famous", i) for i in range(26)] + [("unfamiliar", i) for i in range(26)]
    order = [faces[i] for i in rng.permutation(52)]
    trials, shown = [], set()
    pending = list(order)
    while pending or len(trials) < 104:  # each face twice, the repeat a few trials later
        repeats = [f for f in shown if sum(t[0] == f for t in trials) == 1]
        if repeats and (not pending or rng.random() < 0.5):
            face = repeats[rng.integers(len(repeats))]
        else:
            face = pending.pop(0)
            shown.add(face)
        trials.append((face, len(trials)))
        if len(trials) == 104:
            break
    onsets = np.cumsum(rng.choice([4.5, 4.5, 9.0], size=104)) + 6.0
    rows = []
    for (face, index), onset in zip(trials, onsets, strict=True):
        first = next(t for f, t in trials if f == face)
        rows.append({"onset": onset, "duration": 0.0, "face_type": face[0],
                     "repetition_type": 1 if first == index else 2,
                     "lag": np.nan if first == index else index - first})
    return pd.DataFrame(rows)


def _model(name):
    return json.loads((ZOO / name).read_text())


def _design(spec, events, confounds=None):
    node = stats_model(spec, "facerep.json").nodes[0]
    return apply_transformations(node.transformations, run_variables(events, confounds),
                                 t_r=T_R, n_scans=N_SCANS, slice_time_ref=0.0,
                                 path_prefix=node.path, hrf=node.hrf, x=node.x)


def test_facerep_as_published_is_refused():
    with pytest.raises(InputError) as caught:
        _design(_model("model-FaceRep_desc-fitlins_smdl.json"), _events())
    assert str(caught.value).startswith(
        "facerep.json: Nodes[0].Transformations.Instructions[2] (And): no variable "
        "'repetition_type==famous' (available: ")


def test_facerep_parametric_lag_regressors_made_by_no_instruction():
    spec = _model("model-FaceRepParametric_desc-fitlins_smdl.json")
    spec["Nodes"][0]["Transformations"]["Instructions"][2]["Input"][1] = "repetition_type==1"
    design = _design(spec, _events())
    assert not any(c.endswith("_lag_order_1") for c in design)  # nothing makes them


def test_facerep_typo_fixed_equals_nilearn():
    from nilearn.glm.first_level import make_first_level_design_matrix

    spec = _model("model-FaceRep_desc-fitlins_smdl.json")
    spec["Nodes"][0]["Transformations"]["Instructions"][2]["Input"][1] = "repetition_type==1"
    events = _events()
    design = _design(copy.deepcopy(spec), events)
    conditions = events.assign(trial_type=[f"{f}_{r}" for f, r in
                                           zip(events.face_type, events.repetition_type,
                                               strict=True)])
    reference = make_first_level_design_matrix(
        np.arange(N_SCANS) * T_R, conditions[["onset", "duration", "trial_type"]],
        hrf_model="spm", drift_model=None)
    for column in ("famous_1", "famous_2", "unfamiliar_1", "unfamiliar_2"):
        difference = np.abs(design[column].to_numpy() - reference[column].to_numpy()).max()
        assert difference <= 1e-10, column
