"""The spool's cost per batch on the worker: ``add``, ``pending``, ``remove`` (issue 13, item 13).

``python -m tests.spool_cost [--events 2000] [--size 300] [--batches 60]`` stores,
takes and deletes batches as the worker does in spool mode and prints the
median milliseconds of each step.  ``remove`` runs between the peer's
acknowledgement and the row's delete: while it runs, a ``kill -9`` makes the
next run send the batch again.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from eventlog._records.batch import Record
from eventlog._spool import SQLiteSpool


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=2000, help="events per batch")
    parser.add_argument("--size", type=int, default=300, help="bytes per event")
    parser.add_argument("--batches", type=int, default=60)
    args = parser.parse_args()
    spool = SQLiteSpool(tempfile.mkdtemp() + "/events.db", "json", row_events=args.events)
    steps: dict[str, list[float]] = {"add": [], "pending": [], "remove": []}
    number = 0
    for _ in range(args.batches):
        records = [
            Record(f"e{number + i}", "a", 0, b"x" * (args.size - 1) + b"\n") for i in range(args.events)
        ]
        number += args.events
        started = time.perf_counter()
        spool.add(records)
        added = time.perf_counter()
        batch = spool.pending(args.events)
        taken = time.perf_counter()
        spool.remove(batch)
        removed = time.perf_counter()
        steps["add"].append(added - started)
        steps["pending"].append(taken - added)
        steps["remove"].append(removed - taken)
    spool.close()
    print(
        f"{args.events} events of {args.size} B per batch, median of {args.batches}: "
        + ", ".join(f"{name} {statistics.median(times) * 1e3:.2f} ms" for name, times in steps.items())
    )


if __name__ == "__main__":
    main()
