"""One scrubber and the endpoint rules: a fake key appears nowhere (records, errors, provenance, logs)."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict

import pytest
from PIL import Image

from micon_tasks import load_judge
from micon_tasks.errors import ConfigError
from micon_tasks.judges import JudgeRequest
from micon_tasks.runner.config import RunConfig
from micon_tasks.secrets import REDACTED, endpoint_problem, is_local_host, register_secret, scrub, scrub_and_truncate
from micon_tasks.types import Case, Checkpoint
from tests.fake_judge_server import FakeJudgeServer, Reply, good_reply, scripted

KEY = "sk-judge-0123456789abcdefFAKEKEY"
CPS = [Checkpoint("A_check_1", "A", "Does the image follow the instruction?")]


def _request(scenario: str) -> JudgeRequest:
    case = Case(task="object_composition", case_id=scenario, refs=[Image.new("RGB", (8, 8))], ref_roles=["RA"],
                prompt=f"x SCENARIO:{scenario}", goal="g")
    return JudgeRequest(case.task, case, Image.new("RGB", (8, 8)), CPS)


def test_scrub_replaces_registered_values_env_secrets_and_long_key_tails(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_abcdefghijklmnopqrstuvwxyz")
    monkeypatch.setenv("SOME_FLAG_TOKEN", "1")  # short flag values are no secret
    register_secret("provider-key-0123456789")
    text = "hf_abcdefghijklmnopqrstuvwxyz and provider-key-0123456789 and ...23456789 and 1"
    out = scrub(text)
    assert "hf_abc" not in out and "provider-key" not in out and "23456789" not in out and out.endswith(" 1")
    assert scrub("EMPTY key") == "EMPTY key"


def test_scrub_comes_before_truncation():
    register_secret(KEY)
    body = "x" * 290 + KEY
    cut = scrub_and_truncate(body, 300)
    assert KEY[:8] not in cut and len(cut) <= 300


@pytest.mark.parametrize("url,why", [
    ("//user:PASS@host/v1", "no scheme"), ("http://user:PASS@host/v1", "credentials"),
    ("https://h/v1?code=SECRET", "query (code)"), ("https://h/v1?sig=S&x=1", "query (sig)"),
    ("https://h/v1?api-key=S", "query (api-key)"), ("localhost:8000", "no http:// or https:// scheme"),
    ("", "empty"),
])
def test_endpoint_problems_never_repeat_the_secret(url, why):
    problem = endpoint_problem(url)
    assert problem and why in problem and "PASS" not in problem and "SECRET" not in problem


def test_local_hosts_need_no_key():
    assert all(is_local_host(h) for h in ("localhost", "127.0.0.1", "10.1.2.3", "::1", "gpu-node-7"))
    assert not any(is_local_host(h) for h in ("api.openai.com", "8.8.8.8", "2001:4860::8888"))


@pytest.mark.parametrize("base_url", ["//user:PASS@host/v1", "http://user:PASS@host/v1", "http://h:1/v1?code=PASS"])
def test_credentialed_base_url_is_refused_by_the_judge_and_the_run_config(base_url):
    with pytest.raises(ConfigError) as err:
        load_judge("openai", {"base_url": base_url})
    assert "PASS" not in str(err.value)
    with pytest.raises(ConfigError) as err:
        RunConfig(model="m", tasks=["t"], judge="openai", judge_args={"base_url": base_url})
    assert "PASS" not in str(err.value)


def test_openai_base_url_from_the_environment_is_checked_and_recorded(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://user:PASS@127.0.0.1:9/v1")
    with pytest.raises(ConfigError) as err:
        load_judge("openai")
    assert "$OPENAI_BASE_URL" in str(err.value) and "PASS" not in str(err.value)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    prov = load_judge("openai").provenance()
    assert prov["endpoint_host"] == "127.0.0.1:9" and prov["endpoint_source"] == "$OPENAI_BASE_URL"
    prov = load_judge("openai", "base_url=http://127.0.0.1:7/v1").provenance()  # the argument wins
    assert prov["endpoint_host"] == "127.0.0.1:7"
    monkeypatch.delenv("OPENAI_BASE_URL")
    prov = load_judge("openai").provenance()  # the one default: a local server
    assert prov["endpoint_host"] == "localhost:8000" and prov["endpoint_source"] == "default"


def test_api_key_env_holding_the_key_is_refused_without_echoing_it():
    with pytest.raises(ConfigError) as err:
        load_judge("openai", {"api_key_env": KEY, "base_url": "http://127.0.0.1:9/v1"})
    assert KEY not in str(err.value) and "[A-Z_][A-Z0-9_]*" in str(err.value)
    with pytest.raises(ConfigError) as err:
        RunConfig(model="gpt_image", model_args={"api_key_env": KEY}, tasks=["t"])
    assert KEY not in str(err.value)
    RunConfig(model="gpt_image", model_args={"api_key_env": "MY_KEY,OTHER_KEY"}, tasks=["t"])  # names are fine


def test_replies_and_errors_quoting_the_key_are_stored_scrubbed(monkeypatch, caplog):
    monkeypatch.setenv("MICON_TEST_JUDGE_KEY", KEY)
    late = json.dumps({"error": {"message": "y" * 400 + " your key " + KEY}}).encode()
    scripts = {
        "quote": lambda b, n: Reply(content=json.dumps({"checkpoint_results": {"A_check_1": {"pass": 1, "reason": KEY}},
                                                         "rationale": f"key was {KEY}", "flags": [KEY]})),
        "late": lambda b, n: Reply(status=400, raw_body=late),
    }
    with FakeJudgeServer(scripted(scripts, default=good_reply)) as srv, caplog.at_level(logging.DEBUG):
        judge = load_judge("openai", {"base_url": srv.base_url, "api_key_env": "MICON_TEST_JUDGE_KEY", "reask": 0,
                                      "max_wait": 0})
        results = judge.judge_batch([_request("quote"), _request("late")])
        judge.close()
    stored = json.dumps([asdict(r) for r in results])
    assert KEY not in stored and KEY[:10] not in stored and KEY[-8:] not in stored and REDACTED in stored
    assert results[0].verdicts[0].status == "pass" and results[1].verdicts[0].status == "error"
    assert logging.getLogger("httpx2").getEffectiveLevel() >= logging.WARNING
    assert srv.base_url not in caplog.text  # no request lines naming the endpoint


def test_a_lone_surrogate_and_non_finite_extras_never_crash_and_are_never_cached(tmp_path):
    scripts = {
        "surrogate": lambda b, n: Reply(raw_body=(
            b'{"id":"x","object":"chat.completion","created":0,"model":"m","choices":[{"index":0,'
            b'"finish_reason":"stop","message":{"role":"assistant","content":"{\\"checkpoint_results\\": '
            b'{\\"A_check_1\\": {\\"pass\\": 1, \\"reason\\": \\"bad \\udc80 text\\"}}}"}}]}')),
        "nan": lambda b, n: Reply(content='{"checkpoint_results": {"A_check_1": {"pass": 1}}, '
                                          '"hard_constraint_results": {"H1": NaN}, "flags": [Infinity]}'),
    }
    cache = tmp_path / "v.sqlite"
    with FakeJudgeServer(scripted(scripts)) as srv:
        judge = load_judge("openai", {"base_url": srv.base_url, "reask": 0, "cache_path": str(cache)})
        sur, nan = judge.judge_batch([_request("surrogate"), _request("nan")])
        again = judge.judge_batch([_request("surrogate"), _request("nan")])
        judge.close()
    for r in (sur, nan, *again):
        json.dumps(asdict(r), allow_nan=False).encode("utf-8")  # writable as a record
    assert sur.verdicts[0].status == "pass" and "\\udc80" in sur.verdicts[0].raw
    assert nan.verdicts[0].status == "pass"
    assert set(nan.details["field_errors"]) == {"hard_constraint_results", "flags"}
    assert "hard_constraint_results" not in nan.details
    assert [r.provenance["cached"] for r in again] == [True, True]  # both clean, both writable
