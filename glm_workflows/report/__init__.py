"""Self-contained HTML reports of the saved first-level results, one page per subject.

The pages are built from the files of the BIDS-Derivatives folder alone (design
matrices, contrast and threshold sidecars, statistical maps, cluster tables and the
optional ``provenance.json``), so a report can be written long after the workflow ran.
Every figure is embedded as a ``data:image/png`` URI and the style sheet is inline:
a page is one file that opens from disk without a server, JavaScript or network.

Modules: :mod:`~glm_workflows.report.reading` (the derivatives folder read back),
:mod:`~glm_workflows.report.describe` (plain-text descriptions),
:mod:`~glm_workflows.report.markup` (HTML pieces) and
:mod:`~glm_workflows.report.pages` (the pages).
"""

from .describe import describe_no_survivors, describe_threshold
from .pages import write_index, write_subject_report

__all__ = ["describe_no_survivors", "describe_threshold", "write_index", "write_subject_report"]
