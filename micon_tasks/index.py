"""The task index: every task and group card found once, by name, in the manner of lm-eval's TaskManager.

The card is the single source of truth for a task. The index reads the cards (``include:`` resolved),
resolves ``class:`` and ``group:``, builds the Task class each card describes and registers it in
``registry.tasks`` (groups in ``registry.groups``; groups with a ``suite:`` block in ``registry.suites``).
Sources, in order:

1. the built-in card folders: for each package in :data:`BUILTIN_CARD_PACKAGES`, the ``*.yaml`` in its
   folder and in the folder of each of its sub-packages (one level: ``micon_tasks/suites/<suite>/``);
   a broken built-in card breaks every lookup the same way (``registry.RegistryLoadError``);
2. entry-point plugins (group ``micon.tasks``): a module that registers, a Task class, or a folder of cards;
3. ``include_path`` folders (``--include_path``), read recursively; a file that cannot be used is
   reported and warned about, never skipped silently. Reading a folder again replaces what it added
   before (edits are seen; a task never clashes with itself).

A built-in card names its class (``class: micon_tasks.tasks:ObjectComposition``); when no other built-in
card names that class, the card is bound to it in place, so the six public classes are the registered
tasks. Any other card gets a subclass of its class named after the task. ``class: <task name>`` makes a
variant: that task's card under this one (the scoring keys merge), with the base task's class.
"""

from __future__ import annotations

import importlib
import importlib.util
import threading
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import registry
from micon_tasks.config import TaskConfig, read_yaml
from micon_tasks.errors import ConfigError

__all__ = ["BUILTIN_CARD_PACKAGES", "IncludeReport", "TaskIndex", "task_index", "include_path", "load_builtin_cards"]

#: Packages whose folders hold built-in cards (a suite adds its cards in ``micon_tasks/suites/<suite>/``,
#: a sub-package of a listed package, so it needs no entry here).
BUILTIN_CARD_PACKAGES: list[str] = ["micon_tasks.tasks", "micon_tasks.suites"]


@dataclass
class IncludeReport:
    """What a folder of cards added, and every file that could not be used (never skipped silently)."""

    tasks: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)


