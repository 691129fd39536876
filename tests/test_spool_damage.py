"""Damaged spool rows and events the spool cannot index: set aside, counted, never fatal.

Each case runs on a real spool file and a real TCP listener; a row is damaged
the way a bad sector or a stray write does it: one byte of its stored index
changed, while ``PRAGMA quick_check`` still says ``ok``.  A spool written by
eventlog 0.1.0 (no ``destination`` column, no quarantine table) is opened and
its rows are delivered.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

import eventlog
from eventlog._builtin.receiver import LineReceiver
from eventlog._engine import prometheus
from eventlog._records.batch import Record
from eventlog._spool.sqlite import SQLiteSpool
from tests.peers import free_port
from tests.spool_support import EventlogWarnings, capture_warnings, log_with_ids

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def eventlog_warnings() -> Iterator[EventlogWarnings]:
    yield from capture_warnings()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "events.db"


def _log(prefix: str, count: int) -> list[str]:
    return log_with_ids("test.damage", prefix, count)


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


def _rows(db: Path) -> list[tuple[int, list[str]]]:
    """(seq, ids) of every row waiting in the spool file, oldest first."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT seq, records FROM batches ORDER BY seq").fetchall()
    return [(seq, [entry[0] for entry in json.loads(index)]) for seq, index in rows]


def _spool_while_peer_down(db: Path, port: int, prefix: str, count: int) -> list[str]:
    """A run that leaves ``count`` events in the spool (nobody listens on ``port``)."""
    pipeline = _configure(port, db, shutdown_timeout=0.2)
    ids = _log(prefix, count)
    deadline = time.monotonic() + 30
    while sum(len(row_ids) for _, row_ids in _rows(db)) < count:
        assert time.monotonic() < deadline, "the events never reached the spool"
        time.sleep(0.05)
    eventlog.shutdown(0.2)
    if pipeline.worker.thread is not None:
        pipeline.worker.thread.join(10)
    return ids


