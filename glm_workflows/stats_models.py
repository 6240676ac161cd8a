"""``--model FILE``: a BIDS Stats Models file mapped onto this project's levels.

The model becomes the settings the command-line flags would give, so that a model file
runs through the same checks, graph and outputs as the flags (and gives the same maps):

* **Run** (``glm``): the design is the node's (:mod:`glm_workflows.core.model_design`:
  transformations, ``Model.HRF`` with nilearn's regressors, ``X``, cosine drifts from
  ``HighPassFilterCutoffHz``, none without it); its ``Contrasts`` and
  ``DummyContrasts`` become the first-level contrasts (``pass`` is estimated as ``t``).
* **Subject** (``meta``, grouped by subject and contrast): fixed effects over the
  subject's runs, as without a model; its (dummy) contrasts pass the incoming t contrasts.
* **Dataset** (``glm``, grouped by contrast): the group level, a one-sample design with
  ``X`` = ``1`` and numeric ``participants.tsv`` columns; its dummy contrast of the
  intercept is the group mean, named after the incoming contrast (as pybids names it).
  F contrasts are final: they do not go to the next node.
* ``Edges[].Filter`` by ``contrast`` keeps those contrasts for the next node.

What the project cannot run (Session nodes, a Subject ``glm`` model, Dataset designs
with categorical columns, filters on other entities) is refused with one line naming
the JSON path, before any work.
"""

from __future__ import annotations

from .core.errors import InputError
from .core.model_design import run_node_json
from .core.stats_model import NodeSpec, StatsModel
from .spec.bsm import (  # noqa: F401  (their home is spec.bsm; kept importable from here)
    check_node_chain,
    contrast_filter,
    contrast_label,
    dataset_contrasts,
    dataset_covariates,
    dummy_conditions_known,
    expression,
)
from .spec.bsm import run_contrasts as _typed_run_contrasts

#: ``Input`` entities (each sets the command-line flag of its name).
INPUT_ENTITIES = ("task", "subject", "session", "run", "space")
#: Flags the model file replaces (refused with ``--model``).
MODEL_FLAGS = ("contrast", "f_contrast", "hrf_model", "drift_model", "high_pass",
               "drift_order", "confounds_strategy", "confounds_columns", "group",
               "group_column", "pair", "group_covariates", "group_contrast")
_expression = expression
_dummy_conditions_known = dummy_conditions_known


def run_contrasts(node: NodeSpec) -> tuple[list[str], list[str]]:
    """The Run node's contrasts as ``--contrast`` and ``--f-contrast`` values."""
    t_contrasts, f_contrasts = [], []
    for label, test, rows in _typed_run_contrasts(node):
        if test == "F":
            f_contrasts.append(f"{label}={','.join(rows)}")
        else:
            t_contrasts.append(f"{label}={rows[0]}")
    return t_contrasts, f_contrasts


def model_settings(model: StatsModel) -> dict:
    """The command-line values a model file stands for (argparse destinations).

    Returns
    -------
    dict
        ``contrast``, ``f_contrast``, ``run_node``, ``hrf_model``, ``drift_model``,
        ``high_pass``, the ``Input`` selections, the group level's ``group``,
        ``group_covariates``, ``group_contrast`` and ``group_inputs``, and
        ``runs_are_subjects`` (a Dataset node straight after the Run node: it takes one
        run per subject).
    """
    run = model.root
    subject, dataset = check_node_chain(model)
    t_contrasts, f_contrasts = run_contrasts(run)
    values = {
        "runs_are_subjects": dataset is not None and subject is None,
        "contrast": t_contrasts, "f_contrast": f_contrasts, "run_node": run_node_json(run),
        "hrf_model": run.hrf.model if run.hrf else "spm",
        "drift_model": "cosine" if run.high_pass else "none",
        "group_inputs": contrast_filter(model, run),
    }
    if run.high_pass:
        values["high_pass"] = run.high_pass
    for entity, wanted in (model.input or {}).items():
        if entity not in INPUT_ENTITIES:
            raise InputError(f"{model.source}: Input.{entity}: not supported (supported: "
                             f"{', '.join(INPUT_ENTITIES)})")
        wanted = [str(w) for w in (wanted if isinstance(wanted, list) else [wanted])]
        if entity in ("task", "space"):
            if len(wanted) != 1:
                raise InputError(f"{model.source}: Input.{entity}: one {entity} per run of "
                                 f"glm-workflows, got {wanted}")
            wanted = wanted[0]
        values[entity] = wanted
    if dataset is not None:
        values.update(_dataset_settings(dataset))
    return values


def _dataset_settings(dataset: NodeSpec) -> dict:
    """The group flags of the Dataset node: one-sample, covariates, group contrasts."""
    contrasts = [f"{name}={row}" for name, row in dataset_contrasts(dataset)]
    covariates = dataset_covariates(dataset)
    return {"group": "one-sample", "group_covariates": ",".join(covariates) or None,
            "group_contrast": contrasts}
