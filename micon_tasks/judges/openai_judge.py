"""``openai`` judge: any OpenAI-compatible chat-completions server (vLLM, SGLang, OpenAI, ...).

The endpoint is resolved once: the ``base_url`` argument, else ``$OPENAI_BASE_URL``, else the local
server ``http://localhost:8000/v1`` serving the paper's judge. A URL carrying credentials (or a
credential-like query key) is refused; provenance records the host actually used. Requests run
concurrently, at most ``concurrency`` at once, on a few event loops ("lanes", one per core up to 8), each
with its own HTTP client, that live as long as the judge (``close()`` ends them); bodies stream and are
dropped as they are sent, and redirects are not followed. Retries follow the project's one policy (``micon_tasks.retry``):
``timeout`` bounds each whole attempt; 429 (not ``insufficient_quota``), 5xx, timeouts and connection
errors are retried, any other 4xx is final. The API key is read from the variable named by
``api_key_env`` and scrubbed from everything stored.

Every request carries a ``seed`` field derived from the request alone (``seeds.SEED_RULE``), so at
temperature 0.1 a server that honours seeds answers a case the same way whatever its batch mates.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import json
import logging
import os
import random
import ssl
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from typing import Any, ClassVar
from urllib.parse import urlsplit

from micon_tasks.aio import BackgroundLoop
from micon_tasks.devices import cpu_cores
from micon_tasks.errors import ConfigError
from micon_tasks.judges.base import SEED_RULE, Completion, Judge, JudgeUnreachableError, endpoint_host
from micon_tasks.judges.images import data_url
from micon_tasks.judges.prompts import Prompt
from micon_tasks.openai_errors import classify_openai_error, short_error
from micon_tasks.retry import REMOVED_RETRY_ARGS, RetryPolicy, retry_async
from micon_tasks.secrets import check_env_names, endpoint_problem, is_local_host, register_secret, scrub_and_truncate
from registry import register_judge

__all__ = ["OpenAIJudge", "DEFAULT_JUDGE_MODEL", "DEFAULT_BASE_URL", "VLLM_COMMAND", "resolve_endpoint"]

DEFAULT_JUDGE_MODEL = "Qwen/Qwen3-VL-32B-Instruct"  # the paper's judge (PROTOCOL 5)
#: the one default endpoint for every suite: a local OpenAI-compatible server serving the paper's judge
DEFAULT_BASE_URL = "http://localhost:8000/v1"
#: how to serve the paper's judge with vLLM; printed when the judge server cannot be reached
VLLM_COMMAND = (
    "vllm serve Qwen/Qwen3-VL-32B-Instruct --tensor-parallel-size 2 --max-model-len 32768 "
    "--limit-mm-per-prompt '{\"image\": 4}' --port 8000"
)


def resolve_endpoint(base_url: str | None) -> tuple[str, str]:
    """(URL, where it came from): the argument, else $OPENAI_BASE_URL, else the local default; checked."""
    if base_url is not None:
        url, source = base_url, "argument base_url"
    elif os.environ.get("OPENAI_BASE_URL"):
        url, source = os.environ["OPENAI_BASE_URL"], "$OPENAI_BASE_URL"
    else:
        url, source = DEFAULT_BASE_URL, "default"
    problem = endpoint_problem(url)
    if problem:
        raise ConfigError(f"judge 'openai': the endpoint from {source} {problem}")
    return url.strip().rstrip("/"), source


class _CallError(Exception):
    """One failed attempt, as the retry policy sees it."""

    def __init__(self, message: str, *, retryable: bool):
        super().__init__(message)
        self.message, self.retryable, self.attempts = message, retryable, 1


@register_judge("openai", aliases=("openai-compatible", "vllm"))
class OpenAIJudge(Judge):
    """Judge through an OpenAI-compatible ``/chat/completions`` endpoint (one user message per call)."""

    backend = "openai"
    default_image_format = "jpeg"  # how images travel unless image_format says otherwise
    removed_args: ClassVar[dict[str, str]] = REMOVED_RETRY_ARGS

    def __init__(
        self,
        base_url: str | None = None,
        model: str = DEFAULT_JUDGE_MODEL,
        api_key_env: str = "OPENAI_API_KEY",
        temperature: float = 0.1,
        max_tokens: int = 800,
        timeout: float = 120.0,
        max_retries: int = 4,
        max_wait: float = 30.0,
        concurrency: int = 16,
        json_mode: bool = False,
        seed: int | None = None,
        **common: Any,
    ):
        super().__init__(**common)  # request_mode, cache_path, template_version, reask, max_image_pixels, image_format
        if concurrency < 1:
            raise ConfigError("judge 'openai': concurrency must be >= 1")
        self.base_url, self.endpoint_source = resolve_endpoint(base_url)
        self.model = model
        self.api_key_env = check_env_names(api_key_env, "judge 'openai'")[0]
        self.temperature = float(temperature)
        self.max_tokens = int(max_tokens)
        self.policy = RetryPolicy(int(max_retries), float(timeout), float(max_wait))
        self.timeout, self.max_retries = self.policy.timeout, self.policy.max_retries
        self.concurrency = int(concurrency)
        self.json_mode = bool(json_mode)
        self.seed = seed
        self._rng = random.Random(seed if seed is not None else 0)  # backoff jitter only
        self._api_key = os.environ.get(self.api_key_env) or None
        register_secret(self._api_key)
        # Several event loops ("lanes"), each in its own thread with its own HTTP client: sending a request's
        # megabytes of images is a kernel copy on the loop's thread, and one loop capped the stage at one core.
        n_lanes = max(1, min(self.concurrency, cpu_cores(), _MAX_LANES))
        self._loops = [BackgroundLoop(f"micon-judge-openai-{n}") for n in range(n_lanes)]
        self._clients: list[Any] = [None] * n_lanes

    def _prepare_image(self, image: Any, spec: Any) -> bytes:
        """Fitted, encoded and base64'd in the judge's worker threads, once per batch."""
        return data_url(image, spec)

    @property
    def host(self) -> str:
        return endpoint_host(self.base_url) or ""

    def _describe(self) -> dict[str, Any]:
        decoding: dict[str, Any] = {"temperature": self.temperature, "max_tokens": self.max_tokens}
        if self.json_mode:
            decoding["response_format"] = "json_object"
        decoding["seed"] = int(self.seed or 0)
        decoding["seed_rule"] = SEED_RULE
        return {"backend": self.backend, "model": self.model, "endpoint_host": self.host,
                "endpoint_source": self.endpoint_source, "decoding": decoding}

    # -- start-up -------------------------------------------------------------------------------
    def preflight(self, timeout: float = 5.0) -> None:
        """The endpoint answers (any HTTP status), and a remote host has a key."""
        import importlib.util

        if importlib.util.find_spec("openai") is None:
            raise JudgeUnreachableError("the openai judge needs the openai package: pip install 'micon-bench[api]'")
        if not self._api_key and not is_local_host(urlsplit(self.base_url).hostname):
            raise JudgeUnreachableError(
                f"the judge endpoint {self.host} (from {self.endpoint_source}) is a remote host and "
                f"${self.api_key_env} is not set; set it, or serve the judge locally: `{VLLM_COMMAND}`")
        try:
            urllib.request.urlopen(urllib.request.Request(self.base_url + "/models", method="GET"),
                                   timeout=timeout).close()
        except urllib.error.HTTPError:
            return  # the server answered (401, 404, ...): reachable
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = scrub_and_truncate(str(getattr(exc, "reason", exc)), 120)
            raise JudgeUnreachableError(
                f"the judge server at {self.host} (from {self.endpoint_source}) does not answer ({reason}). Start it "
                f"first, e.g. `{VLLM_COMMAND}`, or pass --judge_args base_url=http://<host>:8000/v1"
            ) from None

    # -- the client (one per judge, on the judge's own loop) --------------------------------------
    def _tls_context(self) -> ssl.SSLContext:
        if self.base_url.lower().startswith("http://"):
            # Plain HTTP needs no CA bundle; this context still demands verified certificates, so a
            # redirect to https fails closed rather than going unverified.
            return ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        try:
            import certifi  # the CA bundle the SDK's HTTP client uses by default

            return ssl.create_default_context(cafile=certifi.where())
        except ImportError:
            return ssl.create_default_context()

    def _ensure_client(self, lane: int) -> Any:
        """Built on the lane's loop thread, once; SDK retries off (the project's policy decides)."""
        if self._clients[lane] is None:
            import openai

            for name in ("httpx", "httpx2", "openai"):  # request lines would print the endpoint URL
                lg = logging.getLogger(name)
                if lg.getEffectiveLevel() < logging.WARNING:
                    lg.setLevel(logging.WARNING)
            # Redirects are not followed: a body streamed once cannot be sent again, and a judge endpoint that
            # redirects is better named in base_url (the error says where it points).
            http_client = openai.DefaultAsyncHttpxClient(verify=self._tls_context(), follow_redirects=False)
            self._clients[lane] = openai.AsyncOpenAI(base_url=self.base_url, api_key=self._api_key or "EMPTY",
                                                     timeout=self.timeout, max_retries=0, http_client=http_client)
        return self._clients[lane]

    def _complete(self, prompts: list[Prompt]) -> list[Completion]:
        """Every lane takes prompts from one queue, with ``concurrency`` requests in flight across all lanes."""
        self.reserve_images(prompts)
        queue = collections.deque(enumerate(prompts))  # popleft is atomic: lanes share it without a lock
        out: list[Completion | None] = [None] * len(prompts)
        lanes = len(self._loops)
        slots = [self.concurrency // lanes + (n < self.concurrency % lanes) for n in range(lanes)]
        futures = [loop.submit(self._drain(n, queue, out, slots[n])) for n, loop in enumerate(self._loops)]
        concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_EXCEPTION)
        if any(f.done() and f.exception() is not None for f in futures):
            queue.clear()  # a lane failed (a bug, not a reply): the others send nothing more, and end
            concurrent.futures.wait(futures)
        for future in futures:
            future.result()
        missing = [n for n, c in enumerate(out) if c is None]
        if missing:  # every slot ends only when the queue is empty, so this is a bug, never a verdict
            raise RuntimeError(f"judge 'openai': {len(missing)} prompt(s) were never sent")
        return out  # type: ignore[return-value]

    async def _drain(self, lane: int, queue: collections.deque[tuple[int, Prompt]], out: list[Completion | None],
                     slots: int) -> None:
        client = self._ensure_client(lane)

        async def slot() -> None:
            while True:
                try:
                    n, prompt = queue.popleft()
                except IndexError:
                    return
                out[n] = await self._one(client, prompt)

        await asyncio.gather(*(slot() for _ in range(slots)))

    async def _content(self, p: Prompt) -> list[bytes]:
        """The message's content parts as JSON text, in pieces that join to the array's inside.

        An image's data URL is a piece of its own, spliced in as it is: it holds only ASCII that JSON needs
        no escape for, so the megabytes of base64 are never scanned by a JSON encoder nor copied.
        """
        pieces = [json.dumps({"type": "text", "text": p.text}).encode()]
        futures = self.prepared_images(p)  # encoded once per batch, in the worker pool
        for (label, _), fut in zip(p.images, futures):
            # shielded: the future is shared by every prompt that shows the image, and an attempt that times
            # out here must not cancel it for the others
            url = await asyncio.shield(asyncio.wrap_future(fut))
            pieces.append(b", " + json.dumps({"type": "text", "text": f"{label}:"}).encode()
                          + b', {"type": "image_url", "image_url": {"url": "')
            pieces += [url, b'"}}']
        return pieces

    async def _one(self, client: Any, p: Prompt) -> Completion:
        # called from one of a lane's slots (``_drain``): at most ``concurrency`` requests are in flight
        try:
            if p.seed is None:  # Judge.judge_batch sets it on every prompt; a bare _complete call must too
                raise ValueError(f"prompt {p.name!r} has no per-request seed")
            parts: list[bytes] | None = await self._content(p)
        except Exception as exc:  # noqa: BLE001 - e.g. an image that cannot be encoded
            return Completion(error=f"cannot encode the request: {type(exc).__name__}: {exc}", attempts=0)
        finally:
            self.release_images(p)  # the parts hold them now; a prepared image lives while prompts need it
        made = 0

        async def attempt() -> Completion:
            nonlocal made, parts
            made += 1
            if parts is None:  # a retry: the last attempt's images were dropped once sent; prepare them again
                self.reserve_images([p])  # (released below: other prompts' reservations stay theirs)
                try:
                    parts = await self._content(p)
                finally:
                    self.release_images(p)
            body, parts = _Body(self._head(p), parts), None
            return await self._attempt(client, body)

        try:
            done = await retry_async(attempt, self._classify, self.policy, rng=self._rng)
        except _CallError as exc:
            return Completion(error=scrub_and_truncate(exc.message, 400), attempts=exc.attempts)
        done.attempts = made
        return done

    def _head(self, p: Prompt) -> bytes:
        """The request body's JSON up to the message's content parts (see ``_content`` and ``_Body``)."""
        opts = p.options or {}
        body: dict[str, Any] = {"model": self.model, "max_tokens": int(opts.get("max_tokens", self.max_tokens)),
                                "seed": int(p.seed or 0)}
        temperature = opts.get("temperature", self.temperature)
        if temperature is not None:  # None: the server's own default
            body["temperature"] = temperature
        if self.json_mode:
            body["response_format"] = {"type": "json_object"}
        return json.dumps(body)[:-1].encode() + b', "messages": [{"role": "user", "content": ['

    async def _attempt(self, client: Any, body: _Body) -> Completion:
        from openai.types.chat import ChatCompletion

        # client.post (the SDK's documented route for raw calls) skips the SDK's recursive request-typing
        # pass over the base64 images, which cost several ms of CPU per case; the body streams (see _Body).
        resp = await client.post("/chat/completions", cast_to=ChatCompletion, content=body.stream(),
                                 options={"headers": {"Content-Type": "application/json",
                                                      "Content-Length": str(body.length)}})
        choice = resp.choices[0] if resp.choices else None
        if choice is None:
            return Completion(text="", note="server returned no choices")
        finish = getattr(choice, "finish_reason", None)
        note = f"finish_reason={finish}" if finish not in (None, "stop") else None
        return Completion(text=choice.message.content or "", note=note)

    def _classify(self, exc: BaseException) -> tuple[_CallError, float | None]:
        """The project's one reading of an OpenAI failure (``micon_tasks.openai_errors``), worded for a verdict."""
        failure = classify_openai_error(exc)
        if failure is None:  # a malformed response body, etc.: final
            return _CallError(f"{type(exc).__name__}: {short_error(exc)}", retryable=False), None
        if failure.kind == "timeout":  # the attempt's total deadline says its own bound; the SDK's does not
            text = f"timed out: {failure.message}" if isinstance(exc, TimeoutError) else f"timed out after {self.timeout:g} s"
        elif failure.kind == "connection":
            text = f"connection error: {failure.message}"
        else:
            text = f"HTTP {failure.status}{f' ({failure.code})' if failure.code else ''}: {failure.message}"
            if failure.status is not None and 300 <= failure.status < 400:  # redirects are not followed
                headers = getattr(getattr(exc, "response", None), "headers", None) or {}
                target = endpoint_host(str(headers.get("location", ""))) or "another address"
                text = (f"HTTP {failure.status}: the judge endpoint {self.host} redirects to {target}; "
                        "pass that endpoint as base_url")
        return _CallError(text, retryable=failure.retryable), failure.retry_after

    def close(self) -> None:
        for n, loop in enumerate(self._loops):
            client, self._clients[n] = self._clients[n], None
            loop.close(client.close() if client is not None else None)
        super().close()


