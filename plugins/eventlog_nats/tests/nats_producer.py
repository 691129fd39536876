"""A producer process for the NATS cluster test: numbered events through a spooled ``nats`` pipeline.

Run as ``python tests/nats_producer.py '<json options>'`` with ``servers``,
``db``, ``stream``, ``subject``, ``start``, ``count`` and ``chunk``.  It logs
events ``start`` .. ``count - 1`` (field ``n``) in chunks; after each chunk's
``flush()`` it appends one JSON line to ``progress`` (unbuffered, so a kill -9
loses no written line): the chunk's event ids, the last ``n`` flushed, and the
transport's ack counters.  The test follows that file and kills this process
where it wants.
"""

from __future__ import annotations

import json
import os
import sys

import eventlog
from eventlog import Event
from eventlog_nats.transport import counts


def main(options: dict[str, object]) -> None:
    pipeline = eventlog.configure(
        transport="nats",
        nats_servers=options["servers"],
        nats_subject=options["subject"],
        nats_stream=options["stream"],
        nats_ack_timeout=2,
        nats_connect_timeout=1,
        db=options["db"],
        enrichers=(),
        counter_interval=0,
        batch_size=500,
        linger_ms=5,
        retry_backoff_max=0.5,
        shutdown_timeout=30,
        name=f"producer-{os.getpid()}",
    )
    start, count, chunk = int(str(options["start"])), int(str(options["count"])), int(str(options["chunk"]))
    progress = os.open(str(options["progress"]), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    for first in range(start, count, chunk):
        numbers = range(first, min(first + chunk, count))
        events = [Event("fault.test", "t", "test", fields={"n": n}) for n in numbers]
        for event in events:
            pipeline.submit_event(event)
        if not pipeline.flush(120):
            print("flush did not finish", file=sys.stderr)
            os._exit(3)
        line = {
            "pid": os.getpid(),
            "flushed": events[-1].fields["n"],
            "ids": [event.id for event in events],
            "acked": counts.acked,
            "duplicates": counts.duplicates,
            "retries": pipeline.stats.retries,
        }
        os.write(progress, (json.dumps(line) + "\n").encode())
    assert pipeline.shutdown(30)
    os.write(
        progress,
        (
            json.dumps(
                {
                    "pid": os.getpid(),
                    "done": True,
                    "acked": counts.acked,
                    "duplicates": counts.duplicates,
                    "retries": pipeline.stats.retries,
                    "sent": pipeline.stats.sent,
                }
            )
            + "\n"
        ).encode(),
    )
    os.close(progress)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
