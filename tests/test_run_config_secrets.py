"""Run arguments end up in run_config.json and results.json, so a secret there is refused up front,
and no message (a refusal, a configuration difference) ever shows one."""

from __future__ import annotations

import pytest

from micon_tasks.errors import ConfigError
from micon_tasks.runner.config import RunConfig, config_diff, refuse_secrets
from micon_tasks.secrets import endpoint_problem, is_secret_name

SECRET = "s3cr3t-Zq81xW"


@pytest.mark.parametrize("args", [
    {"api_key": SECRET}, {"apikey": SECRET}, {"hf_token": SECRET}, {"token": SECRET}, {"password": SECRET},
    {"key": SECRET}, {"access_key": SECRET}, {"aws_secret_access_key": SECRET}, {"secret_key": SECRET},
    {"auth": SECRET}, {"bearer": SECRET}, {"auth_token": SECRET}, {"access_token": SECRET}, {"API_KEY": SECRET},
    {"client_secret": SECRET}, {"credentials": SECRET}, {"token": 918273645},
    {"base_url": f"https://user:{SECRET}@example.org/v1"},
    {"base_url": f"https://example.org/v1?key={SECRET}"},
    {"base_url": f"https://example.org/v1?alt=json&api_key={SECRET}"},
    {"endpoint": f"http://localhost:8000/v1?token={SECRET}#frag"},
    {"url": f"https://bucket.example.org/x.png?X-Amz-Signature={SECRET}&sig={SECRET}"},
    {"header": f"Bearer {SECRET}"},
    {"headers": {"Authorization": f"Bearer {SECRET}"}},
    {"extra": {"nested": {"api_key": SECRET}}},
    {"urls": [f"https://example.org/?access_token={SECRET}"]},
])
def test_secrets_in_arguments_are_refused_without_echoing_them(args):
    with pytest.raises(ConfigError) as err:
        refuse_secrets(args, "--judge_args")
    assert SECRET not in str(err.value) and str(918273645) not in str(err.value)
    assert "environment" in str(err.value) and "--judge_args" in str(err.value)


@pytest.mark.parametrize("args", [
    {"api_key_env": "MY_KEY"}, {"key_env": "MY_KEY"}, {"token_env": "HF_TOKEN"}, {"max_tokens": 800},
    {"max_new_tokens": 8}, {"max_token": 8}, {"num_keys": 3}, {"keyframes": 4}, {"dar_ref_tokens": "both"},
    {"base_url": "http://localhost:8000/v1"}, {"base_url": "https://example.org/v1?alt=json&keyframes=2"},
    {"pretrained": "org/model"}, {"monkey": "x"}, {"author": "someone"}, {"signature_version": 2},
    {"api_key": None}, {"token": True}, {"use_auth_token": False}, {"model": "Qwen/Qwen3-VL-32B-Instruct"},
    {"prompt": "a bearer of gifts"}, {"cache_path": "/tmp/cache?x"},
])
def test_ordinary_arguments_pass(args):
    refuse_secrets(args, "--judge_args")


def test_secret_names():
    assert all(map(is_secret_name, ["api_key", "KEY", "access-key", "bearer", "auth", "my_password"]))
    assert not any(map(is_secret_name, ["api_key_env", "max_tokens", "keyframes", "pretrained", "base_url", "author"]))


@pytest.mark.parametrize("url", [
    f"https://example.org/v1?key={SECRET}", f"https://example.org/v1?alt=json&api_key={SECRET}",
    f"http://localhost:8000/v1?token={SECRET}#frag", f"https://h/v1?hf_token={SECRET}", f"https://h/v1?code={SECRET}",
    f"https://h/v1?X-Amz-Signature={SECRET}", f"https://h/v1?my_password={SECRET}",
])
def test_an_endpoint_and_an_argument_agree_on_secret_query_keys(url):
    """One definition of a credential in a URL query: refused as --judge_args base_url and as an endpoint
    ($OPENAI_BASE_URL, which never passes through the argument check) alike."""
    with pytest.raises(ConfigError):
        refuse_secrets({"base_url": url}, "--judge_args")
    problem = endpoint_problem(url)
    assert problem and "query" in problem and SECRET not in problem


def test_working_directory_is_no_secret_though_pwd_names_an_argument_secret(monkeypatch, tmp_path):
    """Argument names are read broadly (``pwd``); environment names narrowly: $PWD is never scrubbed."""
    from micon_tasks.secrets import scrub

    assert is_secret_name("pwd")
    monkeypatch.setenv("PWD", str(tmp_path / "a-long-working-directory"))
    assert scrub(f"wrote {tmp_path}/a-long-working-directory/x.png") == f"wrote {tmp_path}/a-long-working-directory/x.png"


def test_run_config_refuses_secrets_in_model_and_judge_args():
    with pytest.raises(ConfigError, match="--model_args: 'access_key'") as err:
        RunConfig(model="collage", tasks=["object_composition"], model_args={"access_key": SECRET})
    assert SECRET not in str(err.value)
    with pytest.raises(ConfigError, match="--judge_args: 'base_url'") as err:
        RunConfig(model="collage", tasks=["object_composition"], judge="openai",
                  judge_args={"base_url": f"http://h/v1?token={SECRET}"})
    assert SECRET not in str(err.value)


def test_config_diff_never_shows_a_secret():
    old = {"judge": "openai", "judge_args": {"base_url": "http://localhost:8000/v1", "model": "a"}}
    new = {"judge": "openai", "judge_args": {"base_url": f"https://u:{SECRET}@h/v1", "model": "b", "api_key": SECRET,
                                             "headers": {"Authorization": f"Bearer {SECRET}"}}}
    lines = config_diff(old, new)
    text = "; ".join(lines)
    assert SECRET not in text
    assert "judge_args.api_key: (unset) -> (hidden)" in lines
    assert 'judge_args.base_url: "http://localhost:8000/v1" -> (hidden)' in lines
    assert "judge_args.headers: (unset) -> (hidden)" in lines
    assert 'judge_args.model: "a" -> "b"' in lines  # ordinary values are still shown
    assert config_diff({"token": SECRET}, {"token": "other"}) == ["token: (hidden) -> (hidden)"]
    assert config_diff({"max_tokens": 8}, {"max_tokens": 9}) == ["max_tokens: 8 -> 9"]
    assert config_diff({"u": f"http://h/?key={SECRET}"}, None) == ["value: (hidden) -> null"]


@pytest.mark.parametrize("args", [{"temperature": float("nan")}, {"timeout": float("inf")}, {"x": {"y": float("nan")}}])
def test_non_finite_arguments_are_refused_before_anything_is_recorded(args):
    with pytest.raises(ConfigError, match="must be a finite number"):
        RunConfig(model="m", tasks=["t"], judge="openai", judge_args=args)
