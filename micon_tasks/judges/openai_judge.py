"""``openai`` judge: any OpenAI-compatible chat-completions server (vLLM, SGLang, OpenAI, ...).

Requests run concurrently (asyncio, a semaphore of ``concurrency``). Retries are ours, not the
SDK's, so they are bounded and visible: exponential backoff on 429, 5xx, timeouts and connection
errors; any other 4xx is final. The API key is read from the variable named by ``api_key_env``
and is scrubbed from every error text.

Every request carries a ``seed`` field derived from the request alone (``base.SEED_RULE``: the
judge's ``seed`` or 0, the task, the case id and the prompt name), so at temperature 0.1 a server
that honours seeds (vLLM, SGLang, OpenAI best effort) answers a case the same way whatever its
batch mates, the sharding or the concurrency.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import ssl
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from micon_tasks.errors import ConfigError
from micon_tasks.judges.base import SEED_RULE, Completion, Judge, endpoint_host
from micon_tasks.judges.prompts import Prompt
from micon_tasks.png import png_bytes
from registry import register_judge

__all__ = ["OpenAIJudge", "DEFAULT_JUDGE_MODEL"]

DEFAULT_JUDGE_MODEL = "Qwen/Qwen3-VL-32B-Instruct"  # the paper's judge (PROTOCOL 5)
_THREAD_ENCODE_PIXELS = 256 * 256  # images at least this large are PNG-encoded in a worker thread


def _png_data_url(image: Any) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode("ascii")


def run_coroutine(coro: Any) -> Any:
    """Run a coroutine from sync code, also when the caller already runs an event loop (notebooks)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


