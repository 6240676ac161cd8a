"""Before any work: the group analyses of a study's Dataset nodes, each design, group
contrast and exchangeability block checked (part of
:func:`glm_workflows.execution.prepare.prepare`). No Nipype here."""

from __future__ import annotations

from pathlib import Path

from ..core.errors import InputError


def model_file(spec) -> str | None:
    """The model file a spec was read from (absolute), if it was read from one."""
    if spec.source == "flags" or not Path(spec.source).is_file():
        return None
    return str(Path(spec.source).absolute())


def node_group_plans(spec, runs, contrasts, skipped, warnings, chunks=None) -> list:
    """The group analyses of every Dataset node, in order (:func:`group_plans`; a node
    grouped by nothing: :func:`~glm_workflows.plan.study.pooled_plan`), each marked with
    its node; the first Dataset node grouped by contrast keeps today's names (label None)."""
    from ..spec.bsm import contrast_label, node_label

    plans = []
    for index, node in enumerate(spec.dataset_nodes):
        group = spec.group_settings(chunks, node)
        participants_file = find_participants_file(spec, node)
        label = None if index == 0 and node.group_by else node_label(node.name)
        if spec.pooled(node):
            plans.append(_pooled_plan(runs, skipped, group, node, label, warnings,
                                      model_file(spec), contrast_label))
            continue
        before = len(plans)
        for level_label, level_runs in _column_levels(spec, node, runs, label):
            plans += [plan._replace(node=node.name, label=level_label, group=group,
                                    participants_file=participants_file)
                      for plan in group_plans(level_runs, contrasts, skipped, group,
                                              participants_file, warnings, model_file(spec),
                                              node.name)]
        if len(plans) == before and group.model:  # F contrasts only: final, as in BIDS
            warnings.append(f"{model_file(spec)}: Dataset node {node.name!r}: no t contrast "
                            "reaches it (F contrasts are final): it writes nothing"
                            if model_file(spec) else f"--group {group.model}: no t contrast "
                            "(--contrast) to take to the group level (F contrasts stay at "
                            "the first level): it writes nothing")
    return plans


def _column_levels(spec, node, runs, label):
    """``(label, runs)`` of a Dataset node: one for a node grouped by contrast;
    grouped by contrast and a participants.tsv column, one per level of the column
    (sorted, as ``Factor`` sorts them) with the runs of that level's subjects, labelled
    ``<node><Column><Level>`` (``positiveGroupEqualRange``) so the levels' outputs and
    workflows never share a name. A subject without a level is refused in one line."""
    from ..core.group import read_participants
    from ..core.group_variables import level_indicators, subject_rows
    from ..spec.bsm import contrast_label, node_label, split_column

    column = split_column(node.group_by, f"node {node.name!r}")
    if column is None:
        return [(label, runs)]
    path = Path(spec.inputs.bids_dir) / "participants.tsv"
    where = f"{path}: column {column!r} (node {node.name!r}, GroupBy {list(node.group_by)})"
    if not path.is_file():
        raise InputError(f"{path}: participants.tsv not found (node {node.name!r} is grouped "
                         f"by its column {column!r})")
    table = read_participants(path)
    if column not in table.columns:
        raise InputError(f"{where}: no such column (columns: {', '.join(table.columns)})")
    subjects = list(dict.fromkeys(run.subject for run in runs))
    values = subject_rows(table, subjects, str(path))[column]
    missing = [s for s, v in zip(subjects, values.isna(), strict=True) if v]
    if missing:
        raise InputError(f"{where}: n/a for sub-{', sub-'.join(missing)} (each subject "
                         "modelled needs a level)")
    levels = level_indicators(values.to_frame(), column)
    result, names = [], {node_label(n.name) for n in spec.nodes}
    for name in levels.columns:
        level = name[len(column) + 1:]
        suffix = contrast_label(f"{column} {level}")
        level_label = node_label(node.name) + suffix[:1].upper() + suffix[1:]
        if level_label in names:
            raise InputError(f"{where}: level {level!r} names its outputs node-{level_label}, "
                             "as another node or level is named; rename the node")
        names.add(level_label)
        chosen = {s for s, hit in zip(subjects, levels[name].to_numpy() == 1, strict=True)
                  if hit}
        result.append((level_label, [run for run in runs if run.subject in chosen]))
    return result


def _pooled_plan(runs, skipped, group, node, label, warnings, model_file, contrast_label):
    """A node grouped by nothing: its one analysis, its design and contrasts checked."""
    from ..core.contrasts import contrast_matrix
    from ..core.group import pooled_design
    from ..plan.study import pooled_plan

    columns = ([("intercept", None)] if group.intercept else []) + [
        (name, contrast_label(name)) for name in group.covariates]
    plan, lines = pooled_plan(runs, columns, skipped, group, node.name, label)
    where = _dataset_x_path(model_file, name=node.name) if model_file else f"node {node.name!r}"
    try:
        design = pooled_design(plan.map_rows, columns)
        for _, expression in plan.group_contrasts:
            rows = [expression] if isinstance(expression, str) else list(expression)
            contrast_matrix(rows, [str(c) for c in design.columns],
                            "t" if isinstance(expression, str) else "F")
    except InputError as exc:
        raise InputError(f"{where}: {exc}") from None
    warnings.extend(lines)
    return plan


