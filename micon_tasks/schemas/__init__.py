"""The JSON schemas shipped with the package (case records and checkpoint sets)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

__all__ = ["load_schema", "first_error"]


@cache
def _validator(name: str) -> Any:
    import jsonschema

    schema = json.loads(resources.files(__name__).joinpath(f"{name}.schema.json").read_text("utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


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
