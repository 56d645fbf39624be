"""The one way the tests' fake servers (judge, Hub, providers) listen: 127.0.0.1, a free port, a thread."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class LoopbackServer:
    """A threading HTTP server on loopback only, started in a daemon thread and stopped cleanly."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], *, queue: int = 128):
        server_cls = type("Server", (ThreadingHTTPServer,), {"daemon_threads": True, "block_on_close": False,
                                                             "request_queue_size": queue})
        self.server = server_cls(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
