"""The provenance record of a run: inputs with checksums, parameters, graph, timings."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shlex
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

from .. import __version__
from ..core.analyses import analysis_record
from ..core.bids_uris import bids_uris
from ..core.derivatives import software_versions, write_text_atomic
from ..core.naming import parse_session_folder, subject_folder

#: The inputs' checksums of earlier runs, in the work directory:
#: ``{path: [size, mtime_ns, inode, sha256]}``.
CHECKSUMS_FILE = "input_checksums.json"


def sha256_of(path: str | os.PathLike, block: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def load_checksums(path) -> dict:
    """The checksums kept in ``path`` (see :data:`CHECKSUMS_FILE`); empty if unreadable."""
    try:
        checksums = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return checksums if isinstance(checksums, dict) else {}


def save_checksums(path, checksums: dict) -> None:
    """Add ``checksums`` to those kept in ``path`` (atomically; a failure only costs the
    next run the reading of its inputs)."""
    path = Path(path)
    merged = {**load_checksums(path), **checksums}
    with contextlib.suppress(OSError):
        write_text_atomic(path, json.dumps(merged))


def cached_sha256(path, checksums: dict) -> str:
    """SHA-256 of a file, from ``checksums`` if its size, modification time (ns) and inode
    are those recorded there; else computed and recorded."""
    stat = os.stat(path)
    signature = [stat.st_size, stat.st_mtime_ns, stat.st_ino]
    entry = checksums.get(str(path))
    if isinstance(entry, list) and entry[:3] == signature:
        return entry[3]
    digest = sha256_of(path)
    checksums[str(path)] = [*signature, digest]
    return digest


def input_records(runs, checksums_file=None) -> list[dict]:
    """Every input file of every run (the ``.hdr`` of an Analyze pair too), with its sha256.

    Parameters
    ----------
    runs : list of RunInputs
    checksums_file : str, PathLike or None
        Where the checksums of earlier runs are kept (see :data:`CHECKSUMS_FILE`): a file
        whose size, modification time and inode are unchanged is not read again. None:
        every file is read.

    Returns
    -------
    records : list of dict
        ``path``, ``sha256``, ``role`` (``bold``, ``bold-header``, ``events``,
        ``confounds``, ``mask``), ``subject``, ``session``, ``run``.
    """
    checksums = load_checksums(checksums_file) if checksums_file else {}
    records = []
    for run in runs:
        files = [("bold", f) for f in run.bold_files]
        files += [("bold-header", str(Path(f).with_suffix(".hdr")))
                  for f in run.bold_files if str(f).endswith(".img")]
        files.append(("events", run.events_file))
        if run.confounds_file:
            files.append(("confounds", run.confounds_file))
        if run.mask_file:
            files.append(("mask", run.mask_file))
        for role, path in files:
            records.append({"path": str(path), "sha256": cached_sha256(path, checksums),
                            "role": role, "subject": run.subject, "session": run.session,
                            "run": run.run})
    if checksums_file:
        save_checksums(checksums_file, checksums)
    return records


def run_sources(runs) -> list[dict]:
    """Where each run's TR, slice-time reference and brain mask come from
    (``RunInputs.sources``), and which of them fell back for lack of an input.

    Returns
    -------
    records : list of dict
        ``subject``, ``run`` (the run's BIDS prefix), the sources (``MaskSource``, ...)
        and ``Fallbacks`` (source key -> why).
    """
    return [{"subject": run.subject, "run": run.prefix, **run.sources,
             "Fallbacks": dict(run.fallbacks)} for run in runs]


def node_subject(name: str) -> str | None:
    """Subject label in a node name (``sub_01_task_...wf.fit`` -> ``01``)."""
    parts = name.split("_")
    return parts[1] if len(parts) > 1 and parts[0] == "sub" else None


def file_records(files: list[dict], checksums_file=None) -> list[dict]:
    """``files`` (dicts with a ``path``, e.g. a group run's subject maps) each with its
    sha256 (see :func:`input_records` for ``checksums_file``)."""
    checksums = load_checksums(checksums_file) if checksums_file else {}
    records = [{**item, "sha256": cached_sha256(item["path"], checksums)} for item in files]
    if checksums_file:
        save_checksums(checksums_file, checksums)
    return records


def build_provenance(*, runs, parameters: dict, graph: dict, records, started: float,
                     finished: float, command_line: list[str], working_directory: str,
                     plugin: str, inputs: list[dict] | None = None) -> dict:
    """The provenance record as a JSON-serialisable dict.

    The inputs' checksums are kept in :data:`CHECKSUMS_FILE` in ``parameters['work_dir']``
    (when given), so that a rerun reads only the inputs that changed. ``graph``: the
    workflow's nodes and edges (:func:`glm_workflows.execution.graph.graph_summary`).
    ``inputs``: files
    read instead of the runs' (:func:`file_records`; a run of the group level alone).
    ``command_line`` (the entry point and its arguments,
    :func:`glm_workflows.cli.invocation`) is recorded shell-quoted (``shlex.join``), with
    the ``working_directory`` it ran in: pasted there, it runs again.
    """
    work_dir = parameters.get("work_dir")
    checksums_file = Path(work_dir) / CHECKSUMS_FILE if work_dir else None
    inputs = (input_records(runs, checksums_file) if inputs is None
              else file_records(inputs, checksums_file))
    _, links = bids_uris([item["path"] for item in inputs], parameters.get("output_dir") or "/")
    return {
        "GeneratedBy": {
            "Name": "glm-workflows",
            "Version": __version__,
            "CommandLine": shlex.join(command_line),
            "WorkingDirectory": str(working_directory),
            "Date": datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="seconds"),
            "WallTimeSeconds": round(finished - started, 3),
            "Plugin": plugin,
        },
        "SoftwareVersions": software_versions(),
        "Parameters": parameters,
        "Inputs": inputs,
        "DatasetLinks": links,
        "RunSources": run_sources(runs),
        "Graph": graph,
        "Nodes": [{**asdict(record), "subject": node_subject(record.name),
                   "status": "cached" if record.cached
                   else "ran" if record.status == "end" else "failed"}
                  for record in records],
    }


def subject_records(record: dict, subjects) -> dict:
    """The run's record split by subject: each keeps the shared fields (software,
    parameters, command line) and only its own inputs, nodes and graph."""
    def subject_of_graph_node(fullname: str):
        return node_subject(fullname.split(".", 1)[-1])

    graph = record["Graph"]
    inputs = _grouped(record["Inputs"], lambda item: item["subject"])
    sources = _grouped(record.get("RunSources", []), lambda item: item["subject"])
    nodes = _grouped(record["Nodes"], lambda item: item["subject"])
    graph_nodes = _grouped(graph["Nodes"], subject_of_graph_node)
    edges = _grouped(graph["Edges"], lambda edge: subject_of_graph_node(edge[0]))
    return {subject: {**record, "Inputs": inputs.get(subject, []),
                      "RunSources": sources.get(subject, []),
                      "Nodes": nodes.get(subject, []),
                      "Graph": {"Nodes": graph_nodes.get(subject, []),
                                "Edges": edges.get(subject, [])}}
            for subject in subjects}


def _grouped(items, key) -> dict:
    """``items`` in lists by ``key(item)``, in their order."""
    groups: dict = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return groups


def write_provenance(output_dir: str | os.PathLike, record: dict, subjects,
                     analysis: str) -> list[Path]:
    """Write each subject's part of the record of ``analysis`` to
    ``<output_dir>/sub-<label>/<analysis>_provenance.json``, and to each of the subject's
    session folders (``sub-<label>/ses-<label>/``) the run wrote into: each is a folder of
    its own, with its record.

    The command line writes them into its staging folder, which is committed subject
    folder by subject folder only when the run succeeded; the commit adds the files the
    analysis wrote (``Outputs``), and the root ``provenance.json`` that lists the records
    is rebuilt then (:mod:`glm_workflows.outputs.folders`).
    """
    written = []
    for subject, subject_record in subject_records(record, subjects).items():
        folder = Path(output_dir) / subject_folder(subject)
        sessions = sorted(p for p in folder.iterdir()
                          if p.is_dir() and parse_session_folder(p.name)) \
            if folder.is_dir() else []
        written += [write_analysis_record(target, subject_record, analysis)
                    for target in [folder, *sessions]]
    return written


def write_analysis_record(folder: str | os.PathLike, record: dict, analysis: str) -> Path:
    """Write ``record`` as the record of ``analysis`` in ``folder`` (a subject or the group
    folder, created if needed): ``<folder>/<analysis>_provenance.json``."""
    target = Path(folder) / analysis_record(analysis)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps({**record, "Analysis": analysis}, indent=2, default=str))
    return target
