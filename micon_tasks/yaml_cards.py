"""The one YAML reader for cards (task cards, group cards and case cards): safe, and strict about two traps.

Why strict: ``yaml.safe_load`` still expands aliases (a 1.3 KB card with nested ``&a``/``*a`` grows to
gigabytes: the "billion laughs") and keeps the last of two repeated keys without a word (a card that says
``generation_prompt`` twice is silently half-read). Neither appears in a well-made card, so both are
refused with the line they are on; callers add the card, task and case to the message.
"""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ["CardYAMLError", "load_card_text", "describe_yaml_error"]


class CardYAMLError(yaml.YAMLError):
    """A card the strict reader refuses. ``key`` names the repeated key (None for other problems)."""

    def __init__(self, message: str, *, key: str | None = None):
        super().__init__(message)
        self.key = key


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader refusing aliases (``*name``) and repeated mapping keys."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise CardYAMLError(f"YAML alias *{event.anchor} at line {event.start_mark.line + 1}: aliases are not "
                                "allowed in cards (write the value out)")
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                if key == "<<":
                    continue
                try:
                    repeated = key in seen
                    seen.add(key)
                except TypeError:  # an unhashable key: the base class refuses it with its own message
                    continue
                if repeated:
                    raise CardYAMLError(f"key {key!r} is repeated (line {key_node.start_mark.line + 1})", key=str(key))
        return super().construct_mapping(node, deep=deep)


def load_card_text(text: str) -> Any:
    """Parse one YAML document the strict way (raises ``yaml.YAMLError``, ``CardYAMLError`` among them)."""
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass


def describe_yaml_error(exc: BaseException) -> str:
    """A YAML error in one line (PyYAML's own message spans several, with a caret drawing)."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem:
        mark = exc.problem_mark
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        context = f"{exc.context}: " if exc.context else ""
        return f"{context}{exc.problem}{where}"
    return " ".join(str(exc).split())
