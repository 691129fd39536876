"""End-to-end events per second through the ``fluent`` transport and through fluent-logger.

Both sides log the same records through ``logging`` to the same Forward sink
(a separate process that counts every entry and acknowledges chunks), in one
run, so the ratio is meaningful on a noisy machine; the absolute numbers are not.

    python benchmarks/fluent_forward.py [--events 100000] [--rounds 3]

Peers: eventlog's ``fluent`` transport (acks on, the default; acks off; gzip)
and fluent-logger's asynchronous handler (``fluent.asynchandler.FluentHandler``,
Message mode, no acks).  Needs ``msgpack`` and ``fluent-logger``.
"""

from __future__ import annotations

import argparse
import logging
import os
import select
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

import msgpack


def sink(expected: int) -> None:
    """Count Forward entries from any number of connections; print 'done' at ``expected``."""
    import gzip

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    print(listener.getsockname()[1], flush=True)
    unpackers: dict[socket.socket, msgpack.Unpacker] = {}
    count = 0
    while True:
        readable, _, _ = select.select([listener, *unpackers], [], [], 1.0)
        for sock in readable:
            if sock is listener:
                conn, _ = listener.accept()
                unpackers[conn] = msgpack.Unpacker(raw=False)
                continue
            data = sock.recv(1 << 20)
            if not data:
                del unpackers[sock]
                sock.close()
                continue
            unpacker = unpackers[sock]
            unpacker.feed(data)
            for message in unpacker:
                option = message[-1] if isinstance(message[-1], dict) else {}
                entries = message[1]
                if isinstance(entries, bytes):  # (Compressed)PackedForward
                    if option.get("compressed") == "gzip":
                        entries = gzip.decompress(entries)
                    count += sum(1 for _ in _entries(entries))
                elif isinstance(entries, list):  # Forward
                    count += len(entries)
                else:  # Message
                    count += 1
                if "chunk" in option:
                    sock.sendall(msgpack.packb({"ack": option["chunk"]}))
        if count >= expected:
            print("done", flush=True)
            return


def _entries(stream: bytes) -> msgpack.Unpacker:
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(stream)
    return unpacker


class Sink:
    """The sink process for one measurement."""

    def __init__(self, expected: int) -> None:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--sink", str(expected)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())

    def wait(self, timeout: float = 300) -> None:
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not ready or self.process.stdout.readline().strip() != "done":
            self.process.kill()
            raise RuntimeError("the sink did not receive every event in time")
        self.process.wait(10)


def measure(make_handler: Callable[[int], logging.Handler], events: int) -> tuple[float, float]:
    """(end-to-end events per second, caller microseconds per log call)."""
    sink_process = Sink(events)
    handler = make_handler(sink_process.port)
    logger = logging.getLogger(f"bench.{id(handler)}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        started = time.perf_counter()
        for i in range(events):
            logger.info("order %d paid", i, extra={"amount": i % 100, "currency": "EUR"})
        logged = time.perf_counter()
        sink_process.wait()
        done = time.perf_counter()
    finally:
        logger.removeHandler(handler)
        handler.close()
    return events / (done - started), (logged - started) / events * 1e6


def eventlog_handler(**settings: object) -> Callable[[int], logging.Handler]:
    def make(port: int) -> logging.Handler:
        from eventlog import EventHandler

        return EventHandler(transport="fluent", host="127.0.0.1", port=port, **settings)

    return make


def fluent_logger_handler(port: int) -> logging.Handler:
    from fluent import asynchandler, handler

    fluent_handler = asynchandler.FluentHandler(
        "bench", host="127.0.0.1", port=port, nanosecond_precision=True
    )
    fluent_handler.setFormatter(handler.FluentRecordFormatter())
    return fluent_handler


PEERS: dict[str, Callable[[int], logging.Handler]] = {
    "eventlog fluent (acks, default)": eventlog_handler(),
    "eventlog fluent (no acks)": eventlog_handler(fluent_require_ack_response=False),
    "eventlog fluent (gzip, acks)": eventlog_handler(fluent_mode="compressed"),
    "fluent-logger asynchandler": fluent_logger_handler,
}


def compare(events: int, rounds: int) -> list[tuple[str, float, float, float]]:
    """(peer, events per second, ratio to fluent-logger, caller microseconds per call), medians.

    For ``benchmarks/bench.py`` (``nox -s bench``) to include in its report.
    """
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in PEERS}
    for _ in range(rounds):  # interleaved, so drift on a shared machine hits every peer
        for name, make in PEERS.items():
            results[name].append(measure(make, events))
    baseline = statistics.median(r[0] for r in results["fluent-logger asynchandler"])
    rows = []
    for name, runs in results.items():
        rate = statistics.median(r[0] for r in runs)
        rows.append((name, rate, rate / baseline, statistics.median(r[1] for r in runs)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sink", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink is not None:
        sink(args.sink)
        return
    rows = compare(args.events, args.rounds)
    print(f"{args.events} log calls per run, median of {args.rounds} runs, cpus={os.cpu_count()}")
    print(f"{'peer':34} {'events/s':>10} {'vs fluent-logger':>17} {'caller us/call':>15}")
    for name, rate, ratio, caller in rows:
        print(f"{name:34} {rate:10.0f} {ratio:16.2f}x {caller:15.2f}")


if __name__ == "__main__":
    main()
