"""``micon report``: a static HTML report of one or more runs that opens from ``file://`` offline.

    micon report out/omnigen out/omnigen__dar -o report/
    from micon_tasks.webreport import build_report
    build_report(["out/omnigen"], "report/")

Scores (the paper's table, per-task details, dimension bars, provenance), a gallery of every case
with the judge's verdicts beside the images, and run-against-run comparisons. See docs/report.md.
"""

from __future__ import annotations

from micon_tasks.webreport.build import BuildSummary, build_report
from micon_tasks.webreport.cli import add_cli
from micon_tasks.webreport.runs import ReportInputError

__all__ = ["build_report", "BuildSummary", "ReportInputError", "add_cli"]
