"""The ``report`` subcommand, registered on the ``micon`` console script through ``add_cli``.

A folder that is not a run (or a REPORT_DIR that would overwrite something else) is a user error:
``micon``'s entry point prints it as one line and exits with status 2.
"""

from __future__ import annotations

import argparse

__all__ = ["add_cli", "run"]

DESCRIPTION = """\
Write a static HTML report of one or more runs into REPORT_DIR (index.html plus assets/). It opens
from file:// with no network: scores in the paper's layout, every case with its references, image
and the judge's verdicts, and, given several runs, their differences case by case. The first run is
the baseline the others are compared with."""


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return value


def run(args: argparse.Namespace) -> int:
    from micon_tasks.webreport.build import build_report

    summary = build_report(args.output_dirs, args.report_dir, max_cases=args.max_cases, workers=args.workers,
                           echo=print)
    for notice in summary.notices:
        print(f"note: {notice}")
    print(f"report: {summary.index} ({summary.n_cards} cards, {summary.n_thumbs_made} new thumbnails, "
          f"{summary.seconds:.1f} s); open it in a browser")
    return 0


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    """Register ``report``; its handler is ``args.func(args) -> int``."""
    p = subparsers.add_parser("report", help="a static HTML report of one or more runs",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("output_dirs", nargs="+", metavar="OUT_DIR",
                   help="run folders (<output_path>/<model>[__dar], or <output_path> holding one run)")
    p.add_argument("-o", "--report_dir", default="micon_report", metavar="REPORT_DIR",
                   help="where to write index.html and assets/ (default: ./micon_report)")
    p.add_argument("--max_cases", type=_positive, default=None, metavar="N",
                   help="show at most the first N cases of each task (the score tables stay complete)")
    p.add_argument("--workers", type=_positive, default=None, help="processes making thumbnails (default: CPU count)")
    p.add_argument("--verbosity", "-v", default="WARNING", type=str.upper,
                   choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), help="log level (default WARNING)")
    p.set_defaults(func=run)
