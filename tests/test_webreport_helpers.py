"""Shared helpers for the report tests (no tests here): two small runs of the same cases, judged differently.

``make_runs(root)`` runs the collage baseline on the bundled sample (2 cases per task, one generation
refused) twice, against a loopback fake judge: ``base`` with one scripted set of verdicts, ``other``
with another, so scores change case by case and some checkpoint verdicts flip.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import test_runner_helpers as h  # noqa: F401  (registers the test_collage adapter)
from fake_judge_server import FakeJudgeServer, Reply, checkpoint_ids_in, prompt_kind, prompt_text

FAILED_CASE = "object_composition_0002"
LIMIT = 2


def salted_reply(salt: str):
    """Deterministic verdicts that depend on ``salt``: two salts give two judges that disagree."""

    def reply(body: dict[str, Any], seen: int = 0) -> Reply:
        text = prompt_text(body)
        digest = lambda s: int(hashlib.sha256(f"{salt}|{text}|{s}".encode()).hexdigest(), 16)  # noqa: E731
        if prompt_kind(text) == "answer_set":
            return Reply(content=json.dumps({"score": digest("score") % 11, "reason": f"{salt} answer"}))
        ids = checkpoint_ids_in(text)
        results = {cid: {"pass": int(digest(cid) % 3 != 0), "reason": f"{salt} says {cid}"} for cid in ids}
        return Reply(content=json.dumps({"checkpoint_results": results, "rationale": f"{salt} overall", "flags": []}))

    return reply


def make_runs(root: Path) -> dict[str, Path]:
    """Two finished runs under ``root``: ``{"base": <run dir>, "other": <run dir>}``."""
    from micon_tasks import evaluate

    out = {}
    old = os.environ.get("MICON_TEST_FAIL_CASES")
    os.environ["MICON_TEST_FAIL_CASES"] = FAILED_CASE
    try:
        for name in ("base", "other"):
            with FakeJudgeServer(salted_reply(name)) as srv:
                evaluate(model="test_collage", tasks=["micon"], source="sample", limit=LIMIT, output_path=root / name,
                         judge="openai", judge_args={"base_url": srv.base_url, "model": f"judge-{name}",
                                                     "concurrency": 4, "max_retries": 0}, progress=False)
            out[name] = root / name / "test_collage"
    finally:
        if old is None:
            os.environ.pop("MICON_TEST_FAIL_CASES", None)
        else:
            os.environ["MICON_TEST_FAIL_CASES"] = old
    return out


def records(run_dir: Path) -> list[dict[str, Any]]:
    """Every samples record of a run, task by task in the run's order."""
    res = json.loads((run_dir / "results.json").read_text())
    recs = []
    for task in res["config"]["tasks"]:
        recs += [json.loads(line) for line in (run_dir / f"samples_{task}.jsonl").read_text().splitlines()]
    return recs


def embedded_data(index: Path) -> dict[str, Any]:
    """The JSON the page embeds (what the browser renders)."""
    html = index.read_text("utf-8")
    start = html.index('<script id="report-data" type="application/json">') + len('<script id="report-data" type="application/json">')
    return json.loads(html[start:html.index("</script>", start)])


def tree_state(path: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``path`` with its size and mtime (to show that nothing changed)."""
    return {str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(path.rglob("*")) if p.is_file()}
