"""One contender, one phase, in its own process: ``python contenders.py NAME PHASE JSON-ARGS``.

Prints one JSON object (the phase's figures) as its last line of output.
Every contender is set up the way its documentation recommends for
asynchronous use, and logs the same call::

    log.info("user %s did %d", "alice", i, extra={"req_id": "r-1", "duration_ms": 12.5, "sent_ns": t})

Phases:
  caller   caller microseconds per call: bursts of ``calls`` calls, ``runs`` times,
           the queue drained (not timed) between bursts; wall clock and the
           calling thread's CPU time; for eventlog also ``log_event(Event(...))``.
  e2e      events per second from the first call to the last event the receiver
           counted (``events`` events, capped at ``timeout`` seconds); peak RSS.
  latency  ``rate`` events per second, evenly spaced, for ``seconds``; p50/p99 of
           arrival time minus the time of the call.
  outage   receiver down: log ``events`` events at ``rate`` per second, RSS growth,
           then the receiver comes up and every event must arrive exactly once.
"""

from __future__ import annotations

import gc
import json
import logging
import logging.handlers
import os
import queue
import resource
import shutil
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

LOGGER_NAME = "bench.app"


class Control:
    """The receiver's control connection (see receiver.py)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.stream = self.sock.makefile("rwb", buffering=0)

    def ask(self, line: str) -> str:
        self.stream.write(line.encode() + b"\n")
        return self.stream.readline().decode().strip()

    def wait(self, count: int, seconds: float) -> tuple[int, int]:
        got, last = self.ask(f"wait {count} {seconds}").split()
        return int(got), int(last)


# ---------------------------------------------------------------- contenders


class NullEmit(logging.Handler):
    """The floor: a handler whose emit does nothing."""

    def emit(self, record: logging.LogRecord) -> None:
        pass


_RECORD_KEYS = frozenset(logging.LogRecord("n", 0, "p", 0, "m", (), None).__dict__) | {
    "message",
    "taskName",
}


class JsonLinesSocketHandler(logging.handlers.SocketHandler):
    """The stdlib's SocketHandler, writing one JSON object per line instead of a pickle."""

    def makePickle(self, record: logging.LogRecord) -> bytes:  # noqa: N802 - stdlib's name
        doc = {
            "tstamp": int(record.created * 1000),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RECORD_KEYS:
                doc[key] = value
        return (json.dumps(doc, default=str) + "\n").encode()


class Setup:
    """A configured contender: the logger to call, and how to stop it."""

    def __init__(
        self,
        logger: logging.Logger,
        close: Callable[[], None] = lambda: None,
        log_event: Callable[[int], None] | None = None,
    ) -> None:
        self.logger = logger
        self.close = close
        self.log_event = log_event


def _logger(handler: logging.Handler) -> logging.Logger:
    logger = logging.getLogger(LOGGER_NAME)
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def setup_floor(port: int, spool_dir: str) -> Setup:
    return Setup(_logger(NullEmit()))


def setup_stdlib(port: int, spool_dir: str) -> Setup:
    # The logging cookbook's pattern: QueueHandler in the caller, QueueListener's thread does I/O.
    que: queue.Queue[logging.LogRecord] = queue.Queue(-1)
    listener = logging.handlers.QueueListener(que, JsonLinesSocketHandler("127.0.0.1", port))
    listener.start()
    return Setup(_logger(logging.handlers.QueueHandler(que)), listener.stop)


class LeanJsonLines(logging.Handler):
    """The leanest listener side a user could write: four fields as one JSON line, straight out."""

    def __init__(self, port: int) -> None:
        super().__init__()
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.encode = json.JSONEncoder(separators=(",", ":")).encode

    def handle(self, record: logging.LogRecord) -> bool:  # type: ignore[override]
        # No filters and no handler lock: one listener thread is the only caller.
        line = self.encode(
            {
                "tstamp": int(record.created * 1000),
                "level": record.levelname,
                "message": record.message,  # QueueHandler.prepare() rendered it
                "sent_ns": record.__dict__.get("sent_ns"),
            }
        )
        self.sock.sendall((line + "\n").encode())
        return True

    def emit(self, record: logging.LogRecord) -> None:
        self.handle(record)


def setup_stdlib_lean(port: int, spool_dir: str) -> Setup:
    # A SimpleQueue (no lock of its own, C) and a listener writing a 4-field JSON line per record.
    que: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(que, LeanJsonLines(port))
    listener.start()
    return Setup(_logger(logging.handlers.QueueHandler(que)), listener.stop)  # type: ignore[arg-type]


def setup_logstash_memory(port: int, spool_dir: str) -> Setup:
    from logstash_async.handler import AsynchronousLogstashHandler

    handler = AsynchronousLogstashHandler("127.0.0.1", port, database_path=None)
    return Setup(_logger(handler), handler.close)


def setup_logstash_sqlite(port: int, spool_dir: str) -> Setup:
    from logstash_async.handler import AsynchronousLogstashHandler

    path = os.path.join(spool_dir, "logstash-async.db")
    handler = AsynchronousLogstashHandler("127.0.0.1", port, database_path=path)
    return Setup(_logger(handler), handler.close)


def setup_fluent(port: int, spool_dir: str) -> Setup:
    from fluent import asynchandler, handler

    fluent = asynchandler.FluentHandler("bench.app", host="127.0.0.1", port=port)
    fluent.setFormatter(
        handler.FluentRecordFormatter(
            {
                "level": "%(levelname)s",
                "message": "%(message)s",
                "req_id": "%(req_id)s",
                "duration_ms": "%(duration_ms)s",
                "sent_ns": "%(sent_ns)s",
            }
        )
    )
    return Setup(_logger(fluent), fluent.close)


def setup_otel(port: int, spool_dir: str) -> Setup:
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, ConsoleLogExporter

    # OTLP needs a collector; the SDK's console exporter writing to a socket keeps the
    # SDK's own batching and JSON encoding, so the caller cost is the real one.
    sink = socket.create_connection(("127.0.0.1", port)).makefile("w")
    provider = LoggerProvider()
    provider.add_log_record_processor(
        BatchLogRecordProcessor(
            ConsoleLogExporter(out=sink, formatter=lambda r: r.to_json(indent=None) + "\n")
        )
    )
    handler = LoggingHandler(logger_provider=provider)
    return Setup(_logger(handler), provider.shutdown)


def setup_otel_otlp(port: int, spool_dir: str) -> Setup:
    """The OpenTelemetry SDK's real OTLP/HTTP exporter (protobuf), its documented defaults."""
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    provider = LoggerProvider()
    provider.add_log_record_processor(
        BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"http://127.0.0.1:{port}/v1/logs"))
    )
    handler = LoggingHandler(logger_provider=provider)
    return Setup(_logger(handler), provider.shutdown)


