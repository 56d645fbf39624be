"""Loopback HTTP servers that speak just enough of OpenAI's and Gemini's wire formats for adapter tests.

Each server binds 127.0.0.1 on a free port, answers from a script of canned responses (the last one
repeats), records every request, and refuses to answer more than ``max_requests`` (so a runaway retry
loop fails the test instead of hanging). Use as a context manager: the server stops on exit.
"""

from __future__ import annotations

import base64
import io
import json
import threading
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import default as email_policy
from http.server import BaseHTTPRequestHandler
from typing import Any

from loopback import LoopbackServer

__all__ = [
    "Reply",
    "Request",
    "FakeServer",
    "png_bytes",
    "parse_multipart",
    "openai_image",
    "openai_error",
    "gemini_image",
    "gemini_blocked",
    "gemini_finish",
    "gemini_text",
    "gemini_error",
]


@dataclass
class Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def multipart(self) -> list[tuple[str, str | None, str, bytes]]:
        return parse_multipart(self.headers.get("content-type", ""), self.body)


class FakeServer:
    """Serves ``replies`` in order (the last repeats) on http://127.0.0.1:<port>."""

    def __init__(self, replies: list[Reply], *, max_requests: int = 20):
        if not replies:
            raise ValueError("a fake server needs at least one reply")
        self.replies = list(replies)
        self.max_requests = max_requests
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._loop: LoopbackServer | None = None

    @property
    def url(self) -> str:
        assert self._loop is not None, "server not started"
        return self._loop.base_url

    def _next(self, request: Request) -> Reply:
        with self._lock:
            self.requests.append(request)
            n = len(self.requests)
            if n > self.max_requests:
                return Reply(500, {"error": {"message": f"fake server: more than {self.max_requests} requests"}})
            return self.replies[min(n - 1, len(self.replies) - 1)]

    def __enter__(self) -> FakeServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                length = int(self.headers.get("content-length", 0))
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                reply = owner._next(Request("POST", self.path, headers, body))
                payload = json.dumps(reply.body).encode()
                self.send_response(reply.status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                for key, value in reply.headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

        self._loop = LoopbackServer(Handler)
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self._loop is not None
        self._loop.stop()


def png_bytes(image: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def parse_multipart(content_type: str, body: bytes) -> list[tuple[str, str | None, str, bytes]]:
    """(field name, filename, content type, bytes) for each part of a multipart/form-data body."""
    message = BytesParser(policy=email_policy).parsebytes(
        b"content-type: " + content_type.encode() + b"\r\n\r\n" + body
    )
    if not message.is_multipart():
        raise ValueError(f"not a multipart body (content-type {content_type!r})")
    out = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        out.append((name, part.get_filename(), part.get_content_type(), part.get_payload(decode=True)))
    return out


# -- OpenAI images API -------------------------------------------------------------------------------
def openai_image(image: Any) -> Reply:
    return Reply(200, {"created": 0, "data": [{"b64_json": base64.b64encode(png_bytes(image)).decode()}]})


def openai_error(status: int, code: str | None, message: str, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, {"error": {"message": message, "type": "invalid_request_error", "param": None,
                                    "code": code}}, headers or {})


# -- Gemini generateContent ----------------------------------------------------------------------------
def gemini_image(image: Any) -> Reply:
    part = {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(png_bytes(image)).decode()}}
    return Reply(200, {"candidates": [{"content": {"role": "model", "parts": [part]}, "finishReason": "STOP"}]})


def gemini_blocked(reason: str = "SAFETY", message: str | None = None) -> Reply:
    feedback: dict[str, Any] = {"blockReason": reason}
    if message:
        feedback["blockReasonMessage"] = message
    return Reply(200, {"promptFeedback": feedback})


def gemini_finish(reason: str, message: str | None = None) -> Reply:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": []}, "finishReason": reason}
    if message:
        candidate["finishMessage"] = message
    return Reply(200, {"candidates": [candidate]})


def gemini_text(text: str) -> Reply:
    return Reply(200, {"candidates": [{"content": {"role": "model", "parts": [{"text": text}]},
                                       "finishReason": "STOP"}]})


def gemini_error(code: int, status: str, message: str) -> Reply:
    return Reply(code, {"error": {"code": code, "message": message, "status": status}})
