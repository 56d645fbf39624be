"""`micon publish`: turn the authors' raw layout into a Hub-ready ``datasets`` repository and upload it.

    publish(PublishOptions(raw="MICON-Bench/", repo_id="org/MICON-Bench", dry_run=True, out="hub/"))

Steps, each stopping everything after it on failure: read and check every case (all problems listed
at once) -> write parquet shards, checkpoint sets, manifest and card -> load every configuration back
with ``datasets`` and compare -> create the repo and upload (skipped with ``dry_run``).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from micon_tasks.publish.errors import PublishError, PublishRefused

__all__ = ["PublishOptions", "PublishResult", "PublishError", "PublishRefused", "publish", "add_cli", "main"]

DEFAULT_MAX_SHARD_MB = 300.0
DEFAULT_LICENSE = "unknown"


@dataclass
class PublishOptions:
    raw: str | Path
    repo_id: str
    out: str | Path | None = None  # keep the folder here (default: a temporary folder, removed after)
    dry_run: bool = False
    private: bool = False
    license: str = DEFAULT_LICENSE
    revision: str | None = None
    tasks: str = "micon"
    max_shard_mb: float = DEFAULT_MAX_SHARD_MB


@dataclass
class PublishResult:
    folder: Path | None  # None when it was a temporary folder, now removed
    files: list[tuple[str, int]]  # (path in repo, bytes)
    counts: dict[str, int]  # config -> cases read back by the round trip
    warnings: list[str] = field(default_factory=list)
    commit_url: str | None = None
    commit_message: str = ""

    @property
    def total_bytes(self) -> int:
        return sum(size for _, size in self.files)


def _version() -> str:
    from micon_tasks import __version__

    return __version__


def _check_repo_id(repo_id: str) -> None:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise PublishError(f"--repo-id {repo_id!r} is not a valid Hub repo id: {exc}") from None
    if repo_id.count("/") != 1:
        raise PublishError(f"--repo-id {repo_id!r} must be ORG/NAME")


def _prepare_out(out: str | Path | None) -> tuple[Path, bool]:
    if out is None:
        return Path(tempfile.mkdtemp(prefix="micon-publish-")), True
    path = Path(out).expanduser()
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise PublishError(f"--out {str(path)!r} exists and is not an empty folder; give a new or empty folder")
    path.mkdir(parents=True, exist_ok=True)
    return path, False


def _listing(folder: Path) -> list[tuple[str, int]]:
    return sorted((p.relative_to(folder).as_posix(), p.stat().st_size) for p in folder.rglob("*") if p.is_file())


def build_folder(options: PublishOptions, out: Path, collection: Any,
                 echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Write shards, checkpoint sets, manifest and README.md into ``out``; returns the manifest."""
    from micon_tasks.publish.card import render_card
    from micon_tasks.publish.write import write_checkpoints, write_manifest, write_task

    max_bytes = int(options.max_shard_mb * 1024 * 1024)
    shards: dict[str, list[str]] = {}
    for t in collection.tasks:
        shards[t.name] = write_task(t, collection.root, out, max_shard_bytes=max_bytes)
        echo(f"wrote {t.name}: {len(t.records)} cases, {t.n_refs} images, {len(shards[t.name])} shard(s)")
    checkpoint_files = {t.name: write_checkpoints(t, out) for t in collection.tasks}
    manifest = write_manifest(collection, out, shards, version=_version(), checkpoints=checkpoint_files)
    n_checkpoints = {t: len(json.loads((out / f).read_text("utf-8"))) for t, f in checkpoint_files.items()}
    card = render_card(collection, shards, out, repo_id=options.repo_id, license=options.license,
                       version=_version(), checkpoints=n_checkpoints)
    (out / "README.md").write_text(card, "utf-8")
    return manifest


def publish(
    options: PublishOptions,
    *,
    endpoint: str | None = None,
    api: Any = None,
    echo: Callable[[str], None] = print,
) -> PublishResult:
    """Run the whole publish; raises PublishRefused (every data problem) or PublishError.

    ``endpoint`` / ``api`` point the upload at another Hub (tests use a loopback stand-in); by default
    huggingface_hub's own resolution applies (``HF_ENDPOINT``, ``HF_TOKEN`` or a stored login).
    """
    import registry
    from micon_tasks.publish.collect import collect
    from micon_tasks.publish.hub import resolve_token, round_trip, upload

    _check_repo_id(options.repo_id)
    if not options.max_shard_mb > 0:
        raise PublishError(f"--max-shard-mb must be positive, got {options.max_shard_mb}")
    if not options.dry_run and not getattr(api, "token", None):
        resolve_token()  # fail before the long part, not after it
    try:
        names = registry.expand_task_names(options.tasks)
    except registry.UnknownNameError as exc:
        raise PublishError(f"--tasks: {exc}") from None
    configs = [registry.get_task(n).config for n in names]
    collection = collect(options.raw, configs)
    if collection.problems:
        raise PublishRefused(collection.problems)
    for note in collection.warnings:
        echo(f"warning: {note}")

    out, temporary = _prepare_out(options.out)
    try:
        manifest = build_folder(options, out, collection, echo)
        counts = round_trip(out, manifest)
        files = _listing(out)
        version = _version()
        message = f"Publish MICON-Bench with micon-bench {version}"
        result = PublishResult(folder=None if temporary else out, files=files, counts=counts,
                               warnings=list(collection.warnings), commit_message=message)
        echo(f"round trip ok: {', '.join(f'{k}={v}' for k, v in counts.items())}")
        if options.dry_run:
            where = "a temporary folder (removed)" if temporary else str(out)
            echo(f"dry run: would create dataset repo {options.repo_id} (private={options.private}) and upload "
                 f"{len(files)} files ({result.total_bytes / 1e6:.2f} MB) from {where} to revision "
                 f"{options.revision or 'main'} with the commit message {message!r}:")
            for path, size in files:
                echo(f"  {path}  {size} bytes")
            return result
        description = "\n".join(f"- {k}: {v} cases" for k, v in counts.items())
        result.commit_url = upload(out, options.repo_id, commit_message=message, commit_description=description,
                                   private=options.private, revision=options.revision, endpoint=endpoint, api=api)
        echo(f"uploaded {len(files)} files ({result.total_bytes / 1e6:.2f} MB) to {options.repo_id}: {result.commit_url}")
        return result
    finally:
        if temporary:
            shutil.rmtree(out, ignore_errors=True)


from micon_tasks.publish.cli import add_cli, main  # noqa: E402  (cli imports the names above)
