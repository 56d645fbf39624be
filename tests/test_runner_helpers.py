"""Shared helpers for the runner tests (no tests here): a scriptable test adapter and a judge responder.

``test_collage`` is the collage baseline at 48 px whose behaviour environment variables script, so the
same adapter works in-process and inside ``micon`` subprocesses (imported through ``RUNNER_ENTRY``):
``MICON_TEST_GEN_DELAY`` (seconds per image), ``MICON_TEST_FAIL_CASES`` (case ids that fail with a
refusal), ``MICON_TEST_CRASH_RANK`` (a rank whose first generation raises a bug),
``MICON_TEST_CALLS_FILE`` (one line appended per generated case, to count calls across processes),
``MICON_TEST_SALT`` (when set, a mark derived from it and the case id is drawn: the adapter then
makes other bytes than before, as a non-deterministic model would).

``test_seeded`` is ``test_collage`` plus a noise block drawn from the case's seed, so an image depends
on its seed (and a seed that depended on sharding or order would show in the images).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from adapters.base import GenerationError
from adapters.baselines import CollageBaseline
from registry import register_adapter

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
PYTHON = sys.executable

#: ``python -c RUNNER_ENTRY <micon args>``: the micon CLI with the test adapter registered.
RUNNER_ENTRY = "import sys, test_runner_helpers; from micon_tasks.cli import main; sys.exit(main(sys.argv[1:]))"


@register_adapter("test_collage", override=True)
class ScriptedCollage(CollageBaseline):
    """The collage baseline, small and scriptable (see the module docstring)."""

    default_size = (48, 48)

    def generate_batch(self, requests, *, dar=None):
        rank = os.environ.get("RANK", "0")
        if os.environ.get("MICON_TEST_CRASH_RANK") == rank:
            raise RuntimeError(f"scripted bug on rank {rank}")
        fail = {c for c in os.environ.get("MICON_TEST_FAIL_CASES", "").split(",") if c}
        delay = float(os.environ.get("MICON_TEST_GEN_DELAY", "0") or 0)
        calls = os.environ.get("MICON_TEST_CALLS_FILE")
        out = []
        for req in requests:
            if delay:
                time.sleep(delay)
            if calls:
                with open(calls, "a") as fh:
                    fh.write(f"{req.case_id}\n")
            if req.case_id in fail:
                out.append(GenerationError("the provider refused", reason="refused", provider_reason="scripted refusal"))
                continue
            try:  # a batch returns each case's failure in its place (the generate_batch contract)
                out.append(self._salted(self.generate(req.refs, req.prompt, dar=dar, seed=req.seed), req.case_id))
            except GenerationError as exc:
                out.append(exc)
        return out

    @staticmethod
    def _salted(image, case_id):
        salt = os.environ.get("MICON_TEST_SALT")
        if not salt:
            return image
        digest = hashlib.sha256(f"{salt}/{case_id}".encode()).digest()
        image = image.copy()
        image.paste(tuple(digest[:3]), (0, 0, 6, 6))
        return image


@register_adapter("test_two_refs", override=True)
class TwoRefCollage(ScriptedCollage):
    """A model that takes at most two references: three-reference cases are its failures."""

    max_refs = 2


@register_adapter("test_seeded", override=True)
class SeededCollage(ScriptedCollage):
    """``test_collage`` with an 8x8 block of noise drawn from the seed: the image depends on the seed."""

    def _generate(self, refs, prompt, *, dar, seed, **gen_kwargs):
        import random

        image = super()._generate(refs, prompt, dar=dar, seed=seed, **gen_kwargs)
        if seed is None:
            return image
        rng = random.Random(seed)
        noise = bytes(rng.randrange(256) for _ in range(8 * 8 * 3))
        from PIL import Image

        image.paste(Image.frombytes("RGB", (8, 8), noise), (image.width - 8, image.height - 8))
        return image


def varied_reply(body: dict[str, Any], seen: int = 0, delay: float = 0.0) -> Any:
    """A deterministic reply that differs per case and checkpoint (about 2 in 3 pass)."""
    from fake_judge_server import Reply, checkpoint_ids_in, prompt_kind, prompt_text

    text = prompt_text(body)
    kind = prompt_kind(text)
    h = lambda s: int(hashlib.sha256((text + s).encode()).hexdigest(), 16)  # noqa: E731
    if kind == "answer_set":
        return Reply(content=json.dumps({"score": h("score") % 11, "reason": "scripted"}), delay=delay)
    ids = checkpoint_ids_in(text)
    results = {cid: {"pass": int(h(cid) % 3 != 0), "reason": "scripted"} for cid in ids}
    return Reply(content=json.dumps({"checkpoint_results": results, "rationale": "scripted", "flags": []}), delay=delay)


def slow_varied(delay: float):
    return lambda body, seen: varied_reply(body, seen, delay)


def strip_volatile(path: Path) -> list[dict[str, Any]]:
    """A samples file's records without their ``timings`` (the only part allowed to differ)."""
    out = []
    for line in Path(path).read_text().splitlines():
        rec = json.loads(line)
        rec.pop("timings", None)
        out.append(rec)
    return out


def samples_bytes(model_dir: Path) -> dict[str, bytes]:
    """task -> the samples file's bytes with timings removed (records re-serialised canonically)."""
    from micon_tasks.runner.records import dumps_record

    return {p.name: "\n".join(dumps_record(r) for r in strip_volatile(p)).encode()
            for p in sorted(Path(model_dir).glob("samples_*.jsonl"))}


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(TESTS), env.get("PYTHONPATH", "")])
    env["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    env.update(extra)
    return env
