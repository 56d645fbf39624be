"""A loopback OpenAI-compatible chat-completions server with scripted replies, for tests and benchmarks.

Standard library only (``http.server``), bound to 127.0.0.1 on a free port, started and stopped by
the test. A *responder* decides each reply from the request body and how many times the same prompt
was seen before, so a test can script "429 twice, then a good answer". Every request is recorded.

    with FakeJudgeServer(scripted({"truncated": lambda req, n: Reply(content='{"checkpoint_results": {')})) as srv:
        judge = load_judge("openai", base_url=srv.base_url, model="fake")

A case picks its script by carrying ``SCENARIO:<name>`` in its text (e.g. its goal); prompts without
one get ``good_reply`` (every checkpoint passes, answer-set score 7). ``sampling_reply`` stands in for a
server that samples at temperature > 0: its verdicts are drawn from the request's ``seed`` field, and
from fresh entropy when the request carries none.

Run ``python tests/fake_judge_server.py --delay 0.2`` to serve good replies after 200 ms each; it
prints the base URL on its first line.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import socket
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from loopback import LoopbackServer

__all__ = [
    "Reply", "FakeJudgeServer", "good_reply", "sampling_reply", "scripted", "prompt_text", "checkpoint_ids_in",
    "prompt_kind",
]


@dataclass
class Reply:
    """What the server answers: a chat completion with ``content``, or an HTTP error ``status``."""

    content: str | None = ""
    status: int = 200
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    finish_reason: str = "stop"
    raw_body: bytes | None = None  # sent as is (e.g. a malformed JSON body)


Responder = Callable[[dict[str, Any], int], Reply]

_SCENARIO = re.compile(r"SCENARIO:([A-Za-z0-9_.-]+)")
_IDS = re.compile(r"must hold exactly these ids: ([^\n]+?)\.\s*$", re.MULTILINE)
_SINGLE = re.compile(r"== The checkpoint ==\n(\S+) \(")


def prompt_text(body: dict[str, Any]) -> str:
    """All text parts of the request's messages, joined."""
    out = []
    for msg in body.get("messages", []):
        content = msg.get("content")
        if isinstance(content, str):
            out.append(content)
        elif isinstance(content, list):
            out.extend(p.get("text", "") for p in content if p.get("type") == "text")
    return "\n".join(out)


def checkpoint_ids_in(text: str) -> list[str]:
    m = _IDS.search(text)
    return [s.strip() for s in m.group(1).split(",")] if m else []


def prompt_kind(text: str) -> str:
    """"checkpoints", "single" or "answer_set", from the packaged templates' wording."""
    if "== Scale (an integer from 0 to 10) ==" in text:
        return "answer_set"
    if _SINGLE.search(text):
        return "single"
    return "checkpoints"


def good_reply(body: dict[str, Any], seen: int = 0, *, value: int = 1, score: int = 7) -> Reply:
    """A well-formed reply: every asked checkpoint gets ``value``; the answer set gets ``score``."""
    text = prompt_text(body)
    kind = prompt_kind(text)
    if kind == "answer_set":
        return Reply(content=json.dumps({"score": score, "reason": "matches a positive candidate"}))
    if kind == "single":
        return Reply(content=json.dumps({"pass": value, "reason": "clearly shown"}))
    ids = checkpoint_ids_in(text)
    return Reply(
        content=json.dumps(
            {
                "checkpoint_results": {cid: {"pass": value, "reason": "ok"} for cid in ids},
                "hard_constraint_results": {"H1": {"pass": value}},
                "rationale": "scripted",
                "flags": [],
            }
        )
    )


def sampling_reply(body: dict[str, Any], seen: int = 0) -> Reply:
    """A well-formed reply whose pass/fail values and score are *sampled*, like a judge at temperature > 0.

    The draw comes from the request's ``seed`` field (plus the prompt text), so a seeded request gets
    the same reply every time; an unseeded one gets fresh entropy, i.e. a reply that may change.
    """
    text = prompt_text(body)
    seed = body.get("seed")
    rng = random.Random(f"{seed}|{hashlib.sha256(text.encode()).hexdigest()}") if seed is not None else random.SystemRandom()
    kind = prompt_kind(text)
    if kind == "answer_set":
        return Reply(content=json.dumps({"score": rng.randint(0, 10), "reason": "sampled"}))
    if kind == "single":
        return Reply(content=json.dumps({"pass": rng.randint(0, 1), "reason": "sampled"}))
    ids = checkpoint_ids_in(text)
    return Reply(content=json.dumps({"checkpoint_results": {cid: {"pass": rng.randint(0, 1)} for cid in ids}}))


