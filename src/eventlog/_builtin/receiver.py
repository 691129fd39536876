"""Small receivers on loopback, for the demo and for tests: TCP lines and UDP datagrams.

They are real listeners: :class:`LineReceiver` accepts any number of TCP (or
TLS) connections and keeps every line it reads, :class:`DatagramReceiver`
keeps every UDP datagram.  Not production log servers.  Plugin authors get
them from :mod:`eventlog.plugin.testing`.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from typing import Any, Self


class _Receiver:
    """What both receivers share: a reader thread filling a list, waited for under a condition."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._stop = threading.Event()

    def _received(self) -> list[bytes]:
        raise NotImplementedError

    def wait_for(self, count: int, timeout: float = 10.0) -> bool:
        """Wait until at least ``count`` lines (or datagrams) arrived; False on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._received()) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def stop(self) -> None:
        """Stop reading and close the sockets."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class LineReceiver(_Receiver):
    """Accepts TCP (optionally TLS) connections and collects newline-delimited payloads."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, tls: ssl.SSLContext | None = None) -> None:
        super().__init__()
        self.host = host
        self.tls = tls
        self.lines: list[bytes] = []
        self.connections = 0
        self._clients: list[socket.socket] = []
        self.port: int = port
        self._listen()

    def _listen(self) -> None:
        self._server = socket.create_server((self.host, self.port), reuse_port=False)
        self._server.settimeout(0.2)
        self.port = self._server.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, name="receiver", daemon=True)
        self._thread.start()

    def restart(self) -> None:
        """Listen again on the same port after :meth:`stop`, keeping the lines received so far.

        A peer that comes back: what a transport retried while it was gone arrives here.
        """
        self.stop()
        self._stop = threading.Event()
        with self._cond:
            self._clients = []
        self._listen()

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

    def _received(self) -> list[bytes]:
        return self.lines

    def stop(self) -> None:
        """Close the listener and every connection (peers see EOF)."""
        self._stop.set()
        try:
            # Wakes the accept() the thread waits in at once; close() alone leaves it to its timeout.
            self._server.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._server.close()
        with self._cond:
            for conn in self._clients:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()
        self._thread.join(2)


class DatagramReceiver(_Receiver):
    """A real UDP listener on 127.0.0.1 keeping every datagram, in arrival order.

    The counterpart of :class:`LineReceiver` for datagram transports; use it
    as a context manager (``with DatagramReceiver() as receiver``)::

        assert receiver.wait_for(3)
        assert [json.loads(d)["action"] for d in receiver.datagrams] == [...]
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        # Room for a whole test batch even if this thread is slow to read it:
        # UDP drops what does not fit, and a test should not depend on the scheduler.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.bind((host, port))
        self.sock.settimeout(0.1)
        self.host = host
        self.port: int = self.sock.getsockname()[1]
        self.datagrams: list[bytes] = []
        self._thread = threading.Thread(target=self._read, name="udp-receiver", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                datagram = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._cond:
                self.datagrams.append(datagram)
                self._cond.notify_all()

    def _received(self) -> list[bytes]:
        return self.datagrams

    def stop(self) -> None:
        """Stop reading and close the socket."""
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
