"""The index page, ``index.html``: each subject's report linked under the session and
space of its results (and the group page, :mod:`glm_workflows.report.group`)."""

from __future__ import annotations

from pathlib import Path

from ..core.derivatives import write_text_atomic
from ..core.entities import subject_label
from ..core.naming import GROUP_REPORT, INDEX_FILE, report_page, subject_folder
from .markup import escape, page, results_group
from .reading import find_analyses, find_prefixes, group_prefixes


def write_index(output_dir, subjects) -> Path:
    """Write ``<output_dir>/index.html`` linking each subject's report.

    Parameters
    ----------
    output_dir : str or PathLike
        The derivatives root, where the ``sub-<label>.html`` pages are.
    subjects : iterable of str
        Subject labels, with or without the ``sub-`` prefix.

    Returns
    -------
    path : pathlib.Path
        The index page; its links are relative, so the folder can be moved. A subject
        is listed under each session and space of its results (one list without
        either); the group level's page is linked too, when ``group.html`` is there.
    """
    output_dir = Path(output_dir)
    groups: dict = {}  # (session, space) -> the list items of the subjects with results
    for subject in sorted({subject_label(s) for s in subjects}):
        folder = output_dir / subject_folder(subject)
        by_key = group_prefixes(find_prefixes(folder, subject)) or {(None, None): []}
        for key, prefixes in by_key.items():
            groups.setdefault(key, []).append(_item(output_dir, subject, prefixes))
    lists = [results_group(key, [f'<ul class="subjects"{_list_id(len(groups))}>\n'
                                 + "\n".join(items) + "\n</ul>"])
             for key, items in groups.items()]
    body = ["<h1>First-level GLM reports</h1>",
            *(lists or ['<ul id="subjects">\n<li>No subject.</li>\n</ul>'])]
    if (output_dir / GROUP_REPORT).exists():
        body.append(f'<h2>Group level</h2><p id="group"><a href="{escape(GROUP_REPORT)}">'
                    "Group-level report</a></p>")
    return write_text_atomic(output_dir / INDEX_FILE, page("First-level GLM reports", body))


def _list_id(n_lists: int) -> str:
    """The ``id`` attribute of the subject list when it is the only one."""
    return ' id="subjects"' if n_lists == 1 else ""


def _item(output_dir: Path, subject: str, prefixes) -> str:
    """A subject's list item: its report's link, its analyses and result prefixes."""
    folder = output_dir / subject_folder(subject)
    detail = (f"{', '.join(find_analyses(folder, prefixes))}: {', '.join(prefixes)}"
              if prefixes else "no results found")
    if not (output_dir / report_page(subject)).exists():
        detail += "; report not written yet"
    link = f'<a href="{escape(report_page(subject))}">{escape(subject_folder(subject))}</a>'
    return f"<li>{link} <small>({escape(detail)})</small></li>"
