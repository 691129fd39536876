"""What happens to the spool from outside: another process holds its lock, the file is
deleted or moved away while in use, the file system turns read-only.

Real files, a real second process holding SQLite's write lock, real TCP
listeners; waits are bounded loops, never timing assertions.
"""

from __future__ import annotations

import contextlib
import json
import os
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
import eventlog._spool.database as database_module
import eventlog._spool.sqlite as spool_module
from eventlog._builtin.receiver import LineReceiver
from eventlog._engine import prometheus
from eventlog._spool.protocol import SpoolUnavailable
from tests.peers import free_port
from tests.spool_support import EventlogWarnings, capture_warnings, log_with_ids, wait_until

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def eventlog_warnings() -> Iterator[EventlogWarnings]:
    yield from capture_warnings()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "spool" / "events.db"


def _configure(port: int, db: Path, **settings: object) -> eventlog.Pipeline:
    return eventlog.configure(
        transport="tcp",
        host="127.0.0.1",
        port=port,
        db=str(db),
        enrichers=(),
        retry_backoff_max=0.2,
        batch_size=100,
        **settings,
    )


def _log(prefix: str, count: int) -> list[str]:
    return log_with_ids("test.outside", prefix, count)


def _ids_in_spool(db: Path) -> list[str]:
    """Ids waiting in the file now at ``db`` (none while there is no file or table)."""
    if not db.exists():
        return []
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        try:
            rows = conn.execute("SELECT records FROM batches ORDER BY seq").fetchall()
        except sqlite3.OperationalError:
            return []
    return [entry[0] for (index,) in rows for entry in json.loads(index)]


def _wait(check: Any, timeout: float = 30) -> None:
    wait_until(check, timeout)


# ---------------------------------------------------------------- another process holds the lock

_HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


def _in_thread(work: Any, timeout: float = 20) -> dict[str, Any]:
    """Run ``work`` in a thread; what it returned, if it did within ``timeout`` (a bound, not a measure)."""
    result: dict[str, Any] = {}

    def run() -> None:
        result["value"] = work()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    return result


