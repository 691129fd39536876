"""A producer process for the spool tests: logs numbered events through a spool pipeline.

Run as ``python tests/spool_child.py '<json options>'``; it prints JSON lines
(``{"logged": n}``, ``{"flushed": ...}``, ``{"stats": ...}``) so the test can
follow it and kill it where it wants.  Options:

``db``, ``port``, ``transport`` ("tcp" or "acked"), ``prefix``, ``start``,
``count``, ``flush_at`` (flush once after that many events), ``after``
("shutdown", "sleep": wait to be killed, "exit": leave through atexit),
``settings`` (more configure() keywords), ``message`` (size of each message),
``pace`` (seconds to sleep after every 100 events: a steady stream, not a burst).
"""

from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import Sequence
from typing import Any

import eventlog
import eventlog.plugin
from eventlog._config import registry
from eventlog._config.contracts import PluginContext, Transport, TransportSpec
from eventlog._core.errors import ConnectError
from eventlog._records.batch import Batch, Record


class AckedTransport(Transport):
    """JSON lines, then an empty line; the listener answers ``ok`` once it kept the batch.

    A tiny at-least-once protocol, so a test can tell what the spool promises
    from what plain TCP cannot know (bytes in flight when the peer dies).
    """

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None

    def open(self) -> None:
        self.close()
        try:
            self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        except OSError as exc:
            raise ConnectError(f"cannot connect to 127.0.0.1:{self.port}: {exc}") from None

    def send(self, batch: Batch) -> Sequence[tuple[Record, str]] | None:
        if self.sock is None:
            self.open()
        assert self.sock is not None
        try:
            self.sock.sendall(b"".join(r.payload for r in batch) + b"\n")
            answer = b""
            while not answer.endswith(b"\n"):
                chunk = self.sock.recv(16)
                if not chunk:
                    raise ConnectError("listener closed before acknowledging")
                answer += chunk
        except OSError as exc:
            self.close()
            raise ConnectError(f"acked send failed: {exc}") from None
        except ConnectError:
            self.close()
            raise
        return None

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()


class AckedPlugin:
    @eventlog.plugin.hookimpl
    def eventlog_transports(self) -> list[TransportSpec]:
        def factory(context: PluginContext) -> Transport:
            return AckedTransport(context.settings.port)

        return [TransportSpec("acked", factory, "test: JSON lines acknowledged per batch")]


def say(**fields: Any) -> None:
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def main() -> None:
    opts = json.loads(sys.argv[1])
    registry._default = registry.Registry(extra_plugins=(AckedPlugin(),))
    settings = {
        "transport": opts.get("transport", "tcp"),
        "host": "127.0.0.1",
        "port": opts["port"],
        "db": opts["db"],
        "retry_backoff_max": 0.2,
        "enrichers": (),
        **opts.get("settings", {}),
    }
    pipeline = eventlog.configure(**settings)
    prefix, start, count = opts.get("prefix", "e"), opts.get("start", 0), opts.get("count", 0)
    flush_at = opts.get("flush_at", 0)
    message = "x" * opts.get("message", 0)
    pace = opts.get("pace", 0)
    for number in range(start, start + count):
        event = eventlog.Event("test.spool", prefix, "test", message=message, fields={"n": number})
        event.id = f"{prefix}-{number:08d}"
        eventlog.log_event(event)
        if pace and number % 100 == 99:
            time.sleep(pace)
        if flush_at and number - start + 1 == flush_at:
            say(flushed=eventlog.flush(60), logged=flush_at)
    say(logged=count)
    after = opts.get("after", "shutdown")
    if after == "sleep":
        while True:
            time.sleep(1)
    if after == "flush":
        say(flushed=eventlog.flush(opts.get("flush_timeout", 60)))
    report(pipeline, "stats")
    if after in ("shutdown", "flush"):
        eventlog.shutdown(opts.get("shutdown_timeout", 5))
        report(pipeline, "final")


def peak_rss_kb() -> int:
    """This process image's peak RSS (getrusage would count the parent before exec)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def report(pipeline: eventlog.Pipeline, key: str) -> None:
    stats = pipeline.stats
    say(
        **{
            key: {
                "taken": stats.taken,
                "sent": stats.sent,
                "dropped": stats.dropped_by_reason(),
                "fallback": stats.spool_fallback,
                "queue": pipeline.queue_depth(),
                "maxrss_kb": peak_rss_kb(),
            }
        }
    )


if __name__ == "__main__":
    main()
