"""One rule for device and dtype names (adapters, upstream models, the hf judge)."""

import pytest
import torch

from micon_tasks.devices import check_dtype_name, resolve_device, resolve_dtype
from micon_tasks.errors import ConfigError


def test_auto_device_follows_cuda_availability(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu" and resolve_device(None) == "cpu" and resolve_device("") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("AUTO") == "cuda"
    assert resolve_device("cuda:1") == "cuda:1"


def test_auto_dtype_is_bf16_on_cuda_and_fp32_elsewhere():
    assert resolve_dtype("auto", "cuda:0") is torch.bfloat16
    assert resolve_dtype(None, "cpu") is torch.float32
    assert resolve_dtype("fp16", "cpu") is torch.float16
    assert resolve_dtype("BF16", "cpu") is torch.bfloat16


def test_unknown_dtype_is_refused_naming_the_argument():
    with pytest.raises(ConfigError, match=r"judge 'hf' dtype: unknown dtype 'float8'"):
        check_dtype_name("float8", what="judge 'hf' dtype")
    with pytest.raises(ConfigError, match="adapter 'x' dtype"):
        resolve_dtype("int4", "cpu", what="adapter 'x' dtype")
