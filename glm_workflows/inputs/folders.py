"""The folders and memory an analysis is given, checked before any work: the output
folder writable, the work directory creatable, the memory limit enough for the largest
node."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from ..core.errors import InputError


def _check_not_broken(path: Path, flag: str) -> None:
    """Refuse a folder that is, or lies under, a broken symbolic link (a scratch volume
    not mounted, a link to a deleted folder): it cannot be created (was: a traceback)."""
    for link in (path, *path.parents):
        if link.is_symlink() and not link.exists():
            raise InputError(f"{flag} {path}: {link} is a broken symbolic link (to "
                             f"{os.readlink(link)})")


def _probe_write(folder: Path) -> None:
    """Write and delete a file of its own name in ``folder`` (OSError if it cannot): not
    ``os.access``, which root passes on /proc or a read-only mount; a name of its own, as
    concurrent runs (array tasks) probe the same folder."""
    probe = folder / f".write-test-{uuid.uuid4().hex}"
    probe.write_text("")
    probe.unlink()


def check_output_dir(path) -> Path:
    """Create the output folder if needed and make sure it is writable."""
    path = Path(path)
    _check_not_broken(path.absolute(), "--output-dir")
    if path.exists() and not path.is_dir():
        raise InputError(f"--output-dir {path}: a file, not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        _probe_write(path)
    except OSError as exc:
        raise InputError(f"{path}: output directory is not writable ({exc.strerror})") from None
    return path


def check_folders_writable(output_dir, folders) -> None:
    """Refuse, before any work, an existing folder of the output folder that the run's
    commit replaces (``folders``: subject folders, ``group``) when it, or a folder in it,
    cannot be written: the commit swaps the new folder in and deletes the one it replaced,
    which needs every folder in it writable (was: the run's work done, then a failed
    commit that left the replaced folder beside the new one)."""
    for name in sorted(set(folders)):
        top = Path(output_dir) / name
        if not top.is_dir() or top.is_symlink():
            continue
        for where, _, _ in os.walk(top):
            try:
                _probe_write(Path(where))
            except OSError as exc:
                raise InputError(f"{where}: not writable ({exc.strerror}); this run replaces "
                                 f"{name}/ when it ends, which needs every folder in it "
                                 "writable (fix the permissions or use another "
                                 "--output-dir)") from None


def check_output_outside_raw(output_dir, bids_dir) -> None:
    """Refuse an output folder that is the raw BIDS folder or lies in one of its ``sub-*``
    folders: the maps would be written among the raw data (fMRIPrep refuses the first too).
    Elsewhere inside it (``BIDS_DIR/derivatives/glm``, the usual place) is accepted."""
    if output_dir is None or bids_dir is None:
        return
    output, raw = Path(output_dir).resolve(), Path(bids_dir).resolve()
    inside = output.relative_to(raw).parts if output.is_relative_to(raw) else None
    if inside is None or (inside and not inside[0].startswith("sub-")):
        return
    where = "is the BIDS folder" if not inside else f"is inside the BIDS folder's {inside[0]}/"
    raise InputError(f"--output-dir {output_dir}: {where} ({bids_dir}); the outputs would be "
                     f"written among the raw data (e.g. {raw / 'derivatives' / 'glm'})")


def check_output_outside_derivatives(output_dir, derivatives) -> None:
    """Refuse an output folder that is one of the ``--derivatives`` folders (fMRIPrep's) or
    lies in one of its ``sub-*`` folders: the maps would be written among fMRIPrep's
    outputs, under its ``dataset_description.json``."""
    output = Path(output_dir).resolve()
    for folder in derivatives or ():
        inside = output.relative_to(Path(folder).resolve()).parts \
            if output.is_relative_to(Path(folder).resolve()) else None
        if inside is None or (inside and not inside[0].startswith("sub-")):
            continue
        where = "is" if not inside else f"is inside {inside[0]}/ of"
        raise InputError(f"--output-dir {output_dir}: {where} the --derivatives folder "
                         f"{folder}; the outputs would be written among fMRIPrep's (give "
                         "a folder of their own, e.g. BIDS_DIR/derivatives/glm)")


def nearest_existing(path) -> Path:
    """``path`` if it exists, else its nearest existing parent (what creating it needs)."""
    path = Path(path).absolute()
    return next(p for p in (path, *path.parents) if p.exists())


def check_work_dir(path) -> Path:
    """Refuse a work directory that cannot be created or written, without creating it
    (bad input leaves no work directory behind)."""
    path = Path(path).absolute()
    _check_not_broken(path, "--work-dir")
    existing = nearest_existing(path)
    if not existing.is_dir():
        raise InputError(f"--work-dir {path}: {existing} is a file, not a directory")
    try:
        _probe_write(existing)
    except OSError as exc:
        raise InputError(f"--work-dir {path}: {existing} is not writable "
                         f"({exc.strerror})") from None
    return path


def check_memory(mem_gb: list, limit_gb: float | None, source: str | None = None, *,
                 save_residuals: bool = False) -> None:
    """Refuse a MultiProc memory limit below the largest node's estimate (that node
    could never start; the fit's includes the residuals it writes with
    ``save_residuals``); ``source`` says where the limit comes from when it is not
    ``--mem-gb`` (MultiProc's default share of the process's memory limit)."""
    from ..plan.study import fit_memory_gb

    if limit_gb is None or not mem_gb:
        return
    largest = max(max(*(gb for node, gb in estimates.items() if node != "residuals"),
                      fit_memory_gb(estimates, save_residuals)) for estimates in mem_gb)
    if largest > limit_gb:
        limit = f"--mem-gb {limit_gb:g}" if source is None else \
            f"the memory this process may use ({limit_gb:g} GB, {source})"
        raise InputError(f"{limit}: the largest node needs an estimated {largest:g} GB; "
                         "give at least that much")