def _fork_and_reap() -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(7)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_another_process_holding_the_write_lock_blocks_neither_fork_nor_a_scrape(
    db: Path, receiver: LineReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As long a busy timeout as the holder may hold the lock: before, a fork (and a scrape)
    # waited for the worker's busy wait to end; now neither waits on it at all.
    monkeypatch.setattr(database_module, "BUSY_TIMEOUT_MS", 3_600_000)
    monkeypatch.setattr(spool_module, "BUSY_TIMEOUT_MS", 3_600_000, raising=False)
    pipeline = _configure(receiver.port, db)
    first = _log("first", 10)
    assert eventlog.flush(10)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        blocked = _log("blocked", 100)  # the worker now waits for the holder to store them
        _wait(lambda: pipeline.stats.taken == 110)
        time.sleep(0.3)  # well inside its busy wait
        forked = _in_thread(_fork_and_reap)
        scraped = _in_thread(prometheus.render)
        depth = _in_thread(pipeline.spool_depth)
        assert holder.poll() is None  # all of that while the other process holds the lock
    finally:
        if holder.stdin is not None:
            holder.stdin.write("release\n")
            holder.stdin.flush()
        holder.wait(30)
    assert forked == {"value": 7}
    assert 'eventlog_spool_depth{pipeline="default"}' in scraped["value"]
    assert "value" in depth
    assert eventlog.flush(30)
    receiver.wait_for(110)
    assert Counter(e["id"] for e in receiver.events()) == Counter(first + blocked)
    assert pipeline.stats.spool_fallback == {}  # waited for the lock, stored, then sent


# ---------------------------------------------------------------- the file deleted or moved


@pytest.mark.parametrize("how", ["rm", "rm-all", "mv"])
def test_a_spool_file_deleted_or_moved_in_use_is_noticed_and_started_afresh_with_its_rows(
    db: Path, how: str, eventlog_warnings: EventlogWarnings
) -> None:
    port = free_port()  # nobody listens yet: everything waits in the spool
    pipeline = _configure(port, db)
    first = _log("first", 500)
    _wait(lambda: len(_ids_in_spool(db)) == 500)
    if how == "mv":
        os.rename(db, db.with_name("moved.db"))
        reason = "moved"
    else:
        os.unlink(db)  # what rm, or a tmp cleaner, does
        if how == "rm-all":
            for suffix in ("-wal", "-shm"):
                Path(f"{db}{suffix}").unlink(missing_ok=True)
        reason = "deleted"
    second = _log("second", 300)
    # Durable again: what a kill -9 would leave is in the file at the path, every event.
    _wait(lambda: sorted(_ids_in_spool(db)) == sorted(first + second))
    assert pipeline.stats.spool_reopened == {reason: 1}
    assert eventlog_warnings.count(f"the spool file {db} was") == 1
    assert eventlog_warnings.count("the 500 events this process had waiting") == 1
    if how == "mv":
        assert _ids_in_spool(db.with_name("moved.db")) == []  # carried over, not left to send twice

    with LineReceiver(port=port) as receiver:
        assert eventlog.flush(20)
        receiver.wait_for(800)
        got = [e["id"] for e in receiver.events()]
    assert Counter(got) == Counter(first + second)
    assert _ids_in_spool(db) == []
    assert pipeline.stats.dropped_by_reason() == {}


def test_a_spool_file_deleted_in_a_quiet_outage_is_noticed_without_a_new_event(
    db: Path, eventlog_warnings: EventlogWarnings
) -> None:
    port = free_port()
    pipeline = _configure(port, db)
    first = _log("first", 300)
    _wait(lambda: len(_ids_in_spool(db)) == 300)
    os.unlink(db)
    # Nothing more is logged: the worker only retries the batch in hand.
    _wait(lambda: sorted(_ids_in_spool(db)) == first)
    # Counted once the fresh file holds them (a moment after its rows show): waited for too.
    _wait(lambda: pipeline.stats.spool_reopened == {"deleted": 1})
    assert eventlog_warnings.count(f"the spool file {db} was deleted") == 1


def test_a_deleted_spool_file_carries_the_rows_nobody_owns_too(db: Path) -> None:
    """Rows released by a replaced pipeline, of a dead process or of another format move too."""
    from eventlog._records.batch import Record

    def records(prefix: str, count: int) -> list[Record]:
        return [Record(f"{prefix}-{n}", "test.free", 0, b"{}\n") for n in range(count)]

    released = spool_module.SQLiteSpool(str(db), "json")  # configure() replaced its pipeline
    released.add(records("released", 5))
    released.close()
    dead = spool_module.SQLiteSpool(str(db), "json")  # a process that died
    dead.add(records("dead", 3))
    other = spool_module.SQLiteSpool(str(db), "msgpack")  # a format this spool does not send
    other.add(records("other", 2))
    other.close()
    live = spool_module.SQLiteSpool(str(db), "json")
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("UPDATE batches SET owner = '999999999:1:1' WHERE owner = ?", (dead._owner,))
        conn.commit()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)

    live.add(records("live", 1))  # notices the deletion and starts the fresh file

    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT format, owner, records FROM batches ORDER BY seq").fetchall()
    carried = [(fmt, owner == live._owner, [e[0] for e in json.loads(index)]) for fmt, owner, index in rows]
    assert carried == [
        ("json", True, [f"released-{n}" for n in range(5)]),
        ("json", True, [f"dead-{n}" for n in range(3)]),
        ("msgpack", False, ["other-0", "other-1"]),  # still free, for a pipeline of its format
        ("json", True, ["live-0"]),
    ]
    assert live.depth() == 11
    want = [f"released-{n}" for n in range(5)] + [f"dead-{n}" for n in range(3)] + ["live-0"]
    assert [r.id for r in live.pending(100)] == want
    live.close()
    dead.close()


def test_a_deleted_spool_file_carries_the_free_rows_while_another_process_writes_to_it(db: Path) -> None:
    """The free rows of a deleted file are carried even when another process holds its write lock.

    The 30-minute fault run of 7 Dec: a forked child wrote to the file as the parent noticed
    its deletion; claiming the free rows failed as busy and was given up, so only the
    parent's own rows were carried, and a replaced pipeline's 82 events stayed behind in
    the deleted file, counted nowhere.  A busy file is tried again, as for any statement.
    """
    from eventlog._records.batch import Record

    def records(prefix: str, count: int) -> list[Record]:
        return [Record(f"{prefix}-{n}", "test.free", 0, b"{}\n") for n in range(count)]

    released = spool_module.SQLiteSpool(str(db), "json")  # configure() replaced its pipeline
    released.add(records("released", 4))
    released.close()
    live = spool_module.SQLiteSpool(str(db), "json")
    live.add(records("live", 1))
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        # The holder lets go while the spool notices the deletion and waits on the lock.
        threading.Timer(1.0, lambda: holder.communicate("\n", timeout=10)).start()
        live.add(records("after", 1))
    finally:
        with contextlib.suppress(Exception):
            holder.kill()
        holder.wait(10)

    assert _ids_in_spool(db) == [f"released-{n}" for n in range(4)] + ["live-0", "after-0"]
    assert live.depth() == 6
    live.close()


