"""What the provider-API adapters share: the endpoint, the key from the environment, the retry policy.

The key is read once from the variables named by ``api_key_env`` (several names may be given, comma or
semicolon separated, or as a list; each must look like a variable name) and lives only in the client;
it never reaches ``model_info()``, logs or errors (``micon_tasks.secrets`` scrubs it). Calls follow the
project's one retry policy (``micon_tasks.retry``): ``timeout`` bounds each whole attempt, at most
``max_retries`` more attempts, waits capped at ``max_wait``. The async client lives on the adapter's own
event loop for the adapter's life.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, TypeVar

from adapters.base import GenerationError, ModelAdapter
from adapters.retry import api_key_from_env
from micon_tasks.aio import BackgroundLoop
from micon_tasks.errors import ConfigError
from micon_tasks.retry import REMOVED_RETRY_ARGS, RetryPolicy, retry_async
from micon_tasks.secrets import endpoint_problem

__all__ = ["ApiAdapter"]

T = TypeVar("T")


class ApiAdapter(ModelAdapter):
    """Base of the API adapters; subclasses pass their own ``api_key_env`` default and build ``client``."""

    supports_dar = False  # the provider runs the model: DAR cannot reach its attention
    removed_args: ClassVar[dict[str, str]] = REMOVED_RETRY_ARGS

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key_env: str | list[str] = "",
        timeout: float = 300.0,
        max_retries: int = 4,
        max_wait: float = 60.0,
    ):
        problem = endpoint_problem(base_url) if base_url is not None else None
        if problem:
            raise ConfigError(f"adapter {self.name!r}: base_url {problem}")
        self.base_url = base_url
        self.api_key_env = api_key_env
        self.retry = RetryPolicy(int(max_retries), float(timeout), float(max_wait))
        self.timeout = self.retry.timeout
        self._api_key = api_key_from_env(api_key_env, self.name)
        self._loop = BackgroundLoop(f"micon-{self.name}")
        self._client: Any = None
        # the size a call asks the provider for when the adapter's own setting (size, aspect_ratio) is not
        # given: default_size, or a task's size for that call (ModelAdapter.generate)
        self.width, self.height = self.output_size(None, None)

    def _classify(self, exc: BaseException) -> tuple[GenerationError, float | None] | None:
        raise NotImplementedError

    def call(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """Await ``attempt()`` on the adapter's loop under the retry policy; a GenerationError at the end."""
        return self._loop.run(retry_async(attempt, self._classify, self.retry))

    def close(self) -> None:
        client, self._client = self._client, None
        # An SDK with a separate async client (google-genai's client.aio) closes that one; its sync close()
        # would leave the connections this adapter used open.
        closer = getattr(getattr(client, "aio", None), "aclose", None) or getattr(client, "close", None)
        result = closer() if callable(closer) else None
        self._loop.close(result if hasattr(result, "__await__") else None)
