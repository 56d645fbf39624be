"""``k=v,k2=v2`` argument strings in lm-eval's manner (``--model_args``, ``--judge_args``, ``--dar_args``).

Values are coerced like lm-eval's ``handle_arg_string``: true/false -> bool, none -> None, integers,
floats, quoted strings stay strings. A JSON object is accepted too. Building an object from such
arguments checks every key against the constructor, so a typo lists the accepted names, and every
value against the constructor's type hint and the argument's range (``COMMON_RANGES`` plus a class's
own ``arg_ranges``): ``width=1.5``, ``width=true``, ``width=0``, ``timeout=nan`` or an empty value are
refused with one line naming the argument. Messages never echo a value (it may be a secret).
"""

from __future__ import annotations

import inspect
import json
import math
import re
import types
import typing
from collections.abc import Mapping
from typing import Any

from micon_tasks.errors import ConfigError

__all__ = ["coerce_value", "parse_args_string", "accepted_arguments", "build_with_args", "check_argument",
           "COMMON_RANGES"]

#: ranges of argument names shared by many components (a class's ``arg_ranges`` adds or overrides)
COMMON_RANGES: dict[str, str] = {
    "width": ">= 1", "height": ">= 1", "steps": ">= 1", "batch_size": ">= 1", "concurrency": ">= 1",
    "max_tokens": ">= 1", "max_new_tokens": ">= 1", "num_images": ">= 1",
    "max_retries": ">= 0", "seed": ">= 0", "reask": ">= 0", "timeout": "> 0", "max_wait": ">= 0",
    "temperature": ">= 0", "guidance_scale": ">= 0", "max_image_pixels": ">= 1024",
}
_RANGE = re.compile(r"^\s*(>=|>|<=|<)\s*(-?[0-9.e+]+)\s*$|^\s*(-?[0-9.e+]+)\s*\.\.\s*(-?[0-9.e+]+)\s*$")


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
    """Parse ``"a=1,b=x"`` or ``'{"a": 1}'`` (or pass a mapping through) into a dict.

    A malformed string is refused naming the position of the bad item, never its text.
    """
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
    items = text.split(",")
    for n, item in enumerate(items, 1):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{what}: item {n} of {len(items)} is not key=value (values are not shown here; "
                              "a value holding a comma must be given as JSON)")
        if key.strip() in out:
            raise ConfigError(f"{what}: {key.strip()!r} is given twice")
        out[key.strip()] = coerce_value(value)
    return out


def accepted_arguments(cls: type) -> list[str] | None:
    """The keyword arguments ``cls(...)`` accepts, following ``**kwargs`` up the class hierarchy.

    A subclass whose ``__init__`` passes ``**kwargs`` on to its base accepts the base's named arguments
    too, so adapters declare only what they add. None when some class in the chain takes anything.
    """
    chain = _signature_chain(cls)
    return None if chain is None else list(chain)


def _signature_chain(cls: type) -> dict[str, Any] | None:
    """name -> type hint (None when it has none) along the ``**kwargs`` chain; None when anything goes."""
    found: dict[str, Any] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        if klass is object:  # **kwargs that no base consumes: anything goes
            return None
        try:
            hints = typing.get_type_hints(init)
        except Exception:  # noqa: BLE001 - a hint that cannot be resolved is simply not checked
            hints = {}
        params = [p for p in inspect.signature(init).parameters.values() if p.name != "self"]
        for p in params:
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in found:
                found[p.name] = hints.get(p.name)
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            return found
    return None


def _class_table(cls: type, attr: str) -> dict[str, str]:
    """A class-level table (``arg_ranges``, ``removed_args``) merged down the hierarchy, subclasses winning."""
    out: dict[str, str] = {}
    for klass in reversed(cls.__mro__):
        out.update(klass.__dict__.get(attr, {}) or {})
    return out


class _Refused(ValueError):
    pass


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number with a fraction" if math.isfinite(value) else "a non-finite number"
    if value is None:
        return "none"
    if isinstance(value, str):
        return "empty text" if not value.strip() else "text"
    return type(value).__name__


