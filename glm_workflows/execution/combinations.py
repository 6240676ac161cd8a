"""Before any work: the weights with which a Session or Subject node's design combines
each subject's maps (:mod:`glm_workflows.core.within_subject`), part of the plan made by
:func:`glm_workflows.execution.prepare.prepare`. No Nipype here."""

from __future__ import annotations

from ..core.errors import InputError
from ..core.within_subject import combination_weights
from ..inputs.level_tables import level_rows, level_source
from ..plan.groups import subject_groups
from ..spec.frozen import thaw


def plan_combinations(spec, runs, skipped: dict, warnings: list) -> tuple[dict, list, dict]:
    """The node with a design's combinations, its contrasts, and what each run lacks.

    Parameters
    ----------
    spec : AnalysisSpec
        With :attr:`~glm_workflows.spec.analysis.AnalysisSpec.designed_node` set.
    runs : list of RunInputs
    skipped : dict
        Per run label, the first-level contrasts it lacks (runs that differ).
    warnings : list of str
        One line is added per subject and contrast left out.

    Returns
    -------
    combinations : dict
        Subject -> node contrast -> ``(incoming contrast, weights)``, one weight per
        run having the incoming contrast, in the runs' order.
    contrasts : list of (name, stat_type, rows)
        The node's contrasts: what reaches the Dataset nodes.
    lacking : dict
        Per run label, the node contrasts its subject lacks (for the group plans).
    """
    node = spec.designed_node
    incoming = _incoming(spec, node)
    contrasts = [contrast.triple() for contrast in node.contrasts]
    rows = level_rows(runs, spec.inputs.bids_dir, node.level)
    where = _where(spec, node)
    source = level_source(spec.inputs.bids_dir, node.level)
    combinations, lacking = {}, {}
    for subject, subject_runs in subject_groups(runs).items():
        having = [run for run in subject_runs if incoming not in skipped.get(run.label, ())]
        found = {name: f"{len(having)} map(s) of contrast {incoming}"
                 for name, _, _ in contrasts}
        if having:  # its variables checked even when there is nothing to combine
            weights = combination_weights([rows[run.label] for run in having],
                                          node.model.x, contrasts,
                                          thaw(node.transformations), where, source)
            found = weights if len(having) > 1 else found
        missing = []
        for name, value in found.items():
            if isinstance(value, str):
                warnings.append(f"node {node.name}: sub-{subject} left out of contrast "
                                f"{name} ({value})")
                missing.append(name)
            else:
                combinations.setdefault(subject, {})[name] = (incoming, value)
        for run in subject_runs:
            lacking[run.label] = tuple(missing)
    if not combinations:
        raise InputError(f"{where}: no subject's maps estimate the node's contrasts "
                         f"({', '.join(name for name, _, _ in contrasts)})")
    return combinations, contrasts, lacking


def _incoming(spec, node) -> str:
    """The one first-level t contrast the node combines (the model file's checks ensure
    there is one)."""
    from ..spec.bsm import filters_kept

    kept = filters_kept(spec.source, [(e.source, e.destination, e.contrasts)
                                      for e in spec.way_to(node.name)])
    names = [name for name, test, _ in spec.contrasts() if test == "t"
             and (not kept or name in kept)]
    if len(names) != 1:
        raise InputError(f"{spec.source}: node {node.name!r}: {len(names)} contrasts arrive "
                         f"({', '.join(names) or 'none'}); a design names its maps after its "
                         "own contrasts, so filter the incoming edge to one contrast")
    return names[0]


def _where(spec, node) -> str:
    """The node as messages name it: its JSON path in the model file, else its name."""
    if spec.source.endswith(".json"):
        from ..core.stats_model_read import read_stats_model

        model = read_stats_model(spec.source)
        found = next((n for n in model.nodes if n.name == node.name), None)
        if found is not None:
            return found.path
    return f"{spec.source}: node {node.name!r}"
