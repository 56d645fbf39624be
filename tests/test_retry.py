"""The one retry policy (micon_tasks/retry.py): schedule, Retry-After cap, final errors, total deadline."""

from __future__ import annotations

import asyncio
import time
from http.server import BaseHTTPRequestHandler

import pytest
from PIL import Image

from adapters import GenerationError, load_adapter
from micon_tasks import load_judge
from micon_tasks.errors import ConfigError
from micon_tasks.retry import AttemptTimeout, RetryPolicy, retry_async
from tests.loopback import LoopbackServer


def run(coro):
    return asyncio.run(coro)


def test_waits_double_with_jitter_and_honour_retry_after_up_to_the_cap():
    policy = RetryPolicy(max_retries=3, timeout=2.0, max_wait=3.0)
    for attempt, (lo, hi) in enumerate([(0.5, 1.0), (1.0, 2.0), (1.5, 3.0)]):
        assert lo <= policy.wait(attempt) <= hi
    assert policy.wait(0, retry_after=2.5) == 2.5  # the server's wait when longer
    assert policy.wait(0, retry_after=100.0) == 3.0  # never above max_wait
    assert policy.worst_case_s() == 4 * 2.0 + 3 * 3.0
    with pytest.raises(ConfigError):
        RetryPolicy(max_retries=-1)
    with pytest.raises(ConfigError):
        RetryPolicy(timeout=float("nan"))


def test_retryable_errors_are_retried_until_the_bound_then_raised_with_the_count():
    waits: list[float] = []

    async def sleep(s):
        waits.append(s)

    calls = {"n": 0}

    async def attempt():
        calls["n"] += 1
        raise GenerationError("busy", reason="rate_limited", retryable=True)

    with pytest.raises(GenerationError, match=r"gave up after 3 attempts") as err:
        run(retry_async(attempt, lambda e: None, RetryPolicy(max_retries=2, max_wait=0.0), sleep=sleep))
    assert calls["n"] == 3 and err.value.attempts == 3 and waits == [0.0, 0.0]


def test_final_errors_and_bugs_are_not_retried():
    calls = {"n": 0}

    async def final():
        calls["n"] += 1
        raise GenerationError("quota gone", reason="provider_error", retryable=False)

    with pytest.raises(GenerationError, match="^quota gone$"):
        run(retry_async(final, lambda e: None, RetryPolicy(max_wait=0.0)))
    assert calls["n"] == 1

    async def bug():
        return 1 / 0

    with pytest.raises(ZeroDivisionError):  # not the provider's doing: propagates untouched
        run(retry_async(bug, lambda e: None, RetryPolicy(max_wait=0.0)))


def test_the_deadline_bounds_the_whole_attempt():
    async def slow():
        await asyncio.sleep(30)

    seen = []

    def classify(exc):
        seen.append(exc)
        return GenerationError(str(exc), reason="provider_error", retryable=True), None

    t0 = time.perf_counter()
    with pytest.raises(GenerationError, match="no complete reply within 0.2 s"):
        run(retry_async(slow, classify, RetryPolicy(max_retries=1, timeout=0.2, max_wait=0.0)))
    assert time.perf_counter() - t0 < 2.0 and all(isinstance(e, AttemptTimeout) for e in seen) and len(seen) == 2


# -- a server that drips its reply one byte a second ------------------------------------------------------
class _Drip(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _drip(self):
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        self.server.hits += 1  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", "1000")
        self.end_headers()
        try:
            for _ in range(60):  # each byte arrives well inside any per-read timeout
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(1.0)
        except OSError:
            pass

    do_POST = _drip
    do_GET = _drip


@pytest.fixture
def drip():
    srv = LoopbackServer(_Drip)
    srv.server.hits = 0  # type: ignore[attr-defined]
    yield srv
    srv.stop()


def _request():
    from micon_tasks.judges import JudgeRequest
    from micon_tasks.types import Case, Checkpoint

    case = Case(task="t", case_id="c", refs=[Image.new("RGB", (8, 8))], ref_roles=["RA"], prompt="p", goal="g")
    return JudgeRequest("t", case, Image.new("RGB", (8, 8)), [Checkpoint("A_check_1", "A", "q?")])


@pytest.mark.slow
def test_a_dripping_judge_server_cannot_keep_a_request_alive(drip):
    judge = load_judge("openai", {"base_url": drip.base_url + "/v1", "model": "m", "timeout": 2, "max_retries": 1,
                                  "max_wait": 0, "reask": 0})
    import openai  # noqa: F401 - its first import (about a second here) is not part of the bound
    t0 = time.perf_counter()
    (res,) = judge.judge_batch([_request()])
    took = time.perf_counter() - t0
    judge.close()
    # worst case = (max_retries + 1) x timeout + max_retries x max_wait = 4 s; a per-read timeout would be 60 s
    assert took < 4.0 + 1.5, took
    assert drip.server.hits == 2
    assert res.verdicts[0].status == "error" and "no complete reply within 2 s" in res.verdicts[0].error
    assert res.provenance["attempts"] == 2


@pytest.mark.slow
def test_a_dripping_provider_cannot_keep_a_generation_alive(drip, monkeypatch):
    monkeypatch.setenv("MICON_TEST_DRIP_KEY", "sk-drip-0123456789abcdef")
    adapter = load_adapter("gpt_image", f"api_key_env=MICON_TEST_DRIP_KEY,base_url={drip.base_url}/v1,timeout=1,"
                                        "max_retries=1,max_wait=0")
    t0 = time.perf_counter()
    with pytest.raises(GenerationError, match="gave up after 2 attempts") as err:
        adapter.generate([Image.new("RGB", (8, 8))], "x")
    assert time.perf_counter() - t0 < 2.0 + 1.5
    assert err.value.retryable and drip.server.hits == 2
    adapter.close()


def test_removed_retry_settings_name_their_replacement():
    with pytest.raises(ConfigError, match="'retry_base_delay' was removed: .*max_wait"):
        load_judge("openai", "retry_base_delay=0")
    with pytest.raises(ConfigError, match="'retry_max_delay' was removed: renamed max_wait"):
        load_judge("openai", "retry_max_delay=1")
    for old in ("backoff", "max_backoff"):
        with pytest.raises(ConfigError, match=f"'{old}' was removed: .*max_wait"):
            load_adapter("gpt_image", f"{old}=0")
