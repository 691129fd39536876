"""Spool mode delivery across real processes: outages, listener restarts, kill -9, sharing, fork.

Every producer here is a real process (``tests/spool_child.py``) and every
listener a real one (:class:`eventlog._builtin.receiver.LineReceiver`, or
``tests/spool_listener.py`` when it must be killed).  Events carry the ids
``<prefix>-<number>``, and every assertion counts them by id.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import eventlog
from eventlog._builtin.receiver import LineReceiver
from tests.peers import free_port
from tests.spool_support import EventlogWarnings, capture_warnings

HERE = Path(__file__).parent
CHILD = HERE / "spool_child.py"
LISTENER = HERE / "spool_listener.py"


@pytest.fixture
def eventlog_warnings() -> Iterator[EventlogWarnings]:
    yield from capture_warnings()


pytestmark = pytest.mark.timeout(120)


# ---------------------------------------------------------------- helpers


class Child:
    """A producer process and the JSON lines it prints."""

    def __init__(self, **opts: Any) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(CHILD), json.dumps(opts)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=HERE.parent,
        )
        self.said: list[dict[str, Any]] = []
        self._selector = selectors.DefaultSelector()
        assert self.proc.stdout is not None
        self._selector.register(self.proc.stdout, selectors.EVENT_READ)

    def wait_for(self, key: str, timeout: float = 60, value: Any = None) -> dict[str, Any]:
        """The first printed line with ``key`` (equal to ``value`` if given)."""

        def matches(line: dict[str, Any]) -> bool:
            return key in line and (value is None or line[key] == value)

        for line in self.said:
            if matches(line):
                return line
        deadline = time.monotonic() + timeout
        assert self.proc.stdout is not None
        while time.monotonic() < deadline:
            if not self._selector.select(timeout=0.2):
                continue
            raw = self.proc.stdout.readline()
            if not raw:
                break
            line = json.loads(raw)
            self.said.append(line)
            if matches(line):
                return line
        stderr = self.proc.stderr.read().decode() if self.proc.poll() is not None else ""
        raise AssertionError(f"the child never said {key!r}; said {self.said}; stderr: {stderr}")

    def finish(self, timeout: float = 60) -> dict[str, Any]:
        """Wait for the exit (status 0) and return the stats it printed before shutdown."""
        stats = self.wait_for("stats", timeout)
        assert self.proc.wait(timeout) == 0, self.proc.stderr.read().decode()  # type: ignore[union-attr]
        return stats["stats"]  # type: ignore[no-any-return]

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


class Listener:
    """``tests/spool_listener.py``: acknowledges each batch once written to its file."""

    def __init__(self, port: int, path: Path) -> None:
        self.port, self.path = port, path
        self.proc = subprocess.Popen(
            [sys.executable, str(LISTENER), str(port), str(path)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "ready"

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)


def ids_in_file(path: Path) -> list[str]:
    """Ids the acknowledging listener kept.  A line a killed listener cut short is skipped:
    its batch was never acknowledged, so it is sent again."""
    found = []
    for line in path.read_bytes().splitlines() if path.exists() else []:
        try:
            found.append(json.loads(line)["id"])
        except ValueError:
            continue
    return found


def ids(receiver: LineReceiver) -> list[str]:
    return [event["id"] for event in receiver.events()]


def spooled_ids(db: Path) -> list[str]:
    """Ids of the events waiting in the spool file, oldest first."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT records FROM batches ORDER BY seq").fetchall()
    return [record[0] for (index,) in rows for record in json.loads(index)]


def settle(receiver: LineReceiver) -> None:
    """Wait until the listener has read everything on the wire (no new line for 0.5 s)."""
    count = -1
    while count != len(receiver.lines):
        count = len(receiver.lines)
        time.sleep(0.5)


def expected(prefix: str, count: int, start: int = 0) -> set[str]:
    return {f"{prefix}-{n:08d}" for n in range(start, start + count)}