def _eventlog(port: int, spool_dir: str, **settings: Any) -> Setup:
    import eventlog
    from eventlog import Event, log_event

    eventlog.configure(host="127.0.0.1", port=port, **settings)
    handler = eventlog.EventHandler()

    def log_one(i: int) -> None:
        log_event(
            Event(
                "user.did",
                "alice",
                "user",
                fields={"req_id": "r-1", "n": i},
                metrics={"duration_ms": 12.5},
            )
        )

    return Setup(_logger(handler), eventlog.shutdown, log_one)


def setup_eventlog_memory(port: int, spool_dir: str) -> Setup:
    return _eventlog(port, spool_dir, transport="tcp", format="json")


def setup_eventlog_spool(port: int, spool_dir: str) -> Setup:
    # spool_max_bytes sized for the outage phase: 1,000,000 JSON events of about 450 bytes
    # do not fit the default 256 MB, and the oldest would be evicted (and counted).
    return _eventlog(
        port,
        spool_dir,
        transport="tcp",
        format="json",
        db=os.path.join(spool_dir, "spool.db"),
        spool_max_bytes=1 << 30,
    )


def setup_eventlog_fluent(port: int, spool_dir: str) -> Setup:
    return _eventlog(port, spool_dir, transport="fluent")


def setup_eventlog_http(port: int, spool_dir: str) -> Setup:
    return _eventlog(port, spool_dir, transport="http", http_url=f"http://127.0.0.1:{port}/")


