"""Self-contained HTML reports of the saved results: one page per subject, one for the
group level (``group.html``, from ``group/``).

The pages are built from the files of the BIDS-Derivatives folder alone (design
matrices, contrast and threshold sidecars, statistical maps, cluster tables and the
analyses' records, ``<analysis>_provenance.json``), so a report can be written long after
the workflow ran.
Every figure is embedded as a ``data:image/png`` URI and the style sheet is inline:
a page is one file that opens from disk without a server, JavaScript or network.

Modules: :mod:`~glm_workflows.report.reading` (the derivatives folder read back),
:mod:`~glm_workflows.report.describe` (plain-text descriptions),
:mod:`~glm_workflows.report.markup` (HTML pieces),
:mod:`~glm_workflows.report.pages` (the subject pages),
:mod:`~glm_workflows.report.index` (the index) and
:mod:`~glm_workflows.report.group` (the group page).
"""

from .describe import describe_no_survivors, describe_threshold
from .group import write_group_report
from .index import write_index
from .pages import write_subject_report

__all__ = ["describe_no_survivors", "describe_threshold", "write_group_report", "write_index",
           "write_subject_report"]
