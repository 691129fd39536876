"""Instructions per log call, caller and worker, for the two OTLP/HTTP exporters.

    python benchmarks/otlp_instructions.py [--events 2000]

Each case logs the benchmark's call (``log.info("user %s did %d", "alice", i,
extra={"req_id": "r-1", "duration_ms": 12.5, "sent_ns": t})``) ``--events`` times and
waits until everything is exported, under ``valgrind --tool=callgrind
--separate-threads=yes``, once without the loop: per event = (loop - empty) /
events, for the calling thread and for the other threads (the exporter's) apart,
as benchmarks/instructions.py counts them.  The receiver is benchmarks/receiver.py's
``otlp`` mode, a separate process not under valgrind.

  eventlog-otlp   EventHandler, transport otlp (memory mode, protobuf); the OTLP encoder
                  of eventlog-speedups when installed
  eventlog-otlp-python  the same with eventlog-otlp's Python encoder (eventlog-speedups
                  still builds the wire dicts: only the OTLP part is switched off)
  opentelemetry   the SDK's LoggingHandler, BatchLogRecordProcessor and OTLPLogExporter
                  (protobuf); 2,000 events fit its 2,048-record queue, so nothing is
                  dropped and both send every event
  eventlog-json   the reference: eventlog's json/tcp pipeline for the same call (receiver.py's
                  ``json`` mode), to tell the plugin's share from the core's
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from instructions import totals  # noqa: E402  (the same counting as the main table)

CASE = """
import logging, os, sys, time, warnings
mode, events, case = sys.argv[1], int(sys.argv[2]), sys.argv[3]
port = int(os.environ["OTLP_PORT"])
log = logging.getLogger("bench.app")
log.setLevel(logging.INFO)
log.propagate = False
if case == "eventlog-json":  # the reference: the same pipeline, json lines over tcp
    import eventlog
    eventlog.configure(transport="tcp", format="json", host="127.0.0.1", port=port)
    log.addHandler(eventlog.EventHandler())
    def settle():
        assert eventlog.flush(60), "not everything was sent"
elif case.startswith("eventlog-otlp"):
    import eventlog
    if case == "eventlog-otlp-python":  # the Python encoder: eventlog-speedups' OTLP part off
        import eventlog_otlp.encoding, eventlog_otlp.formatter
        eventlog_otlp.encoding.compiled = None  # read when the formatter and transport are made
        eventlog_otlp.formatter._log_record = eventlog_otlp.encoding.log_record
    eventlog.configure(transport="otlp", otlp_endpoint=f"http://127.0.0.1:{port}")
    log.addHandler(eventlog.EventHandler())
    def settle():
        assert eventlog.flush(60), "not everything was sent"
else:
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    provider = LoggerProvider()
    provider.add_log_record_processor(
        BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"http://127.0.0.1:{port}/v1/logs"))
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        log.addHandler(LoggingHandler(logger_provider=provider))
    def settle():
        assert provider.force_flush(60_000), "not everything was sent"
log.info("warm %s", "up", extra={"req_id": "r-1", "duration_ms": 12.5, "sent_ns": 0})
settle()
if mode == "loop":
    for i in range(events):
        log.info("user %s did %d", "alice", i,
                 extra={"req_id": "r-1", "duration_ms": 12.5, "sent_ns": time.time_ns()})
    settle()
"""


CASES = ["eventlog-otlp", "eventlog-otlp-python", "opentelemetry", "eventlog-json"]


def measure(case: str, events: int, work: Path) -> tuple[float, float, int]:
    """(caller, other threads) instructions per event, and the records the receiver counted."""
    receiver = subprocess.Popen(
        [sys.executable, str(HERE / "receiver.py"), "json" if case == "eventlog-json" else "otlp"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert receiver.stdout is not None
        port, control_port = receiver.stdout.readline().split()
        script = work / "case.py"
        script.write_text(CASE)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("EVENTLOG_", "OTEL_"))}
        env.update(OTLP_PORT=port, PYTHONHASHSEED="0")
        subprocess.run([sys.executable, str(script), "empty", "1", case], env=env, check=True)
        counts = {}
        for mode in ("empty", "loop"):
            prefix = str(work / f"cg.{case}.{mode}")
            subprocess.run(
                [
                    "valgrind",
                    "--tool=callgrind",
                    "--separate-threads=yes",
                    f"--callgrind-out-file={prefix}.%p",
                    sys.executable,
                    str(script),
                    mode,
                    str(events),
                    case,
                ],
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            counts[mode] = totals(prefix)
        import socket

        with socket.create_connection(("127.0.0.1", int(control_port))) as control:
            stream = control.makefile("rwb", buffering=0)
            stream.write(b"wait 0 0\n")
            received = int(stream.readline().split()[0])
    finally:
        assert receiver.stdin is not None
        receiver.stdin.close()
        receiver.wait(10)
    (empty_main, empty_other), (loop_main, loop_other) = counts["empty"], counts["loop"]
    return (loop_main - empty_main) / events, (loop_other - empty_other) / events, received


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--cases", nargs="+", choices=CASES, default=CASES[:3])
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for case in args.cases:
            caller, worker, received = measure(case, args.events, Path(folder))
            rows.append((case, caller, worker, received))
    print(f"Instructions per event, callgrind, {args.events:,} events, Python {sys.version.split()[0]}")
    print("| exporter | caller | exporter threads | total | records received |")
    print("|---|---:|---:|---:|---:|")
    for case, caller, worker, received in rows:
        print(f"| {case} | {caller:,.0f} | {worker:,.0f} | {caller + worker:,.0f} | {received:,} |")
    totals_by_case = {case: caller + worker for case, caller, worker, _ in rows}
    theirs = totals_by_case.get("opentelemetry")
    for case, total in totals_by_case.items():
        if theirs and case != "opentelemetry":
            print(f"{case} / opentelemetry: {total / theirs:.2f}")


if __name__ == "__main__":
    main()
