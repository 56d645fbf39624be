"""Keep secret values out of everything a run stores or prints: one scrubber for judges, adapters, publish.

Why one place: a provider or a judge server may echo a key anywhere (an error body, a 200 reply that
quotes the request), and the run knows several keys (the judge's, each provider's, the Hugging Face
token). Every text that reaches a record, a log line or an exception goes through :func:`scrub`, which
replaces the value of every secret the process knows: the ones components register when they read a
key, and the environment variables whose names say they hold one (``*_API_KEY``, ``*_TOKEN``,
``HF_TOKEN`` ...). Scrubbing comes before truncation (:func:`scrub_and_truncate`), so a key echoed late
in a long body cannot leave its first characters behind.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable

from micon_tasks.errors import ConfigError

__all__ = ["register_secret", "known_secrets", "scrub", "scrub_and_truncate", "scrub_deep", "REDACTED",
           "ENV_NAME", "is_env_name", "check_env_names", "endpoint_problem", "is_local_host", "is_secret_query_key",
           "is_secret_name", "secret_query_keys", "value_problem"]

REDACTED = "[REDACTED]"
#: what an environment-variable name looks like (``api_key_env`` values are checked against it)
ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
# environment variables whose values are secrets (by name). Narrower than argument names
# (:func:`is_secret_name`) on purpose: ``PWD`` (the working directory), ``*_AUTH`` or ``*_SIG`` variables
# hold ordinary values, and scrubbing them would blank paths and flags out of every record.
_SECRET_ENV = re.compile(r"(^|_)(API_?KEY|KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?)$", re.IGNORECASE)
_MIN_ENV_LEN = 8  # shorter values of such variables ("1", "true") are flags, not keys
_MIN_LEN = 4  # placeholders like "EMPTY" are registered by nobody; shorter values are never real keys
_TAIL = 8  # providers echo a key's last characters ("...abcd1234"): scrub that tail of long keys too
_PLACEHOLDERS = frozenset({"EMPTY", "none", "None", "null"})

_lock = threading.Lock()
_registered: set[str] = set()


def is_env_name(name: object) -> bool:
    """Whether ``name`` looks like an environment-variable name (never echo it when it does not)."""
    return isinstance(name, str) and ENV_NAME.fullmatch(name) is not None


def check_env_names(value: object, what: str) -> list[str]:
    """``api_key_env``: one name, several (comma/semicolon separated, or a list); each must look like an
    environment-variable name. Refused without echoing the value (it is often the key itself)."""
    names = value if isinstance(value, (list, tuple)) else str(value).replace(";", ",").split(",")
    names = [str(n).strip() for n in names if str(n).strip()]
    if not names or not all(is_env_name(n) for n in names):
        raise ConfigError(f"{what}: api_key_env must name environment variables ([A-Z_][A-Z0-9_]*), not hold a "
                          "value (the given value is not shown); put the key in a variable and pass its name")
    return names


def register_secret(value: str | None) -> None:
    """Remember a secret value this process holds (a key read from the environment)."""
    if value and len(value) >= _MIN_LEN and value not in _PLACEHOLDERS:
        with _lock:
            _registered.add(value)


def known_secrets(extra: Iterable[str | None] = ()) -> list[str]:
    """Every secret value known now, longest first (so a key containing another is replaced whole)."""
    found = {v for v in extra if v and len(v) >= _MIN_LEN and v not in _PLACEHOLDERS}
    with _lock:
        found |= _registered
    for name, value in os.environ.items():
        if len(value) >= _MIN_ENV_LEN and _SECRET_ENV.search(name):
            found.add(value)
    return sorted(found, key=len, reverse=True)


def scrub(text: str | None, extra: Iterable[str | None] = ()) -> str | None:
    """``text`` with every known secret (and the last characters of long ones) replaced by [REDACTED]."""
    if not text:
        return text
    return _scrub_with(text, known_secrets(extra))


def _scrub_with(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
        if len(secret) > 12 and secret[-_TAIL:] in text:
            text = text.replace(secret[-_TAIL:], REDACTED)
    return text


def scrub_and_truncate(text: str | None, limit: int = 300, extra: Iterable[str | None] = ()) -> str | None:
    """Scrub first, then cut to ``limit`` characters (one line)."""
    text = scrub(text, extra)
    if text is None:
        return None
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 3] + "..."


def scrub_deep(value: object, extra: Iterable[str | None] = (), *, secrets: list[str] | None = None) -> object:
    """A JSON-like value with every string scrubbed (dict keys included); ``secrets`` when already known."""
    secrets = known_secrets(extra) if secrets is None else secrets
    if not secrets:
        return value

    def walk(v: object) -> object:
        if isinstance(v, str):
            return _scrub_with(v, secrets)
        if isinstance(v, dict):
            return {walk(k): walk(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return type(v)(walk(x) for x in v)
        return v

    return walk(value)


# -- names and values that hold a secret ---------------------------------------------------------------
#: argument names that hold a secret: ``api_key``, ``access_key``, ``hf_token``, ``auth``, ``bearer``,
#: ``password`` ... (a name ending ``_env`` names an environment variable instead, and a count such as
#: ``max_tokens`` or ``num_keys`` is no secret)
_SECRET_NAME = re.compile(
    r"(^|[_-])(api[_-]?key|key|access[_-]?key|secret[_-]?key|private[_-]?key|token|access[_-]?token|auth|auth[_-]?token"
    r"|authorization|bearer|secret|client[_-]?secret|password|passwd|pwd|credentials?|signature|sig)$",
    re.IGNORECASE,
)
_NOT_SECRET_NAME = re.compile(r"([_-]env$)|(^(max|min|num|n)[_-])", re.IGNORECASE)
#: query-string keys that carry credentials although no argument would be named so (Azure function keys
#: ``code=``, ``apikey=``, ``x-api-key=``, ``signature=`` ...)
_SECRET_QUERY = re.compile(r"^(code|key|sig|signature|token|access[_-]?token|api[_-]?key|apikey|x-api-key|"
                           r"secret|client[_-]?secret|password|auth|authorization)$",
                           re.IGNORECASE)
# credentials before '@' in a URL, with a scheme or scheme-relative (``//user:pass@host``)
_URL_CREDENTIALS = re.compile(r"^([a-z][a-z0-9+.-]*:)?//[^/@\s]+@", re.IGNORECASE)
_BEARER_VALUE = re.compile(r"^\s*(bearer|basic)\s+\S", re.IGNORECASE)


def is_secret_name(key: object) -> bool:
    """Whether an argument name looks like it holds a secret (``api_key``, ``token``, ``auth`` ...)."""
    name = str(key)
    return bool(_SECRET_NAME.search(name)) and not _NOT_SECRET_NAME.search(name)


def is_secret_query_key(name: str) -> bool:
    """Whether a URL query key carries a credential (a secret-looking name, ``code``, ``sig`` ...)."""
    return _SECRET_QUERY.match(name) is not None or is_secret_name(name)


def secret_query_keys(url: str) -> list[str]:
    """Names of credential-carrying parameters in a URL's query string (``...?key=...&code=...&sig=...``)."""
    from urllib.parse import parse_qsl

    if "?" not in url:
        return []
    query = url.split("?", 1)[1].split("#", 1)[0]
    return sorted({name for name, _ in parse_qsl(query, keep_blank_values=True) if is_secret_query_key(name)})