def test_a_spool_closed_just_after_its_deleted_file_could_not_be_replaced_carries_its_rows(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Closing a spool whose file is gone carries its rows even within the retry wait.

    The 30-minute fault runs of 7 Dec: a pipeline configure() replaced noticed its file
    deleted, but the fresh file could not be made at that moment (the path was gone again),
    so the spool waited RETRY_SECONDS before trying again.  Its shutdown came within that
    wait: the release found the file gone, could not open the path "yet", and the close
    then dropped the only connection to the deleted file with the rows in it, counted
    nowhere (2 and 82 events).  A carry is always tried at once.
    """
    from eventlog._records.batch import Record

    monkeypatch.setattr(spool_module, "RETRY_SECONDS", 60.0)  # a retry far off: no race with the clock
    spool = spool_module.SQLiteSpool(str(db), "json")
    spool.add([Record(f"kept-{n}", "test.carry", 0, b"{}\n") for n in range(5)])
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    db.mkdir()  # no file can be made at the path now
    with pytest.raises(SpoolUnavailable):
        spool.add([Record("refused-0", "test.carry", 0, b"{}\n")])
    db.rmdir()  # and now it can, before the retry is due

    spool.close()

    assert _ids_in_spool(db) == [f"kept-{n}" for n in range(5)]


def test_rows_carried_out_of_a_moved_file_leave_it_while_another_process_writes_to_it(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Carried rows are removed from the moved file even if another process holds its lock then.

    Given up at once as busy, they stayed in both files: counted twice, and sent twice if the
    moved file were replayed (the 30-minute fault run of 7 Dec: 2 events in two files).  The
    other process takes the moved file's lock while the spool opens the fresh one (the hook
    only chooses that moment; the lock is a real process's).
    """
    from eventlog._records.batch import Record

    moved = db.with_name("moved.db")
    live = spool_module.SQLiteSpool(str(db), "json")
    live.add([Record(f"mine-{n}", "test.free", 0, b"{}\n") for n in range(3)])
    holders: list[subprocess.Popen[str]] = []
    real_open = spool_module.open_database

    def open_while_another_process_locks_the_old_file(*args: Any) -> Any:
        if not holders:
            holder = subprocess.Popen(
                [sys.executable, "-c", _HOLDER, str(moved)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            holders.append(holder)
            assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
            threading.Timer(0.3, lambda: holder.communicate("\n", timeout=10)).start()
        return real_open(*args)

    monkeypatch.setattr(spool_module, "open_database", open_while_another_process_locks_the_old_file)
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{db}{suffix}").exists():
            os.rename(f"{db}{suffix}", f"{moved}{suffix}")
    try:
        live.add([Record("after-0", "test.free", 0, b"{}\n")])
    finally:
        for holder in holders:
            with contextlib.suppress(Exception):
                holder.kill()
            holder.wait(10)

    assert len(holders) == 1
    assert _ids_in_spool(db) == ["mine-0", "mine-1", "mine-2", "after-0"]
    assert _ids_in_spool(moved) == []  # carried, not left behind as well
    live.close()


# ---------------------------------------------------------------- what waits shows in a depth


def test_with_the_spool_read_only_and_the_peer_down_the_depths_show_every_waiting_event(
    tmp_path: Path,
) -> None:
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700,ro", "tmpfs", str(mnt)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip("mounting a tmpfs is not permitted here")
    try:
        pipeline = _configure(free_port(), mnt / "events.db")
        _log("waiting", 2000)
        # The worker holds what it took (the spool refused it) and retries the peer; the
        # rest stays queued: wherever they wait, the two depths count each event once.
        _wait(lambda: pipeline.stats.spool_fallback.get("read_only", 0) > 0)
        time.sleep(0.5)
        assert pipeline.stats.taken > 0
        assert pipeline.queue_depth() + pipeline.spool_depth() == 2000
        assert pipeline.stats.sent == 0 and pipeline.stats.dropped_by_reason() == {}
        text = prometheus.render()
        queued = pipeline.queue_depth()
        assert f'eventlog_spool_depth{{pipeline="default"}} {2000 - queued}.0' in text
        eventlog.shutdown(0.2)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


# ---------------------------------------------------------------- a forked child and the parent's connection


def test_a_forked_childs_rows_survive_the_parent_closing_the_spool(db: Path) -> None:
    # A pre-fork server: the parent logged, forked a worker, then shut its pipeline down (or
    # exited) while the child goes on logging.  The child used to keep the parent's SQLite
    # connection open (unclosed) beside its own: SQLite keeps one lock record per file per
    # process, so the child's connection took no lock of its own, the parent's close found
    # the file unused, checkpointed and deleted the WAL, and every row the child added
    # afterwards went into a deleted file (12 events spooled, 6 in the file; no error).
    pipeline = _configure(free_port(), db, shutdown_timeout=0.5)  # the peer is down: rows stay
    parent = _log("parent", 3)
    _wait(lambda: len(_ids_in_spool(db)) == 3)
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: spool 6 events, wait for the parent's shutdown, spool 6 more
        code = 1
        try:
            spool = pipeline._spool
            assert spool is not None
            log_with_ids("test.outside", "before", 6)
            wait_until(lambda: sum(spool._own.values()) == 6, 30)
            os.write(ready_w, b"1")
            os.read(go_r, 1)
            log_with_ids("test.outside", "after", 6)
            wait_until(lambda: sum(spool._own.values()) == 12, 30)  # stored, as it thinks
            code = 0
        finally:
            os._exit(code)
    assert os.read(ready_r, 1) == b"1"
    pipeline.shutdown(1)
    worker = pipeline.worker.thread
    assert worker is not None
    worker.join(30)
    assert not worker.is_alive() and pipeline._spool is not None and pipeline._spool._conn is None
    os.write(go_w, b"1")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    expected = parent + [f"before-{n:06d}" for n in range(6)] + [f"after-{n:06d}" for n in range(6)]
    assert Counter(_ids_in_spool(db)) == Counter(expected)


# ---------------------------------------------------------------- this process opening the file again

_ADD_ONE = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
conn.execute("INSERT INTO meta VALUES ('other', 'process')")
conn.close()
"""

_COUNT = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
print(conn.execute("SELECT COUNT(*) FROM meta WHERE key LIKE 'mine-%'").fetchone()[0])
"""


def test_opening_the_spool_again_keeps_this_processs_lock_on_it(db: Path) -> None:
    # Opening the spool again in one process (configure() again, a second pipeline, a
    # reopen) opened and closed a descriptor of the file to check it, which dropped
    # SQLite's POSIX lock on it.  Another process closing its last connection then found
    # the file unused, checkpointed and deleted the WAL under this one: every later write
    # of this process was lost to all others (here: 0 of 5 rows).
    first, _ = database_module.open_database(str(db))
    second, _ = database_module.open_database(str(db))  # the same file, opened again
    try:
        subprocess.run([sys.executable, "-c", _ADD_ONE, str(db)], check=True, timeout=60)
        for n in range(5):
            first.execute("INSERT INTO meta VALUES (?, 'row')", (f"mine-{n}",))
        seen = subprocess.run(
            [sys.executable, "-c", _COUNT, str(db)], check=True, timeout=60, capture_output=True, text=True
        )
        assert seen.stdout.strip() == "5"
    finally:
        second.close()
        first.close()


def _owners(db: Path) -> list[str | None]:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        return [row[0] for row in conn.execute("SELECT owner FROM batches ORDER BY seq")]


def test_flush_waits_for_this_processs_events_in_rows_a_dead_child_had_claimed(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # From reading (issue 23): rows a pipeline handed back (shutdown, configure() again)
    # are free, and a forked child's pipeline may claim them and die before sending them.
    # flush() in the parent then returned True while its own events waited in those rows
    # for the next dead-owner check (once a second, here never again).
    monkeypatch.setattr(spool_module, "HOUSEKEEPING_SECONDS", 3600.0)
    port = free_port()
    pipeline = _configure(port, db, shutdown_timeout=0.2)  # nothing listens yet: rows stay
    old = _log("old", 20)
    _wait(lambda: len(_ids_in_spool(db)) == 20)
    eventlog.shutdown(0.2)  # hands the rows back: free
    if pipeline.worker.thread is not None:
        pipeline.worker.thread.join(10)
    assert set(_owners(db)) == {None}
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: claim the free rows, then die without sending them
        code = 1
        try:
            _configure(port, db)  # its worker drains at start: it claims the free rows
            wait_until(lambda: None not in _owners(db), 30)
            os.write(ready_w, b"1")
            os.read(go_r, 1)
            code = 0
        finally:
            os._exit(code)
    assert os.read(ready_r, 1) == b"1"
    _configure(port, db)  # its dead-owner check at start finds the child alive
    os.write(go_w, b"1")
    _, status = os.waitpid(pid, 0)  # the child is gone (it never reached a peer): its rows are nobody's
    assert os.waitstatus_to_exitcode(status) == 0
    with LineReceiver(port=port) as receiver:
        new = _log("new", 5)
        assert eventlog.flush(10)
        receiver.wait_for(25, timeout=10)  # what was sent is read (bounded: what was not, never is)
        assert Counter(e["id"] for e in receiver.events()) == Counter(old + new)
        eventlog.shutdown(1)
    assert _ids_in_spool(db) == []


def test_a_spool_noticing_its_deleted_file_late_keeps_the_fresh_files_wal(db: Path) -> None:
    # Found by the fault run: two pipelines of one process (configure() again while the old
    # one drains) had the spool open when it was deleted with its -wal and -shm.  The new one
    # noticed first and started the fresh file at the path; the old one, which had seen the
    # path empty, then unlinked the "stale" -wal and -shm by name: the fresh file's.  Its own
    # open failed with "disk I/O error", and its 60 rows stayed in the deleted file, lost.
    from eventlog.plugin.testing import make_records

    first = spool_module.SQLiteSpool(str(db), "json")
    second = spool_module.SQLiteSpool(str(db), "json")
    try:
        old_rows = make_records(3, prefix="first")
        first.add(old_rows)
        old = first._conn
        assert old is not None
        for suffix in ("", "-wal", "-shm"):
            os.remove(f"{db}{suffix}")
        new_rows = make_records(4, prefix="second")
        second.add(new_rows)  # notices first: a fresh file at the path, its rows in its WAL
        assert second._file_id != first._file_id
        with first._lock:
            first._replace_file(old, "deleted")  # what first does, having seen the path empty
        ids = sorted(r.id for r in old_rows + new_rows)
        assert sorted(_ids_in_spool(db)) == ids  # every row, once, in the file at the path
        assert sorted(r.id for r in second.pending(100)) == sorted(r.id for r in new_rows)
        assert sorted(r.id for r in first.pending(100)) == sorted(r.id for r in old_rows)
    finally:
        first.close()
        second.close()


_READER = """
import json, sqlite3, sys
conn = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
try:
    rows = conn.execute("SELECT records FROM batches").fetchall()
except sqlite3.Error as exc:
    print(json.dumps(f"unreadable: {exc}"))
else:
    print(json.dumps(sorted(entry[0] for (index,) in rows for entry in json.loads(index))))
"""


def _ids_after_a_crash(path: str) -> list[str] | str:
    """The ids another process (the next run after a kill -9) reads from the file at ``path``."""
    out = subprocess.run([sys.executable, "-c", _READER, path], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


@pytest.mark.parametrize("noticed_by", ["the fresh file's spool", "the other spool"])
def test_mv_of_the_spool_and_its_siblings_midway_noticed_takes_no_row_with_the_fresh_files_wal(
    db: Path, noticed_by: str
) -> None:
    # Found by the 30-minute fault run (issue 23): `mv spool.db* elsewhere/` renames the file,
    # then its -wal and -shm.  A spool noticing in between starts the fresh file at the path,
    # and the rest of the move takes the fresh file's WAL and index along: its rows were then
    # readable only through that spool's connection (a kill -9 lost them), the moved file read
    # as the fresh one (the other spool's rows in it were gone: 111 events in no counter), and
    # the other spool could not open the fresh file ("disk I/O error").
    from eventlog.plugin.testing import make_records

    db.parent.mkdir(parents=True)
    path, moved = str(db), str(db) + ".moved"
    first = spool_module.SQLiteSpool(path, "json")  # e.g. the pipeline configure() replaced
    second = spool_module.SQLiteSpool(path, "json")  # and its successor, on the same file
    try:
        first_rows, second_rows = make_records(3, prefix="first"), make_records(4, prefix="second")
        first.add(first_rows)
        second.add(second_rows)
        os.replace(path, moved)
        noticed = make_records(2, prefix="noticed")
        first.add(noticed)  # notices the move: a fresh file at the path, our rows in its WAL
        for suffix in ("-wal", "-shm"):  # the rest of the move: the fresh file's WAL and index
            os.replace(path + suffix, moved + suffix)
        later = [make_records(1, prefix="later1"), make_records(1, prefix="later2")]
        order = [(first, later[0]), (second, later[1])]
        for spool, rows in order if noticed_by == "the fresh file's spool" else order[::-1]:
            spool.add(rows)
        everything = first_rows + second_rows + noticed + later[0] + later[1]
        # Every row once, in the file at the path, as the next run after a crash reads it;
        # none left in the moved file to be sent twice.
        assert _ids_after_a_crash(path) == sorted(r.id for r in everything)
        assert _ids_after_a_crash(moved) == []
        firsts, seconds = first_rows + noticed + later[0], second_rows + later[1]
        assert sorted(r.id for r in first.pending(100)) == sorted(r.id for r in firsts)
        assert sorted(r.id for r in second.pending(100)) == sorted(r.id for r in seconds)
        assert first.depth() == second.depth() == len(everything)
    finally:
        first.close()
        second.close()


def test_a_spool_whose_wal_was_moved_off_its_name_writes_it_into_the_file_at_its_next_call(
    db: Path, eventlog_warnings: EventlogWarnings
) -> None:
    from eventlog.plugin.testing import make_records

    db.parent.mkdir(parents=True)
    path, moved = str(db), str(db) + ".moved"
    spool = spool_module.SQLiteSpool(path, "json")
    try:
        before = make_records(5, prefix="before")
        spool.add(before)
        os.replace(path, moved)
        spool.add(make_records(2, prefix="noticed"))  # the fresh file, these rows in its WAL
        for suffix in ("-wal", "-shm"):
            os.replace(path + suffix, moved + suffix)
        # What a kill -9 now leaves: the fresh file without its rows, until the next call.
        assert _ids_after_a_crash(path) == "unreadable: no such table: batches"
        spool.add(make_records(1, prefix="after"))
        want = sorted(r.id for r in spool.pending(100))
        assert len(want) == 8
        assert _ids_after_a_crash(path) == want
        assert _ids_after_a_crash(moved) == []
        assert eventlog_warnings.count(f"the spool file {path} lost its WAL") == 1
    finally:
        spool.close()


def test_two_spools_on_a_fresh_file_whose_wal_was_moved_both_open_it_again(db: Path) -> None:
    # Pipelines of one process share SQLite's index of a file: the first to notice the WAL
    # moved reopens them all, at once (one left closed would open whatever is at the path
    # at its next call, and lose track of its rows if the file moved again meanwhile).
    from eventlog.plugin.testing import make_records

    db.parent.mkdir(parents=True)
    path, moved = str(db), str(db) + ".moved"
    first = spool_module.SQLiteSpool(path, "json")
    second = spool_module.SQLiteSpool(path, "json")
    try:
        os.replace(path, moved)
        first_rows, second_rows = make_records(2, prefix="first"), make_records(3, prefix="second")
        first.add(first_rows)  # the fresh file
        second.add(second_rows)  # the same fresh file
        assert first._file_id == second._file_id
        for suffix in ("-wal", "-shm"):
            os.replace(path + suffix, moved + suffix)
        later = make_records(1, prefix="later")
        first.add(later)  # notices, for both
        assert _ids_after_a_crash(path) == sorted(r.id for r in first_rows + second_rows + later)
        os.replace(path, moved + "2")  # moved again: each carries its own rows
        first.add(make_records(1, prefix="a"))
        second.add(make_records(1, prefix="b"))
        assert len(_ids_after_a_crash(path)) == 8
        assert _ids_after_a_crash(moved + "2") == []
    finally:
        first.close()
        second.close()
