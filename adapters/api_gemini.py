"""``nano_banana``: Gemini's image model (Gemini 2.5 Flash Image) through ``google-genai``.

The contents are the instruction followed by every reference as an inline PNG part; the response must
carry an image part. A blocked prompt (``promptFeedback.blockReason``), a safety finish reason, or a
text-only answer becomes a GenerationError with Gemini's reason, never an image.
"""

from __future__ import annotations

import io
import math
from typing import Any

from adapters.api_base import ApiAdapter
from adapters.base import GenerationError
from adapters.retry import is_transport_error
from micon_tasks.openai_errors import is_retryable_status, short_error
from micon_tasks.png import png_bytes
from micon_tasks.retry import retry_after_seconds
from registry import register_adapter

__all__ = ["NanoBananaAdapter"]

_SAFETY_FINISH = {"SAFETY", "IMAGE_SAFETY", "PROHIBITED_CONTENT", "IMAGE_PROHIBITED_CONTENT", "BLOCKLIST",
                  "SPII", "RECITATION", "IMAGE_RECITATION", "MODEL_ARMOR"}


@register_adapter("nano_banana", aliases=("nano-banana", "gemini_image"))
class NanoBananaAdapter(ApiAdapter):
    """Gemini image generation with several inline reference images. Key from ``api_key_env`` only.

    ``aspect_ratio`` (e.g. "16:9") is sent as given; without it, the ratio of the task's width and height,
    else 1:1. ``image_size`` ("1K", "2K") only when given.
    """

    max_refs = 14
    default_size = (1024, 1024)

    def __init__(
        self,
        model: str = "gemini-2.5-flash-image",
        aspect_ratio: str | None = None,
        image_size: str | None = None,
        api_key_env: str = "GEMINI_API_KEY,GOOGLE_API_KEY",
        **common: Any,
    ):
        super().__init__(api_key_env=api_key_env, **common)
        self.model = model
        self.aspect_ratio = aspect_ratio
        self.image_size = image_size

    def model_info(self) -> dict[str, Any]:
        return {
            **super().model_info(),
            "weights": self.model,
            "provider": "google",
            "endpoint": "models.generate_content",
            "base_url": self.base_url,
            "generation": {"aspect_ratio": self.aspect_ratio or self._ratio(), "image_size": self.image_size},
        }

    @property
    def client(self) -> Any:
        if self._client is None:
            from google import genai
            from google.genai import types

            # SDK retries off (no retry_options): our policy decides and honours Retry-After
            options = types.HttpOptions(base_url=self.base_url, timeout=int(self.timeout * 1000))
            # vertexai=False: environment switches must not silently route to another service
            self._client = genai.Client(api_key=self._api_key, vertexai=False, http_options=options)
        return self._client

    def _generate(self, refs, prompt, *, dar, seed, **gen_kwargs):
        from google.genai import types

        parts: list[Any] = [types.Part.from_text(text=prompt)]
        for ref in refs:
            parts.append(types.Part.from_bytes(data=png_bytes(ref), mime_type="image/png"))
        image_config = types.ImageConfig(aspect_ratio=self.aspect_ratio or self._ratio(), image_size=self.image_size)
        config = types.GenerateContentConfig(
            response_modalities=["IMAGE"], image_config=image_config, seed=seed, **gen_kwargs
        )
        contents = [types.Content(role="user", parts=parts)]
        response = self.call(
            lambda: self.client.aio.models.generate_content(model=self.model, contents=contents, config=config)
        )
        return self._decode(response)

    def _ratio(self) -> str:
        """The width:height ratio in lowest terms (1024x1024 -> "1:1"); Gemini names the ratios it takes."""
        k = math.gcd(self.width, self.height)
        return f"{self.width // k}:{self.height // k}"

    def _decode(self, response: Any):
        from PIL import Image as PILImage

        feedback = getattr(response, "prompt_feedback", None)
        if feedback is not None and getattr(feedback, "block_reason", None):
            why = _enum_name(feedback.block_reason)
            detail = getattr(feedback, "block_reason_message", None) or why
            raise GenerationError(f"Gemini blocked the prompt ({why}): {detail}", reason="safety",
                                  provider_reason=detail)
        candidates = getattr(response, "candidates", None) or []
        if not candidates:
            raise GenerationError("Gemini returned no candidates", reason="no_image")
        candidate = candidates[0]
        finish = _enum_name(getattr(candidate, "finish_reason", None))
        texts: list[str] = []
        parts = (candidate.content.parts if candidate.content is not None else None) or []
        for part in parts:
            blob = getattr(part, "inline_data", None)
            if blob is not None and blob.data and (blob.mime_type or "").startswith("image/"):
                try:
                    image = PILImage.open(io.BytesIO(blob.data))
                    image.load()
                except Exception as exc:  # noqa: BLE001 - a corrupt payload is the provider's failure
                    raise GenerationError(f"Gemini returned an unreadable image: {exc}", reason="bad_output") from None
                return image.convert("RGB")
            if getattr(part, "text", None):
                texts.append(part.text)
        said = " ".join(texts).strip() or None
        message = getattr(candidate, "finish_message", None) or said or finish
        if finish in _SAFETY_FINISH:
            raise GenerationError(f"Gemini stopped for safety ({finish}): {message}", reason="safety",
                                  provider_reason=message)
        if said:
            raise GenerationError(f"Gemini answered with text and no image: {said}", reason="refused",
                                  provider_reason=said)
        raise GenerationError(f"Gemini returned no image (finish reason {finish})", reason="no_image",
                              provider_reason=message)

    def _classify(self, exc: BaseException) -> tuple[GenerationError, float | None] | None:
        from google.genai import errors

        if is_transport_error(exc):
            return GenerationError(f"Gemini connection failed: {type(exc).__name__}", reason="provider_error",
                                   retryable=True), None
        if not isinstance(exc, errors.APIError):
            return None
        code = int(exc.code or 0)
        message = short_error(str(exc.message or exc.status or ""))  # scrubbed of every known key, then cut
        # the project's one rule for which statuses are retried, and the server's Retry-After honoured
        wait = retry_after_seconds(getattr(getattr(exc, "response", None), "headers", None))
        retryable = is_retryable_status(code)
        if code == 429:
            return GenerationError(f"Gemini rate limit (429 {exc.status}): {message}", reason="rate_limited",
                                   provider_reason=message, retryable=retryable), wait
        return GenerationError(f"Gemini error {code} ({exc.status}): {message}", reason="provider_error",
                               provider_reason=message, retryable=retryable), wait


def _enum_name(value: Any) -> str | None:
    if value is None:
        return None
    return getattr(value, "name", None) or str(value)