def setup_eventlog_otlp(port: int, spool_dir: str) -> Setup:
    return _eventlog(port, spool_dir, transport="otlp", otlp_endpoint=f"http://127.0.0.1:{port}")


def setup_eventlog_nats(port: int, spool_dir: str) -> Setup:
    # The receiver's nats-server stores ``bench`` in its stream BENCH; each batch waits for its acks.
    return _eventlog(
        port, spool_dir, transport="nats", nats_servers=f"127.0.0.1:{port}", nats_subject="bench"
    )


SETUPS: dict[str, Callable[[int, str], Setup]] = {
    "floor": setup_floor,
    "stdlib": setup_stdlib,
    "stdlib lean": setup_stdlib_lean,
    "logstash-async memory": setup_logstash_memory,
    "logstash-async sqlite": setup_logstash_sqlite,
    "fluent-logger": setup_fluent,
    "opentelemetry": setup_otel,
    "eventlog memory json/tcp": setup_eventlog_memory,
    "eventlog spool json/tcp": setup_eventlog_spool,
    "eventlog memory fluent": setup_eventlog_fluent,
    "eventlog memory http": setup_eventlog_http,
    "eventlog memory nats": setup_eventlog_nats,
    "opentelemetry otlp": setup_otel_otlp,
    "eventlog memory otlp": setup_eventlog_otlp,
}


# ---------------------------------------------------------------- phases

EXTRA = {"req_id": "r-1", "duration_ms": 12.5, "sent_ns": 0}


def rss_mb() -> float:
    """Current resident set size in MB (from /proc)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def phase_caller(setup: Setup, control: Control | None, args: dict[str, Any]) -> dict[str, Any]:
    calls, runs = args["calls"], args["runs"]
    info = setup.logger.info
    extra = EXTRA
    logged = 0

    def drain() -> None:
        if control is not None:
            control.wait(logged, args["drain_timeout"])

    def burst_info() -> tuple[float, float]:
        nonlocal logged
        gc.collect()
        cpu0, wall0 = time.thread_time_ns(), time.perf_counter_ns()
        for i in range(calls):
            info("user %s did %d", "alice", i, extra=extra)
        wall, cpu = time.perf_counter_ns() - wall0, time.thread_time_ns() - cpu0
        logged += calls
        return wall / calls / 1000, cpu / calls / 1000

    def burst_event() -> tuple[float, float]:
        nonlocal logged
        assert setup.log_event is not None
        log_one = setup.log_event
        gc.collect()
        cpu0, wall0 = time.thread_time_ns(), time.perf_counter_ns()
        for i in range(calls):
            log_one(i)
        wall, cpu = time.perf_counter_ns() - wall0, time.thread_time_ns() - cpu0
        logged += calls
        return wall / calls / 1000, cpu / calls / 1000

    result: dict[str, Any] = {}
    bursts = [("info", burst_info)]
    if setup.log_event is not None:
        bursts.append(("event", burst_event))
    for name, burst in bursts:
        burst()  # warm-up
        drain()
        walls, cpus = [], []
        for _ in range(runs):
            wall, cpu = burst()
            walls.append(wall)
            cpus.append(cpu)
            drain()
        result[f"{name}_wall_us"] = statistics.median(walls)
        result[f"{name}_cpu_us"] = statistics.median(cpus)
    return result


def eventlog_dropped() -> dict[str, int] | None:
    """eventlog's own count of events given up, by reason (None for other contenders)."""
    if "eventlog" not in sys.modules:
        return None
    import eventlog

    return eventlog.get_pipeline().stats.dropped_by_reason()


def phase_e2e(setup: Setup, control: Control, args: dict[str, Any]) -> dict[str, Any]:
    events = args["events"]
    info = setup.logger.info
    extra = EXTRA
    start = time.time_ns()
    for i in range(events):
        info("user %s did %d", "alice", i, extra=extra)
    logged_s = (time.time_ns() - start) / 1e9
    got, last_ns = control.wait(events, args["timeout"])
    seconds = (last_ns - start) / 1e9 if got else float("nan")
    return {
        "events": events,
        "received": got,
        "complete": got >= events,
        "events_per_s": got / seconds if got else 0.0,
        "log_seconds": logged_s,
        "peak_rss_mb": peak_rss_mb(),
        "dropped": eventlog_dropped(),
    }


