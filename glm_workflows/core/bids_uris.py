"""Where an output comes from, as BIDS says it: BIDS URIs (``bids:<dataset>:<path>``) for
``Sources``, and the ``DatasetLinks`` naming each dataset they point into.

A source is found in the dataset whose root (the nearest folder above it holding a
``dataset_description.json``) contains it: the raw dataset is linked as ``raw``, a
derivatives dataset by its folder's name in letters and digits (``fmriprep``), a second
dataset of the same name with ``2``, ``3``... appended; a path inside the output folder
itself (a staging folder inside it writes for it), or given relative to it, is
``bids::<path>``. A file in no dataset (the SPM
auditory scans, files given with ``--func``) keeps its absolute ``file://`` URI.
"""

from __future__ import annotations

import functools
import json
import os
import re
from pathlib import Path

from .naming import DESCRIPTION_FILE, STAGING_PREFIX


@functools.lru_cache(maxsize=1024)
def dataset_root(folder: Path) -> Path | None:
    """The nearest folder from ``folder`` up that holds a ``dataset_description.json``."""
    for candidate in (folder, *folder.parents):
        if (candidate / DESCRIPTION_FILE).is_file():
            return candidate
    return None


@functools.lru_cache(maxsize=1024)
def _link_name(root: Path) -> str:
    """``raw`` for a raw dataset, else the folder's name in letters and digits."""
    try:
        kind = json.loads((root / DESCRIPTION_FILE).read_text()).get("DatasetType", "raw")
    except (OSError, ValueError, AttributeError):
        kind = "raw"
    if kind == "raw":
        return "raw"
    return re.sub(r"[^A-Za-z0-9]", "", root.name) or "derivatives"


def bids_uri(source: str, output_dir, links: dict) -> str:
    """``source`` (a path, absolute or relative to ``output_dir``) as a BIDS URI, the
    dataset it points into added to ``links`` (name -> ``file://`` URI of its root)."""
    path = Path(source)
    if not path.is_absolute():
        return f"bids::{path.as_posix()}"
    output_dir = Path(output_dir).absolute()
    if output_dir.name.startswith(STAGING_PREFIX):  # written for the folder it is staged in
        output_dir = output_dir.parent
    if path.is_relative_to(output_dir):
        return f"bids::{path.relative_to(output_dir).as_posix()}"
    root = dataset_root(Path(os.path.abspath(path)).parent)
    if root is None:
        return path.as_uri()
    name, uri, count = _link_name(root), root.as_uri(), 1
    while links.get(name if count == 1 else f"{name}{count}", uri) != uri:
        count += 1
    name = name if count == 1 else f"{name}{count}"
    links[name] = uri
    return f"bids:{name}:{path.relative_to(root).as_posix()}"


def bids_uris(sources, output_dir) -> tuple[list[str], dict]:
    """Each of ``sources`` as a BIDS URI, and the ``DatasetLinks`` they need."""
    links: dict = {}
    return [bids_uri(str(source), output_dir, links) for source in sources], links
