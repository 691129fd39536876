"""Spool faults: full disk, read-only path, corrupt files, size and age limits.

The full disk and the read-only path are real: a small tmpfs mounted by the
test (it runs as root).  Where mounting is not permitted, the full disk is
made with a file-size rlimit in a child process instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import eventlog
import eventlog._spool.sqlite as spool_module
import eventlog.plugin
from eventlog._builtin.receiver import LineReceiver
from tests.peers import free_port
from tests.spool_support import EventlogWarnings, capture_warnings


@pytest.fixture
def eventlog_warnings() -> Iterator[EventlogWarnings]:
    yield from capture_warnings()


pytestmark = pytest.mark.timeout(60)


def _log(prefix: str, count: int, message: str = "") -> set[str]:
    for number in range(count):
        event = eventlog.Event("test.fault", prefix, "test", message=message)
        event.id = f"{prefix}-{number:06d}"
        eventlog.log_event(event)
    return {f"{prefix}-{number:06d}" for number in range(count)}


def _ids(receiver: LineReceiver) -> list[str]:
    return [event["id"] for event in receiver.events()]


def _received(receiver: LineReceiver, count: int) -> list[str]:
    """The ids received, once at least ``count`` lines arrived (the listener reads async)."""
    receiver.wait_for(count, timeout=20)
    return _ids(receiver)


def _rows(db: Path) -> list[str]:
    """Ids of the events waiting in the spool file, oldest first."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT records FROM batches ORDER BY seq").fetchall()
    return [record[0] for (index,) in rows for record in json.loads(index)]


def _configure(port: int, db: Path, **settings: object) -> eventlog.Pipeline:
    return eventlog.configure(
        transport="tcp",
        host="127.0.0.1",
        port=port,
        db=str(db),
        enrichers=(),
        retry_backoff_max=0.2,
        **settings,
    )


def _stop(pipeline: eventlog.Pipeline) -> None:
    """Shut down with a short deadline, then wait for the worker to let go of the file."""
    eventlog.shutdown(0.2)
    if pipeline.worker.thread is not None:
        pipeline.worker.thread.join(10)


def _mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
        capture_output=True,
    )
    return done.returncode == 0


def _remount(where: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(where)], check=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path | None]:
    """A 1 MiB tmpfs, or None where mounting is not permitted."""
    mnt = tmp_path / "mnt"
    if not _mount_tmpfs(mnt, "1m"):
        yield None
        return
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.fixture(autouse=True)
def _quick_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    # The spool is tried again 1 s after a failure; the tests need not wait that long.
    monkeypatch.setattr(spool_module, "RETRY_SECONDS", 0.05)
    monkeypatch.setattr(spool_module, "HOUSEKEEPING_SECONDS", 0.05)


