"""Run arguments end up in run_config.json and results.json, so a secret there is refused up front."""

from __future__ import annotations

import pytest

from micon_tasks.errors import ConfigError
from micon_tasks.runner.config import refuse_secrets


@pytest.mark.parametrize("args", [{"api_key": "sk-x"}, {"hf_token": "hf_x"}, {"token": "tok-9f8e7d"}, {"password": "hunter2-zz"},
                                  {"base_url": "https://user:s3cr3t-pw@example.org/v1"}])
def test_secrets_in_arguments_are_refused_without_echoing_them(args):
    with pytest.raises(ConfigError) as err:
        refuse_secrets(args, "--judge_args")
    value = next(iter(args.values()))
    secret = value.split("//")[-1].split("@")[0].split(":")[-1]  # the password part of a URL
    assert secret not in str(err.value) and "environment" in str(err.value)


@pytest.mark.parametrize("args", [{"api_key_env": "MY_KEY"}, {"max_tokens": 800}, {"max_new_tokens": 8},
                                  {"base_url": "http://localhost:8000/v1"}, {"pretrained": "org/model"}])
def test_ordinary_arguments_pass(args):
    refuse_secrets(args, "--judge_args")
