"""A small name -> object registry for tasks, adapters and judges.

Modelled on spaCy's ``catalogue`` and timm's ``_registry.py``: register with a decorator, look up by
name or alias (with "did you mean" errors in lm-eval's manner), list with glob patterns, and load
third-party plugins lazily from entry points. Built-ins are imported on the first lookup so that
``import registry`` stays cheap.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import importlib.metadata
import os
import threading
import warnings
from collections.abc import Callable, Iterable
from typing import Any

__all__ = [
    "Registry",
    "UnknownNameError",
    "RegistryLoadError",
    "tasks",
    "adapters",
    "judges",
    "groups",
    "suites",
    "scoring_kinds",
    "register_task",
    "register_adapter",
    "register_judge",
    "register_group",
    "get_task",
    "get_adapter",
    "get_judge",
    "list_tasks",
    "list_adapters",
    "list_judges",
    "expand_task_names",
]


class UnknownNameError(KeyError, ValueError):
    """An unknown registry name; the message lists close matches."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class RegistryLoadError(ImportError):
    """A built-in module of a registry failed to load: the installation is broken, so every lookup fails
    the same way (never a silently partial registry)."""


class Registry:
    """Maps canonical names (and aliases) to registered objects.

    ``builtins`` are loaded before the first lookup: a module name (imported; it registers on import) or
    ``"module:function"`` (imported, then the function is called: the task index's loader). A built-in that
    fails makes every lookup raise :class:`RegistryLoadError` naming it. ``entry_point_group`` names the
    entry-point group whose plugins are loaded at the same moment; a plugin that fails to import gives one
    warning and never breaks the built-ins. ``folder_hook`` (``"module:function"``) receives a plugin whose
    entry point names a folder (a str or path) instead of code. A name clash warns naming both sources; the
    first registration (the built-in) wins unless the newcomer passes ``override=True``; registering again
    from the same source (a card read again) replaces the entry without a word.
    """

    def __init__(self, kind: str, builtins: Iterable[str] = (), entry_point_group: str | None = None,
                 folder_hook: str | None = None):
        self.kind = kind
        self._builtins = tuple(builtins)
        self._group = entry_point_group
        self._folder_hook = folder_hook
        self._failure: str | None = None
        self._objects: dict[str, Any] = {}
        self._aliases: dict[str, str] = {}
        self._sources: dict[str, str] = {}
        self._lock = threading.RLock()
        self._loaded = False
        self._loading = False
        self._current_source: str | None = None

    # -- registration ---------------------------------------------------------------------------
    def register(self, name: str, aliases: Iterable[str] = (), *, override: bool = False) -> Callable:
        """Class/function decorator registering ``obj`` under ``name`` and ``aliases``."""

        def decorator(obj: Any) -> Any:
            self.add(name, obj, aliases=aliases, override=override)
            return obj

        return decorator

    def add(self, name: str, obj: Any, *, aliases: Iterable[str] = (), override: bool = False,
            source: str | None = None) -> None:
        source = source or self._current_source or _describe(obj)
        with self._lock:
            if name in self._objects and self._sources.get(name) == source:  # the same card, read again
                self.remove(name)
            if name in self._objects and self._objects[name] is not obj:
                if not override:
                    warnings.warn(
                        f"{self.kind} {name!r} from {source} clashes with the one from "
                        f"{self._sources[name]}; keeping the latter (register with override=True to replace it)",
                        stacklevel=3,
                    )
                    return
                warnings.warn(
                    f"{self.kind} {name!r} from {self._sources[name]} is overridden by {source}", stacklevel=3
                )
            self._objects[name] = obj
            self._sources[name] = source
            if hasattr(obj, "__dict__") and isinstance(obj, type):
                obj.registered_name = name
            for alias in aliases:
                if alias == name:
                    continue
                owner = self._aliases.get(alias)
                if owner is not None and owner != name and not override:
                    warnings.warn(f"{self.kind} alias {alias!r} already points at {owner!r}", stacklevel=3)
                    continue
                self._aliases[alias] = name

    def remove(self, name: str) -> None:
        """Forget ``name`` and its aliases (tests and interactive use)."""
        with self._lock:
            self._objects.pop(name, None)
            self._sources.pop(name, None)
            for alias in [a for a, n in self._aliases.items() if n == name]:
                del self._aliases[alias]

    # -- lookup ---------------------------------------------------------------------------------
    def canonical(self, name: str) -> str:
        """The canonical name for a name or alias; raises UnknownNameError."""
        self._ensure_loaded()
        if name in self._objects:
            return name
        if name in self._aliases:
            return self._aliases[name]
        raise UnknownNameError(self._unknown_message(name))

    def get(self, name: str) -> Any:
        return self._objects[self.canonical(name)]

    def __contains__(self, name: str) -> bool:
        self._ensure_loaded()
        return name in self._objects or name in self._aliases

    def source(self, name: str) -> str:
        return self._sources[self.canonical(name)]

    def peek_source(self, name: str) -> str | None:
        """Where ``name`` was registered from, without loading anything (None when unknown)."""
        return self._sources.get(name)

    def list(self, pattern: str = "*", *, aliases: bool = False) -> list[str]:
        """Sorted canonical names matching a glob (``"*_composition"``); aliases too if asked."""
        self._ensure_loaded()
        names = set(self._objects)
        if aliases:
            names |= set(self._aliases)
        return sorted(n for n in names if fnmatch.fnmatchcase(n, pattern))

    def _unknown_message(self, name: str) -> str:
        known = sorted(set(self._objects) | set(self._aliases))
        close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        listing = ", ".join(sorted(self._objects)) or "(none)"
        return f"Unknown {self.kind} {name!r}.{hint} Known {self.kind}s: {listing}."

    # -- lazy loading ---------------------------------------------------------------------------
    def _ensure_loaded(self) -> None:
        if self._failure is not None:
            raise RegistryLoadError(self._failure)
        if self._loaded or self._loading:
            return
        with self._lock:
            if self._loaded or self._loading:
                return
            self._loading = True
            try:
                for spec in self._builtins:
                    try:
                        _call(spec)
                    except Exception as exc:
                        self._failure = (f"the built-in {self.kind} module {spec.partition(':')[0]!r} failed to load "
                                         f"({type(exc).__name__}: {exc}); the installation is broken, reinstall micon-bench")
                        raise RegistryLoadError(self._failure) from exc
                if self._group:
                    self._load_entry_points()
            finally:
                self._loading = False
                self._loaded = self._failure is None

    def _load_entry_points(self) -> None:
        for ep in importlib.metadata.entry_points(group=self._group):
            self._current_source = f"plugin {ep.name!r} ({ep.value})"
            try:
                obj = ep.load()
                # An entry point may name a module (registering on import), a class, a callable that
                # registers, or a folder (str / path) handed to the folder hook (a folder of task cards);
                # a class not yet registered is registered under the entry-point name.
                if isinstance(obj, (str, os.PathLike)) and self._folder_hook:
                    _call(self._folder_hook, obj, f"plugin {ep.name!r} ({ep.value})")
                elif isinstance(obj, type) and obj not in self._objects.values():
                    self.add(ep.name, obj)
            except Exception as exc:  # a broken plugin must never break the built-ins
                warnings.warn(
                    f"micon plugin {ep.name!r} ({ep.value}) in group {self._group!r} failed to load: "
                    f"{type(exc).__name__}: {exc}",
                    stacklevel=2,
                )
            finally:
                self._current_source = None

    def reload_plugins(self) -> None:
        """Re-scan entry points (after installing a plugin in a running process)."""
        with self._lock:
            self._ensure_loaded()
            if self._group:
                importlib.invalidate_caches()
                self._load_entry_points()


