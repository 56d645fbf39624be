"""sha256 in the three forms the project hashes: bytes, files, and JSON-able objects in canonical form.

One definition, so a fingerprint, a cache key and a recorded image hash computed in different places agree.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

__all__ = ["sha256_bytes", "sha256_file", "sha256_json"]


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_json(obj: Any) -> str:
    """sha256 of a JSON-able object in canonical form (sorted keys): equal content, equal hash."""
    return sha256_bytes(json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8"))


def sha256_file(path: str | os.PathLike[str]) -> str | None:
    """sha256 of a file's bytes, or None when it does not exist."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    except FileNotFoundError:
        return None
    return h.hexdigest()
