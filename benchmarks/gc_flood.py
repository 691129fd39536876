"""What a flood costs in garbage-collector passes, which instruction counts of short loops miss.

    python benchmarks/gc_flood.py                 # 100,000 logger.info calls, gc as it is
    python benchmarks/gc_flood.py --freeze        # the same after gc.freeze() (start-up objects frozen)
    python benchmarks/gc_flood.py --events 20000 --case log_event

A flood keeps a backlog of queued items alive (a LogRecord, its ``__dict__``, its
argument tuple and the queue's tuple per record), so the collector's young
generations traverse them again and again, and every full collection walks the
whole heap: the application's start-up objects too.  Prints the wall time to
the last event delivered, the process CPU time, and the collections by
generation with the time spent in each (``gc.callbacks``).  A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import gc
import logging
import subprocess
import sys
import time
from typing import Any

SINK = """
import socket, threading
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(4)
print(server.getsockname()[1], flush=True)
def drain(conn):
    while conn.recv(1 << 20):
        pass
while True:
    conn, _ = server.accept()
    threading.Thread(target=drain, args=(conn,), daemon=True).start()
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--freeze", action="store_true", help="gc.freeze() once the pipeline runs")
    parser.add_argument("--case", choices=("info", "log_event"), default="info")
    args = parser.parse_args()
    sink = subprocess.Popen([sys.executable, "-c", SINK], stdout=subprocess.PIPE, text=True)
    try:
        assert sink.stdout is not None
        port = int(sink.stdout.readline())
        run(port, args)
    finally:
        sink.kill()
        sink.wait()


def run(port: int, args: argparse.Namespace) -> None:
    import eventlog
    from eventlog import Event, log_event

    eventlog.configure(transport="tcp", host="127.0.0.1", port=port)
    log = logging.getLogger("flood")
    log.setLevel(logging.INFO)
    log.propagate = False
    log.addHandler(eventlog.EventHandler())
    log.info("warm")
    assert eventlog.flush(10), "the warm-up was not sent"
    if args.freeze:
        gc.freeze()
    passes = {0: [0, 0.0], 1: [0, 0.0], 2: [0, 0.0]}
    began = [0.0]

    def collected(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
        else:
            entry = passes[info["generation"]]
            entry[0] += 1
            entry[1] += time.perf_counter() - began[0]

    gc.callbacks.append(collected)
    events = args.events
    wall, cpu = time.perf_counter(), time.process_time()
    if args.case == "info":
        for i in range(events):
            log.info("user %s did thing %d", "alice", i, extra={"k": i})
    else:
        for i in range(events):
            log_event(Event("user.did", "alice", "user", fields={"req_id": "r-1", "n": i}))
    called = time.perf_counter() - wall
    assert eventlog.flush(300), "not everything was sent"
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    gc.callbacks.remove(collected)
    in_gc = sum(seconds for _, seconds in passes.values())
    print(
        f"{args.case}{' (gc.freeze)' if args.freeze else ''}: {events:,} calls in {called:.2f} s, "
        f"all delivered at {wall:.2f} s ({events / wall:,.0f}/s), CPU {cpu:.2f} s, in gc {in_gc:.2f} s: "
        + ", ".join(f"gen{g} {count} passes {seconds:.3f} s" for g, (count, seconds) in passes.items())
    )


if __name__ == "__main__":
    main()
