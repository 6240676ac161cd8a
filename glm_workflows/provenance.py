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


def write_provenance(output_dir: str | os.PathLike, record: dict) -> Path:
    """Write ``<output_dir>/provenance.json``.

    The command line writes it into its staging folder, which moves it into place with
    the other outputs (atomically) only when the run succeeded.
    """
    target = Path(output_dir) / PROVENANCE_FILE
    target.write_text(json.dumps(record, indent=2, default=str))
    return target