def wait_until(check: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {check}"
        time.sleep(0.05)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "spool" / "events.db"  # the folder does not exist yet: the spool makes it


# ---------------------------------------------------------------- outages


def test_listener_down_at_start_then_up_gets_every_event(db: Path) -> None:
    port = free_port()
    child = Child(db=str(db), port=port, prefix="down", count=3000, after="flush")
    child.wait_for("logged")
    assert db.exists() and (db.stat().st_mode & 0o777) == 0o600
    assert (db.parent.stat().st_mode & 0o777) == 0o700
    with LineReceiver(port=port) as receiver:
        assert child.wait_for("flushed")["flushed"] is True
        stats = child.finish()
        receiver.wait_for(3000)
        got = ids(receiver)
    assert Counter(got).most_common(1)[0][1] == 1
    assert set(got) == expected("down", 3000)
    assert stats["sent"] == 3000 and stats["dropped"] == {} and stats["fallback"] == {}
    assert spooled_ids(db) == []


def test_listener_killed_and_restarted_five_times_loses_no_spooled_event(db: Path, tmp_path: Path) -> None:
    total = 100_000
    port = free_port()
    out = tmp_path / "received.jsonl"
    listener = Listener(port, out)
    child = Child(
        db=str(db),
        port=port,
        transport="acked",
        prefix="restart",
        count=total,
        after="flush",
        settings={"queue_size": total},
    )
    restarts = 0
    try:
        for restarts in range(1, 6):
            # Kill once the listener has kept a sixth more of the stream, then bring it back.
            goal = total * restarts // 6
            wait_until(lambda goal=goal: out.exists() and out.read_bytes().count(b"\n") >= goal)
            listener.kill()
            time.sleep(0.3)  # an outage, long enough for send retries
            listener = Listener(port, out)
        assert child.wait_for("flushed", 90)["flushed"] is True
        stats = child.finish()
    finally:
        listener.kill()
    got = ids_in_file(out)
    duplicates = len(got) - len(set(got))
    print(f"\n5 listener restarts, {total} events: {duplicates} delivered twice (same id), 0 lost")
    assert restarts == 5
    assert set(got) == expected("restart", total)
    assert stats["dropped"] == {}
    assert spooled_ids(db) == []


# ---------------------------------------------------------------- crashes


def test_kill_9_loses_only_what_was_in_memory_and_nothing_after_flush(db: Path) -> None:
    first, rest = 5000, 15000
    first_listener = LineReceiver()
    port = first_listener.port
    child = Child(
        db=str(db),
        port=port,
        prefix="kill",
        count=first + rest,
        flush_at=first,
        after="sleep",
        pace=0.005,  # about 20,000 events/s, steady
    )
    assert child.wait_for("flushed")["flushed"] is True
    first_listener.wait_for(first)
    flushed_ids = set(ids(first_listener))  # delivered when flush() returned
    first_listener.stop()  # the listener goes away: the stream goes on into the spool
    child.wait_for("logged", value=first + rest)
    child.kill()
    delivered = set(ids(first_listener))
    in_spool = set(spooled_ids(db))
    reached = delivered | in_spool  # delivered, or durable in the spool, at the kill

    with LineReceiver(port=port) as second_listener:
        restarted = Child(db=str(db), port=port, prefix="kill", count=0, after="flush")
        assert restarted.wait_for("flushed")["flushed"] is True
        restarted.finish()
        settle(second_listener)
        after_restart = set(ids(second_listener))
    got = delivered | after_restart
    lost = expected("kill", first + rest) - got
    print(
        f"\nkill -9 in a steady stream of {rest} events after flush(): "
        f"{len(delivered) - first} delivered and {len(in_spool)} in the spool at the kill, "
        f"{len(lost)} lost (still in memory)"
    )
    assert flushed_ids >= expected("kill", first)  # flush() returned: zero lost
    assert in_spool and in_spool <= after_restart  # everything that reached the spool arrived
    assert lost == expected("kill", first + rest) - reached
    assert lost <= expected("kill", rest, start=first)  # only events logged after flush()
    assert spooled_ids(db) == []


class CheckingListener:
    """Acknowledges batches (the ``acked`` protocol) in a thread of the test.  Until the
    ``kill_after``-th, each batch after the first makes it look in the spool file for the
    events it acknowledged before: they must be gone, deleted before the next send
    (issue 13, item 13)."""

    def __init__(self, db: Path, kill_after: int) -> None:
        self.db, self.kill_after = db, kill_after
        self.batches: list[list[str]] = []  # acknowledged, in order
        self.still_spooled: list[str] = []  # acknowledged ids found in the spool later
        self.acked_enough = threading.Event()
        self.connections_done = 0
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            # The killed producer's connection ends in a reset, or in a line cut short.
            with conn, contextlib.suppress(OSError, ValueError):
                self._read(conn)
            self.connections_done += 1

    def _read(self, conn: socket.socket) -> None:
        batch: list[str] = []
        for line in conn.makefile("rb"):
            if line != b"\n":
                batch.append(json.loads(line)["id"])
                continue
            if len(self.batches) < self.kill_after:  # after the kill, one may be: in flight
                acked = {i for earlier in self.batches for i in earlier}
                self.still_spooled += [i for i in spooled_ids(self.db) if i in acked]
            self.batches.append(batch)
            batch = []
            conn.sendall(b"ok\n")
            if len(self.batches) == self.kill_after:
                self.acked_enough.set()

    def close(self) -> None:
        self.server.close()


def test_kill_9_right_after_an_ack_resends_at_most_the_batch_in_flight(db: Path) -> None:
    listener = CheckingListener(db, kill_after=5)
    try:
        child = Child(
            db=str(db),
            port=listener.port,
            transport="acked",
            prefix="ack",
            count=50_000,
            after="sleep",
            pace=0.002,
        )
        assert listener.acked_enough.wait(60)
        child.kill()  # the worst moment: the peer has the batch, its row may be in the file
        wait_until(lambda: listener.connections_done == 1)  # all it sent is read
        in_flight = set(listener.batches[-1])  # answered last: it may not have been read
        before = len(listener.batches)
        restarted = Child(
            db=str(db),
            port=listener.port,
            transport="acked",
            prefix="ack",
            count=0,
            after="flush",
        )
        assert restarted.wait_for("flushed")["flushed"] is True
        restarted.finish()
    finally:
        listener.close()
    got = Counter(i for batch in listener.batches for i in batch)
    again = {i for i, n in got.items() if n > 1}
    print(
        f"\nkill -9 right after the ack of batch {before}: {len(again)} events sent again "
        f"(the batch in flight had {len(in_flight)})"
    )
    assert listener.still_spooled == []  # delivered rows were gone before the next send
    assert again <= in_flight  # at most the batch whose ack the killed process had not read
    assert max(got.values()) <= 2
    assert spooled_ids(db) == []


def test_listener_that_never_reads_never_blocks_the_caller(db: Path) -> None:
    server = __import__("socket").create_server(("127.0.0.1", 0))
    held: list[Any] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])  # accepted, and never read
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    total = 40_000
    try:
        child = Child(
            db=str(db),
            port=server.getsockname()[1],
            prefix="stuck",
            count=total,
            message=2000,
            after="shutdown",
            shutdown_timeout=1.0,
            settings={"queue_size": 2000, "tcp_send_timeout": 0.5},
        )
        started = time.monotonic()
        stats = child.finish(timeout=60)
        took = time.monotonic() - started
        final = child.wait_for("final")["final"]
    finally:
        stop.set()
        thread.join(2)
        for conn in held:
            conn.close()
        server.close()
    waiting = len(spooled_ids(db))
    print(
        f"\nnever-reading listener: {total} events logged and exit in {took:.1f}s; "
        f"max RSS {stats['maxrss_kb'] // 1024} MiB; {waiting} waiting in the spool; {final}"
    )
    assert stats["queue"] <= 2000
    # Unbounded, 40,000 events of 2 kB would hold 80 MB of payloads plus their records (about
    # 1 kB each) on top of the interpreter (22 MB): over 140 MB.  Bounded, the peak is 65-90 MB:
    # the queue (2,000), one spool move, and the spool's last 10 rows kept for the send (up to
    # 20,000 payloads), more when the worker got a batch into the socket before it stalled.
    assert stats["maxrss_kb"] < 110 * 1024
    # Accepted = sent + dropped + waiting, exactly, even when the exit deadline caught the
    # worker inside a blocked send (shutdown counts the batch in flight and the queue).
    accounted = final["sent"] + sum(final["dropped"].values()) + waiting
    assert accounted == total


