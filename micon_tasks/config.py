"""Task configs in lm-eval's YAML dialect: ``task:``, ``include:``, ``class:``, ``group:`` (docs/tasks.md).

A task card holds a task's data source, its checkpoint set and its scoring in one file. Shared
templates are named without a ``.yaml`` suffix (``_micon_template_yaml``) and pulled in with
``include:`` (paths relative to the including file, else a built-in card's file name; local keys win;
cycles are an error). The task index (micon_tasks/index.py) finds the cards and builds the tasks.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from micon_tasks.errors import ConfigError
from micon_tasks.yaml_cards import describe_yaml_error, load_card_text

__all__ = ["ScoringConfig", "TaskConfig", "read_yaml"]


@dataclass(frozen=True)
class ScoringConfig:
    """A card's ``scoring:`` block. ``kind`` names the registered scoring kind (``checkpoints`` for MICON);
    ``hard_cap`` and ``story_hybrid`` belong to the checkpoint kind; every other key is kept in
    ``options`` and checked by the kind (e.g. a rubric's criteria)."""

    kind: str = "checkpoints"
    hard_cap: float = 0.4
    story_hybrid: bool = False
    options: dict[str, Any] = field(default_factory=dict)

    def to_card(self) -> dict[str, Any]:
        """The card form of this block (what ``from_dict`` reads back)."""
        own = {"hard_cap": self.hard_cap, "story_hybrid": self.story_hybrid} if self.kind == "checkpoints" else {}
        return {"kind": self.kind, **own, **self.options}

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, task: str, source: str) -> ScoringConfig:
        data = dict(data)
        kind = data.pop("kind", "checkpoints")
        own = {k: data.pop(k) for k in ("hard_cap", "story_hybrid") if k in data}
        if not isinstance(kind, str) or not kind:
            raise ConfigError(f"{source}: task {task!r}, field 'scoring.kind' must be a non-empty string")
        if kind != "checkpoints" and own:
            raise ConfigError(f"{source}: task {task!r}, field 'scoring': {sorted(own)} belong to kind "
                              f"'checkpoints', not {kind!r}")
        import registry

        try:
            registry.scoring_kinds.get(kind).check_options(data, task=task)
        except registry.UnknownNameError as exc:
            raise ConfigError(f"{source}: task {task!r}, field 'scoring.kind': {exc}") from None
        try:
            return cls(kind=kind, options=data, **own)
        except TypeError as exc:
            raise ConfigError(f"{source}: task {task!r}, field 'scoring': {exc}") from None