def _convert(value: Any, hint: Any) -> Any:
    """``value`` as ``hint`` asks, or _Refused saying what was expected."""
    if hint is None or hint is Any or hint is inspect.Parameter.empty:
        if isinstance(value, float) and not math.isfinite(value):
            raise _Refused("a finite number")
        return value
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        members = typing.get_args(hint)
        if value is None and type(None) in members:
            return None
        wanted = []
        for m in members:
            if m is type(None):
                continue
            try:
                return _convert(value, m)
            except _Refused as exc:
                wanted.append(str(exc))
        raise _Refused(" or ".join(wanted))
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise _Refused("a list")
        (inner,) = typing.get_args(hint)[:1] or (Any,)
        return [_convert(v, inner) for v in value]
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise _Refused("an object")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise _Refused("true or false")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Refused("an integer")
        if isinstance(value, float):
            if not math.isfinite(value) or not value.is_integer():
                raise _Refused("an integer")
            return int(value)
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Refused("a number")
        if not math.isfinite(value):
            raise _Refused("a finite number")
        return value
    if hint is str:
        if isinstance(value, bool) or value is None or isinstance(value, (list, dict)):
            raise _Refused("text")
        if isinstance(value, float) and not math.isfinite(value):
            raise _Refused("text")
        return value if isinstance(value, str) else str(value)
    return value


def _check_range(value: Any, rule: str) -> str | None:
    """Why ``value`` is outside ``rule`` (e.g. ">= 1", "0..2"), or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    m = _RANGE.match(rule)
    if m is None:
        raise ValueError(f"bad range rule {rule!r}")
    if m.group(1):
        op, bound = m.group(1), float(m.group(2))
        ok = {">=": value >= bound, ">": value > bound, "<=": value <= bound, "<": value < bound}[op]
        return None if ok else f"must be {op} {m.group(2)}"
    lo, hi = float(m.group(3)), float(m.group(4))
    return None if lo <= value <= hi else f"must be in {m.group(3)}..{m.group(4)}"


def check_argument(where: str, name: str, value: Any, hint: Any, rule: str | None) -> Any:
    """``value`` converted to ``hint`` and inside ``rule``; a ConfigError naming ``name`` otherwise."""
    if isinstance(value, str) and not value.strip():
        raise ConfigError(f"{where}: argument {name!r} is empty; leave it out to use its default")
    try:
        value = _convert(value, hint)
    except _Refused as exc:
        raise ConfigError(f"{where}: argument {name!r} must be {exc}, got {_describe(value)}") from None
    if rule and value is not None:
        problem = _check_range(value, rule)
        if problem:
            raise ConfigError(f"{where}: argument {name!r} {problem}")
    return value


def build_with_args(cls: type, args: str | Mapping[str, Any] | None, *, kind: str, name: str, **extra: Any) -> Any:
    """Instantiate ``cls`` with parsed, checked args, refusing unknown keys with the list of accepted ones.

    A class may declare ``removed_args`` (old name -> the line naming its replacement) and
    ``arg_ranges`` (name -> ">= 1", "> 0", "0..2" ...).
    """
    where = f"{kind} {name!r}"
    kwargs = {**parse_args_string(args, what=f"{where} arguments"), **extra}
    removed = _class_table(cls, "removed_args")
    for key in kwargs:
        if key in removed:
            raise ConfigError(f"{where}: argument {key!r} was removed: {removed[key]}")
    chain = _signature_chain(cls)
    if chain is not None:
        unknown = sorted(set(kwargs) - set(chain))
        if unknown:
            raise ConfigError(
                f"{where} does not accept {', '.join(repr(u) for u in unknown)}; "
                f"accepted arguments: {', '.join(chain) or '(none)'}"
            )
        ranges = {**COMMON_RANGES, **_class_table(cls, "arg_ranges")}
        kwargs = {k: check_argument(where, k, v, chain[k], ranges.get(k)) for k, v in kwargs.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:
        missing = re.findall(r"missing \d+ required (?:positional|keyword-only) arguments?: (.*)$", str(exc))
        if missing:
            first = missing[0].replace(" and ", ", ").split(",")[0].strip().strip("'")
            raise ConfigError(f"{where} needs the argument {missing[0]} (e.g. --{kind}_args {first}=...)") from None
        raise ConfigError(f"{where}: {exc}") from None
