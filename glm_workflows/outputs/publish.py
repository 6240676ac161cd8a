"""What a run writes beside its maps: the subjects' HTML reports and the output folder's
root files (index, group report, provenance listing, ``dataset_description.json``)."""

from __future__ import annotations

from pathlib import Path


def root_files(output_dir) -> None:
    """Rewrite the output folder's shared root files (see :mod:`glm_workflows.outputs.folders`);
    with a group level in place, ``group.html`` from it first, so the index links it."""
    from ..core.naming import GROUP_FOLDER
    from ..report import write_group_report, write_index
    from .root_files import write_root_files

    if (Path(output_dir) / GROUP_FOLDER).is_dir():
        write_group_report(output_dir)
    write_root_files(output_dir, write_index)


def description_file(output_dir) -> None:
    """The participant level's root files: ``dataset_description.json``, written if
    absent (the group level, or a run of both levels, lists the analyses' records), and
    ``index.html``, listing every subject report the folder holds (those of other
    participant-level runs too)."""
    from ..report import write_index
    from .root_files import write_description, write_index_of_reports

    write_description(output_dir, replace=False)
    write_index_of_reports(output_dir, write_index)


def write_reports(output_dir, subjects, n_procs: int = 1) -> list[Path]:
    """One HTML report per subject (in ``n_procs`` processes), ``sub-<label>.html``."""
    from ..report import write_subject_report

    if n_procs > 1 and len(subjects) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(min(n_procs, len(subjects)),
                                 mp_context=multiprocessing.get_context("fork")) as pool:
            return list(pool.map(write_subject_report, [output_dir] * len(subjects),
                                 subjects))
    return [write_subject_report(output_dir, subject) for subject in subjects]