# ---------------------------------------------------------------- many processes


@pytest.mark.parametrize("processes", [2, 4])
def test_processes_sharing_one_spool_neither_lose_nor_double_send(db: Path, processes: int) -> None:
    port = free_port()
    # A process that spooled its events while the listener was down, then died.
    victim = Child(db=str(db), port=port, prefix="dead", count=2000, after="sleep")
    victim.wait_for("logged")
    wait_until(lambda: db.exists() and len(spooled_ids(db)) == 2000)
    victim.kill()
    per_process = 3000
    with LineReceiver(port=port) as receiver:
        children = [
            Child(db=str(db), port=port, prefix=f"p{i}", count=per_process, after="flush")
            for i in range(processes)
        ]
        for child in children:
            assert child.wait_for("flushed")["flushed"] is True
            child.finish()
        wait_until(lambda: len(spooled_ids(db)) == 0)
        receiver.wait_for(2000 + processes * per_process)
        got = ids(receiver)
    want = expected("dead", 2000).union(*(expected(f"p{i}", per_process) for i in range(processes)))
    assert [i for i, n in Counter(got).items() if n > 1] == []  # nothing sent twice
    assert set(got) == want  # the dead process's events were sent by a live one


def test_forked_children_share_the_spool(db: Path, receiver: LineReceiver) -> None:
    import multiprocessing

    eventlog.configure(transport="tcp", host="127.0.0.1", port=receiver.port, db=str(db), enrichers=())

    def log_some(prefix: str) -> None:
        for number in range(1000):
            event = eventlog.Event("test.fork", prefix, "test")
            event.id = f"{prefix}-{number:08d}"
            eventlog.log_event(event)

    def child(prefix: str) -> None:
        log_some(prefix)  # the child's own queue and worker, the same spool file
        assert eventlog.shutdown(10)

    log_some("parent-a")  # still queued or spooled in the parent when the children fork
    context = multiprocessing.get_context("fork")
    kids = [context.Process(target=child, args=(f"kid{i}",)) for i in range(3)]
    for kid in kids:
        kid.start()
    log_some("parent-b")
    for kid in kids:
        kid.join(30)
        assert kid.exitcode == 0
    assert eventlog.shutdown(10)
    receiver.wait_for(5000)
    got = ids(receiver)
    assert sorted(Counter(got).values())[-1] == 1
    assert set(got) == expected("parent-a", 1000).union(
        expected("parent-b", 1000), *(expected(f"kid{i}", 1000) for i in range(3))
    )


