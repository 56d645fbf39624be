"""``k=v,k2=v2`` argument strings in lm-eval's manner (``--model_args``, ``--judge_args``, ``--dar_args``).

Values are coerced like lm-eval's ``handle_arg_string``: true/false -> bool, none -> None, integers,
floats, quoted strings stay strings. A JSON object is accepted too. Building an object from such
arguments checks every key against the constructor, so a typo lists the accepted names.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Mapping
from typing import Any

from micon_tasks.errors import ConfigError

__all__ = ["coerce_value", "parse_args_string", "accepted_arguments", "build_with_args"]


def coerce_value(text: str) -> Any:
    low = text.strip().lower()
    if low == "true":
        return True
    if low == "false":
        return False
    if low in ("none", "null"):
        return None
    stripped = text.strip()
    if len(stripped) >= 2 and stripped[0] == stripped[-1] and stripped[0] in "'\"":
        return stripped[1:-1]
    try:
        return int(stripped)
    except ValueError:
        pass
    try:
        return float(stripped)
    except ValueError:
        return stripped


def parse_args_string(args: str | Mapping[str, Any] | None, *, what: str = "arguments") -> dict[str, Any]:
    """Parse ``"a=1,b=x"`` or ``'{"a": 1}'`` (or pass a mapping through) into a dict."""
    if args is None:
        return {}
    if isinstance(args, Mapping):
        return dict(args)
    text = args.strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{what}: not valid JSON ({exc.msg} at character {exc.pos})") from None
        if not isinstance(value, dict):
            raise ConfigError(f"{what}: JSON must be an object")
        return value
    out: dict[str, Any] = {}
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{what}: expected key=value, got {item!r}")
        out[key.strip()] = coerce_value(value)
    return out


def accepted_arguments(cls: type) -> list[str] | None:
    """The keyword arguments ``cls(...)`` accepts, following ``**kwargs`` up the class hierarchy.

    A subclass whose ``__init__`` passes ``**kwargs`` on to its base accepts the base's named arguments
    too, so adapters declare only what they add. None when some class in the chain takes anything.
    """
    names: list[str] = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        if klass is object:  # **kwargs that no base consumes: anything goes
            return None
        params = [p for p in inspect.signature(init).parameters.values() if p.name != "self"]
        names += [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in names]
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return names
    return None


def build_with_args(cls: type, args: str | Mapping[str, Any] | None, *, kind: str, name: str, **extra: Any) -> Any:
    """Instantiate ``cls`` with parsed args, refusing unknown keys with the list of accepted ones."""
    kwargs = {**parse_args_string(args, what=f"{kind} {name!r} arguments"), **extra}
    accepted = accepted_arguments(cls)
    if accepted is not None:
        unknown = sorted(set(kwargs) - set(accepted))
        if unknown:
            raise ConfigError(
                f"{kind} {name!r} does not accept {', '.join(repr(u) for u in unknown)}; "
                f"accepted arguments: {', '.join(accepted) or '(none)'}"
            )
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{kind} {name!r}: {exc}") from None