def find_participants_file(spec, node=None) -> str | None:
    """The participants.tsv the group design of Dataset node ``node`` (None: the first)
    reads (two-sample, covariates), checked."""
    group = spec.group_settings(node=node)
    if node is not None and spec.pooled(node):
        return None
    if not (group.model and (group.group_column or group.covariates or group.transformations
                             or group.exchangeability_blocks)):
        return None
    participants_file = str((Path(spec.inputs.bids_dir) / "participants.tsv").absolute())
    if not Path(participants_file).is_file():
        needed = "--exchangeability-blocks" if group.exchangeability_blocks and not (
            group.group_column or group.covariates or group.transformations) \
            else "--group-column/--group-covariates"
        raise InputError(f"{participants_file}: participants.tsv not found (needed by "
                         f"{needed})")
    return participants_file


def unlisted_subjects(bids_dir, maps, folder) -> list[str]:
    """A warning line naming the subjects whose maps ``folder`` holds but the raw dataset's
    ``participants.tsv`` does not list (a subject removed from the study since its maps
    were written would still enter a group model that reads no participants.tsv column);
    none without that file or when :func:`~glm_workflows.core.group.read_participants`
    refuses it."""
    from ..core.group import read_participants

    path = Path(bids_dir) / "participants.tsv" if bids_dir else None
    if path is None or not path.is_file():
        return []
    try:
        listed = set(read_participants(path).index)
    except InputError:  # a table the group model refuses, if it reads it, says why then
        return []
    missing = [m.subject for m in maps if m.subject not in listed]
    if not missing:
        return []
    return [f"{path}: sub-{', sub-'.join(missing)} not listed, but {folder} holds their "
            "maps: they enter the group model (choose subjects with --participant-label)"]


def group_plans(runs, contrasts, skipped, group, participants_file, warnings,
                model_file=None, node=None) -> list:
    """The group analyses, each design and group contrast checked before any work; with a
    model file, a design's refusal names the file and its Dataset node's ``Model.X``."""
    if not group.model:
        return []
    from ..core.contrasts import contrast_matrix
    from ..core.entities import check_label
    from ..core.group import group_design, read_participants
    from ..plan.study import group_plans as plan_groups
    from ..spec.frozen import thaw

    participants = read_participants(participants_file) if participants_file else None
    node_design = bool(group.transformations) or not group.intercept

    def design(subjects):
        try:
            return group_design(list(subjects), group.model, participants,
                                group_column=group.group_column, covariates=group.covariates,
                                demean=group.demean, transformations=thaw(group.transformations),
                                intercept=group.intercept)
        except InputError as exc:
            if not model_file:
                raise
            raise InputError(f"{_dataset_x_path(model_file, node_design, node)}: {exc}") \
                from None

    plans, lines = plan_groups(runs, contrasts, skipped, group,
                               lambda subjects: list(design(subjects).columns))
    checked = []
    for plan in plans:
        built = design(plan.subjects)
        columns = [str(c) for c in built.columns]
        for name, expression in plan.group_contrasts:
            if name:
                check_label(name, "group contrast")
            try:
                if isinstance(expression, str):
                    contrast_matrix([expression], columns, "t")
                else:
                    contrast_matrix(list(expression), columns, "F")
            except InputError as exc:
                raise InputError(f"group contrast {name or plan.name}: {exc}") from None
        if group.permutations and not group.exchangeability_blocks:
            lines += _relabellings_warnings(plan, built)
        checked.append(_with_blocks(plan, group, participants, participants_file, built)
                       if group.exchangeability_blocks else plan)
    warnings.extend(lines)
    return checked


def _relabellings_warnings(plan, design) -> list[str]:
    """A warning line per t group contrast of ``plan`` whose subjects allow too few
    distinct relabellings for the FWE maps' level (:func:`subject_relabellings_warning`)."""
    from ..core.contrasts import contrast_matrix
    from ..core.exchangeability import subject_relabellings_warning

    columns = [str(c) for c in design.columns]
    lines = []
    for name, expression in plan.group_contrasts:
        if isinstance(expression, str):
            weights = contrast_matrix([expression], columns, "t")[0]
            line = subject_relabellings_warning(design, weights, alpha=0.05)  # FWE maps' level
            if line:
                lines.append(f"--permutations (group contrast {name or plan.name}): {line}")
    return lines


def _with_blocks(plan, group, participants, source, design):
    """A group plan with its subjects' exchangeability blocks, checked against every group
    contrast's test (sign flips where nilearn flips signs, :func:`sign_flip_test`, else
    shuffles)."""
    from ..core.contrasts import contrast_matrix
    from ..core.exchangeability import block_labels, check_blocks
    from ..core.permutation_problem import sign_flip_test

    blocks = block_labels(participants, plan.subjects, group.exchangeability_blocks, source)
    columns = [str(c) for c in design.columns]
    for _, expression in plan.group_contrasts:
        weights = contrast_matrix([expression], columns, "t")[0]
        check_blocks(blocks, sign_flips=sign_flip_test(design, weights),
                     whole_blocks=group.whole_blocks, alpha=0.05)  # the FWE maps' level
    return plan._replace(blocks=blocks)


def _dataset_x_path(model_file, node: bool = False, name: str | None = None) -> str:
    """``<model file>: Nodes[i].Model.X``: where a model file's group design comes from
    (``node``: ``<model file>: Nodes[i]``, for a design the node's transformations make),
    of Dataset node ``name`` (None: the first)."""
    from ..core.stats_model_read import read_stats_model
    from ..spec.bsm import check_node_graph

    model = read_stats_model(model_file)
    _, datasets = check_node_graph(model)
    dataset = next((d for d in datasets if d.name == name), datasets[0])
    return dataset.path if node else f"{dataset.path}.Model.X"  # the path names the file
