"""Overload: the scenario of issue 24 at 10x the queue's capacity, kept and shed per class.

    nox -s bench -- --overload
    nox -s bench -- --overload --quick   # a tenth: 10,000 lines, a queue of 1,000
    python benchmarks/overload.py --lines 100000 --queue-size 10000

The application logs ``--lines`` DEBUG lines and, every 1,000, one
``log_event(Event("billing.charge", ...))`` and one ``log.error(...)``, while
its collector (a TCP listener on loopback) is down; then the collector comes
back and the pipeline flushes.  Memory mode runs with ``queue_size`` at a tenth
of the lines; spool mode with the default queue and ``spool_max_bytes`` 4 MiB,
and again with the same queue as memory mode and ``overload_policy="kept=spill"``.
Everything else is the library's defaults (only the retry backoff is short, so
the run does not wait 30 s for the collector to be tried again).  The table
says, per mode and class, how many were logged, arrived (each id once) and
were shed, by reason.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import eventlog
from eventlog.plugin.testing import LineReceiver

EVERY = 1_000


def run(mode: str, lines: int, queue_size: int, spool: Path) -> dict[str, object]:
    receiver = LineReceiver()
    receiver.stop()
    settings: dict[str, object] = {"retry_backoff_max": 0.2}
    if mode == "memory":
        settings["queue_size"] = queue_size
    else:
        settings.update(db=str(spool), spool_max_bytes=4 * 1024 * 1024)
    if mode == "spill":
        settings.update(queue_size=queue_size, overload_policy="kept=spill")
    pipeline = eventlog.configure(transport="tcp", host="127.0.0.1", port=receiver.port, **settings)
    logger = logging.getLogger(f"bench.overload.{mode}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    handler = eventlog.EventHandler()
    logger.addHandler(handler)
    started = time.perf_counter()
    for number in range(lines):
        logger.debug("cache miss %s", number)
        if number % EVERY == EVERY - 1:
            charge = eventlog.Event("billing.charge", f"invoice-{number // EVERY}", "invoice")
            charge.id = f"charge-{number // EVERY:05d}"
            eventlog.log_event(charge)
            logger.error("payment failed %s", number // EVERY)
    logged_in = time.perf_counter() - started
    receiver.restart()
    eventlog.flush(120)
    receiver.wait_for(pipeline.stats.sent, timeout=60)
    arrived: Counter[str] = Counter()
    ids: Counter[str] = Counter()
    summaries = 0
    for line in receiver.lines:
        event = json.loads(line)
        if "repeated" in (event.get("fields") or {}):
            summaries += 1  # a summary of collapsed repeats, not one of the lines
        else:
            arrived[event["action"]] += 1
        ids[event["id"]] += 1
    shed = dict(pipeline._overload.shed)
    eventlog.shutdown()
    logger.removeHandler(handler)
    receiver.stop()
    kept = lines // EVERY
    return {
        "mode": mode,
        "logged_s": logged_in,
        "rows": [
            ("billing.charge (kept)", kept, arrived["billing.charge"]),
            ("log.error (kept)", kept, arrived["log.error"]),
            ("log.debug (sheddable)", lines, arrived["log.debug"]),
        ],
        "duplicates": sum(n - 1 for n in ids.values() if n > 1),
        "summaries": summaries,
        "shed": shed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--queue-size", type=int, default=10_000)
    parser.add_argument("--quick", action="store_true", help="a tenth of the lines and of the queue")
    args = parser.parse_args()
    if args.quick:
        args.lines, args.queue_size = args.lines // 10, args.queue_size // 10
    with tempfile.TemporaryDirectory() as folder:
        results = [
            run("memory", args.lines, args.queue_size, Path(folder) / "memory.db"),
            run("spool", args.lines, args.queue_size, Path(folder) / "spool.db"),
            run("spill", args.lines, args.queue_size, Path(folder) / "spill.db"),
        ]
    print(
        f"{args.lines:,} lines; memory and spill (spool, kept=spill) modes' queue {args.queue_size:,}; "
        "the spools' 4 MiB"
    )
    print("| mode | class | logged | arrived | shed (by reason) |")
    print("|---|---|---:|---:|---|")
    for result in results:
        shed = result["shed"]
        assert isinstance(shed, dict)
        for name, logged, got in result["rows"]:  # type: ignore[attr-defined]
            klass = "sheddable" if "sheddable" in name else "kept"
            reasons = ", ".join(
                f"{reason} {count:,}" for (k, reason), count in sorted(shed.items()) if k == klass
            )
            print(f"| {result['mode']} | {name} | {logged:,} | {got:,} | {reasons or '0'} |")
        took = f"logged in {result['logged_s']:.2f} s; {result['summaries']} repeat summaries"
        print(f"| {result['mode']} | duplicates | | {result['duplicates']} | {took} |")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
