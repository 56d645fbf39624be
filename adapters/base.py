"""The model adapter contract: one class per model, one ``generate`` call per case.

Why a template method: ``generate`` does what every adapter must do the same way (check the references,
resolve and refuse DAR requests, check the output) and calls ``_generate``, the one method an adapter
writes. The runner records a :class:`GenerationError` per case; any other exception is a bug.
"""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from micon_tasks.errors import ConfigError, MiconError

if TYPE_CHECKING:  # heavy imports stay out of module import time
    from PIL.Image import Image

    from dar import DARConfig, DARStats

log = logging.getLogger(__name__)

__all__ = [
    "ModelAdapter",
    "GenerationError",
    "GenerationRequest",
    "DARNotSupportedError",
    "resolve_dar",
    "seed_everything",
]


class GenerationError(MiconError, RuntimeError):
    """A generation that failed for a reason outside the harness: a refusal, a safety block, an API error.

    ``reason`` is a short machine-readable code (``"refused"``, ``"safety"``, ``"rate_limited"``,
    ``"provider_error"``, ``"no_image"``, ``"bad_output"``, ``"model_error"``); ``provider_reason`` is
    what the provider said, verbatim (never a secret). ``retryable`` says whether trying again may help.
    """

    def __init__(
        self, message: str, *, reason: str, provider_reason: str | None = None, retryable: bool = False
    ):
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.provider_reason = provider_reason
        self.retryable = retryable

    def to_dict(self) -> dict[str, Any]:
        """What the runner writes into a case record."""
        return {
            "message": self.message,
            "reason": self.reason,
            "provider_reason": self.provider_reason,
            "retryable": self.retryable,
        }


class DARNotSupportedError(ConfigError):
    """DAR was requested from an adapter that cannot apply it (never silently ignored)."""


def resolve_dar(dar: Any) -> DARConfig | None:
    """None/False -> None (off); True -> the paper's defaults; a DARConfig -> itself; a dict -> DARConfig(**dict)."""
    if dar is None or dar is False:
        return None
    from dar import DARConfig  # imported here: the dar package may pull in torch

    if dar is True:
        return DARConfig()
    if isinstance(dar, DARConfig):
        return dar
    if isinstance(dar, Mapping):
        import dataclasses

        fields = [f.name for f in dataclasses.fields(DARConfig)]
        unknown = sorted(set(dar) - set(fields))
        if unknown:
            raise ConfigError(f"DAR settings: unknown {', '.join(map(repr, unknown))}; accepted: {', '.join(fields)}")
        try:
            return DARConfig(**dict(dar))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"DAR settings {dict(dar)!r}: {exc}") from None
    raise ConfigError(f"dar must be None, a bool, a DARConfig or a dict, not {type(dar).__name__}")


def seed_everything(seed: int | None) -> None:
    """Seed Python, NumPy and torch (CPU and CUDA) globally.

    Pipelines draw from the global generators in places that ignore ``generator=`` (OmniGen's reference
    VAE sampling, dropout, ...), so a seeded run sets every one of them. torch is imported only if loaded.
    """
    if seed is None:
        return
    import sys

    random.seed(seed)
    if "numpy" in sys.modules:
        sys.modules["numpy"].random.seed(seed % 2**32)
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        torch.manual_seed(seed)  # seeds CUDA devices as well


@dataclass
class GenerationRequest:
    """One item of :meth:`ModelAdapter.generate_batch` (``case_id`` only labels errors).

    ``size``: the output (width, height) the task asks for (its card's ``generation``), either may be None;
    see :meth:`ModelAdapter.generate` for how it ranks against the adapter's own settings.
    """

    refs: list[Any]
    prompt: str
    seed: int | None = None
    case_id: str | None = None
    gen_kwargs: dict[str, Any] = field(default_factory=dict)
    size: tuple[int | None, int | None] | None = None


