"""Per-request judge seeds: from stable facts of the request only, never its batch position or the time."""

from __future__ import annotations

import hashlib

__all__ = ["SEED_RULE", "request_seed"]

# How a sampling judge's seed is chosen (recorded in provenance as decoding.seed_rule): one seed per
# request, from stable facts of that request only, never from its batch position, order or the time.
# So the same judge seed gives the same reply whatever the sharding, batching and concurrency.
SEED_RULE = ("per request: sha256(judge seed or 0, task, case id, prompt name)[:4] & 0x7fffffff; "
             "re-ask k: the same with '/k' appended")


def request_seed(seed: int | None, task: str, case_id: str, prompt_name: str, attempt: int = 0) -> int:
    """The seed of one judge call: a 31-bit integer (OpenAI, vLLM and torch all accept it), see SEED_RULE.

    The first request (``attempt`` 0) keeps the original rule, so caches and seeded re-runs stay valid.
    """
    text = f"{int(seed or 0)}/{task}/{case_id}/{prompt_name}" + (f"/{attempt}" if attempt else "")
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") & 0x7FFFFFFF
