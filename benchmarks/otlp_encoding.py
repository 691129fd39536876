"""The OTLP encoder, chosen by measurement: eventlog-otlp's hand-written wire format
against the ``protobuf`` runtime building the same messages with the official classes.

    python benchmarks/otlp_encoding.py                 # time per 10,000 events, best of 5
    python benchmarks/otlp_encoding.py --instructions  # also instructions per event (valgrind)

Both encode the same 10,000 wire dicts (the bench's log call: a logger, a message,
three extras, code location, thread, host and pid) into one
``ExportLogsServiceRequest`` of 10,000 log records: ``hand-written`` is the
``otlp`` formatter's ``format`` per event plus the transport's ``request_body``
(in Python; and ``compiled``: eventlog-speedups' ``payload`` and ``request_body``);
``protobuf`` fills ``logs_pb2.LogRecord`` objects and serialises the request
(``protobuf`` |version|, upb backend); ``sdk`` is the OpenTelemetry SDK's own
``encode_logs`` on SDK log records (what its OTLP exporter does per batch),
for scale.  Instructions: callgrind, (loop - empty) / events, as instructions.py.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

EVENTS = 10_000


def wires(count: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"{i:032x}",
            "tstamp": 1_700_000_000_000 + i,
            "action": "log.info",
            "target": "bench.app",
            "tgType": "logger",
            "level": 20,
            "levelName": "INFO",
            "message": f"user alice did {i}",
            "fields": {"req_id": "r-1"},
            "metrics": {"duration_ms": 12.5, "sent_ns": 1_700_000_000_000_000_000 + i},
            "host": "web-1",
            "pid": 4242,
            "thread": "MainThread",
            "codeFile": "/srv/app/views.py",
            "codeLine": 42,
            "codeFunc": "checkout",
        }
        for i in range(count)
    ]


def hand_written(items: list[dict[str, Any]]) -> bytes:
    """The Python encoder (eventlog-speedups' OTLP encoder not used)."""
    from eventlog_otlp import encoding, formatter

    compiled_record, formatter._log_record = formatter._log_record, encoding.log_record
    compiled_module, encoding.compiled = encoding.compiled, None
    try:
        fmt = formatter.OtlpFormatter().format
        payloads = [fmt(wire) for wire in items]
    finally:
        formatter._log_record, encoding.compiled = compiled_record, compiled_module
    resource = encoding.resource_message({"service.name": "bench", "host.name": "web-1", "process.pid": 4242})
    entries = [(1_700_000_000_000_000_000, *encoding.open_envelope(p)[1:]) for p in payloads]
    return encoding.request_body(encoding.PROTOBUF, entries, lambda key: resource)


def compiled(items: list[dict[str, Any]]) -> bytes:
    """eventlog-speedups' payload() per event and request_body() (Records, as the engine makes)."""
    from eventlog.plugin import Record
    from eventlog_otlp import encoding
    from eventlog_otlp.formatter import OtlpFormatter

    assert encoding.compiled is not None, "eventlog-speedups is not installed"
    fmt = OtlpFormatter().format
    records = [Record(w["id"], w["action"], 1_700_000_000_000_000_000, fmt(w)) for w in items]
    resource = encoding.resource_message({"service.name": "bench", "host.name": "web-1", "process.pid": 4242})
    body: bytes = encoding.compiled.request_body(records, lambda key: resource)
    return body


def protobuf_runtime(items: list[dict[str, Any]]) -> bytes:
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
    from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
    from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

    def value(v: Any) -> AnyValue:
        if type(v) is str:
            return AnyValue(string_value=v)
        if type(v) is int:
            return AnyValue(int_value=v)
        return AnyValue(double_value=v)

    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    for k, v in (("service.name", "bench"), ("host.name", "web-1"), ("process.pid", 4242)):
        resource_logs.resource.attributes.append(KeyValue(key=k, value=value(v)))
    scopes: dict[str, Any] = {}
    for wire in items:
        scope = scopes.get(wire["target"])
        if scope is None:
            scope = scopes[wire["target"]] = resource_logs.scope_logs.add()
            scope.scope.name = wire["target"]
        attributes = [
            KeyValue(key="log.record.uid", value=AnyValue(string_value=wire["id"])),
            KeyValue(key="thread.name", value=AnyValue(string_value=wire["thread"])),
            KeyValue(key="code.file.path", value=AnyValue(string_value=wire["codeFile"])),
            KeyValue(key="code.function.name", value=AnyValue(string_value=wire["codeFunc"])),
            KeyValue(key="code.line.number", value=AnyValue(int_value=wire["codeLine"])),
        ]
        attributes += [KeyValue(key=k, value=value(v)) for k, v in wire["fields"].items()]
        attributes += [KeyValue(key=k, value=value(v)) for k, v in wire["metrics"].items()]
        scope.log_records.append(
            LogRecord(
                time_unix_nano=1_700_000_000_000_000_000,
                observed_time_unix_nano=1_700_000_000_000_000_000,
                severity_number=9,
                severity_text=wire["levelName"],
                body=AnyValue(string_value=wire["message"]),
                attributes=attributes,
            )
        )
    return bytes(request.SerializeToString())


def sdk_records(items: list[dict[str, Any]]) -> list[Any]:
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk.resources import Resource

    provider = LoggerProvider(resource=Resource.create({"service.name": "bench"}))
    logger = provider.get_logger("bench.app")
    kept: list[Any] = []

    class Keep:
        def on_emit(self, record: Any) -> None:
            kept.append(record)

        def shutdown(self) -> None:
            pass

        def force_flush(self, timeout_millis: int = 0) -> bool:
            return True

    provider.add_log_record_processor(Keep())  # type: ignore[arg-type]
    from opentelemetry._logs import LogRecord as ApiLogRecord

    for wire in items:
        logger.emit(
            ApiLogRecord(
                timestamp=1_700_000_000_000_000_000,
                severity_text="INFO",
                severity_number=None,
                body=wire["message"],
                attributes={
                    "code.file.path": wire["codeFile"],
                    "code.function.name": wire["codeFunc"],
                    "code.line.number": wire["codeLine"],
                    **wire["fields"],
                    **wire["metrics"],
                },
            )
        )
    return kept


def sdk_encode(records: list[Any]) -> bytes:
    from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs

    return bytes(encode_logs(records).SerializeToString())


def best_of(fn: Any, arg: Any, runs: int = 5) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        fn(arg)
        best = min(best, time.perf_counter() - start)
    return best


CASE = """
import sys
sys.path.insert(0, {here!r})
import otlp_encoding as m
mode, case = sys.argv[1], sys.argv[2]
items = m.wires({events})
records = m.sdk_records(items) if case == "sdk" else None
fn = {{"hand-written": m.hand_written, "compiled": m.compiled, "protobuf": m.protobuf_runtime,
       "sdk": m.sdk_encode}}[case]
arg = records if case == "sdk" else items
fn(arg[:10])
if mode == "loop":
    fn(arg)
"""


def instructions(case: str) -> float | None:
    if shutil.which("valgrind") is None:
        return None
    counts = {}
    with tempfile.TemporaryDirectory() as folder:
        script = os.path.join(folder, "case.py")
        with open(script, "w") as f:
            f.write(CASE.format(here=os.path.dirname(os.path.abspath(__file__)), events=EVENTS))
        for mode in ("empty", "loop"):
            out = os.path.join(folder, f"{mode}.out")
            subprocess.run(
                [
                    "valgrind",
                    "--tool=callgrind",
                    f"--callgrind-out-file={out}",
                    sys.executable,
                    script,
                    mode,
                    case,
                ],
                check=True,
                capture_output=True,
            )
            with open(out) as f:
                total = [line for line in f if line.startswith("summary:")]
            counts[mode] = int(total[0].split()[1])
    return (counts["loop"] - counts["empty"]) / EVENTS


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--instructions", action="store_true", help="count instructions with valgrind too")
    args = parser.parse_args()
    import google.protobuf
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    items = wires(EVENTS)
    ours, theirs = hand_written(items), protobuf_runtime(items)
    from eventlog_otlp import encoding

    rows = [("hand-written (eventlog-otlp), Python", hand_written, items, "hand-written")]
    if encoding.compiled is not None:
        assert compiled(items) == ours, "the compiled encoder must write the Python one's bytes"
        rows.append(("hand-written, compiled (eventlog-speedups)", compiled, items, "compiled"))
    # Same message, whatever the field order on the wire.
    assert ExportLogsServiceRequest.FromString(ours).resource_logs[0].scope_logs[0].log_records[5].body == (
        ExportLogsServiceRequest.FromString(theirs).resource_logs[0].scope_logs[0].log_records[5].body
    )
    records = sdk_records(items)
    print(f"protobuf {google.protobuf.__version__}, Python {sys.version.split()[0]}, {EVENTS:,} events")
    print(f"| encoder | ms per {EVENTS:,} events | µs per event | instructions per event |")
    print("|---|---:|---:|---:|")
    rows += [
        ("protobuf runtime, official classes", protobuf_runtime, items, "protobuf"),
        ("OpenTelemetry SDK encode_logs", sdk_encode, records, "sdk"),
    ]
    for name, fn, arg, case in rows:
        seconds = best_of(fn, arg)
        count = instructions(case) if args.instructions else None
        shown = f"{count:,.0f}" if count is not None else "-"
        print(f"| {name} | {seconds * 1000:.1f} | {seconds / EVENTS * 1e6:.2f} | {shown} |")


if __name__ == "__main__":
    main()
