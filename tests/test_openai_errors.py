"""One reading of OpenAI failures (``micon_tasks.openai_errors``), shared by the judge and ``gpt_image``.

The two callers word a failure differently but must never disagree on whether it is retried or how long
the server asked to wait: these tests build the SDK's own exceptions and ask both."""

from __future__ import annotations

import pytest

openai = pytest.importorskip("openai")
try:  # the HTTP client this SDK builds its requests and responses with
    import httpx2 as httpx
except ImportError:  # pragma: no cover - older SDKs
    import httpx

from micon_tasks.openai_errors import classify_openai_error, is_retryable_status  # noqa: E402
from micon_tasks.retry import AttemptTimeout  # noqa: E402

KEY = "sk-test-0123456789abcdefSECRET-openai-errors"
REQUEST = httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions")


def status_error(status: int, code: str | None, message: str, headers: dict[str, str] | None = None):
    body = {"error": {"message": message, "type": "invalid_request_error", "code": code}}
    response = httpx.Response(status, headers=headers or {}, json=body, request=REQUEST)
    return openai.APIStatusError(f"Error code: {status} - {body}", response=response, body=body)


@pytest.fixture
def callers(monkeypatch):
    """The judge's and the adapter's classifiers (the adapter needs its key in the environment)."""
    from adapters import load_adapter
    from micon_tasks import load_judge

    monkeypatch.setenv("MICON_TEST_OPENAI_ERRORS_KEY", KEY)
    judge = load_judge("openai", base_url="http://127.0.0.1:9/v1", model="m")
    adapter = load_adapter("gpt_image", "api_key_env=MICON_TEST_OPENAI_ERRORS_KEY,base_url=http://127.0.0.1:9/v1")
    yield judge._classify, adapter._classify
    judge.close()
    adapter.close()


@pytest.mark.parametrize(("status", "code", "retryable"), [
    (429, "rate_limit_exceeded", True),
    (429, "insufficient_quota", False),  # an exhausted quota does not come back by waiting
    (500, None, True), (503, None, True), (408, None, True), (409, None, True),
    (400, "invalid_request_error", False), (401, None, False), (404, None, False), (422, None, False),
])
def test_status_is_retried_only_when_waiting_can_help(status, code, retryable, callers):
    exc = status_error(status, code, "said the server", {"retry-after": "7"})
    failure = classify_openai_error(exc)
    assert failure is not None and failure.kind == "status"
    # the body's code, else its type
    assert (failure.status, failure.code, failure.retryable) == (status, code or "invalid_request_error", retryable)
    assert is_retryable_status(status, code) is retryable
    assert failure.retry_after == 7.0 and failure.message == "said the server"
    for classify in callers:  # both callers say the same: same retry decision, same wait
        error, wait = classify(exc)
        assert error.retryable is retryable and wait == 7.0, classify
        assert "said the server" in error.message


def test_timeouts_and_connection_failures_are_retried(callers):
    for exc, kind in [(AttemptTimeout(3.0), "timeout"), (openai.APITimeoutError(request=REQUEST), "timeout"),
                      (openai.APIConnectionError(request=REQUEST), "connection")]:
        failure = classify_openai_error(exc)
        assert failure is not None and (failure.kind, failure.retryable, failure.retry_after) == (kind, True, None)
        for classify in callers:
            error, wait = classify(exc)
            assert error.retryable and wait is None


def test_server_message_is_scrubbed_then_cut(callers):
    # the key early (only scrubbing removes it) and again across the cut (cutting first would keep its head)
    said = f"you sent {KEY}\n" + "x" * 200 + f" and {KEY}" + "y" * 1000
    exc = status_error(400, "bad", said)
    failure = classify_openai_error(exc)
    assert KEY[:12] not in failure.message and KEY[-8:] not in failure.message
    assert failure.message.startswith("you sent [REDACTED] xxx")
    assert len(failure.message) <= 300 and "\n" not in failure.message
    for classify in callers:
        error, _ = classify(exc)
        assert KEY[:12] not in error.message and KEY[-8:] not in error.message


def test_other_exceptions_are_not_openai_failures(callers):
    judge_classify, adapter_classify = callers
    assert classify_openai_error(ValueError("bad json")) is None
    assert adapter_classify(ValueError("bad json")) is None  # a bug of ours propagates unchanged
    error, _ = judge_classify(ValueError("bad json"))  # a judge records it as that case's final error
    assert not error.retryable and "ValueError: bad json" in error.message
