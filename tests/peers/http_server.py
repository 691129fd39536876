"""A real HTTP server on loopback that answers as a test tells it to.

It runs :mod:`http.server` (HTTP/1.1, keep-alive) in a thread of the test
process.  A test queues :class:`Answer` objects, one per coming request (a
200 when none is queued), and reads back every :class:`Received` request:
headers, the body as sent and decoded (gzip), the answer given, the time it
arrived and the client's port (which shows connection reuse)::

    with HttpPeer() as peer:
        peer.answer(Answer(503), Answer(429, headers={"Retry-After": "1"}))
        ...  # POST to peer.url, then read peer.requests
"""

from __future__ import annotations

import gzip
import json
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Answer:
    """How to answer one request."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    #: Seconds to wait (after reading the request) before answering.
    delay: float = 0.0
    #: Read the request, then reset the connection (RST) without an answer.
    reset: bool = False


@dataclass
class Received:
    """One request as the server saw it."""

    method: str
    path: str
    headers: dict[str, str]
    raw_body: bytes
    body: bytes
    answer: Answer
    arrived: float  # time.monotonic()
    client_port: int

    def events(self) -> list[dict[str, Any]]:
        """The JSON events in the body: a JSON array, or one object per line."""
        text = self.body.decode("utf-8")
        if text.lstrip().startswith("["):
            loaded: list[dict[str, Any]] = json.loads(text)
            return loaded
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    def ids(self) -> list[str]:
        """The ``id`` of each event in the body, in order."""
        return [event["id"] for event in self.events()]


class HttpPeer:
    """The running server: its URL, the answers to give and the requests received."""

    def __init__(self) -> None:
        self.answers: deque[Answer] = deque()
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 10  # an idle keep-alive connection ends its thread after this

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                body = raw
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(raw)
                with peer._lock:
                    answer = peer.answers.popleft() if peer.answers else Answer()
                    peer.requests.append(
                        Received(
                            "POST",
                            self.path,
                            dict(self.headers.items()),
                            raw,
                            body,
                            answer,
                            time.monotonic(),
                            self.client_address[1],
                        )
                    )
                    peer._changed.notify_all()
                if answer.delay:
                    time.sleep(answer.delay)
                if answer.reset:
                    # SO_LINGER 0: close() sends RST instead of FIN.
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.close_connection = True
                    self.connection.close()
                    return
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                except OSError:  # the client gave up waiting (slow answers)
                    self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        self._handler = Handler
        self._bind(0)
        self.url = f"http://127.0.0.1:{self.port}/"

    def _bind(self, port: int) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", port), self._handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def start(self) -> HttpPeer:
        self._thread.start()
        return self

    def restart(self) -> None:
        """Serve again on the same port after :meth:`stop`; answers still queued are forgotten."""
        with self._lock:
            self.answers.clear()
        self._bind(self.port)
        self.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)

    def __enter__(self) -> HttpPeer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def answer(self, *answers: Answer) -> None:
        """Queue answers for the next requests, in order."""
        with self._lock:
            self.answers.extend(answers)

    def wait_requests(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Wait until ``count`` requests arrived (or the timeout passed); return them all."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
            return list(self.requests)

    def delivered_ids(self) -> list[str]:
        """Ids of events in requests answered with a 2xx (duplicates kept)."""
        with self._lock:
            done = [r for r in self.requests if 200 <= r.answer.status < 300 and not r.answer.reset]
        return [event_id for request in done for event_id in request.ids()]