def _fill(folder: Path) -> Path:
    filler = folder / "filler"
    with open(filler, "wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass
    return filler


# ---------------------------------------------------------------- full disk


def test_full_disk_degrades_to_memory_and_recovers(
    small_disk: Path | None, receiver: LineReceiver, tmp_path: Path
) -> None:
    if small_disk is None:
        _full_disk_with_rlimit(tmp_path, receiver)
        return
    db = small_disk / "events.db"
    pipeline = _configure(receiver.port, db)
    want = _log("before", 200)
    assert eventlog.flush(10)
    assert pipeline.stats.spool_fallback == {}

    filler = _fill(small_disk)
    want |= _log("full", 3000, message="m" * 1000)  # 3 MB: far more than the disk has
    assert eventlog.flush(20)
    fallback = dict(pipeline.stats.spool_fallback)
    assert fallback.get("disk_full", 0) > 0
    assert set(fallback) == {"disk_full"}

    filler.unlink()  # space returns
    time.sleep(0.1)
    want |= _log("after", 500)
    assert eventlog.flush(10)
    want |= _log("after2", 500)
    assert eventlog.flush(10)
    assert pipeline.stats.spool_fallback["disk_full"] == fallback["disk_full"] or (
        pipeline.stats.spool_fallback["disk_full"] <= fallback["disk_full"] + 500
    )
    spool = pipeline._spool
    assert spool is not None and spool._unavailable is None  # type: ignore[attr-defined]
    sent_before = pipeline.stats.spool_fallback["disk_full"]
    want |= _log("spooled", 300)
    assert eventlog.flush(10)
    assert pipeline.stats.spool_fallback["disk_full"] == sent_before  # through the spool again
    got = _received(receiver, len(want))
    assert [i for i, n in Counter(got).items() if n > 1] == []
    assert set(got) == want
    assert pipeline.stats.dropped_by_reason() == {}
    assert _rows(db) == []


_RLIMIT_CHILD = """
import json, resource, signal, sys
import eventlog
port, db = int(sys.argv[1]), sys.argv[2]
eventlog.configure(transport="tcp", host="127.0.0.1", port=port, db=db, enrichers=())
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write beyond the limit fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
for n in range(3000):
    event = eventlog.Event("test.fault", "rlimit", "test", message="m" * 1000)
    event.id = f"rlimit-{n:06d}"
    eventlog.log_event(event)
ok = eventlog.flush(30)
p = eventlog.get_pipeline()
print(json.dumps({"flushed": ok, "fallback": p.stats.spool_fallback}))
eventlog.shutdown(5)
"""


def _full_disk_with_rlimit(tmp_path: Path, receiver: LineReceiver) -> None:
    db = tmp_path / "events.db"
    done = subprocess.run(
        [sys.executable, "-c", _RLIMIT_CHILD, str(receiver.port), str(db)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["flushed"] is True
    assert sum(report["fallback"].values()) > 0
    receiver.wait_for(3000)
    assert set(_ids(receiver)) == {f"rlimit-{n:06d}" for n in range(3000)}


def test_rlimit_is_usable_as_fallback() -> None:
    # The fallback above relies on EFBIG instead of a kill; check the platform gives that.
    code = (
        "import resource, signal, tempfile\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))\n"
        "f = tempfile.TemporaryFile()\n"
        "try:\n    f.write(b'x' * 5000); f.flush()\nexcept OSError as e:\n    print(e.errno)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.stdout.strip() == str(__import__("errno").EFBIG)
    assert signal.SIGXFSZ and resource.RLIMIT_FSIZE


# ---------------------------------------------------------------- read-only


def test_read_only_spool_degrades_and_recovers(small_disk: Path | None) -> None:
    if small_disk is None:
        pytest.skip("mounting a tmpfs is not permitted here")
    db = small_disk / "events.db"
    # A first run leaves events in the spool (nobody listening yet on the port) ...
    port = free_port()
    first = _configure(port, db, shutdown_timeout=0.2)
    want = _log("left", 200)
    _stop(first)
    assert len(_rows(db)) == 200
    # ... then the file system turns read-only (a remount needs no open writers).
    _remount(small_disk, "ro")
    receiver = LineReceiver(port=port)  # the same destination: the rows are this one's
    try:
        pipeline = _configure(receiver.port, db)
        want |= _log("ro", 600)
        assert set(_received(receiver, 600)) == {f"ro-{n:06d}" for n in range(600)}
        # The worker has taken everything, so the flush marker comes alone: the rows of
        # the unusable spool wait for it to recover, and flush() covers what went from
        # memory (it used to hold the marker until those rows were sent, and time out).
        assert eventlog.flush(10)
        assert pipeline.stats.spool_fallback == {"read_only": 600}
    finally:
        _remount(small_disk, "rw")
    time.sleep(0.1)
    want |= _log("rw", 300)
    assert eventlog.flush(10)
    assert pipeline.stats.spool_fallback == {"read_only": 600}  # spool mode again
    receiver.wait_for(len(want))
    got = _ids(receiver)
    assert [i for i, n in Counter(got).items() if n > 1] == []
    assert set(got) == want  # including what the first run left
    assert _rows(db) == []
    receiver.stop()


def test_read_only_path_at_start_sends_from_memory_then_spools(
    small_disk: Path | None, receiver: LineReceiver, eventlog_warnings: EventlogWarnings
) -> None:
    if small_disk is None:
        pytest.skip("mounting a tmpfs is not permitted here")
    _remount(small_disk, "ro")
    db = small_disk / "sub" / "events.db"  # the folder cannot be made either
    try:
        pipeline = _configure(receiver.port, db)
        want = _log("ro", 300)
        assert eventlog.flush(10)
        assert pipeline.stats.spool_fallback == {"read_only": 300}
    finally:
        _remount(small_disk, "rw")
    time.sleep(0.1)
    want |= _log("rw", 300)
    assert eventlog.flush(10)
    assert pipeline.stats.spool_fallback == {"read_only": 300}
    assert db.exists()
    assert set(_received(receiver, len(want))) == want
    assert eventlog_warnings.count("cannot be written") == 1  # logged once per outage
    assert eventlog_warnings.count("can be written again; spool mode resumes") == 1


# ---------------------------------------------------------------- corrupt files


def _truncated_spool(path: Path) -> bytes:
    pipeline = _configure(free_port(), path, shutdown_timeout=0.2)
    _log("old", 2000, message="o" * 200)
    _stop(pipeline)
    data = path.read_bytes()
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    return data[: len(data) // 3]


@pytest.mark.parametrize("damage", ["not-sqlite", "sqlite-header-then-junk", "truncated"])
def test_corrupt_spool_is_moved_aside_and_a_fresh_one_used(
    damage: str, tmp_path: Path, receiver: LineReceiver, eventlog_warnings: EventlogWarnings
) -> None:
    db = tmp_path / "events.db"
    if damage == "not-sqlite":
        content = b"this is a log file, not a database\n" * 200
    elif damage == "sqlite-header-then-junk":
        content = b"SQLite format 3\x00" + os.urandom(16 * 1024)
    else:
        content = _truncated_spool(db)
    db.write_bytes(content)
    db.chmod(0o600)  # as the spool makes its file: a world-readable one is refused
    eventlog_warnings.messages.clear()

    pipeline = _configure(receiver.port, db)
    want = _log("fresh", 500)
    assert eventlog.flush(10)
    assert set(_received(receiver, 500)) >= want
    assert eventlog_warnings.count("was not a readable SQLite spool") == 1
    moved = sorted(tmp_path.glob("events.db.corrupt-*"))
    moved = [m for m in moved if not m.name.endswith(("-wal", "-shm"))]
    assert len(moved) == 1
    assert moved[0].read_bytes() == content  # kept as it was, for a post-mortem
    assert pipeline.stats.dropped_by_reason() == {}
    assert _rows(db) == []


_HOLD = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("PRAGMA wal_autocheckpoint = 0")
conn.execute("INSERT OR REPLACE INTO meta VALUES ('holder', '1')")
print("ready", flush=True)
sys.stdin.read()
conn.close()
"""


def test_a_disk_io_error_at_open_leaves_a_healthy_spool_in_place_and_it_is_used_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by the fault run: a live spool was moved aside as corrupt after SQLite's "disk
    # I/O error", which a file's -wal deleted under another connection gives at open.  The
    # file is healthy: it stays where it is, with its rows, and is used once it opens again.
    db = tmp_path / "events.db"
    port = free_port()
    pipeline = _configure(port, db, shutdown_timeout=0.2)  # nothing listens yet: rows stay
    old = _log("old", 300)
    _stop(pipeline)
    assert sorted(_rows(db)) == sorted(old)
    # Another process's live connection, with frames in its WAL, which is then deleted.
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert holder.stdout is not None and holder.stdout.readline() == b"ready\n"
    os.remove(f"{db}-wal")
    with (
        contextlib.closing(sqlite3.connect(db)) as conn,
        pytest.raises(sqlite3.OperationalError, match="disk I/O error"),
    ):
        conn.execute("PRAGMA quick_check").fetchall()  # reads every page

    monkeypatch.setattr(spool_module, "RETRY_SECONDS", 0)
    receiver = LineReceiver(port=port)
    pipeline = _configure(port, db)
    new = _log("new", 5)
    assert eventlog.flush(10)
    assert sorted(_received(receiver, 5)) == sorted(new)  # from memory meanwhile
    assert pipeline.stats.spool_fallback == {"io_error": 5}
    assert list(tmp_path.glob("events.db.corrupt-*")) == []  # not moved aside
    holder.communicate(b"")  # it closes its connection and exits
    assert sorted(_rows(db)) == sorted(old)  # the same file, its rows in place
    # Once it opens again (tried at the next use a second later; here at once), its rows are sent.
    more = _log("more", 5)
    got = set(_received(receiver, 310))
    assert got == old | new | more
    assert pipeline.stats.dropped_by_reason() == {}
    _stop(pipeline)
    receiver.stop()
    assert _rows(db) == []


# ---------------------------------------------------------------- limits


def _wait_spooled(pipeline: eventlog.Pipeline, total: int) -> None:
    deadline = time.monotonic() + 30
    while pipeline.stats.taken < total or pipeline.queue_depth():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.3)  # one more retry round: the last batch is in the spool


def test_size_limit_evicts_the_oldest_and_counts_them(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    limit = 400_000
    pipeline = _configure(free_port(), db, spool_max_bytes=limit)  # nobody listens
    total = 4000
    _log("size", total, message="s" * 400)
    _wait_spooled(pipeline, total)
    eventlog.shutdown(0.2)
    waiting = _rows(db)
    evicted = pipeline.stats.dropped.get("spool_max_bytes", 0)
    assert evicted > 0
    assert evicted + len(waiting) == total  # accepted = sent (0) + dropped + waiting
    numbers = sorted(int(i.split("-")[1]) for i in waiting)
    # The first batch was being sent (kept whole, however many events the worker took at first:
    # one alone, or more than 500 under load); after it, only the newest events remain.
    first = next((k for k, n in enumerate(numbers) if n != k), len(numbers))
    in_flight, rest = numbers[:first], numbers[first:]
    assert in_flight == list(range(len(in_flight)))
    assert rest == list(range(total - len(rest), total))
    # What was evicted lies between them (all after the first batch, when it alone fills the limit).
    assert not rest or rest[0] > len(in_flight)
    with contextlib.closing(sqlite3.connect(db)) as conn:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
    assert (pages - free) * size <= limit


def test_age_limit_evicts_old_events_and_counts_them(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    # batch_size 500: the batch being retried is never evicted, the 1,000 behind it are.
    pipeline = _configure(free_port(), db, spool_max_age=0.5, batch_size=500)  # nobody listens
    _log("aged", 1500)
    _wait_spooled(pipeline, 1500)
    time.sleep(0.7)
    _log("young", 10)
    _wait_spooled(pipeline, 1510)
    eventlog.shutdown(0.2)
    waiting = set(_rows(db))
    evicted = pipeline.stats.dropped.get("spool_max_age", 0)
    assert evicted >= 1000  # all but the batch being sent
    assert evicted + len(waiting) == 1510
    assert {f"young-{n:06d}" for n in range(10)} <= waiting


# ---------------------------------------------------------------- poison events


class _Picky:
    """A formatter plugin that cannot encode events whose action is ``poison``."""

    @eventlog.plugin.hookimpl
    def eventlog_formatters(self) -> list[eventlog.plugin.FormatterSpec]:
        from eventlog._builtin.formats import JsonFormatter

        class Picky(JsonFormatter):
            def format(self, wire: dict[str, object]) -> bytes:
                if wire["action"] == "poison":
                    raise ValueError("this formatter cannot encode poison")
                return super().format(wire)

        return [
            eventlog.plugin.FormatterSpec("picky", lambda _: Picky(), "test: refuses poison", framing="lines")
        ]


def test_poison_events_are_set_aside_and_the_rest_of_the_batch_spooled_and_sent(
    tmp_path: Path, receiver: LineReceiver, eventlog_warnings: EventlogWarnings
) -> None:
    from eventlog._config.config import Settings
    from eventlog._config.registry import Registry

    registry = Registry(load_entry_points=False, extra_plugins=(_Picky(),))
    settings = Settings.load(
        {
            "transport": "tcp",
            "host": "127.0.0.1",
            "port": receiver.port,
            "format": "picky",
            "db": str(tmp_path / "events.db"),
            "enrichers": (),
        },
        environ={},
    )
    pipeline = eventlog.Pipeline(settings, registry)
    want = set()
    for number in range(300):
        poison = number % 10 == 3
        event = eventlog.Event("poison" if poison else "fine", "t", "test")
        event.id = f"poison-{number:06d}"
        pipeline.submit_event(event)
        if not poison:
            want.add(event.id)
    assert pipeline.flush(10)
    pipeline.shutdown(5)
    assert set(_received(receiver, len(want))) == want
    assert pipeline.stats.dropped_by_reason() == {"unencodable": 30}
    assert pipeline.stats.sent == 270
    assert eventlog_warnings.count("could not be formatted as 'picky'") == 1
    assert _rows(tmp_path / "events.db") == []


# ---------------------------------------------------------------- an unavailable spool is tried again


def _open_fails_once(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The next spool open fails as a read-only file would (a file replaced mid-open does)."""
    calls: list[int] = []
    real_open = spool_module.open_database

    def open_database(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise sqlite3.OperationalError("attempt to write a readonly database")
        return real_open(*args, **kwargs)

    monkeypatch.setattr(spool_module, "open_database", open_database)
    monkeypatch.setattr(spool_module, "RETRY_SECONDS", 0.2)
    return calls


def test_an_unavailable_spool_is_tried_again_however_often_it_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from eventlog._records.batch import Record

    calls = _open_fails_once(monkeypatch)
    spool = spool_module.SQLiteSpool(str(tmp_path / "events.db"), "json")
    refused = 0
    for n in range(200):  # a busy worker: far more often than every RETRY_SECONDS
        try:
            spool.add([Record(f"e-{n}", "test.fault", 0, b"{}\n")])
            break
        except spool_module.SpoolUnavailable:
            refused += 1
            time.sleep(0.02)
    # Each refusal used to put the next try off by RETRY_SECONDS: it was never tried again.
    assert refused < 200 and len(calls) == 2
    assert spool.depth() == 1
    spool.close()


def test_queued_events_reach_a_spool_that_works_again_while_the_peer_stays_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _open_fails_once(monkeypatch)
    db = tmp_path / "events.db"
    pipeline = _configure(free_port(), db, batch_size=10, linger_ms=0, shutdown_timeout=0.2)
    want = _log("e", 50)
    # The worker sends its first batch from memory and retries it (the peer is down); the
    # queue must not wait for that send: it goes to the spool once the spool works again.
    deadline = time.monotonic() + 30
    while pipeline.queue_depth() or len(_rows(db)) + pipeline._delivery._sending_from_memory < 50:
        assert time.monotonic() < deadline, (pipeline.queue_depth(), len(_rows(db)))
        time.sleep(0.02)
    assert pipeline._delivery.unspooled == []
    assert set(_rows(db)) <= want and pipeline.stats.sent == 0
    assert pipeline.spool_depth() == 50
    eventlog.shutdown(0.2)


def test_a_spool_still_unreadable_after_being_moved_aside_is_unavailable_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Found by the fault run: open_database moves a corrupt file aside and opens a fresh one; when
    # that fails too (a disk I/O error reads as corruption), its SpoolCorrupt escaped into
    # configure().  A failing disk cannot be made on demand here, so open_database is replaced
    # by one that fails that way.
    def unreadable(*args: object, **kwargs: object) -> Any:
        raise spool_module.SpoolCorrupt("disk I/O error")

    monkeypatch.setattr(spool_module, "open_database", unreadable)
    with LineReceiver() as receiver:
        pipeline = _configure(receiver.port, tmp_path / "events.db")  # does not raise
        ids = _log("corrupt", 5)
        assert eventlog.flush(10)
        assert sorted(_received(receiver, 5)) == sorted(ids)  # sent from memory meanwhile
        assert pipeline.stats.spool_fallback == {"corrupt": 5}
        _stop(pipeline)