def _damage(db: Path, seq: int, how: str) -> bytes:
    """Change one byte of row ``seq``'s stored index (or payloads); return the index as stored."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        index = conn.execute("SELECT records FROM batches WHERE seq = ?", (seq,)).fetchone()[0].encode()
        if how == "payload":  # one byte of an event's text: the index still fits
            payloads = bytearray(
                conn.execute("SELECT payloads FROM batches WHERE seq = ?", (seq,)).fetchone()[0]
            )
            at = payloads.index(b'"action"') + 2
            payloads[at] ^= 0x20  # "action" -> "aCtion": still JSON, the wrong key
            conn.execute("UPDATE batches SET payloads = ? WHERE seq = ?", (bytes(payloads), seq))
            conn.commit()
            return index
        if how == "id-case":  # '[["old-...' -> '[["Old-...': still JSON, the sizes still add up
            damaged = index[:3] + index[3:4].swapcase() + index[4:]
        elif how == "not-json":
            damaged = index[:1] + b"{" + index[2:]  # '[[' -> '[{': no longer JSON
        else:  # still JSON, but the first event's size is one byte off: the cuts would be wrong
            entries = json.loads(index)
            size = entries[0][3]
            old, new = f",{size}]".encode(), f",{size - 1 if size % 10 else size + 1}]".encode()
            assert len(old) == len(new)
            damaged = index.replace(old, new, 1)
        assert len(damaged) == len(index) and sum(a != b for a, b in zip(damaged, index)) == 1
        conn.execute("UPDATE batches SET records = ? WHERE seq = ?", (damaged.decode(), seq))
        conn.commit()
        assert conn.execute("PRAGMA quick_check").fetchall() == [("ok",)]
    return damaged


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        ("not-json", "undecodable"),
        ("sizes", "index_mismatch"),
        ("payload", "checksum"),
        ("id-case", "checksum"),
    ],
)
def test_a_damaged_row_is_quarantined_and_the_rows_behind_it_are_sent(
    db: Path, how: str, reason: str, eventlog_warnings: EventlogWarnings
) -> None:
    port = free_port()
    _spool_while_peer_down(db, port, "old", 500)
    rows = _rows(db)
    assert len(rows) >= 3
    bad_seq, bad_ids = rows[1]  # a row in the middle: rows before and behind it are good
    damaged = _damage(db, bad_seq, how)

    with LineReceiver(port=port) as receiver:
        pipeline = _configure(port, db)
        new = _log("new", 50)
        assert eventlog.flush(20)
        want = {i for _, ids in rows for i in ids} - set(bad_ids) | set(new)
        receiver.wait_for(len(want), timeout=20)
        got = [e["id"] for e in receiver.events()]
        assert pipeline.worker.thread is not None and pipeline.worker.thread.is_alive()  # the worker lives on
        eventlog.shutdown(5)
    assert Counter(got) == Counter(want)  # every good row, once; nothing of the damaged one
    assert pipeline.stats.dropped_by_reason() == {"spool_quarantined": len(bad_ids)}
    assert pipeline.stats.spool_quarantined == {reason: 1}
    assert _rows(db) == []
    with contextlib.closing(sqlite3.connect(db)) as conn:
        kept = conn.execute("SELECT seq, reason, events, CAST(records AS BLOB) FROM quarantine").fetchall()
    assert kept == [(bad_seq, reason, len(bad_ids), damaged)]  # kept byte for byte
    assert eventlog_warnings.count(f"could not be read ({reason}") == 1
    assert eventlog_warnings.count("eventlog spool quarantine --db") == 1


def test_the_quarantine_metric_counts_rows_by_reason(db: Path) -> None:
    port = free_port()
    _spool_while_peer_down(db, port, "old", 300)
    seq = _rows(db)[0][0]
    _damage(db, seq, "not-json")
    with LineReceiver(port=port):
        _configure(port, db)
        assert eventlog.flush(20)
        text = prometheus.render()
    assert 'eventlog_spool_quarantined_rows_total{pipeline="default",reason="undecodable"} 1.0' in text


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("EVENTLOG_")}
    return subprocess.run(
        [sys.executable, "-m", "eventlog", "spool", *args],
        env={**environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=90,
    )


def test_replay_sends_the_good_rows_and_quarantines_a_damaged_one_then_lists_and_exports_it(
    db: Path, tmp_path: Path
) -> None:
    port = free_port()
    _spool_while_peer_down(db, port, "old", 500)
    rows = _rows(db)
    bad_seq, bad_ids = rows[2]
    with contextlib.closing(sqlite3.connect(db)) as conn:
        payloads = conn.execute("SELECT payloads FROM batches WHERE seq = ?", (bad_seq,)).fetchone()[0]
    damaged = _damage(db, bad_seq, "not-json")

    with LineReceiver(port=port) as receiver:
        replay = _cli("replay", "--db", str(db))
        assert replay.returncode == 0, replay.stderr
        assert "Traceback" not in replay.stderr
        want = {i for _, ids in rows for i in ids} - set(bad_ids)
        receiver.wait_for(len(want), timeout=20)
        got = [e["id"] for e in receiver.events()]
    assert Counter(got) == Counter(want)
    assert f"sent {len(want)} events to tcp as json (tcp 127.0.0.1:{port})" in replay.stdout
    assert "quarantined 1 damaged rows (undecodable: 1)" in replay.stdout
    assert "0 left in the spool" in replay.stdout

    listing = _cli("quarantine", "--db", str(db))
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout.splitlines()[0] == f"1 quarantined rows in {db}"
    assert f"seq {bad_seq}: undecodable, {len(bad_ids)} events (json," in listing.stdout
    assert f"for tcp 127.0.0.1:{port}" in listing.stdout

    out = tmp_path / "quarantine.jsonl"
    export = _cli("quarantine", "--db", str(db), "--export", str(out))
    assert export.returncode == 0, export.stderr
    assert export.stdout.strip() == f"exported 1 quarantined rows to {out}"
    (line,) = [json.loads(text) for text in out.read_text().splitlines()]
    assert line["seq"] == bad_seq and line["reason"] == "undecodable" and line["events"] == len(bad_ids)
    assert base64.b64decode(line["records_base64"]) == damaged
    assert base64.b64decode(line["payloads_base64"]) == payloads
    assert [json.loads(p)["id"] for p in base64.b64decode(line["payloads_base64"]).splitlines()] == bad_ids

    info = _cli("info", "--db", str(db))
    assert f"damaged  1 rows ({len(bad_ids)} events) in quarantine" in info.stdout
    # The export holds event payloads: readable by its owner only.
    assert out.stat().st_mode & 0o777 == 0o600


def test_the_quarantine_export_writes_only_a_new_file_never_through_a_link(db: Path, tmp_path: Path) -> None:
    port = free_port()
    _spool_while_peer_down(db, port, "old", 50)
    _damage(db, _rows(db)[0][0], "not-json")
    with LineReceiver(port=port):
        assert _cli("replay", "--db", str(db)).returncode == 0
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    link = tmp_path / "export.jsonl"
    link.symlink_to(victim)
    for target in (link, victim):  # a planted link, or any file already there
        export = _cli("quarantine", "--db", str(db), "--export", str(target))
        assert export.returncode == 1
        assert export.stderr.strip() == (
            f"eventlog spool quarantine: refused to export to {target}: File exists; give the name "
            "of a file that does not exist yet (the export holds event payloads)"
        )
    assert victim.read_text() == "keep me\n"


# ---------------------------------------------------------------- events the index cannot hold


def test_an_event_time_beyond_64_bits_is_stored_and_sent_not_fatal(db: Path, receiver: LineReceiver) -> None:
    pipeline = _configure(receiver.port, db)
    ids = []
    for number in range(20):
        event = eventlog.Event("test.damage", "t", "test")
        event.id = f"big-{number:03d}"
        if number == 7:
            # What a time in ms given as ns, or a mutated LogRecord, can come to. (Event
            # creation may refuse it; set afterwards it still reaches the worker.)
            object.__setattr__(event, "time_ns", 2**64)
        eventlog.log_event(event)
        ids.append(event.id)
    assert eventlog.flush(10)
    more = _log("after", 10)
    assert eventlog.flush(10)
    receiver.wait_for(30, timeout=20)
    assert pipeline.worker.thread is not None and pipeline.worker.thread.is_alive()
    assert Counter(e["id"] for e in receiver.events()) == Counter(ids + more)
    assert pipeline.stats.dropped_by_reason() == {}
    assert _rows(db) == []


def test_an_event_the_index_cannot_hold_is_set_aside_and_counted_the_rest_stored(db: Path) -> None:
    dropped: dict[str, int] = {}
    spool = SQLiteSpool(
        str(db),
        "json",
        on_drop=lambda reason, count: dropped.__setitem__(reason, dropped.get(reason, 0) + count),
    )
    records = [Record(f"r-{n}", "a", n, b'{"id":"r-%d"}\n' % n) for n in range(5)]
    poison = Record("poison", "a", object(), b"{}\n")  # type: ignore[arg-type]  # no JSON for it
    spool.add([*records[:2], poison, *records[2:]])
    assert dropped == {"spool_unstorable": 1}
    got = spool.pending(100)
    assert [r.id for r in got] == [r.id for r in records]
    assert [r.payload for r in got] == [r.payload for r in records]
    spool.remove(got)
    assert spool.depth() == 0
    spool.close()


# ---------------------------------------------------------------- a spool written by 0.1.0

#: The schema eventlog 0.1.0 created (schema version 1), as it wrote it.
_SCHEMA_0_1_0 = """
CREATE TABLE IF NOT EXISTS batches (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    format   TEXT    NOT NULL,
    events   INTEGER NOT NULL,
    records  TEXT    NOT NULL,
    payloads BLOB    NOT NULL,
    added    REAL    NOT NULL,
    owner    TEXT
);
CREATE INDEX IF NOT EXISTS batches_owned ON batches(owner, format, seq) WHERE owner IS NOT NULL;
CREATE INDEX IF NOT EXISTS batches_free ON batches(format, seq) WHERE owner IS NULL;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