class _Body:
    """A request body sent piece by piece and dropped as it goes: a request waiting for its reply (seconds,
    from a real judge) holds none of its megabytes of images, and no joined copy of them is ever made.
    Small pieces are sent together; each image part is sent as it is."""

    def __init__(self, head: bytes, parts: list[bytes]):
        """``parts``: the pieces of the content array (``OpenAIJudge._content``)."""
        pieces = [head, *parts, b"]}]}"]
        self.length = sum(len(x) for x in pieces)
        self._pieces: list[bytes] | None = pieces

    def stream(self) -> AsyncIterator[bytes]:
        pieces, self._pieces = self._pieces, None
        if pieces is None:
            raise RuntimeError("a request body is sent once")
        pieces.reverse()  # popped from the end: each piece is dropped once it is handed on

        async def chunks() -> AsyncIterator[bytes]:
            small: list[bytes] = []
            while pieces:
                piece = pieces.pop()
                if len(piece) < _SMALL:
                    small.append(piece)
                    continue
                if small:
                    yield b"".join(small)
                    small = []
                yield piece
                del piece
            if small:
                yield b"".join(small)

        return chunks()


_SMALL = 1 << 16  # pieces below this size travel together
_MAX_LANES = 8  # event loops per judge: enough to keep a fast link busy, few enough to leave cores for encoding