def phase_latency(setup: Setup, control: Control, args: dict[str, Any]) -> dict[str, Any]:
    rate, seconds = args["rate"], args["seconds"]
    info = setup.logger.info
    total = int(rate * seconds)
    interval = 1.0 / rate
    # Warm up (connection, worker thread, lazy imports): steady state is what is measured.
    for i in range(100):
        info("user %s did %d", "alice", i, extra=EXTRA)
        time.sleep(interval)
    control.wait(100, args["timeout"])
    control.ask("reset latency")
    begin = time.perf_counter()
    for i in range(total):
        due = begin + i * interval
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        info(
            "user %s did %d",
            "alice",
            i,
            extra={"req_id": "r-1", "duration_ms": 12.5, "sent_ns": time.time_ns()},
        )
    got, _ = control.wait(total, args["timeout"])
    result = json.loads(control.ask("latency"))
    result["sent"], result["received"] = total, got
    return result


def phase_outage(setup: Setup, control: Control, args: dict[str, Any]) -> dict[str, Any]:
    events, rate = args["events"], args["rate"]
    info = setup.logger.info
    extra = EXTRA
    control.ask("reset ids")
    gc.collect()
    before = rss_mb()
    start = time.perf_counter()
    # A steady rate, in steps of 1 ms: an outage lasts longer than a burst, and a burst
    # bigger than the in-memory queue (queue_size) is dropped by design, spool or not.
    step = max(1, rate // 1000)
    for first in range(0, events, step):
        due = start + first / rate
        delay = due - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        for i in range(first, min(events, first + step)):
            info("user %s did %d", "alice", i, extra=extra)
    import eventlog

    pipeline = eventlog.get_pipeline()
    logged_s = time.perf_counter() - start
    # Wait until the worker moved everything from memory into the spool.
    deadline = time.monotonic() + args["timeout"]
    while pipeline.queue_depth() and time.monotonic() < deadline:
        time.sleep(0.05)
    spooled_s = time.perf_counter() - start
    after = rss_mb()
    peak = peak_rss_mb()
    control.ask("listen")
    # Wait for every event, or until nothing is left to send and nothing arrives any more.
    deadline = time.monotonic() + args["timeout"]
    got, last_change = 0, time.monotonic()
    while time.monotonic() < deadline:
        now_got, _ = control.wait(events, 5)
        if now_got >= events:
            got = now_got
            break
        if now_got != got:
            got, last_change = now_got, time.monotonic()
        elif (
            time.monotonic() - last_change > 40  # longer than retry_backoff_max
            and not pipeline.queue_depth()
            and not pipeline.spool_depth()
        ):
            break
    ids = json.loads(control.ask("ids"))
    stats = pipeline.stats
    return {
        "events": events,
        "rss_before_mb": before,
        "rss_after_mb": after,
        "rss_growth_mb": after - before,
        "peak_rss_mb": peak,
        "log_seconds": logged_s,
        "spool_seconds": spooled_s,
        "received": got,
        "distinct": ids["distinct"],
        "dropped": stats.dropped_by_reason(),
    }


PHASES = {"caller": phase_caller, "e2e": phase_e2e, "latency": phase_latency, "outage": phase_outage}


def main() -> None:
    name, phase, raw = sys.argv[1], sys.argv[2], sys.argv[3]
    args = json.loads(raw)
    spool_dir = tempfile.mkdtemp(prefix="eventlog-bench-")
    control = Control(args["control_port"]) if args.get("control_port") else None
    if control is not None:
        control.ask("reset")
    setup = SETUPS[name](args.get("data_port") or 0, spool_dir)
    result = PHASES[phase](setup, control, args)  # type: ignore[arg-type]
    print(json.dumps(result), flush=True)
    # Some contenders' exit handlers would keep sending (or wait out a 10 s flush
    # interval); the figures are taken, so leave without running them.
    shutil.rmtree(spool_dir, ignore_errors=True)
    os._exit(0)


if __name__ == "__main__":
    main()
