"""The run folder: which one a path means, whether it may be used for this configuration, and what it records.

Why apart from the stages: every command (run, generate, judge, aggregate) starts by checking the folder
against the stored ``run_config.json`` the same way; a stage only reads and appends records.
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import micon_tasks
from micon_tasks.errors import ConfigError
from micon_tasks.runner.config import RunConfig, config_diff, load_run_config, refuse_secrets
from micon_tasks.runner.layout import Layout
from micon_tasks.runner.records import atomic_write_json

__all__ = ["find_model_dir", "prepare", "stored_config", "check_results_name", "check_output_path"]

log = logging.getLogger("micon_tasks.runner")


def find_model_dir(path: str | Path) -> Path:
    """``path`` itself when it holds a run, else its only sub-folder that does."""
    root = Path(path)
    if (root / "run_config.json").exists():
        return root
    found = sorted(p.parent for p in root.glob("*/run_config.json")) if root.is_dir() else []
    if len(found) == 1:
        return found[0]
    if not found:
        raise ConfigError(f"{root} holds no micon run (no run_config.json in it or in a sub-folder)")
    raise ConfigError(f"{root} holds several runs; name one: {', '.join(str(p) for p in found)}")


def check_results_name(name: str | None) -> str | None:
    """A results view name usable as a file stem (``results`` itself is the folder's own results)."""
    if name is None or name == "results":
        return None
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name) or name.endswith((".json", ".md")):
        raise ConfigError(f"--results_name {name!r}: use letters, digits, '_', '-' or '.', without an extension")
    return name


def check_output_path(root: Path) -> None:
    """One clear line when the run folder cannot be a folder (a file stands in its way)."""
    for path in (root, *root.parents):
        if path.exists():
            if not path.is_dir():
                raise ConfigError(f"output path {str(path)!r} is a file, not a folder; choose another --output_path")
            return


def prepare(layout: Layout, cfg: RunConfig, *, mode: str, overwrite: bool) -> RunConfig:
    """Refuse a folder made by another configuration (naming what differs), or clear it on overwrite.

    Returns the folder's configuration as now recorded: its selection is the widest run in it (the union of
    the tasks, the wider limit), so a narrower re-run never narrows what ``micon aggregate`` covers. A folder
    holding no record yet takes a new configuration without complaint.
    """
    refuse_secrets(cfg.model_args, "--model_args")  # every path, before any comparison or write
    refuse_secrets(cfg.judge_args, "--judge_args")
    stored = load_run_config(layout.root)
    if stored is not None and not _has_records(layout):
        log.info("%s holds no records yet: its configuration is replaced", layout.root)
        stored = None
    if stored is not None:
        problems: list[str] = []
        if mode in ("run", "generate"):
            problems += config_diff(stored.get("generation_identity"), cfg.generation_identity())
        judged = any((layout.root / "shards").glob("judge_*.jsonl"))
        if mode in ("run", "judge") and judged and stored.get("judge_identity") is not None:
            problems += config_diff(stored.get("judge_identity"), cfg.judge_identity())
        if problems and not overwrite and mode != "aggregate":
            what = "generated" if any(p.split(":")[0].split(".")[0] in cfg.generation_identity() for p in problems) else "judged"
            raise ConfigError(
                f"{layout.root} was {what} with another configuration ({'; '.join(problems)}); "
                + ("judge again from scratch with --overwrite (the images are kept), or judge a copy of the folder"
                   if mode == "judge" else "use another --output_path, or --overwrite to replace it")
            )
        if overwrite and mode in ("run", "generate"):
            log.warning("--overwrite: removing %s", layout.root)
            shutil.rmtree(layout.root)
            stored = None
        elif overwrite and mode == "judge":
            log.warning("--overwrite: removing the verdicts and results in %s (images are kept)", layout.root)
            for p in [*(layout.root / "shards").glob("judge_*.jsonl"), layout.judge_info, layout.results_json,
                      layout.results_md, *layout.root.glob("samples_*.jsonl")]:
                p.unlink(missing_ok=True)
    if mode == "aggregate":
        return cfg
    data = cfg.to_dict()
    if stored is not None:
        keep = stored.get("config", {})
        if cfg.judge is None:  # `micon generate` after a judged run keeps the judge
            data.update(judge=keep.get("judge"), judge_args=keep.get("judge_args", {}))
        data.update(RunConfig.from_dict(keep).widest_selection(cfg))
    written = RunConfig.from_dict(data)
    layout.root.mkdir(parents=True, exist_ok=True)
    atomic_write_json(layout.run_config, {
        "config": data,
        "generation_identity": written.generation_identity(),
        "judge_identity": written.judge_identity(),
        "micon_version": micon_tasks.__version__,
    })
    return written


def _has_records(layout: Layout) -> bool:
    shards = layout.root / "shards"
    return shards.is_dir() and any(p.stat().st_size > 0 for p in shards.glob("*.jsonl"))


def stored_config(layout: Layout) -> RunConfig:
    stored = load_run_config(layout.root)
    if stored is None or "config" not in stored:
        raise ConfigError(f"{layout.root} holds no run_config.json")
    return RunConfig.from_dict(stored["config"])
