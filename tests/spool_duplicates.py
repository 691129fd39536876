"""Measure duplicates after ``kill -9`` with an acknowledging HTTP peer (issue 13, item 13).

``python -m tests.spool_duplicates [--rounds 10] [--kill random|received]
[--message BYTES]`` runs, round after round, a producer process
(``tests/spool_child.py``, http transport, spool mode) that logs a steady
stream, kills it with SIGKILL, and starts the next one on the same spool.  A
last process drains what is left.  The peer is
:class:`tests.peers.http_server.HttpPeer`, answering 200 to every POST.

``--kill random`` kills at a random moment of the stream; ``--kill received``
as soon as the peer has recorded a request, before or while it answers: the
batch is delivered but the producer cannot know yet, so at-least-once must send
it again (the floor no spool can go below).  Prints the events each kill made
the peer get twice, and which request they came from (-1: the one in flight).

``--window`` kills nothing: it measures, in one process, how long each
delivered batch stays in the spool after the peer has it, and the share of the
run spent so (the chance that a kill at a random moment resends a batch).
"""

from __future__ import annotations

import argparse
import bisect
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.peers.http_server import HttpPeer
from tests.test_spool import Child


def window(message: int, count: int) -> None:
    """In one process: how long each delivered batch stays in the spool after the peer has it.

    From the moment the peer records a request to the end of the spool's delete,
    a kill -9 makes the next run send that batch again; the share of the run
    spent in such windows is the chance that a kill at a random moment does.
    """
    import statistics

    import eventlog
    from eventlog import _spool as spool_module

    ended: list[float] = []
    started: list[float] = []
    remove = spool_module.SQLiteSpool.remove

    def timed_remove(self: spool_module.SQLiteSpool, records: Any) -> None:
        started.append(time.monotonic())
        remove(self, records)
        ended.append(time.monotonic())

    spool_module.SQLiteSpool.remove = timed_remove  # type: ignore[method-assign]
    with HttpPeer() as peer:
        eventlog.configure(
            transport="http",
            http_url=peer.url,
            db=tempfile.mkdtemp() + "/events.db",
            enrichers=(),
        )
        begin = time.monotonic()
        for number in range(count):
            eventlog.log_event(eventlog.Event("test.spool", "w", "test", message="x" * message))
            if number % 100 == 99:
                time.sleep(0.002)  # the pace of the kill rounds
        assert eventlog.flush(60)
        end = time.monotonic()
        eventlog.shutdown(5)
        arrived = [request.arrived for request in peer.requests]
    assert len(arrived) == len(ended)
    answer = [s - a for a, s in zip(arrived, started)]
    delete = [e - s for s, e in zip(started, ended)]
    share = sum(e - a for a, e in zip(arrived, ended)) / (end - begin)
    print(
        f"messages of {message} B, {count} events, {len(arrived)} requests: after the peer "
        f"has a batch, {statistics.median(answer) * 1e3:.2f} ms (median) until its answer is "
        f"read, then {statistics.median(delete) * 1e3:.2f} ms to delete the row; "
        f"{share:.1%} of the run is such a window"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--kill", choices=("random", "received"), default="random")
    parser.add_argument("--count", type=int, default=200_000, help="events a round may log")
    parser.add_argument("--message", type=int, default=0, help="message size of each event")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument(
        "--window",
        action="store_true",
        help="no kills: measure in one process how long delivered batches stay in the spool",
    )
    args = parser.parse_args()
    if args.window:
        window(args.message, min(args.count, 50_000))
        return
    rng = random.Random(args.seed)
    folder = Path(tempfile.mkdtemp(prefix="eventlog-dups-"))
    db = folder / "events.db"
    kills: list[int] = []  # requests the peer had received at each kill
    with HttpPeer() as peer:
        settings = {"http_url": peer.url}
        for number in range(args.rounds):
            child = Child(
                db=str(db),
                port=0,
                transport="http",
                prefix=f"r{number}",
                count=args.count,
                pace=0.002,
                message=args.message,
                after="sleep",
                settings=settings,
            )
            start = len(peer.requests)
            if args.kill == "random":
                peer.wait_requests(start + 3, timeout=30)
                time.sleep(rng.uniform(0.05, 0.5))
            else:
                # The peer records a request, then answers: the kill lands in between, or
                # while the answer travels.
                peer.wait_requests(start + 3 + rng.randrange(20), timeout=30)
            child.kill()
            kills.append(len(peer.requests))
            print(f"round {number + 1}: killed after {len(peer.requests) - start} requests", flush=True)
        last = Child(
            db=str(db),
            port=0,
            transport="http",
            prefix="last",
            count=0,
            after="flush",
            settings=settings,
        )
        assert last.wait_for("flushed")["flushed"] is True
        last.finish()
        requests = list(peer.requests)
    # Each copy after the first is credited to the kill that came after the copy before it:
    # the request in flight at the kill (offset -1) is what at-least-once allows; an older
    # one means delivered rows outlived their delivery.
    last_in: dict[str, int] = {}
    dups = [0] * len(kills)
    offsets: list[set[int]] = [set() for _ in kills]
    for index, request in enumerate(requests):
        if not 200 <= request.answer.status < 300:
            continue
        for event_id in request.ids():
            earlier = last_in.get(event_id)
            last_in[event_id] = index
            if earlier is None:
                continue
            k = bisect.bisect_right(kills, earlier)
            assert k < len(kills), f"{event_id} sent twice by one process"
            dups[k] += 1
            offsets[k].add(earlier - kills[k])
    print(
        f"kill mode {args.kill}, messages of {args.message} B: duplicates per kill {dups}; "
        f"{sum(1 for d in dups if d)} of {len(kills)} kills caused duplicates, "
        f"{sum(dups)} in all, from requests {sorted(set().union(*offsets))} relative to the "
        f"kill; {len(last_in)} distinct events, "
        f"{sum(len(r.ids()) for r in requests) / max(1, len(requests)):.0f} per request"
    )
    sys.exit(0)


if __name__ == "__main__":
    main()
