"""The JSON schemas shipped with the package (case records and checkpoint sets).

A ``pattern`` anchored at both ends (``^...$``) is a full-match rule here: Python's ``$`` also matches
before a final newline, so ``"case_1\n"`` would pass ``^[A-Za-z0-9_]+$`` under the plain rule.
A pattern's ``description`` says in words what a value breaking it lacks.
"""

from __future__ import annotations

import json
import re
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["load_schema", "first_error"]


@cache
def _validator(name: str) -> Any:
    import jsonschema

    schema = json.loads(resources.files(__name__).joinpath(f"{name}.schema.json").read_text("utf-8"))
    base = jsonschema.validators.validator_for(schema)
    base.check_schema(schema)
    cls = jsonschema.validators.extend(base, {"pattern": _pattern})
    return cls(schema)


def _pattern(validator: Any, pattern: str, instance: Any, schema: dict) -> Any:
    """``pattern`` with anchored patterns matching the whole string (see the module docstring)."""
    import jsonschema

    if not validator.is_type(instance, "string"):
        return
    whole = pattern.startswith("^") and pattern.endswith("$")
    if not (re.fullmatch(pattern, instance) if whole else re.search(pattern, instance)):
        why = f" ({schema['description']})" if "description" in schema else ""
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}{why}")


def load_schema(name: str) -> dict:
    """The schema ``name`` (``"case"`` or ``"checkpoints"``) as a dict."""
    return _validator(name).schema


def first_error(name: str, instance: Any) -> tuple[str, str] | None:
    """``(field path, rule broken)`` of the most relevant violation, or None when valid."""
    import jsonschema

    errors = list(_validator(name).iter_errors(instance))
    if not errors:
        return None
    err = jsonschema.exceptions.best_match(errors)
    path = ".".join(str(p) for p in err.absolute_path) or "(record)"
    return path, err.message
