"""What the three upstream-code adapters share: finding the checkout, importing from it, loading weights,
and :class:`UpstreamAdapter`, their base (the common arguments, lazy loading, seeding, model info).

Why a checkout: OmniGen2, BAGEL and UNO publish their inference code as repositories, not pip
packages. The adapter imports that code from ``code_path`` (or ``MICON_<NAME>_CODE``) and never
vendors it. Everything here is import-light: torch is imported inside functions only.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import os
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from adapters.base import ModelAdapter, seed_everything
from micon_tasks.devices import resolve_device
from micon_tasks.errors import ConfigError

__all__ = [
    "UpstreamAdapter",
    "UpstreamSpec",
    "resolve_code_path",
    "upstream_imports",
    "resolve_weights",
    "merge_settings",
]


@dataclass(frozen=True)
class UpstreamSpec:
    """Where an adapter's upstream code lives and how to recognise a checkout of it."""

    adapter: str  # registered adapter name
    env_var: str  # MICON_<NAME>_CODE
    repo: str  # owner/name on GitHub
    probe: str  # a file every checkout has, relative to its root
    top_level: tuple[str, ...]  # the top-level module names the checkout provides

    @property
    def url(self) -> str:
        return f"https://github.com/{self.repo}"


def resolve_code_path(spec: UpstreamSpec, code_path: str | os.PathLike | None) -> Path:
    """The checkout root from ``code_path`` or the environment; a clear error when it is not a checkout."""
    raw = code_path if code_path not in (None, "") else os.environ.get(spec.env_var)
    if not raw:
        raise ConfigError(
            f"adapter {spec.adapter!r}: argument 'code_path' is required (or set {spec.env_var}); "
            f"point it at a checkout of {spec.url} (git clone {spec.url})"
        )
    path = Path(raw).expanduser().resolve()
    if not path.is_dir():
        raise ConfigError(
            f"adapter {spec.adapter!r}: code_path {str(path)!r} is not a directory; "
            f"it must be a checkout of {spec.url}"
        )
    if not (path / spec.probe).is_file():
        raise ConfigError(
            f"adapter {spec.adapter!r}: code_path {str(path)!r} is not a checkout of {spec.url} "
            f"({spec.probe} is missing)"
        )
    return path


@contextlib.contextmanager
def upstream_imports(spec: UpstreamSpec, root: Path) -> Iterator[None]:
    """Put ``root`` first on sys.path for the imports, then restore sys.path exactly.

    Upstream repositories use generic top-level names (BAGEL's ``data``, ``modeling``); a module of
    that name already imported from elsewhere would silently shadow the checkout, so that is refused.
    """
    for name in spec.top_level:
        mod = sys.modules.get(name)
        where = getattr(mod, "__file__", None) or next(iter(getattr(mod, "__path__", []) or []), None)
        if mod is not None and where is not None and not Path(where).resolve().is_relative_to(root):
            raise ConfigError(
                f"adapter {spec.adapter!r}: module {name!r} is already imported from {where}, which shadows "
                f"the {spec.repo} checkout at {root}; run this adapter in a fresh process"
            )
    saved = list(sys.path)
    sys.path.insert(0, str(root))
    importlib.invalidate_caches()
    try:
        yield
    except ImportError as exc:
        if exc.name and exc.name.split(".")[0] in spec.top_level:
            raise ConfigError(
                f"adapter {spec.adapter!r}: cannot import {exc.name!r} from code_path {str(root)!r}; "
                f"is it a checkout of {spec.url}? ({exc})"
            ) from exc
        raise ImportError(
            f"adapter {spec.adapter!r}: the {spec.repo} code at {root} needs a package that is missing or "
            f"incompatible: {exc}"
        ) from exc
    finally:
        sys.path[:] = saved


def resolve_weights(pretrained: str, *, adapter: str, allow_patterns: Sequence[str] | None = None) -> Path:
    """A local folder as is; otherwise a Hub snapshot (downloaded once into the Hugging Face cache)."""
    local = Path(pretrained).expanduser()
    if local.exists():
        return local.resolve()
    if pretrained.startswith((".", "/", "~")):
        raise ConfigError(f"adapter {adapter!r}: pretrained path {pretrained!r} does not exist")
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(pretrained, allow_patterns=list(allow_patterns) if allow_patterns else None))
    except Exception as exc:  # offline, gated, unknown repo: say which argument to fix
        raise ConfigError(f"adapter {adapter!r}: cannot get weights 'pretrained={pretrained}': {exc}") from exc


def merge_settings(adapter: str, settings: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """The adapter's generation settings with per-call ``gen_kwargs`` applied; an unknown key is an error."""
    unknown = set(overrides) - set(settings)
    if unknown:
        raise ConfigError(f"adapter {adapter!r}: unknown generation settings {sorted(unknown)}; "
                          f"accepted: {sorted(settings)}")
    return {**settings, **overrides}


class UpstreamAdapter(ModelAdapter):
    """Base of the upstream-code adapters. Subclasses set ``spec``, pass their own defaults for
    ``pretrained``, ``steps`` and ``seed``, and write ``_load`` (build the model once) and ``_generate``."""

    spec: ClassVar[UpstreamSpec]
    supports_dar = True
    #: why the upstream code runs in bfloat16 only (None: the adapter resolves ``dtype`` itself)
    bfloat16_only: ClassVar[str | None] = None

    def __init__(
        self,
        code_path: str | None = None,
        *,
        pretrained: str,
        steps: int,
        seed: int,
        dtype: str = "bfloat16",
        device: str | None = None,
        height: int | None = None,
        width: int | None = None,
    ):
        name = self.spec.adapter
        self.code_path = resolve_code_path(self.spec, code_path)
        if self.bfloat16_only and str(dtype).lower() not in ("bfloat16", "bf16"):
            raise ConfigError(f"adapter {name!r}: dtype must be bfloat16 ({self.bfloat16_only}), not {dtype!r}")
        if int(steps) < 1:
            raise ConfigError(f"adapter {name!r}: steps must be >= 1, got {steps!r}")
        self.pretrained, self.dtype_name, self.device = pretrained, dtype, resolve_device(device)
        self.steps, self.seed = int(steps), int(seed)
        self.width, self.height = self.output_size(width, height)

    @functools.cached_property
    def model(self) -> Any:
        """The upstream pipeline or inferencer, built by ``_load`` on first use."""
        return self._load()

    def _load(self) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement _load()")

    def seeded(self, seed: int | None) -> int:
        """The call's seed (the adapter's when none is given), with every global generator seeded from it."""
        seed = self.seed if seed is None else int(seed)
        seed_everything(seed)  # the upstream code draws noise from the global generators in places
        return seed

    def model_info(self) -> dict[str, Any]:
        return {**super().model_info(), "upstream": self.spec.url, "code_path": str(self.code_path),
                "weights": self.pretrained, "dtype": "bfloat16" if self.bfloat16_only else self.dtype_name,
                "device": self.device, "steps": self.steps, "width": self.width, "height": self.height,
                "seed": self.seed}
