"""The provenance record of a run: inputs with checksums, parameters, graph, timings."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict
from datetime import datetime, timezone
from pathlib import Path

from . import __version__
from .core.derivatives import PROVENANCE_FILE, software_versions


def sha256_of(path: str | os.PathLike, block: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def input_records(runs) -> list[dict]:
    """Every input file of every run (the ``.hdr`` of an Analyze pair too), with its sha256."""
    records = []
    for run in runs:
        files = [("bold", f) for f in run.bold_files]
        files += [("bold-header", str(Path(f).with_suffix(".hdr")))
                  for f in run.bold_files if str(f).endswith(".img")]
        files.append(("events", run.events_file))
        if run.confounds_file:
            files.append(("confounds", run.confounds_file))
        for role, path in files:
            records.append({"path": str(path), "sha256": sha256_of(path), "role": role,
                            "subject": run.subject, "session": run.session, "run": run.run})
    return records


def graph_summary(workflow) -> dict:
    """Nodes and edges of the workflow graph (before iterables are expanded)."""
    graph = workflow._create_flat_graph()
    return {
        "Nodes": sorted(node.fullname for node in graph.nodes()),
        "Edges": sorted([u.fullname, v.fullname] for u, v in graph.edges()),
    }


def node_subject(name: str) -> str | None:
    """Subject label in a node name (``sub_01_task_...wf.fit`` -> ``01``)."""
    parts = name.split("_")
    return parts[1] if len(parts) > 1 and parts[0] == "sub" else None


def build_provenance(*, runs, parameters: dict, workflow, records, started: float,
                     finished: float, command_line: list[str], plugin: str) -> dict:
    """The provenance record as a JSON-serialisable dict."""
    return {
        "GeneratedBy": {
            "Name": "glm-workflows",
            "Version": __version__,
            "CommandLine": " ".join(command_line),
            "Date": datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="seconds"),
            "WallTimeSeconds": round(finished - started, 3),
            "Plugin": plugin,
        },
        "SoftwareVersions": software_versions(),
        "Parameters": parameters,
        "Inputs": input_records(runs),
        "Graph": graph_summary(workflow),
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
    records = {}
    for subject in subjects:
        records[subject] = {
            **record,
            "Inputs": [i for i in record["Inputs"] if i["subject"] == subject],
            "Nodes": [n for n in record["Nodes"] if n["subject"] == subject],
            "Graph": {
                "Nodes": [n for n in graph["Nodes"] if subject_of_graph_node(n) == subject],
                "Edges": [e for e in graph["Edges"] if subject_of_graph_node(e[0]) == subject],
            },
        }
    return records


def write_provenance(output_dir: str | os.PathLike, record: dict, subjects) -> list[Path]:
    """Write each subject's record to ``<output_dir>/sub-<label>/provenance.json``.

    The command line writes them into its staging folder, which is committed subject
    folder by subject folder only when the run succeeded; the root ``provenance.json``
    that lists them is rebuilt then (:func:`glm_workflows.outputs.write_root_files`).
    """
    written = []
    for subject, subject_record in subject_records(record, subjects).items():
        target = Path(output_dir) / f"sub-{subject}" / PROVENANCE_FILE
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(subject_record, indent=2, default=str))
        written.append(target)
    return written