def _call(spec: str, *args: Any) -> Any:
    """Import ``module`` (``"module"``) or import and call ``module:function`` with ``args``."""
    module, _, func = spec.partition(":")
    mod = importlib.import_module(module)
    return getattr(mod, func)(*args) if func else mod


def _describe(obj: Any) -> str:
    module = getattr(obj, "__module__", None) or "?"
    return f"{module}.{getattr(obj, '__qualname__', type(obj).__name__)}"


# Tasks, groups and suites are filled by the task index (micon_tasks/index.py) from the cards: the built-in
# card folders, entry-point plugins (a module, a Task class or a folder of cards) and --include_path folders.
_CARDS = "micon_tasks.index:load_builtin_cards"
tasks = Registry("task", builtins=(_CARDS,), entry_point_group="micon.tasks", folder_hook="micon_tasks.index:include_plugin")
adapters = Registry("adapter", builtins=("adapters.builtin",), entry_point_group="micon.adapters")
judges = Registry("judge", builtins=("micon_tasks.judges", "micon_tasks.suites"), entry_point_group="micon.judges")
# Groups: name -> ordered list of task names (``micon`` = the six tasks in the paper's order).
groups = Registry("group", builtins=(_CARDS,))
# Suites: groups whose card has a ``suite:`` block (name -> that block plus ``group`` and ``tasks``); each
# suite gets its own block in results.json, and a run never averages across suites.
suites = Registry("suite", builtins=(_CARDS,))
# Scoring kinds: a task card's ``scoring.kind`` -> the ScoringKind instance that scores and summarises it.
scoring_kinds = Registry("scoring kind", builtins=("micon_tasks.scoring", "micon_tasks.suites"), entry_point_group="micon.scoring_kinds")