class ModelAdapter:
    """Base class of every model adapter.

    Subclass it, give ``__init__`` explicit keyword arguments (``load_adapter`` checks arg strings against
    them), write ``_generate``, and register the class with ``@register_adapter("name")``.

    Class attributes:
      * ``max_refs``: the most reference images the model takes (None: no limit);
      * ``supports_dar``: whether ``_generate`` applies DAR; if False a DAR request raises. If True,
        ``_generate`` must set ``self.last_dar_stats`` to the :class:`dar.DARStats` of the call (e.g. the
        ``dar.enable`` handle's ``stats``) whenever it is given a config: ``generate`` refuses the image
        with a ``GenerationError`` (reason ``model_error``) when DAR rebalanced no attention call;
      * ``default_size``: the output (width, height) when neither the constructor nor the task asks for one.

    Output size: an adapter keeps its size in ``self.width`` / ``self.height`` (set through
    :meth:`output_size` or :meth:`given_size`, which remember what the constructor was given in
    ``fixed_size``) and reads them when it generates. For one call, ``generate(size=...)`` (a task card's
    ``generation`` width/height) replaces the sides the constructor did not fix.
    """

    max_refs: ClassVar[int | None] = None
    supports_dar: ClassVar[bool] = False
    default_size: ClassVar[tuple[int, int]] = (1024, 1024)
    registered_name: ClassVar[str | None] = None  # set by the registry on registration
    #: the (width, height) the constructor was given explicitly (None where not): they outrank a task's size
    fixed_size: tuple[int | None, int | None] = (None, None)
    #: DAR's counts for the last ``generate`` (None when it ran without DAR); see :class:`dar.DARStats`
    last_dar_stats: DARStats | None = None

    # -- public API -----------------------------------------------------------------------------
    def preflight(self) -> None:
        """Check at start-up, cheaply and without loading weights, that this adapter can work (its code
        imports, its weights are resolvable); raise a ConfigError in one line if not. Default: nothing to check."""

    def generate(
        self, refs: Sequence[Image], prompt: str, *, dar: Any = None, seed: int | None = None,
        size: tuple[int | None, int | None] | None = None, **gen_kwargs: Any
    ) -> Image:
        """Generate one image from the references (RA, RB, RC order) and the instruction.

        ``size``: the (width, height) the task asks for. Precedence per side: the constructor's explicit
        ``width``/``height`` (``--model_args``), then ``size``, then the adapter's default. ``gen_kwargs``
        go to the model call as they are.
        """
        refs = self.check_refs(refs)
        if not isinstance(prompt, str):
            raise ConfigError(f"adapter {self.name!r}: prompt must be a string, not {type(prompt).__name__}")
        if dar is not None and dar is not False and not self.supports_dar:
            raise DARNotSupportedError(
                f"adapter {self.name!r} cannot apply DAR (supports_dar is False); run it with dar=None/False"
            )
        config = resolve_dar(dar)
        self.last_dar_stats = None
        with self._sized(size):
            image = self._generate(refs, prompt, dar=config, seed=seed, **gen_kwargs)
        if config is not None:
            self._check_dar_reached(config)
        image = self._check_output(image)
        if config is not None:  # travels with the image, also through generate_batch, into the case record
            image.info["dar_stats"] = self.last_dar_stats.to_dict()
        return image

    def generate_batch(
        self, requests: Sequence[GenerationRequest], *, dar: Any = None
    ) -> list[Image | GenerationError]:
        """Generate each request in turn; a GenerationError is returned in that item's place.

        Adapters that batch natively override this. Other exceptions propagate: they are bugs.
        """
        out: list[Image | GenerationError] = []
        for req in requests:
            try:
                out.append(self.generate(req.refs, req.prompt, dar=dar, seed=req.seed, size=req.size,
                                         **req.gen_kwargs))
            except GenerationError as exc:
                out.append(exc)
        return out

    def model_info(self) -> dict[str, Any]:
        """What goes into results: name, weights, dtype, revision, generation settings. Never secrets.

        Adapters that support DAR add ``"dar": {"last_generation": ...}``: the :class:`dar.DARStats` counts of
        the last ``generate`` (None before one, or when it ran without DAR).
        """
        info: dict[str, Any] = {
            "name": self.name,
            "adapter": f"{type(self).__module__}.{type(self).__qualname__}",
            "max_refs": self.max_refs,
            "supports_dar": self.supports_dar,
        }
        if self.supports_dar:
            stats = self.last_dar_stats
            info["dar"] = {"last_generation": None if stats is None else stats.to_dict()}
        return info

    @property
    def name(self) -> str:
        return self.registered_name or type(self).__name__

    @property
    def last_dar_calls(self) -> int:
        """Attention calls DAR rebalanced in the last ``generate`` (0 without DAR)."""
        return 0 if self.last_dar_stats is None else self.last_dar_stats.rebalanced

    # -- the hook an adapter writes ---------------------------------------------------------------
    def _generate(
        self, refs: list[Image], prompt: str, *, dar: DARConfig | None, seed: int | None, **gen_kwargs: Any
    ) -> Image:
        """Produce the image. ``refs`` are checked RGB PIL images, ``dar`` is resolved (None when off)."""
        raise NotImplementedError(f"{type(self).__name__} must implement _generate()")

    # -- shared by the adapters that run the model themselves -------------------------------------
    def dar_hook(self, target: Any, dar: DARConfig | None, **layout_args: Any) -> Any:
        """``dar.enable(target, dar, ...)`` when DAR is on, its counts kept in ``last_dar_stats`` (``generate``
        refuses the image if DAR reached no call); a do-nothing context when it is off."""
        if dar is None:
            return contextlib.nullcontext()
        import dar as dar_pkg  # here: the dar package imports torch

        hook = dar_pkg.enable(target, dar, **layout_args)
        self.last_dar_stats = hook.stats
        return hook

    # -- shared checks ----------------------------------------------------------------------------
    def _check_dar_reached(self, config: DARConfig) -> None:
        """A generation asked to use DAR must have rebalanced at least one attention call.

        With gamma = 0 the weights are all 1 but the calls still count (DAR reached them). Zero calls means
        the run would be labelled "with DAR" while being a plain run: that image is refused.
        """
        stats = self.last_dar_stats
        if stats is None:
            raise RuntimeError(f"adapter {self.name!r} declares supports_dar but its _generate did not set "
                               "last_dar_stats (a dar.DARStats, e.g. the dar.enable handle's stats), so whether "
                               "DAR was applied cannot be checked")
        if stats.rebalanced == 0:
            raise GenerationError(
                f"adapter {self.name!r}: DAR was requested ({config}) but reached no attention call: "
                f"{stats.describe()}. The layers/steps/cfg_branches options may exclude every call, or the "
                "model's token layout was not recognised; no image is recorded",
                reason="model_error",
            )

    def check_refs(self, refs: Sequence[Any]) -> list[Image]:
        """A non-empty list of PIL images within ``max_refs``, converted to RGB."""
        from PIL import Image as PILImage

        if isinstance(refs, PILImage.Image) or not isinstance(refs, Sequence) or isinstance(refs, str):
            raise ConfigError(f"adapter {self.name!r}: refs must be a list of PIL images")
        if not refs:
            raise ConfigError(f"adapter {self.name!r}: at least one reference image is required")
        if self.max_refs is not None and len(refs) > self.max_refs:  # a property of this case, not a bug
            raise GenerationError(
                f"adapter {self.name!r} takes at most {self.max_refs} reference images; this case has {len(refs)}",
                reason="unsupported_input",
            )
        out = []
        for i, ref in enumerate(refs):
            if not isinstance(ref, PILImage.Image):
                raise ConfigError(
                    f"adapter {self.name!r}: reference {i + 1} is a {type(ref).__name__}, not a PIL image"
                )
            out.append(ref if ref.mode == "RGB" else ref.convert("RGB"))
        return out

    def _check_output(self, image: Any) -> Image:
        from PIL import Image as PILImage

        if not isinstance(image, PILImage.Image):
            raise GenerationError(
                f"adapter {self.name!r} returned a {type(image).__name__}, not a PIL image", reason="bad_output"
            )
        return image

    def given_size(self, width: int | None, height: int | None) -> tuple[int | None, int | None]:
        """The constructor's width/height as given (None where not), remembered in ``fixed_size``."""
        self.fixed_size = (int(width) if width else None, int(height) if height else None)
        return self.fixed_size

    def output_size(self, width: int | None, height: int | None) -> tuple[int, int]:
        """(width, height): the constructor's (remembered in ``fixed_size``), else ``default_size``."""
        (w, h), (dw, dh) = self.given_size(width, height), self.default_size
        return (w or dw, h or dh)

    @contextlib.contextmanager
    def _sized(self, size: tuple[int | None, int | None] | None) -> Iterator[None]:
        """For one call: ``self.width``/``self.height`` take the task's size where the constructor fixed none.

        Why here: every adapter reads its size from those two attributes, so a task's size reaches each of
        them without a second code path. The attributes are restored after the call (one call at a time).
        """
        if not size or not any(size):
            yield
            return
        if not (hasattr(self, "width") and hasattr(self, "height")):
            if not getattr(self, "_size_warned", False):
                self._size_warned = True
                log.warning("adapter %r keeps no width/height: the task's output size %s is not applied",
                            self.name, size)
            yield
            return
        saved = self.width, self.height
        self.width, self.height = (fixed or (int(asked) if asked else None) or now
                                   for fixed, asked, now in zip(self.fixed_size, size, saved))
        try:
            yield
        finally:
            self.width, self.height = saved