def _spool_of_0_1_0(db: Path, prefix: str, rows: int, per_row: int) -> list[str]:
    ids = []
    fd = os.open(db, os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(fd)
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.executescript(_SCHEMA_0_1_0)
        conn.execute("INSERT INTO meta VALUES ('schema', '1')")
        for row in range(rows):
            entries, payloads = [], b""
            for n in range(per_row):
                event_id = f"{prefix}-{row * per_row + n:06d}"
                payload = json.dumps({"id": event_id, "action": "test.old"}).encode() + b"\n"
                entries.append([event_id, "test.old", 0, len(payload)])
                payloads += payload
                ids.append(event_id)
            # A dead 0.1.0 process owned the second half: reclaimed like free rows.
            owner = None if row < rows // 2 else "999999999:1"
            conn.execute(
                "INSERT INTO batches (format, events, records, payloads, added, owner) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                ("json", per_row, json.dumps(entries), payloads, time.time(), owner),
            )
        conn.commit()
    return ids


def test_a_spool_written_by_0_1_0_opens_and_its_rows_are_delivered(db: Path, receiver: LineReceiver) -> None:
    old = _spool_of_0_1_0(db, "v010", rows=6, per_row=50)
    pipeline = _configure(receiver.port, db)
    new = _log("v020", 20)
    assert eventlog.flush(20)
    receiver.wait_for(len(old) + len(new), timeout=20)
    eventlog.shutdown(5)
    assert Counter(e["id"] for e in receiver.events()) == Counter(old + new)
    assert pipeline.stats.dropped_by_reason() == {}
    with contextlib.closing(sqlite3.connect(db)) as conn:
        columns = {row[1] for row in conn.execute("PRAGMA table_info(batches)")}
        assert {"destination", "checksum"} <= columns
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == ("3",)
        assert conn.execute("SELECT COUNT(*) FROM quarantine").fetchone() == (0,)
        assert conn.execute("SELECT COUNT(*) FROM batches").fetchone() == (0,)
