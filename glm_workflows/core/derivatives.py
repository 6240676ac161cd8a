"""Writing a model's outputs all-or-nothing, and the folder's description.

The names come from :mod:`glm_workflows.core.naming`; ``bids_prefix``, ``check_label`` and
``PROVENANCE_FILE`` are re-exported for the modules that still import them from here.
"""

from __future__ import annotations

import functools
import json
import os
import secrets
import shutil
import tempfile
from importlib import metadata
from pathlib import Path

from .. import __version__
from .bids_uris import bids_uris
from .errors import InputError
from .naming import DESCRIPTION_FILE, output_folder, subject_folder


def dataset_description(links: dict | None = None) -> dict:
    """The BIDS-Derivatives ``dataset_description.json`` of an output directory.

    ``links``: the datasets its outputs' ``Sources`` point into (name -> URI,
    :mod:`glm_workflows.core.bids_uris`), listed as ``DatasetLinks`` and as the
    ``SourceDatasets``. ``BIDSVersion`` is the BIDS schema's the names follow
    (:mod:`bidsschematools`); ``GeneratedBy.CodeURL`` is the package's source URL when its
    metadata gives one.
    """
    generated = {"Name": "glm-workflows", "Version": __version__}
    code_url = _code_url()
    if code_url:
        generated["CodeURL"] = code_url
    description = {
        "Name": "glm-workflows statistics",
        "BIDSVersion": _bids_version(),
        "DatasetType": "derivative",
        "GeneratedBy": [generated],
    }
    if links:
        description["SourceDatasets"] = [{"URL": uri} for uri in sorted(set(links.values()))]
        description["DatasetLinks"] = dict(sorted(links.items()))
    return description


@functools.cache
def _bids_version() -> str:
    from bidsschematools.schema import load_schema

    return str(load_schema().bids_version)


@functools.cache
def _code_url() -> str | None:
    """The ``Source`` (else ``Homepage``) URL of the package's metadata, if any."""
    try:
        urls = metadata.metadata("glm-workflows").get_all("Project-URL") or []
    except metadata.PackageNotFoundError:
        return None
    found = dict(url.split(", ", 1) for url in urls if ", " in url)
    return found.get("Source") or found.get("Homepage")


def software_versions() -> dict:
    """Installed versions of the packages the results depend on."""
    return dict(_installed_versions())


@functools.cache
def _installed_versions() -> tuple:
    """``(package, version or None)`` pairs, read from the package metadata once per process
    (each look-up scans the installed distributions; every sink and description needs them)."""
    versions = []
    for package in ("nipype", "nilearn", "nibabel", "numpy", "scipy", "pandas", "matplotlib"):
        try:
            versions.append((package, metadata.version(package)))
        except metadata.PackageNotFoundError:
            versions.append((package, None))
    return tuple(versions)


def write_derivatives(files: dict, out_dir: str | os.PathLike, subject: str | None,
                      sidecar_fields: dict | None = None, folder: str | None = None) -> list[str]:
    """Copy files into their folders of ``<out_dir>`` (or ``<out_dir>/<folder>/``) all at once.

    A file ``sub-<s>_ses-<t>_...`` goes to ``sub-<s>/ses-<t>/``, any other to
    ``sub-<subject>/`` (:func:`~glm_workflows.core.naming.output_folder`).

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
        Added to every JSON file written (e.g. ``Sources``, ``SoftwareVersions``);
        ``Sources`` (paths, absolute or relative to ``out_dir``) are written as BIDS URIs
        (:func:`~glm_workflows.core.bids_uris.bids_uris`).
    folder : str or None
        The folder instead of the subject's (e.g. the group level's).

    Returns
    -------
    written : list of str
        Destination paths, sorted.
    """
    out_dir = Path(out_dir)
    targets = {name: out_dir / (folder or output_folder(name, subject)) for name in files}
    try:
        for target in set(targets.values()) or {out_dir / (folder or subject_folder(subject))}:
            target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"{out_dir}: output directory cannot be created "
                         f"({exc.strerror})") from None
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=out_dir))
    try:
        fields, links = dict(sidecar_fields or {}), {}
        if "Sources" in fields:  # BIDS URIs, the datasets they point into linked
            fields["Sources"], links = bids_uris(fields["Sources"], out_dir)
        for name, source in files.items():
            if fields and name.endswith(".json"):
                content = {**json.loads(Path(source).read_text()), **fields}
                (staging / name).write_text(json.dumps(content, indent=2))
            else:
                shutil.copyfile(source, staging / name)
        (staging / DESCRIPTION_FILE).write_text(json.dumps(dataset_description(links),
                                                           indent=2))
        written = []
        for name in files:
            os.replace(staging / name, targets[name] / name)
            written.append(str(targets[name] / name))
        os.replace(staging / DESCRIPTION_FILE, out_dir / DESCRIPTION_FILE)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return sorted(written)


def write_text_atomic(path, text: str) -> Path:
    """Write ``text`` to a temporary file beside ``path``, then rename it into place: a
    reader sees the old content or the new, never a part; a failure leaves the old."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