def value_problem(value: object) -> str | None:
    """Why a value carries a secret (credentials in a URL, a credential query key, an authorization header
    value), or None. Never the value itself."""
    if isinstance(value, str):
        if _URL_CREDENTIALS.match(value.strip()):
            return "carries credentials in its URL"
        params = secret_query_keys(value)
        if params:
            return f"carries a secret in its URL query ({', '.join(repr(p) for p in params)})"
        if _BEARER_VALUE.match(value):
            return "holds an authorization header value"
    return None


# -- endpoints ----------------------------------------------------------------------------------------
def endpoint_problem(url: str) -> str | None:
    """Why ``url`` cannot be an endpoint (no scheme, credentials, a credential-like query key), or None.

    The reason never repeats the URL's secret parts.
    """
    from urllib.parse import urlsplit

    text = url.strip()
    if not text:
        return "is empty"
    if text.startswith("//"):
        return "has no scheme (write http:// or https:// before the host)" + (
            " and carries credentials before '@'; put the key in the environment instead" if "@" in text.split("/")[2] else "")
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        if "@" in text.split("/", 1)[0]:
            return "carries credentials before '@' and has no http(s):// scheme; put the key in the environment"
        return "has no http:// or https:// scheme (e.g. http://localhost:8000/v1)"
    if "@" in parts.netloc:
        return "carries credentials (user:password@); put the key in the environment instead"
    if not parts.hostname:
        return "has no host"
    keys = secret_query_keys(text)
    if keys:
        return f"carries a credential in its query ({', '.join(keys)}); put the key in the environment instead"
    return None


def is_local_host(host: str | None) -> bool:
    """Loopback, private or link-local addresses and single-label names (a cluster node): no key needed."""
    import ipaddress

    if not host:
        return False
    try:
        ip = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return host == "localhost" or host.endswith((".local", ".internal", ".localhost")) or "." not in host
    return ip.is_loopback or ip.is_private or ip.is_link_local
