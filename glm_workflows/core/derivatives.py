"""BIDS-Derivatives names of the outputs, and writing them all-or-nothing."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from importlib import metadata
from pathlib import Path

from .. import __version__
from .errors import InputError

BIDS_LABEL_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def check_label(value: str, entity: str) -> str:
    """A BIDS label: letters and digits only (no path separators, dots or dashes)."""
    value = str(value)
    if not value or any(char not in BIDS_LABEL_CHARS for char in value):
        raise InputError(f"{entity} label {value!r}: use letters and digits only")
    return value


def bids_prefix(subject: str, task: str, session: str | None = None,
                run: str | None = None) -> str:
    """``sub-<label>[_ses-<label>]_task-<label>[_run-<index>]``."""
    parts = [f"sub-{check_label(subject, 'subject')}"]
    if session:
        parts.append(f"ses-{check_label(session, 'session')}")
    parts.append(f"task-{check_label(task, 'task')}")
    if run:
        parts.append(f"run-{check_label(run, 'run')}")
    return "_".join(parts)


def dataset_description() -> dict:
    """The BIDS-Derivatives ``dataset_description.json`` of an output directory."""
    return {
        "Name": "glm-workflows first-level statistics",
        "BIDSVersion": "1.8.0",
        "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "glm-workflows", "Version": __version__}],
        "SoftwareVersions": software_versions(),
    }


def software_versions() -> dict:
    """Installed versions of the packages the results depend on."""
    versions = {}
    for package in ("nipype", "nilearn", "nibabel", "numpy", "scipy", "pandas", "matplotlib"):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    return versions


def write_derivatives(files: dict, out_dir: str | os.PathLike, subject: str,
                      sidecar_fields: dict | None = None) -> list[str]:
    """Copy files into ``<out_dir>/sub-<subject>/`` all at once.

    Everything is first copied to a staging folder inside ``out_dir``; only when every
    copy succeeded is each file moved into place with an atomic rename. A failure
    leaves earlier results untouched and no partial file behind.

    Parameters
    ----------
    files : dict of str to str
        Destination file name (no folder) to source path.
    out_dir : str or PathLike
        The derivatives root.
    subject : str
        Subject label (without ``sub-``).
    sidecar_fields : dict or None
        Added to every JSON file written (e.g. ``Sources``, ``SoftwareVersions``).

    Returns
    -------
    written : list of str
        Destination paths, sorted.
    """
    out_dir = Path(out_dir)
    target = out_dir / f"sub-{check_label(subject, 'subject')}"
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{out_dir}: output directory cannot be created "
                         f"({exc.strerror})") from None
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=out_dir))
    try:
        for name, source in files.items():
            if sidecar_fields and name.endswith(".json"):
                content = {**json.loads(Path(source).read_text()), **sidecar_fields}
                (staging / name).write_text(json.dumps(content, indent=2))
            else:
                shutil.copyfile(source, staging / name)
        (staging / "dataset_description.json").write_text(
            json.dumps(dataset_description(), indent=2))
        written = []
        for name in files:
            os.replace(staging / name, target / name)
            written.append(str(target / name))
        os.replace(staging / "dataset_description.json", out_dir / "dataset_description.json")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return sorted(written)


#: A subject's provenance record (in its folder); at the root, the list of them.
PROVENANCE_FILE = "provenance.json"
