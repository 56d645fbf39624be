"""``gpt_image``: OpenAI's image edit endpoint with several input images, through the ``openai`` SDK.

Every reference goes up as one PNG in the multipart ``image[]`` field; the instruction as the prompt.
A moderation block comes back as HTTP 400 with code ``moderation_blocked``: it becomes a
GenerationError(reason="safety") carrying OpenAI's message, never an image.
"""

from __future__ import annotations

import base64
import io
from typing import Any

from adapters.api_base import ApiAdapter
from adapters.base import GenerationError
from micon_tasks.openai_errors import classify_openai_error
from micon_tasks.png import png_bytes
from registry import register_adapter

__all__ = ["GPTImageAdapter"]

_SAFETY_CODES = {"moderation_blocked", "content_policy_violation", "content_filter", "safety_violations"}


@register_adapter("gpt_image", aliases=("gpt-image", "openai_image"))
class GPTImageAdapter(ApiAdapter):
    """GPT-Image through ``client.images.edit(image=[...])``. The key comes from ``api_key_env`` only.

    ``size`` (e.g. "1536x1024", "auto") is sent as given; without it, the task's width x height, else 1024x1024.
    """

    max_refs = 16
    default_size = (1024, 1024)

    def __init__(
        self,
        model: str = "gpt-image-1",
        size: str | None = None,
        quality: str | None = None,
        input_fidelity: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        **common: Any,
    ):
        super().__init__(api_key_env=api_key_env, **common)
        self.model = model
        self.size = None if size is None else str(size)  # None: the task's size, else default_size
        self.quality = quality
        self.input_fidelity = input_fidelity

    def model_info(self) -> dict[str, Any]:
        return {
            **super().model_info(),
            "weights": self.model,
            "provider": "openai",
            "endpoint": "images.edit",
            "base_url": self.base_url,
            "generation": {"size": self.size or self._size(), "quality": self.quality,
                           "input_fidelity": self.input_fidelity},
        }

    @property
    def client(self) -> Any:
        """The async client, built on the adapter's loop on first use; SDK retries off (our policy decides)."""
        if self._client is None:
            import openai

            self._client = openai.AsyncOpenAI(
                api_key=self._api_key, base_url=self.base_url, timeout=self.timeout, max_retries=0
            )
        return self._client

    def _generate(self, refs, prompt, *, dar, seed, **gen_kwargs):
        files = []
        for i, ref in enumerate(refs):
            files.append((f"image_{i + 1}.png", png_bytes(ref), "image/png"))
        params: dict[str, Any] = {"model": self.model, "prompt": prompt, "image": files,
                                  "size": self.size or self._size(), "n": 1}
        if self.quality:
            params["quality"] = self.quality
        if self.input_fidelity:
            params["input_fidelity"] = self.input_fidelity
        params.update(gen_kwargs)  # seed: the endpoint takes none, so runs are not reproducible by design
        response = self.call(lambda: self.client.images.edit(**params))
        return self._decode(response)

    def _size(self) -> str:
        return f"{self.width}x{self.height}"

    def _decode(self, response: Any):
        from PIL import Image as PILImage

        data = getattr(response, "data", None) or []
        b64 = getattr(data[0], "b64_json", None) if data else None
        if not b64:
            raise GenerationError("OpenAI returned no image data", reason="no_image")
        try:
            image = PILImage.open(io.BytesIO(base64.b64decode(b64)))
            image.load()
        except Exception as exc:  # noqa: BLE001 - a corrupt payload is the provider's failure
            raise GenerationError(f"OpenAI returned an unreadable image: {exc}", reason="bad_output") from None
        return image.convert("RGB")

    def _classify(self, exc: BaseException) -> tuple[GenerationError, float | None] | None:
        """The project's one reading of an OpenAI failure (``micon_tasks.openai_errors``), plus the safety block."""
        failure = classify_openai_error(exc)
        if failure is None:
            return None
        if failure.kind != "status":
            return GenerationError(f"OpenAI connection failed: {type(exc).__name__}", reason="provider_error",
                                   retryable=True), None
        status, code, message = failure.status, failure.code, failure.message
        if status == 429 and failure.retryable:
            return GenerationError(f"OpenAI rate limit (429): {message}", reason="rate_limited",
                                   provider_reason=message, retryable=True), failure.retry_after
        if code in _SAFETY_CODES or "safety system" in message.lower():
            return GenerationError(f"OpenAI blocked the request ({code}): {message}", reason="safety",
                                   provider_reason=message), None
        return GenerationError(f"OpenAI error {status} ({code}): {message}", reason="provider_error",
                               provider_reason=message, retryable=failure.retryable), failure.retry_after
