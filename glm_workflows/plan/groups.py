"""The group analyses of a study's plan: :class:`GroupPlan` per analysis of a Dataset
node, made by :func:`group_plans` (a node grouped by contrast) and :func:`pooled_plan` (a
node grouped by nothing). Imported from :mod:`glm_workflows.plan.study` too, as before."""

from __future__ import annotations

from typing import Any, NamedTuple


def subject_groups(runs) -> dict:
    """Runs grouped by subject, in the order given."""
    groups: dict = {}
    for run in runs:
        groups.setdefault(run.subject, []).append(run)
    return groups


class GroupPlan(NamedTuple):
    """One group analysis: ``name`` (the first-level contrast, or ``<A>Minus<B>`` for a
    paired pair), ``contrasts`` (the first-level contrast, or the pair ``(A, B)``), the
    ``subjects`` that have them, and the ``group_contrasts`` ((name or None, expression)).

    With a spec: ``node``, the Dataset node's name; ``label``, its BIDS label in output
    and workflow names (None: the model's first Dataset node, named as ever); ``group``
    and ``participants_file``, its settings (None: the plan's). A node grouped by nothing
    (``columns``: its design's ``(X name, contrast label or None for the intercept)``)
    has one analysis: ``contrasts`` are the contrasts it pools, a map of each per subject
    a row of its design. ``blocks``: per subject, its exchangeability block (() : none)."""

    name: str
    contrasts: tuple
    subjects: tuple
    group_contrasts: tuple
    node: str | None = None
    label: str | None = None
    group: Any = None
    participants_file: str | None = None
    columns: tuple = ()
    blocks: tuple = ()

    @property
    def workflow_name(self) -> str:
        if self.label is None:
            return f"group_{self.name}_wf"
        return f"group_node_{self.label}" + ("" if self.columns else f"_{self.name}") + "_wf"

    @property
    def map_rows(self) -> list[tuple[str, str]]:
        """A node grouped by nothing: its design's rows, ``(subject, contrast)``."""
        return [(subject, contrast) for subject in self.subjects for contrast in self.contrasts]


def group_plans(runs, contrasts, skipped: dict, group, design_columns=None) -> tuple[list, list]:
    """The group analyses of a study, and one warning line per subject left out.

    Parameters
    ----------
    runs : list of RunInputs
    contrasts : sequence of (name, stat_type, rows)
        The first-level contrasts; the t contrasts go to the group level (or, paired,
        the two of ``group.pair``).
    skipped : dict
        Per run label, the contrasts it does not have: a subject none of whose runs has
        a contrast is left out of that contrast's group analysis.
    group : GroupSettings
    design_columns : callable or None
        ``design_columns(subjects)`` -> the group design's columns, for the default
        two-sample contrast (the difference of the two groups).

    Returns
    -------
    plans : list of GroupPlan
    warnings : list of str
    """
    if not group.model:
        return [], []
    by_subject = subject_groups(runs)
    if group.model == "paired":
        analyses = [(f"{group.pair[0]}Minus{group.pair[1]}", tuple(group.pair))]
    else:
        analyses = [(name, (name,)) for name, stat_type, _ in contrasts if stat_type == "t"
                    and (not group.inputs or name in group.inputs)]
    plans, warnings = [], []
    for name, needed in analyses:
        subjects = []
        for subject, subject_runs in by_subject.items():
            missing = [c for c in needed
                       if all(c in skipped.get(r.label, ()) for r in subject_runs)]
            if missing:
                warnings.append(f"group {name}: sub-{subject} left out (no map of contrast "
                                f"{', '.join(missing)})")
            else:
                subjects.append(subject)
        if group.contrasts:
            group_contrasts = tuple(group.contrasts)
        elif group.model == "two-sample":
            levels = [c for c in design_columns(subjects) if c not in group.covariates]
            group_contrasts = ((f"{levels[0]}Minus{levels[1]}", f"{levels[0]} - {levels[1]}"),)
        else:
            group_contrasts = ((None, "intercept"),)
        plans.append(GroupPlan(name, needed, tuple(subjects), group_contrasts))
    return plans, warnings


def pooled_plan(runs, columns, skipped: dict, group, node: str, label: str) -> tuple:
    """The analysis of a Dataset node grouped by nothing, and one warning line per subject
    left out (a subject without a map of some pooled contrast)."""
    needed = tuple(c for _, c in columns if c is not None)
    subjects, warnings = [], []
    for subject, subject_runs in subject_groups(runs).items():
        missing = [c for c in needed if all(c in skipped.get(r.label, ()) for r in subject_runs)]
        if missing:
            warnings.append(f"node {node}: sub-{subject} left out (no map of contrast "
                            f"{', '.join(missing)})")
        else:
            subjects.append(subject)
    group_contrasts = tuple(group.contrasts) or ((None, "intercept"),)
    return GroupPlan(label, needed, tuple(subjects), group_contrasts, node=node, label=label,
                     group=group, columns=tuple(columns)), warnings