@register_judge("openai", aliases=("openai-compatible", "vllm"))
class OpenAIJudge(Judge):
    """Judge through an OpenAI-compatible ``/chat/completions`` endpoint (one user message per call)."""

    backend = "openai"

    def __init__(
        self,
        base_url: str | None = None,
        model: str = DEFAULT_JUDGE_MODEL,
        api_key_env: str = "OPENAI_API_KEY",
        temperature: float = 0.1,
        max_tokens: int = 800,
        timeout: float = 120.0,
        max_retries: int = 4,
        retry_base_delay: float = 1.0,
        retry_max_delay: float = 30.0,
        concurrency: int = 16,
        json_mode: bool = False,
        seed: int | None = None,
        request_mode: str = "case",
        cache_path: str | None = None,
        template_version: str = "v1",
    ):
        super().__init__(request_mode=request_mode, cache_path=cache_path, template_version=template_version)
        if concurrency < 1 or max_retries < 0 or retry_base_delay < 0 or timeout <= 0:
            raise ConfigError(
                "judge 'openai': concurrency >= 1, max_retries >= 0, retry_base_delay >= 0 and timeout > 0 are required"
            )
        self.base_url = base_url
        self.model = model
        self.api_key_env = api_key_env
        self.temperature = float(temperature)
        self.max_tokens = int(max_tokens)
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.retry_base_delay = float(retry_base_delay)
        self.retry_max_delay = float(retry_max_delay)
        self.concurrency = int(concurrency)
        self.json_mode = bool(json_mode)
        self.seed = seed
        self._rng = random.Random(seed if seed is not None else 0)  # backoff jitter only
        self._tls: ssl.SSLContext | None = None

    def _describe(self) -> dict[str, Any]:
        decoding: dict[str, Any] = {"temperature": self.temperature, "max_tokens": self.max_tokens}
        if self.json_mode:
            decoding["response_format"] = "json_object"
        decoding["seed"] = int(self.seed or 0)
        decoding["seed_rule"] = SEED_RULE
        return {
            "backend": self.backend,
            "model": self.model,
            "endpoint_host": endpoint_host(self.base_url) or "api.openai.com",
            "decoding": decoding,
        }

    def _api_key(self) -> str:
        key = os.environ.get(self.api_key_env)
        if key:
            return key
        if self.base_url is None:
            warnings.warn(
                f"judge 'openai': ${self.api_key_env} is not set; calls to api.openai.com will fail", stacklevel=3
            )
        return "EMPTY"  # local servers (vLLM, SGLang) accept any key

    def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None and self.base_url and self.base_url.lower().startswith("http://"):
            # Plain HTTP needs no CA bundle. This context still demands verified certificates, so a
            # redirect to https fails closed rather than going unverified.
            self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        if self._tls is None:
            try:
                import certifi  # the CA bundle the SDK's HTTP client uses by default

                self._tls = ssl.create_default_context(cafile=certifi.where())
            except ImportError:
                self._tls = ssl.create_default_context()
        return self._tls

    def _complete(self, prompts: list[Prompt]) -> list[Completion]:
        return run_coroutine(self._complete_async(prompts))

    async def _complete_async(self, prompts: list[Prompt]) -> list[Completion]:
        import openai  # imported here: `import micon_tasks.judges` must stay light
        from openai.types.chat import ChatCompletion

        key = self._api_key()
        # A new client per batch (its connections belong to this event loop), but one TLS context per
        # judge: building one loads the CA bundle, about 60 ms, which small batches would pay each time.
        http_client = openai.DefaultAsyncHttpxClient(verify=self._tls_context())
        client = openai.AsyncOpenAI(
            base_url=self.base_url, api_key=key, timeout=self.timeout, max_retries=0, http_client=http_client
        )
        sem = asyncio.Semaphore(self.concurrency)
        # PNG encoding runs in worker threads (zlib releases the GIL), once per distinct image of
        # the batch, overlapping with requests in flight instead of stalling the event loop.
        loop = asyncio.get_running_loop()
        pool = ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1), thread_name_prefix="micon-judge-png")
        urls: dict[int, asyncio.Future[str]] = {}

        async def content(p: Prompt) -> list[dict[str, Any]]:
            parts: list[dict[str, Any]] = [{"type": "text", "text": p.text}]
            for label, img in p.images:
                if id(img) not in urls:
                    if img.width * img.height >= _THREAD_ENCODE_PIXELS:
                        urls[id(img)] = loop.run_in_executor(pool, _png_data_url, img)
                    else:  # a thread hand-off costs more than encoding a thumbnail
                        done = loop.create_future()
                        try:
                            done.set_result(_png_data_url(img))
                        except Exception as exc:  # noqa: BLE001 - every prompt sharing the image sees it
                            done.set_exception(exc)
                        urls[id(img)] = done
                parts.append({"type": "text", "text": f"{label}:"})
                parts.append({"type": "image_url", "image_url": {"url": await urls[id(img)]}})
            return parts

        async def one(p: Prompt) -> Completion:
            async with sem:
                try:
                    seed = self._prompt_seed(p)
                    messages = [{"role": "user", "content": await content(p)}]
                except Exception as exc:  # noqa: BLE001 - e.g. an image that cannot be encoded
                    return Completion(error=f"cannot encode the request: {type(exc).__name__}: {exc}", attempts=0)
                return await self._call(client, openai, ChatCompletion, messages, key, seed)

        try:
            return list(await asyncio.gather(*(one(p) for p in prompts)))
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
            await client.close()

    def _prompt_seed(self, p: Prompt) -> int:
        if p.seed is None:  # Judge.judge_batch sets it on every prompt; a bare _complete call must too
            raise ValueError(f"prompt {p.name!r} has no per-request seed")
        return int(p.seed)

    async def _call(
        self,
        client: Any,
        openai: Any,
        ChatCompletion: Any,  # noqa: N803
        messages: list[dict[str, Any]],
        key: str,
        seed: int,
    ) -> Completion:
        kwargs: dict[str, Any] = {"temperature": self.temperature, "max_tokens": self.max_tokens, "seed": seed}
        if self.json_mode:
            kwargs["response_format"] = {"type": "json_object"}
        last = "no attempt made"
        for attempt in range(self.max_retries + 1):
            retry_after: float | None = None
            try:
                # client.post (the SDK's documented route for raw calls) skips the SDK's recursive
                # request-typing pass over the base64 images, which cost several ms of CPU per case.
                resp = await client.post(
                    "/chat/completions",
                    cast_to=ChatCompletion,
                    body={"model": self.model, "messages": messages, **kwargs},
                )
                choice = resp.choices[0] if resp.choices else None
                if choice is None:
                    return Completion(text="", note="server returned no choices", attempts=attempt + 1)
                finish = getattr(choice, "finish_reason", None)
                note = f"finish_reason={finish}" if finish not in (None, "stop") else None
                return Completion(text=choice.message.content or "", note=note, attempts=attempt + 1)
            except (openai.RateLimitError, openai.InternalServerError) as exc:
                last = f"HTTP {exc.status_code}: {_short(exc)}"
                retry_after = _retry_after(exc)
            except openai.APITimeoutError:
                last = f"timed out after {self.timeout:g} s"
            except openai.APIConnectionError as exc:
                last = f"connection error: {_short(exc)}"
            except openai.APIStatusError as exc:  # any other 4xx (or odd status): final, never retried
                return Completion(error=_scrub(f"HTTP {exc.status_code}: {_short(exc)}", key), attempts=attempt + 1)
            except Exception as exc:  # noqa: BLE001 - a malformed response body, etc.
                return Completion(error=_scrub(f"{type(exc).__name__}: {_short(exc)}", key), attempts=attempt + 1)
            if attempt < self.max_retries:
                delay = min(self.retry_max_delay, self.retry_base_delay * 2**attempt) * (0.5 + 0.5 * self._rng.random())
                if retry_after is not None:
                    delay = min(self.retry_max_delay, max(delay, retry_after))
                await asyncio.sleep(delay)
        n = self.max_retries + 1
        return Completion(error=_scrub(f"gave up after {n} attempt{'s' if n > 1 else ''}: {last}", key), attempts=n)


def _short(exc: BaseException, limit: int = 300) -> str:
    text = str(exc).replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _scrub(text: str, key: str) -> str:
    return text.replace(key, "***") if key and key != "EMPTY" and len(key) >= 4 else text


def _retry_after(exc: Any) -> float | None:
    try:
        value = exc.response.headers.get("retry-after")
        return float(value) if value is not None else None
    except (AttributeError, TypeError, ValueError):
        return None
