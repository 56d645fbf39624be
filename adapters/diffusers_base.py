"""Shared machinery for adapters built on a diffusers pipeline: loading, seeding, DAR, model info.

Why one base: every diffusers adapter loads the same way (``from_pretrained`` with dtype, revision,
``trust_remote_code=False``), must seed every generator the pipeline touches, and applies DAR through
``dar.enable(pipe, config)`` around the call, keeping the handle's counts in ``last_dar_stats`` (the base
``generate`` refuses an image for which DAR rebalanced nothing). Subclasses only build the call's keyword
arguments.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, ClassVar

from adapters.base import GenerationError, ModelAdapter, seed_everything
from micon_tasks.devices import check_dtype_name, resolve_device, resolve_dtype
from micon_tasks.errors import ConfigError

__all__ = ["DiffusersAdapter", "TextLengthAdapter"]


class DiffusersAdapter(ModelAdapter):
    """Base of the diffusers adapters. Subclasses set ``pipeline_class`` and write ``pipeline_kwargs``."""

    pipeline_class: ClassVar[str] = ""  # attribute name in the ``diffusers`` package
    supports_dar = True

    def __init__(
        self,
        pretrained: str,
        *,
        dtype: str | None = "auto",
        device: str | None = "auto",
        steps: int = 50,
        guidance_scale: float | None = None,
        height: int | None = None,
        width: int | None = None,
        revision: str | None = None,
        variant: str | None = None,
        trust_remote_code: bool = False,
        local_files_only: bool = False,
        cpu_offload: bool = False,
    ):
        if not pretrained:
            raise ConfigError(f"adapter {self.name!r} needs pretrained=<Hub id or local folder>")
        self.pretrained = str(pretrained)
        check_dtype_name(dtype, what=f"adapter {self.name!r} dtype")  # a typo fails before any download
        self.dtype_name = dtype
        self.device_name = device
        self.steps = int(steps)
        self.guidance_scale = None if guidance_scale is None else float(guidance_scale)
        self.width, self.height = self.output_size(width, height)
        self.revision = revision
        self.variant = variant
        self.trust_remote_code = bool(trust_remote_code)
        self.local_files_only = bool(local_files_only)
        self.cpu_offload = bool(cpu_offload)
        self._pipe: Any = None

    # -- loading ----------------------------------------------------------------------------------
    def preflight(self) -> None:
        """diffusers imports and has the pipeline class; the weights are a local folder, cached, or reachable
        (offline runs: cached). One line naming the argument if not; nothing is loaded."""
        import importlib.util

        if importlib.util.find_spec("diffusers") is None:
            raise ConfigError(f"adapter {self.name!r} needs diffusers: pip install 'micon-bench[diffusers]'")
        import diffusers

        if not hasattr(diffusers, self.pipeline_class):
            raise ConfigError(f"adapter {self.name!r}: this diffusers ({diffusers.__version__}) has no "
                              f"{self.pipeline_class}; upgrade diffusers")
        from micon_tasks.weights import weights_problem

        problem = weights_problem(self.pretrained, "model_index.json", self.revision, offline=self.local_files_only)
        if problem:
            raise ConfigError(f"adapter {self.name!r} cannot get pretrained={self.pretrained}: {problem}")

    @property
    def pipe(self) -> Any:
        """The pipeline, loaded on first use (so building an adapter to list or inspect it is cheap)."""
        if self._pipe is None:
            self._pipe = self.load_pipeline()
        return self._pipe

    def load_pipeline(self) -> Any:
        import diffusers

        self.device = resolve_device(self.device_name)
        self.torch_dtype = resolve_dtype(self.dtype_name, self.device, what=f"adapter {self.name!r} dtype")
        cls = getattr(diffusers, self.pipeline_class)
        from diffusers.utils import deprecation_utils

        # newer diffusers renamed torch_dtype= to dtype= (the old name warns); older ones know only torch_dtype
        dtype_key = "dtype" if hasattr(deprecation_utils, "_TORCH_DTYPE_DEPRECATION_MESSAGE") else "torch_dtype"
        kwargs: dict[str, Any] = {dtype_key: self.torch_dtype, "local_files_only": self.local_files_only}
        if self.revision:
            kwargs["revision"] = self.revision
        if self.variant:
            kwargs["variant"] = self.variant
        if self.trust_remote_code:
            kwargs["trust_remote_code"] = True
        try:
            pipe = cls.from_pretrained(self.pretrained, **kwargs)
        except (OSError, ValueError, RuntimeError, ImportError) as exc:  # missing or broken weights: the user's
            raise ConfigError(f"adapter {self.name!r}: cannot load the weights pretrained={self.pretrained!r}: "
                              f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''} "
                              "(--verbose shows the whole error)") from exc
        if self.cpu_offload:
            pipe.enable_model_cpu_offload(device=self.device)
        else:
            pipe.to(self.device)
        pipe.set_progress_bar_config(disable=True)
        self.after_load(pipe)
        return pipe

    def after_load(self, pipe: Any) -> None:
        """Hook for subclasses (e.g. loading adapter weights)."""

    # -- generation -------------------------------------------------------------------------------
    def pipeline_kwargs(self, refs: list[Any], prompt: str) -> dict[str, Any]:
        """The pipeline call's keyword arguments for these references and this instruction
        (``common_kwargs()`` plus what the adapter's own pipeline takes)."""
        raise NotImplementedError

    def common_kwargs(self) -> dict[str, Any]:
        """The call arguments every pipeline here takes: the output size, the steps, the guidance when set."""
        kwargs: dict[str, Any] = {"height": self.height, "width": self.width, "num_inference_steps": self.steps}
        if self.guidance_scale is not None:
            kwargs["guidance_scale"] = self.guidance_scale
        return kwargs

    @contextlib.contextmanager
    def call_context(self) -> Iterator[None]:
        """Anything the pipeline call needs around it (restored afterwards)."""
        yield

    def _generate(self, refs, prompt, *, dar, seed, **gen_kwargs):
        import torch

        pipe = self.pipe
        kwargs = self.pipeline_kwargs(refs, prompt)
        kwargs.update(gen_kwargs)
        if seed is not None:
            # Pipelines draw from the global generators in places that ignore generator= (OmniGen's
            # reference VAE sampling): seed those too, then give the pipeline its own generator.
            seed_everything(seed)
            kwargs.setdefault("generator", torch.Generator(device="cpu").manual_seed(int(seed)))
        dar_context = self.dar_hook(pipe, dar)
        try:
            with self.call_context(), dar_context, torch.inference_mode():
                output = pipe(**kwargs)
        except torch.OutOfMemoryError as exc:
            raise GenerationError(f"{self.name}: out of memory: {exc}", reason="model_error") from None
        images = getattr(output, "images", None)
        if not images:
            raise GenerationError(f"{self.name}: the pipeline returned no image", reason="no_image")
        if getattr(dar_context, "maps", None) is not None:  # DARConfig(record_maps=True)
            images[0].info["dar_maps"] = self.dar_maps(dar_context.maps.result(), refs)
        return images[0]

    def dar_maps(self, maps: Any, refs: list[Any]) -> Any:
        """The recorded DAR maps, one per reference in ``refs`` order (adapters that merge references into
        one model input split the map here)."""
        return maps

    def generation_settings(self) -> dict[str, Any]:
        return {"steps": self.steps, "guidance_scale": self.guidance_scale, "height": self.height,
                "width": self.width}

    def model_info(self) -> dict[str, Any]:
        import importlib.metadata

        try:
            version = importlib.metadata.version("diffusers")
        except importlib.metadata.PackageNotFoundError:
            version = None
        return {
            **super().model_info(),
            "weights": self.pretrained,
            "pipeline": self.pipeline_class,
            "dtype": self.dtype_name,
            "torch_dtype": str(getattr(self, "torch_dtype", None) or "") or None,  # resolved once loaded
            "device": self.device_name,
            "revision": self.revision,
            "variant": self.variant,
            "diffusers_version": version,
            "generation": self.generation_settings(),
        }


class TextLengthAdapter(DiffusersAdapter):
    """A diffusers adapter whose pipeline caps the prompt's tokens with ``max_sequence_length`` (FLUX,
    Qwen-Image); the setting lives here once, in the call and in the recorded settings."""

    def __init__(self, pretrained: str, *, max_sequence_length: int = 512, **common: Any):
        super().__init__(pretrained, **common)
        self.max_sequence_length = int(max_sequence_length)

    def common_kwargs(self) -> dict[str, Any]:
        return {**super().common_kwargs(), "max_sequence_length": self.max_sequence_length}

    def generation_settings(self) -> dict[str, Any]:
        return {**super().generation_settings(), "max_sequence_length": self.max_sequence_length}