def scripted(scripts: dict[str, Responder], default: Responder = good_reply) -> Responder:
    """Route each request to ``scripts[name]`` when its text holds ``SCENARIO:name``."""

    def responder(body: dict[str, Any], seen: int) -> Reply:
        m = _SCENARIO.search(prompt_text(body))
        fn = scripts.get(m.group(1)) if m else None
        return (fn or default)(body, seen)

    return responder


class FakeJudgeServer:
    """Threaded loopback server for ``POST /v1/chat/completions``; use as a context manager."""

    def __init__(self, responder: Responder = good_reply, *, api_key: str | None = None, keep_images: bool = True):
        self.responder = responder
        # False: image data URLs are cut out of each body before it is parsed (see _without_images), so a
        # benchmark measures the harness, not this server parsing megabytes of base64 under one GIL
        self.keep_images = keep_images
        self.api_key = api_key  # when set, other keys get 401 (whose message echoes the key sent)
        # {"scenario", "kind", "auth", "time", "seed" (the request's seed field or None), "digest" (of its text)}
        self.requests: list[dict[str, Any]] = []
        self.bodies: deque[dict[str, Any]] = deque(maxlen=64)  # the latest request bodies as sent
        self.counts: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._loop: LoopbackServer | None = None

    @property
    def base_url(self) -> str:
        assert self._loop is not None, "server not started"
        return f"{self._loop.base_url}/v1"

    def scenario_count(self, name: str) -> int:
        return sum(1 for r in self.requests if r["scenario"] == name)

    def start(self) -> FakeJudgeServer:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def setup(self) -> None:
                super().setup()
                # Headers and body go out as separate writes: without this, Nagle's algorithm and the
                # client's delayed ACK add about 40 ms to every reply.
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    return self._send(404, {"error": {"message": f"no route {self.path}"}})
                try:
                    body = json.loads(raw if outer.keep_images else _without_images(raw))
                except ValueError:
                    return self._send(400, {"error": {"message": "body is not JSON"}})
                text = prompt_text(body)
                m = _SCENARIO.search(text)
                digest = hashlib.sha256(text.encode()).hexdigest()
                auth = self.headers.get("Authorization", "")
                with outer._lock:
                    seen = outer.counts[digest]
                    outer.counts[digest] += 1
                    outer.bodies.append(body)
                    outer.requests.append(
                        {
                            "scenario": m.group(1) if m else None,
                            "kind": prompt_kind(text),
                            "auth": auth,
                            "time": time.time(),
                            "seed": body.get("seed"),
                            "digest": digest,
                        }
                    )
                    outer.in_flight += 1
                    outer.max_in_flight = max(outer.max_in_flight, outer.in_flight)
                try:
                    if outer.api_key is not None and auth != f"Bearer {outer.api_key}":
                        sent = auth.removeprefix("Bearer ")
                        return self._send(401, {"error": {"message": f"Incorrect API key provided: {sent}"}})
                    reply = outer.responder(body, seen)
                    if reply.delay and outer._stop.wait(reply.delay):
                        return
                    if reply.raw_body is not None:
                        return self._send_bytes(reply.status, reply.raw_body, reply.headers)
                    if reply.status != 200:
                        msg = {"error": {"message": f"scripted status {reply.status}", "type": "scripted"}}
                        return self._send(reply.status, msg, reply.headers)
                    completion = {
                        "id": "chatcmpl-fake",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": body.get("model", "fake"),
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": reply.content},
                                "finish_reason": reply.finish_reason,
                            }
                        ],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                    }
                    self._send(200, completion, reply.headers)
                finally:
                    with outer._lock:
                        outer.in_flight -= 1

            def _send(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
                self._send_bytes(status, json.dumps(obj).encode(), headers)

            def _send_bytes(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass

        self._loop = LoopbackServer(Handler)
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._loop is not None:
            self._loop.stop()

    def __enter__(self) -> FakeJudgeServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _without_images(raw: bytes) -> bytes:
    """The body with each ``"data:..."`` URL replaced by ``"data:;length=N"`` (N: the URL's length)."""
    out, pos = [], 0
    while (start := raw.find(b'"data:', pos)) >= 0:
        end = raw.find(b'"', start + 1)
        if end < 0:
            break
        out += [raw[pos:start], b'"data:;length=%d"' % (end - start - 1)]
        pos = end + 1
    out.append(raw[pos:])
    return b"".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--delay", type=float, default=0.0, help="seconds before each good reply")
    args = ap.parse_args(argv)

    def slow_good(body: dict[str, Any], seen: int) -> Reply:
        reply = good_reply(body, seen)
        reply.delay = args.delay
        return reply

    server = FakeJudgeServer(slow_good, keep_images=False).start()  # a benchmark's server: images are not parsed
    print(server.base_url, flush=True)
    try:
        sys.stdin.read()  # serve until the parent closes our stdin
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
