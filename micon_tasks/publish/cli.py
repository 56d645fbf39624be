"""The ``publish`` subcommand: ``add_cli(subparsers)`` for the ``micon`` console script, or
``python -m micon_tasks.publish`` on its own.

Exit codes: 0 published (or dry run passed), 1 refused or failed (the reasons on stderr).
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_cli", "run", "main"]

DESCRIPTION = """\
Turn the authors' raw MICON-Bench layout (YAML task cards + image folders) into a Hub-ready `datasets`
repository (parquet shards per task, checkpoint sets, dataset card), check it loads back with
`datasets`, then create the dataset repo and upload it. The token comes from HF_TOKEN or a stored
login. Any invalid case stops the publish before anything is uploaded, listing every problem."""


def _configure(p: argparse.ArgumentParser) -> None:
    from micon_tasks.publish import DEFAULT_LICENSE, DEFAULT_MAX_SHARD_MB

    p.add_argument("--raw", required=True, metavar="DIR", help="the raw layout (the folder holding the task folders, or its parent with data/)")
    p.add_argument("--repo-id", required=True, metavar="ORG/NAME", help="the Hub dataset repo to create or update")
    p.add_argument("--private", action="store_true", help="create the repo private (an existing repo keeps its visibility)")
    p.add_argument("--license", default=DEFAULT_LICENSE, metavar="ID", help=f"licence id for the card (default: {DEFAULT_LICENSE})")
    p.add_argument("--revision", default=None, metavar="BRANCH", help="branch to commit to (created if missing; default: main)")
    p.add_argument("--dry-run", action="store_true", help="stop after the round trip and print what would be uploaded")
    p.add_argument("--out", default=None, metavar="DIR", help="write the Hub-ready folder here and keep it (new or empty folder)")
    p.add_argument("--tasks", default="micon", help="tasks to publish: names, aliases, globs or groups (default: micon)")
    p.add_argument("--max-shard-mb", type=float, default=DEFAULT_MAX_SHARD_MB, metavar="MB",
                   help=f"upper bound of image data per parquet shard (default: {DEFAULT_MAX_SHARD_MB:g})")


def run(args: argparse.Namespace) -> int:
    """The handler: run the publish and turn its errors into a message on stderr and exit code 1."""
    from micon_tasks.publish import PublishError, PublishOptions, PublishRefused, publish

    options = PublishOptions(
        raw=args.raw, repo_id=args.repo_id, out=args.out, dry_run=args.dry_run, private=args.private,
        license=args.license, revision=args.revision, tasks=args.tasks, max_shard_mb=args.max_shard_mb,
    )
    try:
        publish(options, echo=print)
    except PublishRefused as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except PublishError as exc:
        print(f"publish failed: {exc}", file=sys.stderr)
        return 1
    return 0


def add_cli(subparsers: argparse._SubParsersAction) -> None:
    """Register ``publish``; its handler is ``args.func(args) -> int``."""
    p = subparsers.add_parser("publish", help="publish the raw layout as a Hub `datasets` repository",
                              description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    _configure(p)
    p.set_defaults(func=run)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="micon publish", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _configure(parser)
    return run(parser.parse_args(argv))
