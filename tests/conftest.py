"""Test-wide isolation: no test touches the Hub or the user's caches.

Set before anything imports huggingface_hub or datasets (they read these at import): the Hub endpoint
points at a closed loopback port, so an accidental download fails at once instead of going out.
"""

from __future__ import annotations

import os
import tempfile

_ROOT = tempfile.mkdtemp(prefix="micon-tests-")
os.environ["HF_ENDPOINT"] = "http://127.0.0.1:9"
os.environ["HF_HOME"] = os.path.join(_ROOT, "hf_home")
os.environ["HF_DATASETS_CACHE"] = os.path.join(_ROOT, "hf_datasets")
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["MICON_CACHE_DIR"] = os.path.join(_ROOT, "micon_cache")
os.environ.pop("HF_TOKEN", None)
os.environ.pop("MICON_DATASET", None)

import pytest  # noqa: E402


@pytest.fixture
def fresh_cache(tmp_path, monkeypatch):
    """A conversion cache of the test's own (to observe conversions)."""
    path = tmp_path / "micon_cache"
    monkeypatch.setenv("MICON_CACHE_DIR", str(path))
    return path
