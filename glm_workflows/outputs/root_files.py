"""The output folder's shared root files, rewritten from what its folders hold:
``dataset_description.json`` (the datasets every analysis' record links), the
``provenance.json`` listing of the analyses' records, ``index.html``."""

from __future__ import annotations

import json
from pathlib import Path

from ..core.analyses import analysis_record
from ..core.derivatives import dataset_description, write_text_atomic
from ..core.naming import (
    DESCRIPTION_FILE,
    GROUP_FOLDER,
    PROVENANCE_FILE,
    parse_session_folder,
    report_page,
    subject_folder,
)
from .folders import folder_analyses, subject_folders


def write_root_files(output_dir, write_index) -> None:
    """Rewrite the root files from the subject folders present (call with the lock held).

    ``dataset_description.json``; ``provenance.json``, which lists each analysis' record
    in each subject folder (``sub-<label>/<analysis>_provenance.json``), in each session
    folder (``sub-<label>/ses-<label>/...``) and in the group
    folder, with its date, command line and working directory; and ``index.html``
    (:func:`write_index_of_reports`).
    """
    output_dir = Path(output_dir)
    write_description(output_dir)
    subjects = subject_folders(output_dir)
    listing = {"Subjects": [{"Subject": subject, **entry} for subject in subjects
                            for folder in _record_folders(output_dir, subject)
                            for entry in _records(output_dir, folder)],
               "Group": _records(output_dir, GROUP_FOLDER)}
    write_text_atomic(output_dir / PROVENANCE_FILE, json.dumps(listing, indent=2))
    write_index_of_reports(output_dir, write_index)


def write_index_of_reports(output_dir, write_index) -> list[str]:
    """``index.html`` through ``write_index(output_dir, subjects)``, listing every subject
    whose report page the folder holds (those of earlier runs too), if any.

    Returns
    -------
    subjects : list of str
        The labels listed (empty: no report, no index written).
    """
    output_dir = Path(output_dir)
    with_reports = [s for s in subject_folders(output_dir)
                    if (output_dir / report_page(s)).exists()]
    if with_reports:
        write_index(output_dir, with_reports)
    return with_reports


def _record_folders(output_dir: Path, subject: str) -> list[str]:
    """A subject's folder and its session folders (``sub-<s>/ses-<t>``), each with its
    analyses' records, relative to ``output_dir``."""
    folder = subject_folder(subject)
    sessions = sorted(p.name for p in (Path(output_dir) / folder).iterdir()
                      if p.is_dir() and parse_session_folder(p.name))
    return [folder, *(f"{folder}/{name}" for name in sessions)]


def _records(output_dir: Path, folder: str) -> list[dict]:
    """``Analysis``, ``Record`` (its path), ``Date``, ``CommandLine`` and
    ``WorkingDirectory`` of each analysis' record in ``output_dir/folder``."""
    entries = []
    for analysis in folder_analyses(output_dir / folder):
        record = f"{folder}/{analysis_record(analysis)}"
        try:
            generated = json.loads((output_dir / record).read_text()).get("GeneratedBy", {})
        except (OSError, ValueError, AttributeError):
            generated = {}
        entries.append({"Analysis": analysis, "Record": record,
                        "Date": generated.get("Date"),
                        "CommandLine": generated.get("CommandLine"),
                        "WorkingDirectory": generated.get("WorkingDirectory")})
    return entries


def write_description(output_dir, replace: bool = True) -> None:
    """Write ``dataset_description.json`` (atomically); with ``replace`` False, only if
    the folder has none."""
    path = Path(output_dir) / DESCRIPTION_FILE
    if replace or not path.exists():
        write_text_atomic(path, json.dumps(dataset_description(recorded_links(output_dir)),
                                           indent=2))


def recorded_links(output_dir) -> dict:
    """The ``DatasetLinks`` of every analysis' record in the folder (subject folders and
    the group folder), together: the datasets the folder's outputs come from."""
    output_dir = Path(output_dir)
    links: dict = {}
    for folder in [*(folder for s in subject_folders(output_dir)
                     for folder in _record_folders(output_dir, s)), GROUP_FOLDER]:
        for analysis in folder_analyses(output_dir / folder):
            try:
                record = json.loads((output_dir / folder / analysis_record(analysis))
                                    .read_text())
                found = dict(record.get("DatasetLinks") or {})
            except (OSError, ValueError, AttributeError, TypeError):
                continue
            for name, uri in found.items():
                links.setdefault(name, uri)
    return links
