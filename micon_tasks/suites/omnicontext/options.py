"""What a rubric task's card declares (``scoring:`` with ``kind: rubric``), read and checked once.

The scorer and the judge request both read it from here, so a setting in the card reaches both::

    scoring:
      kind: rubric
      combine: geometric_mean
      criteria: [{name: PF, template: prompt_following_v1, scene_variant: false}, ...]
      request: {image_format: jpeg, max_ref_pixels: 1048576, ref_multiple: 16, temperature: null}
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from types import MappingProxyType
from typing import Any

from micon_tasks.errors import ConfigError

__all__ = ["Criterion", "RubricOptions", "COMBINES", "REQUEST_DEFAULTS", "SCALE", "template_exists"]

COMBINES = ("geometric_mean",)
REQUEST_DEFAULTS: dict[str, Any] = {"image_format": "jpeg", "max_ref_pixels": 1024 * 1024, "ref_multiple": 16,
                                    "temperature": None}
_KEYS = {"criteria", "combine", "request"}
_READ: dict[tuple[str, str], RubricOptions] = {}  # (task, the options as JSON) -> the checked settings
SCALE = (0.0, 10.0)  # every criterion is read as a number from 0 to 10 (micon_tasks.judges.parser.parse_score_reply)


def template_exists(name: str) -> bool:
    return resources.files("micon_tasks.suites.omnicontext.templates").joinpath(f"{name}.txt").is_file()


@dataclass(frozen=True)
class Criterion:
    """One 0-10 criterion: its name (``PF``), its prompt template and whether scene types get its scene wording."""

    name: str
    template: str
    scene_variant: bool = False


@dataclass(frozen=True)
class RubricOptions:
    criteria: tuple[Criterion, ...]
    combine: str = "geometric_mean"
    request: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType(dict(REQUEST_DEFAULTS)))

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.criteria]

    def combined(self, values: list[float]) -> float:
        """The item's overall from its criterion scores (``geometric_mean``: sqrt(PF x SC) for two)."""
        return math.prod(values) ** (1.0 / len(values))

    @classmethod
    def from_options(cls, options: dict[str, Any], *, task: str) -> RubricOptions:
        """The card's settings, checked once per card and process: the request builder, the reply reader and
        the scorer ask for them for every item, and the check reads the packaged templates."""
        key = (task, json.dumps(options, sort_keys=True, default=repr))
        found = _READ.get(key)
        if found is None:
            found = _READ[key] = cls._read(options, task=task)
        return found

    @classmethod
    def _read(cls, options: dict[str, Any], *, task: str) -> RubricOptions:
        def bad(key: str, why: str) -> ConfigError:
            return ConfigError(f"task {task!r}, field 'scoring.{key}': {why}")

        unknown = sorted(set(options) - _KEYS)
        if unknown:
            raise bad(unknown[0], f"kind 'rubric' takes {sorted(_KEYS)}, not {unknown}")
        raw = options.get("criteria")
        if not isinstance(raw, list) or not raw:
            raise bad("criteria", "must be a non-empty list of {name, template, scene_variant}")
        criteria = []
        for i, c in enumerate(raw):
            if not isinstance(c, dict) or not isinstance(c.get("name"), str) or not c["name"].strip():
                raise bad(f"criteria[{i}]", "needs a 'name'")
            extra = sorted(set(c) - {"name", "template", "scene_variant"})
            if extra:
                raise bad(f"criteria[{i}]", f"unknown keys {extra}")
            template = c.get("template")
            if not isinstance(template, str) or not template_exists(template):
                raise bad(f"criteria[{i}].template", f"no packaged template {template!r}")
            scene = c.get("scene_variant", False)
            if not isinstance(scene, bool):
                raise bad(f"criteria[{i}].scene_variant", "must be true or false")
            if scene and not template_exists(f"{template}_scene"):
                raise bad(f"criteria[{i}].scene_variant", f"template {template!r} has no scene wording")
            criteria.append(Criterion(c["name"].strip(), template, scene))
        names = [c.name for c in criteria]
        if len(set(names)) != len(names):
            raise bad("criteria", f"names repeat: {names}")
        combine = options.get("combine", "geometric_mean")
        if combine not in COMBINES:
            raise bad("combine", f"{combine!r} is not one of {COMBINES}")
        request = {**REQUEST_DEFAULTS, **(options.get("request") or {})}
        extra = sorted(set(request) - set(REQUEST_DEFAULTS))
        if extra:
            raise bad("request", f"unknown keys {extra}; known: {sorted(REQUEST_DEFAULTS)}")
        if request["image_format"] not in ("jpeg", "png"):
            raise bad("request.image_format", "must be 'jpeg' or 'png'")
        for key in ("max_ref_pixels", "ref_multiple"):
            v = request[key]
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise bad(f"request.{key}", f"must be a positive integer or null, got {v!r}")
        t = request["temperature"]
        if t is not None and (isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t < 0):
            raise bad("request.temperature", f"must be a number >= 0 or null (the server's default), got {t!r}")
        return cls(tuple(criteria), combine, MappingProxyType(request))  # shared by every reader: read-only
