"""A small JSON-lines TCP receiver, for the demo and for tests.

It is a real listener on loopback: it accepts any number of connections and
keeps every line it reads.  Not a production log server.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from typing import Any


class LineReceiver:
    """Accepts TCP (optionally TLS) connections and collects newline-delimited payloads."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, tls: ssl.SSLContext | None = None) -> None:
        self.host = host
        self.tls = tls
        self.lines: list[bytes] = []
        self.connections = 0
        self._cond = threading.Condition()
        self._server = socket.create_server((host, port), reuse_port=False)
        self._server.settimeout(0.2)
        self.port: int = self._server.getsockname()[1]
        self._stop = threading.Event()
        self._clients: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept_loop, name="receiver", daemon=True)
        self._thread.start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except (TimeoutError, OSError):
                continue
            if self.tls is not None:
                try:
                    conn.settimeout(5)
                    conn = self.tls.wrap_socket(conn, server_side=True)
                except (ssl.SSLError, OSError):
                    conn.close()
                    continue
            conn.settimeout(0.2)
            with self._cond:
                self.connections += 1
                self._clients.append(conn)
            threading.Thread(target=self._read_loop, args=(conn,), daemon=True).start()

    def _read_loop(self, conn: socket.socket) -> None:
        buffer = b""
        while not self._stop.is_set():
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                continue
            except (OSError, ssl.SSLError):
                break
            if not chunk:
                break
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            if complete:
                with self._cond:
                    self.lines.extend(complete)
                    self._cond.notify_all()
        try:
            conn.close()
        except OSError:
            pass

    def events(self) -> list[dict[str, Any]]:
        """Every line received so far, parsed as JSON."""
        with self._cond:
            return [json.loads(line) for line in self.lines]

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        """Wait until at least ``count`` lines arrived; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.lines) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def stop(self) -> None:
        """Close the listener and every connection (peers see EOF)."""
        self._stop.set()
        self._server.close()
        with self._cond:
            for conn in self._clients:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()
        self._thread.join(2)

    def __enter__(self) -> LineReceiver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