def register_task(name: str, aliases: Iterable[str] = (), *, override: bool = False) -> Callable:
    return tasks.register(name, aliases, override=override)


def register_adapter(name: str, aliases: Iterable[str] = (), *, override: bool = False) -> Callable:
    return adapters.register(name, aliases, override=override)


def register_judge(name: str, aliases: Iterable[str] = (), *, override: bool = False) -> Callable:
    return judges.register(name, aliases, override=override)


def register_group(name: str, members: Iterable[str], *, override: bool = False, source: str | None = None) -> None:
    groups.add(name, list(members), override=override, source=source)


def get_task(name: str) -> Any:
    return tasks.get(name)


def get_adapter(name: str) -> Any:
    return adapters.get(name)


def get_judge(name: str) -> Any:
    return judges.get(name)


def list_tasks(pattern: str = "*") -> list[str]:
    return tasks.list(pattern)


def list_adapters(pattern: str = "*") -> list[str]:
    return adapters.list(pattern)


def list_judges(pattern: str = "*") -> list[str]:
    return judges.list(pattern)


def expand_task_names(specs: Iterable[str] | str) -> list[str]:
    """Resolve names, aliases, globs and groups to canonical task names, keeping order, no repeats.

    ``"micon"`` gives the six tasks in the paper's order; ``"*_composition"`` a glob; ``"a,b"`` a list.
    """
    if isinstance(specs, str):
        specs = [specs]
    out: list[str] = []
    for spec in specs:
        for part in (p.strip() for p in spec.split(",")):
            if not part:
                continue
            if part in groups:
                names = [tasks.canonical(m) for m in groups.get(part)]
            elif any(ch in part for ch in "*?["):
                names = tasks.list(part)
                if not names:
                    raise UnknownNameError(f"No task matches the pattern {part!r}. Known tasks: {', '.join(tasks.list())}.")
            else:
                try:
                    names = [tasks.canonical(part)]
                except UnknownNameError:
                    known_groups = ", ".join(groups.list())
                    raise UnknownNameError(f"{tasks._unknown_message(part)} Groups: {known_groups}.") from None
            out.extend(n for n in names if n not in out)
    return out
