"""What the provider-API adapters add to the project's one retry policy (``micon_tasks.retry``).

The policy itself (which failures are retried, the waits, the total deadline per attempt) lives in
``micon_tasks.retry`` and serves the judge too. Here: reading a key from the environment (registered
with ``micon_tasks.secrets`` so every stored text is scrubbed of it) and recognising transport errors
from whichever HTTP client an SDK uses.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from micon_tasks.errors import ConfigError
from micon_tasks.secrets import check_env_names, register_secret

__all__ = ["api_key_from_env", "is_transport_error"]


def api_key_from_env(names: str | Iterable[str], adapter: str) -> str:
    """The first set variable among ``names``; a ConfigError naming them (never a value) otherwise."""
    names = check_env_names(names if isinstance(names, str) else list(names), f"adapter {adapter!r}")
    for name in names:
        value = os.environ.get(name)
        if value:
            register_secret(value)
            return value
    raise ConfigError(f"adapter {adapter!r} needs an API key in the environment variable {' or '.join(names)}")


def is_transport_error(exc: BaseException) -> bool:
    """A connection failure or timeout from whichever HTTP client an SDK uses (httpx, httpx2, aiohttp, requests)."""
    import importlib

    if isinstance(exc, (ConnectionError, TimeoutError)):
        return True
    for module, names in (("httpx", ("TransportError", "TimeoutException")),
                          ("httpx2", ("TransportError", "TimeoutException")),
                          ("aiohttp", ("ClientConnectionError", "ServerTimeoutError")),
                          ("requests", ("ConnectionError", "Timeout"))):
        try:
            mod = importlib.import_module(module)
        except ImportError:
            continue
        classes = tuple(c for c in (getattr(mod, n, None) for n in names) if isinstance(c, type))
        if classes and isinstance(exc, classes):
            return True
    return False