# ---------------------------------------------------------------- restarts with other settings


def test_restart_with_another_format_keeps_and_reports_then_replay_sends(
    db: Path, receiver: LineReceiver, eventlog_warnings: EventlogWarnings
) -> None:
    port = free_port()
    child = Child(db=str(db), port=port, prefix="fmt", count=500, after="shutdown", shutdown_timeout=0.3)
    child.finish()
    assert len(spooled_ids(db)) == 500

    pipeline = eventlog.configure(
        transport="tcp",
        host="127.0.0.1",
        port=receiver.port,
        db=str(db),
        format="logstash",
        enrichers=(),
    )
    event = eventlog.Event("test.fmt", "new", "test")
    event.id = "new-1"
    eventlog.log_event(event)
    assert eventlog.flush(10)
    eventlog.shutdown(5)
    assert eventlog_warnings.count("500 events formatted as 'json'") == 1
    assert eventlog_warnings.count("replay --db") == 1
    receiver.wait_for(1)
    assert ids(receiver) == ["new-1"]  # the json rows were not sent as logstash
    assert len(spooled_ids(db)) == 500
    assert pipeline.stats.sent == 1

    env = {
        **os.environ,
        "EVENTLOG_TRANSPORT": "tcp",
        "EVENTLOG_HOST": "127.0.0.1",
        "EVENTLOG_PORT": str(receiver.port),
        "EVENTLOG_FORMAT": "logstash",
    }
    info = subprocess.run(
        [sys.executable, "-m", "eventlog", "spool", "info", "--db", str(db)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert info.returncode == 0, info.stderr
    assert "events   500 (json: 500)" in info.stdout
    replay = subprocess.run(
        [
            sys.executable,
            "-m",
            "eventlog",
            "spool",
            "replay",
            "--db",
            str(db),
            "--format",
            "json",
            "--to",
            "environment",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert replay.returncode == 0, replay.stderr
    assert "sent 500 events to tcp as json (the environment's peer)\n0 left in the spool" in replay.stdout
    receiver.wait_for(501)
    replayed = [e for e in receiver.events() if e["id"] != "new-1"]
    assert {e["id"] for e in replayed} == expected("fmt", 500)
    assert all("@timestamp" not in e for e in replayed)  # json as spooled, not re-labelled


def test_purge_drops_what_is_waiting(db: Path) -> None:
    Child(
        db=str(db), port=free_port(), prefix="purge", count=300, after="shutdown", shutdown_timeout=0.2
    ).finish()
    run = [sys.executable, "-m", "eventlog", "spool"]
    older = subprocess.run(
        [*run, "purge", "--db", str(db), "--older-than", "3600"], capture_output=True, text=True, timeout=60
    )
    assert older.stdout.strip() == f"dropped 0 events from {db}"
    purge = subprocess.run([*run, "purge", "--db", str(db)], capture_output=True, text=True, timeout=60)
    assert purge.returncode == 0, purge.stderr
    assert purge.stdout.strip() == f"dropped 300 events from {db}"
    assert spooled_ids(db) == []
