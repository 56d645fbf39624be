"""Check the written folder with ``datasets`` itself, then upload it with ``huggingface_hub``.

The round trip loads every configuration the card declares exactly as a user would
(``load_dataset(folder, config)``) and compares case counts and ids with the source, so a folder that
the Hub would serve wrongly is never uploaded. The upload is ``create_repo(repo_type="dataset",
exist_ok=True)`` then one ``upload_folder`` whose commit message names the micon-bench version; the
token comes from ``HF_TOKEN`` or a stored login (huggingface_hub's own resolution) and never appears in
output or errors.
"""

from __future__ import annotations

import collections
import tempfile
from pathlib import Path
from typing import Any

from micon_tasks.data.sources import features
from micon_tasks.publish.card import ALL_CONFIG
from micon_tasks.publish.errors import PublishError
from micon_tasks.publish.write import SPLIT
from micon_tasks.secrets import scrub

__all__ = ["MANAGED_PATTERNS", "round_trip", "resolve_token", "upload"]

# Remote files a publish owns: stale shards or checkpoint sets of an earlier version are deleted in
# the same commit, so a shrinking task never keeps an old shard (which would duplicate its rows).
MANAGED_PATTERNS = ["data/*", "checkpoints/*"]


def round_trip(out: Path, manifest: dict[str, Any]) -> dict[str, int]:
    """``load_dataset(out, config)`` for every task and ``all``: same counts and ids, images decode."""
    import datasets
    from PIL import Image

    counts: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="micon-publish-roundtrip-") as cache:
        expected_all: collections.Counter = collections.Counter()
        for task, info in manifest["tasks"].items():
            name = info["config_name"]
            ds = datasets.load_dataset(str(out), name, split=SPLIT, cache_dir=cache)
            ids = list(ds["case_id"])
            if ds.num_rows != info["num_cases"] or ids != info["case_ids"]:
                missing = sorted(set(info["case_ids"]) - set(ids))
                extra = sorted(set(ids) - set(info["case_ids"]))
                raise PublishError(
                    f"round trip failed for config {name!r}: {ds.num_rows} rows read back, {info['num_cases']} written "
                    f"(missing {missing[:5]}, unexpected {extra[:5]}); nothing was uploaded"
                )
            if ds.features != features():
                raise PublishError(f"round trip failed for config {name!r}: features differ from the project's row schema")
            if ds.num_rows and not all(isinstance(im, Image.Image) for im in ds[0]["refs"]):
                raise PublishError(f"round trip failed for config {name!r}: references do not load as PIL images")
            counts[name] = ds.num_rows
            expected_all.update((task, cid) for cid in ids)
            del ds
        ds = datasets.load_dataset(str(out), ALL_CONFIG, split=SPLIT, cache_dir=cache)
        got_all = collections.Counter(zip(ds["task"], ds["case_id"]))
        if got_all != expected_all:
            raise PublishError(
                f"round trip failed for config {ALL_CONFIG!r}: {ds.num_rows} rows read back, "
                f"{sum(expected_all.values())} expected; nothing was uploaded"
            )
        counts[ALL_CONFIG] = ds.num_rows
        del ds
    return counts


def resolve_token() -> str:
    """The token huggingface_hub would use (``HF_TOKEN``, then a stored login); never shown anywhere."""
    from huggingface_hub import get_token

    token = get_token()
    if not token:
        raise PublishError("no Hugging Face token: set HF_TOKEN or log in with `hf auth login` (or use --dry-run)")
    return token


def upload(
    out: Path,
    repo_id: str,
    *,
    commit_message: str,
    commit_description: str = "",
    private: bool = False,
    revision: str | None = None,
    endpoint: str | None = None,
    api: Any = None,
) -> str:
    """Create the dataset repo if needed and upload ``out`` in one call; returns the commit URL."""
    from huggingface_hub import HfApi

    token = getattr(api, "token", None) or resolve_token()
    api = api or HfApi(endpoint=endpoint)
    step = "create the dataset repo"
    failure = None
    try:
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        if revision and revision != "main":
            step = f"create the branch {revision!r}"
            api.create_branch(repo_id, repo_type="dataset", branch=revision, exist_ok=True)
        step = "upload the folder"
        info = api.upload_folder(
            repo_id=repo_id,
            repo_type="dataset",
            folder_path=str(out),
            revision=revision,
            commit_message=commit_message,
            commit_description=commit_description,
            delete_patterns=MANAGED_PATTERNS,
        )
    except Exception as exc:  # HTTP errors, refused repo names, network: one message, token scrubbed
        failure = f"could not {step} for {repo_id!r}: {scrub(f'{type(exc).__name__}: {exc}', [token])}"
    if failure is not None:  # raised outside the handler: the HTTP error (whose request carries the
        raise PublishError(failure)  # Authorization header) is not kept as __context__
    return str(getattr(info, "commit_url", info))
