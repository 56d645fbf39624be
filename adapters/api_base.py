"""What the provider-API adapters share: the endpoint, the key from the environment, timeout and retries.

The key is read once from the variables named by ``api_key_env`` (several names may be given, comma or
semicolon separated, or as a list) and lives only in the client; it never reaches ``model_info()``,
logs or errors (``adapters.retry.redact``).
"""

from __future__ import annotations

from typing import Any

from adapters.base import ModelAdapter
from adapters.retry import RetryPolicy, api_key_from_env

__all__ = ["ApiAdapter"]


class ApiAdapter(ModelAdapter):
    """Base of the API adapters; subclasses pass their own ``api_key_env`` default and build ``client``."""

    supports_dar = False  # the provider runs the model: DAR cannot reach its attention

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key_env: str | list[str] = "",
        timeout: float = 300.0,
        max_retries: int = 4,
        backoff: float = 2.0,
        max_backoff: float = 60.0,
    ):
        self.base_url = base_url
        self.api_key_env = api_key_env
        self.timeout = float(timeout)
        self.retry = RetryPolicy(int(max_retries), float(backoff), float(max_backoff))
        names = api_key_env if isinstance(api_key_env, (list, tuple)) else str(api_key_env).replace(";", ",").split(",")
        self._api_key = api_key_from_env([n.strip() for n in names if n.strip()], self.name)
        self._client: Any = None
