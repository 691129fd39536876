"""End-to-end events per second into a real ClickHouse: log_event -> capnp -> http -> MergeTree.

    python benchmarks/clickhouse_capnp.py [--events 50000] [--batch 2000] [--gzip]

Starts Debian's clickhouse-server on loopback ports in a temporary folder (the
tests' fixture class), creates the table with the shipped DDL, logs the varied
events of ``tests/varied.py`` through the ``http`` transport with format
``capnp``, and reports events per second from the first ``log_event`` until
``flush()`` returned and ClickHouse counts every row.  The server is stopped
afterwards.  Needs eventlog-http and eventlog-capnp installed.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.peers.clickhouse import ClickHouse
from tests.varied import varied_events

import eventlog
from eventlog_capnp.clickhouse import insert_url, render_ddl
from eventlog_capnp.schema import SCHEMA_FILE, shipped_schema


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--gzip", action="store_true", help="gzip the HTTP bodies")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="eventlog-bench-clickhouse-"))
    server = ClickHouse(root)
    server.start()
    try:
        (server.format_schema_dir / SCHEMA_FILE).write_text(shipped_schema(), encoding="utf-8")
        server.query(render_ddl("bench"))
        events = list(varied_events(args.events))
        pipeline = eventlog.configure(
            transport="http",
            format="capnp",
            http_url=insert_url(server.url, "bench"),
            http_gzip=args.gzip,
            enrichers="",
            batch_size=args.batch,
            queue_size=max(100_000, args.events),
        )
        start = time.perf_counter()
        for event in events:
            eventlog.log_event(event)
        flushed = pipeline.flush(300)
        elapsed = time.perf_counter() - start
        eventlog.shutdown(5)
        rows = int(server.query("SELECT count() FROM bench"))
        print(
            f"{rows} of {args.events} events in ClickHouse (flushed: {flushed}), "
            f"batch {args.batch}, gzip {args.gzip}: {elapsed:.2f} s, "
            f"{args.events / elapsed:,.0f} events/s end to end"
        )
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