@dataclass(frozen=True)
class TaskConfig:
    """Everything that defines a task. Built from a YAML card with ``TaskConfig.from_dict``."""

    task: str
    checkpoints: tuple[dict[str, Any], ...] = ()
    official_folder: str = ""
    aliases: tuple[str, ...] = ()
    dataset_path: str = "Hangliuuu/MICON-Bench"
    dataset_name: str | None = None  # the config name in a published (parquet) repo; defaults to task
    test_split: str = "test"
    refs: dict[str, int] = field(default_factory=lambda: {"min": 1, "max": 8})
    description: str = ""
    scoring: ScoringConfig = ScoringConfig()
    answer_set_file: str | None = None
    checkpoints_from: str | None = None  # an official .qa.txt file replacing `checkpoints` (relative to the card)
    official_template: str | None = None  # the authors' template file name (a --checkpoints_from folder holds it)
    num_images: int = 1  # images generated per case (each from its own seed), scored by the kind's rule
    generation: dict[str, Any] = field(default_factory=dict)  # generation defaults the card asks for (width, height)
    tag: tuple[str, ...] = ()
    metadata: dict[str, Any] = field(default_factory=dict)
    source_file: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "<dict>") -> TaskConfig:
        data = dict(data)
        data.pop("include", None)
        data.pop("class", None)
        data.pop("group", None)  # membership is declared by group files; tolerated on task cards
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown task config keys {unknown}; known keys: {sorted(known)}")
        name = data.get("task")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{source}: 'task' must be a non-empty string")
        for key in ("official_folder",):
            if not data.get(key):
                data[key] = name
        scoring = data.get("scoring") or {}
        if not isinstance(scoring, dict):
            raise ConfigError(f"{source}: task {name!r}, field 'scoring' must be a mapping")
        data["scoring"] = ScoringConfig.from_dict(scoring, task=name, source=source)
        if data["scoring"].kind == "checkpoints" and "checkpoints" not in data and not data.get("checkpoints_from"):
            raise ConfigError(f"{source}: task {name!r} needs 'checkpoints' or 'checkpoints_from'")
        n_images = data.get("num_images", 1)
        if isinstance(n_images, bool) or not isinstance(n_images, int) or n_images < 1:
            raise ConfigError(f"{source}: task {name!r}, field 'num_images' must be an integer >= 1, got {n_images!r}")
        data["generation"] = _generation(data.get("generation"), name, source)
        data["checkpoints"] = tuple(data.get("checkpoints") or ())
        data["aliases"] = tuple(_as_list(data.get("aliases")))
        data["tag"] = tuple(_as_list(data.get("tag")))
        data.setdefault("source_file", source)
        return cls(**data)

    @property
    def config_name(self) -> str:
        return self.dataset_name or self.task

    @property
    def generation_size(self) -> tuple[int | None, int | None] | None:
        """The output (width, height) the card asks for (``generation: {width, height}``), None if neither."""
        size = (self.generation.get("width"), self.generation.get("height"))
        return size if any(size) else None

    def replace(self, **changes: Any) -> TaskConfig:
        return dataclasses.replace(self, **changes)


GENERATION_KEYS = ("width", "height")  # what a card's ``generation`` may set; the adapters honour each


def _generation(value: Any, task: str, source: str) -> dict[str, Any]:
    """A card's ``generation`` mapping, checked: known keys only, each a positive integer."""
    value = value or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: task {task!r}, field 'generation' must be a mapping")
    for key, side in value.items():
        if key not in GENERATION_KEYS:
            raise ConfigError(f"{source}: task {task!r}, field 'generation.{key}' is unknown; known: "
                              f"{', '.join(GENERATION_KEYS)}")
        if isinstance(side, bool) or not isinstance(side, int) or side < 1:
            raise ConfigError(f"{source}: task {task!r}, field 'generation.{key}' must be a positive integer, "
                              f"got {side!r}")
    return dict(value)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def read_yaml(path: str | Path, *, search: tuple[Path, ...] = (), _stack: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read a card with ``include:`` resolved (strict safe loading: no aliases, no repeated keys).

    An include is looked up beside the including file first, then by file name in the ``search`` folders
    (the built-in card folders), so ``include: spatial_composition.yaml`` names a built-in card. What a
    card names is its own: ``aliases`` are never inherited through an include.
    """
    path = Path(path).resolve()
    if path in _stack:
        chain = " -> ".join(str(p) for p in (*_stack, path))
        raise ConfigError(f"include cycle: {chain}")
    try:
        data = load_card_text(path.read_text("utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: invalid YAML: {describe_yaml_error(exc)}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a task config must be a YAML mapping, not {type(data).__name__}")
    merged: dict[str, Any] = {}
    for inc in _as_list(data.get("include")):
        if not isinstance(inc, str) or not inc:
            raise ConfigError(f"{path}: field 'include' must name files, got {inc!r}")
        included = read_yaml(_find_include(path, inc, search), search=search, _stack=(*_stack, path))
        merged.update({k: v for k, v in included.items() if k != "aliases"})
    merged.update({k: v for k, v in data.items() if k != "include"})
    return merged


def _find_include(path: Path, name: str, search: tuple[Path, ...]) -> Path:
    local = path.parent / name
    if local.exists() or Path(name).is_absolute():
        return local
    for folder in search:
        if (folder / name).is_file():
            return folder / name
    where = ", ".join(str(f) for f in (path.parent, *search))
    raise ConfigError(f"{path}: include {name!r} is neither beside the card nor a built-in card (looked in {where})")