class TaskIndex:
    """The process-wide index of cards (one instance: :func:`task_index`)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._state = "new"  # new -> loading -> done | failed
        self._error: BaseException | None = None
        self._added: dict[str, list[tuple[Any, str]]] = {}  # card file -> [(registry, name)] it registered
        self._bound: dict[type, str] = {}  # class -> the built-in card bound to it in place
        self._claimed: set[str] = set()  # cards bound by declare(): the folder scan leaves them alone

    # -- where the built-in cards are ------------------------------------------------------------
    def builtin_folders(self) -> tuple[Path, ...]:
        return tuple(folder for folder, _ in self._builtin_packages())

    def _builtin_packages(self) -> list[tuple[Path, str]]:
        """(folder, package) of every built-in card folder, in order."""
        found: list[tuple[Path, str]] = []
        for package in BUILTIN_CARD_PACKAGES:
            spec = importlib.util.find_spec(package)
            if spec is None or not spec.submodule_search_locations:
                continue  # e.g. no suite is installed yet
            root = Path(next(iter(spec.submodule_search_locations)))
            found.append((root, package))
            found.extend((p.parent, f"{package}.{p.parent.name}") for p in sorted(root.glob("*/__init__.py")))
        return found

    def is_builtin(self, card: str | Path | None) -> bool:
        return bool(card) and Path(card).resolve().parent in {f.resolve() for f in self.builtin_folders()}

    # -- loading ----------------------------------------------------------------------------------
    def load_builtins(self) -> None:
        """Index the built-in cards once; a failure is kept and raised again on every call."""
        with self._lock:
            if self._state == "failed":
                raise self._error  # type: ignore[misc]
            if self._state != "new":
                return
            self._state = "loading"
            try:
                files: list[Path] = []
                for folder, package in self._builtin_packages():
                    importlib.import_module(package)  # first: it registers what its cards name (scoring kinds...)
                    files.extend(f for f in sorted(folder.glob("*.yaml")) if str(f.resolve()) not in self._claimed)
                self._index(files, strict=True)
            except Exception as exc:
                self._state, self._error = "failed", exc
                raise
            self._state = "done"

    def include(self, path: str | Path, *, source: str | None = None) -> IncludeReport:
        """Index every ``*.yaml`` under a folder (recursively, sorted): tasks first, then groups."""
        root = Path(path).expanduser()
        if not root.is_dir():
            raise ConfigError(f"include_path {str(root)!r} is not a folder")
        registry.tasks.list()  # built-ins and plugins first: a folder's cards may name them
        files = sorted(p for p in root.rglob("*.yaml") if not {"__pycache__", ".ipynb_checkpoints"} & set(p.parts))
        report = self._index(files, strict=False)
        for file, msg in report.errors:
            warnings.warn(f"{source or 'include_path'}: {file} was not loaded: {msg}", stacklevel=3)
        return report

    def _index(self, files: Iterable[Path], *, strict: bool) -> IncludeReport:
        report = IncludeReport()
        tasks: list[tuple[Path, dict[str, Any]]] = []
        groups: list[tuple[Path, dict[str, Any]]] = []
        search = self.builtin_folders()  # once per read, not once per card (each lookup finds specs and globs)
        for file in files:
            file = file.resolve()
            self._forget(file)  # what an earlier read of this card added (it may have been edited)
            try:
                data = read_yaml(file, search=search)
                if isinstance(data.get("group"), str) and isinstance(data.get("task"), list):
                    groups.append((file, data))
                elif isinstance(data.get("task"), str):
                    tasks.append((file, data))
                else:
                    raise ConfigError(f"{file}: neither a task ('task: name') nor a group ('group:' + 'task: [...]')")
            except Exception as exc:
                if strict:
                    raise
                report.errors.append((str(file), str(exc)))
        shared = _shared_classes(tasks) if strict else set()
        while tasks:  # a variant may name a task defined later in the same folder: retry while that helps
            failed: list[tuple[Path, dict[str, Any], Exception]] = []
            for file, data in tasks:
                try:
                    report.tasks.append(self._add_task(file, data, builtin=strict, shared=shared))
                except Exception as exc:
                    failed.append((file, data, exc))
            if len(failed) == len(tasks):
                if strict:
                    raise failed[0][2]
                report.errors.extend((str(f), str(e)) for f, _, e in failed)
                break
            tasks = [(f, d) for f, d, _ in failed]
        for file, data in groups:
            try:
                report.groups.append(self._add_group(file, data))
            except Exception as exc:
                if strict:
                    raise
                report.errors.append((str(file), str(exc)))
        return report

    def bind(self, cls: type, card: str | Path) -> type:
        """Bind a card to a class written for it and register it (what ``micon_tasks.task.declare`` does for
        suites that name their cards from code); the folder scan then leaves that card alone."""
        path = Path(card).resolve()
        cfg = TaskConfig.from_dict(read_yaml(path, search=self.builtin_folders()), source=str(path))
        cls.config = cfg  # type: ignore[attr-defined]
        self._bound[cls] = str(path)
        self._claimed.add(str(path))
        self._register(registry.tasks, cfg.task, cls, path, aliases=cfg.aliases)
        return cls

    def add_group_card(self, card: str | Path) -> str:
        """Register one group card named from code (see :meth:`bind`)."""
        path = Path(card).resolve()
        self._claimed.add(str(path))
        data = read_yaml(path, search=self.builtin_folders())
        if not isinstance(data.get("group"), str) or not isinstance(data.get("task"), list):
            raise ConfigError(f"{path}: a group card needs 'group: name' and 'task: [...]'")
        return self._add_group(path, data)

    # -- building ---------------------------------------------------------------------------------
    def _add_task(self, file: Path, data: dict[str, Any], *, builtin: bool, shared: set[str]) -> str:
        spec = data.get("class")
        cls, base = self._resolve_class(spec, source=str(file))
        if base is not None:
            data = _variant(base, data)
        cfg = TaskConfig.from_dict(data, source=str(file))
        if builtin and spec and spec not in shared and "config" not in vars(cls):
            cls.config = cfg  # the card's own class: the public class is the registered task
            self._bound[cls] = str(file)
        else:
            cls = type(_class_name(cfg.task), (cls,), {"config": cfg, "__module__": cls.__module__})
        self._register(registry.tasks, cfg.task, cls, file, aliases=cfg.aliases)
        return cfg.task

    def _resolve_class(self, spec: Any, *, source: str) -> tuple[type, TaskConfig | None]:
        """``class:`` names a task (a variant of it: its class and card) or ``module:Class``; default MiconTask."""
        from micon_tasks.task import MiconTask, Task

        if spec is None:
            return MiconTask, None
        if not isinstance(spec, str) or not spec:
            raise ConfigError(f"{source}: field 'class' must name a task or a module:Class, got {spec!r}")
        if ":" not in spec and ("." not in spec or spec in registry.tasks):
            base = registry.get_task(spec)
            return base, base.config
        module, _, attr = spec.replace(":", ".").rpartition(".")
        try:
            obj = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"{source}: class {spec!r} cannot be imported: {exc}") from None
        if not (isinstance(obj, type) and issubclass(obj, Task)):
            raise ConfigError(f"{source}: class {spec!r} is not a Task subclass")
        own = vars(obj).get("config") if obj not in self._bound else None  # a plugin class with a card in code
        return obj, own

    def _add_group(self, file: Path, data: dict[str, Any]) -> str:
        name, members = data["group"], data["task"]
        if not all(isinstance(m, str) for m in members):
            raise ConfigError(f"{file}: group {name!r} needs 'task' to be a list of task names")
        suite = data.get("suite")
        if suite is not None and not isinstance(suite, dict):
            raise ConfigError(f"{file}: group {name!r}, field 'suite' must be a mapping")
        self._register(registry.groups, name, list(members), file)
        if suite is not None:
            self._register(registry.suites, name, {**suite, "group": name, "tasks": list(members)}, file)
        return name

    def _register(self, reg: Any, name: str, obj: Any, file: Path, *, aliases: Iterable[str] = ()) -> None:
        reg.add(name, obj, aliases=aliases, source=str(file))
        if reg.peek_source(name) == str(file):  # kept (a clash with an earlier source warns and keeps that)
            self._added.setdefault(str(file), []).append((reg, name))

    def _forget(self, file: Path) -> None:
        for reg, name in self._added.pop(str(file), []):
            if reg.peek_source(name) == str(file):
                reg.remove(name)


def _variant(base: TaskConfig, data: dict[str, Any]) -> dict[str, Any]:
    """A card over a base task's card: the card's keys win, scoring keys merge, names are not inherited."""
    merged = {k: v for k, v in vars(base).items() if k != "source_file"}
    merged["aliases"] = ()
    merged.update({k: v for k, v in data.items() if k not in ("class", "scoring")})
    merged["scoring"] = {**base.scoring.to_card(), **(data.get("scoring") or {})}
    return merged


def _shared_classes(cards: list[tuple[Path, dict[str, Any]]]) -> set[str]:
    """``class:`` values named by more than one card (such a class is subclassed per card, never bound)."""
    seen: dict[str, int] = {}
    for _, data in cards:
        if isinstance(data.get("class"), str):
            seen[data["class"]] = seen.get(data["class"], 0) + 1
    return {c for c, n in seen.items() if n > 1}


def _class_name(task: str) -> str:
    return "".join(part.capitalize() for part in task.replace("-", "_").split("_")) or "YamlTask"


_INDEX = TaskIndex()


def task_index() -> TaskIndex:
    return _INDEX


def load_builtin_cards() -> None:
    """The registries' loader for tasks, groups and suites: the built-in cards, then the task plugins, in
    that order whichever registry is asked first (inside the task registry's own loading the first call
    returns at once)."""
    registry.tasks.list()
    _INDEX.load_builtins()


def include_plugin(folder: str | Path, source: str) -> None:
    """The task registry's hook for an entry point that names a folder of cards."""
    _INDEX.include(folder, source=source)


def include_path(path: str | Path) -> IncludeReport:
    """Index a folder of YAML cards (``--include_path``); see :meth:`TaskIndex.include`."""
    return _INDEX.include(path)
