"""Whose rows a pipeline sends, and where: one owner per pipeline, one destination per row.

Real processes (``tests/spool_child.py``, killed with SIGKILL), real listeners
(:class:`eventlog._builtin.receiver.LineReceiver`), and the ``eventlog spool`` command
run as an operator runs it, in a shell without the application's settings.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import eventlog
from eventlog._builtin.receiver import LineReceiver
from tests.peers import free_port
from tests.spool_support import log_with_ids, wait_until

HERE = Path(__file__).parent
CHILD = HERE / "spool_child.py"

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "events.db"


def _ids_in_spool(db: Path) -> list[str]:
    """Ids waiting in the spool file (none while the file or its table is not made yet)."""
    if not db.exists():
        return []  # connecting would create it, with the umask's mode: then refused as unsafe
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        try:
            rows = conn.execute("SELECT records FROM batches ORDER BY seq").fetchall()
        except sqlite3.OperationalError:
            return []
    return [entry[0] for (index,) in rows for entry in json.loads(index)]


def _wait(check: Any, timeout: float = 30) -> None:
    wait_until(check, timeout)


def _settings(port: int, db: Path, **more: object) -> dict[str, Any]:
    return {
        "transport": "tcp",
        "host": "127.0.0.1",
        "port": port,
        "db": str(db),
        "enrichers": (),
        "retry_backoff_max": 0.2,
        "batch_size": 100,
        **more,
    }


def _log(prefix: str, count: int) -> list[str]:
    return log_with_ids("test.owner", prefix, count)


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``eventlog spool ...`` in a shell without any EVENTLOG_* setting (plus ``env``)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("EVENTLOG_")}
    return subprocess.run(
        [sys.executable, "-m", "eventlog", "spool", *args],
        env={**environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=90,
    )


# ---------------------------------------------------------------- item 10: configure() again


def test_configure_again_while_a_backlog_drains_sends_each_row_once(db: Path) -> None:
    port = free_port()
    eventlog.configure(**_settings(port, db))
    backlog = _log("backlog", 2000)
    _wait(lambda: len(_ids_in_spool(db)) == 2000)  # all in the spool, owned by this pipeline
    receiver = LineReceiver(port=port)
    try:
        # The peer is back as configure() builds the new pipeline and shuts the old one
        # down (which drains what it owns): both see the same backlog in the same spool.
        eventlog.configure(**_settings(port, db))
        new = _log("new", 100)
        assert eventlog.flush(20)
        receiver.wait_for(2100, timeout=20)
        time.sleep(0.5)  # a duplicate would arrive right behind
        got = [e["id"] for e in receiver.events()]
    finally:
        receiver.stop()
    assert [i for i, n in Counter(got).items() if n > 1] == []
    assert Counter(got) == Counter(backlog + new)
    assert _ids_in_spool(db) == []


def test_rows_the_old_pipeline_hands_back_are_sent_by_the_new_one_without_a_new_event(db: Path) -> None:
    port = free_port()
    eventlog.configure(**_settings(port, db))
    backlog = _log("backlog", 1000)
    _wait(lambda: len(_ids_in_spool(db)) == 1000)
    eventlog.configure(**_settings(port, db, shutdown_timeout=0.2))  # the old one gives up, hands back
    with LineReceiver(port=port) as receiver:  # the peer returns; nothing more is logged
        assert receiver.wait_for(1000, timeout=30)
        got = [e["id"] for e in receiver.events()]
    assert Counter(got) == Counter(backlog)


def test_two_live_spools_of_one_process_never_take_each_others_rows(
    db: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import eventlog._spool.sqlite as spool_module
    from eventlog._records.batch import Record

    monkeypatch.setattr(spool_module, "HOUSEKEEPING_SECONDS", 0.0)  # look for freed rows every call
    first = spool_module.SQLiteSpool(str(db), "json")
    records = [Record(f"first-{n:06d}", "a", 0, b'{"n":%d}\n' % n) for n in range(500)]
    first.add(records)
    second = spool_module.SQLiteSpool(str(db), "json")
    assert second.pending(1000) == []  # the first one's rows: not free, not the second's
    assert [r.id for r in first.pending(1000)] == [r.id for r in records]
    first.close()  # hands its rows back ...
    assert [r.id for r in second.pending(1000)] == [r.id for r in records]  # ... to the next
    second.close()


# ---------------------------------------------------------------- item 11: rows know where they go


def test_rows_of_another_destination_stay_for_it_and_replay_sends_them_there(db: Path) -> None:
    port_a = free_port()  # application A's collector: down while A runs
    child = subprocess.Popen(
        [
            sys.executable,
            str(CHILD),
            json.dumps({"db": str(db), "port": port_a, "prefix": "app_a", "count": 1000, "after": "sleep"}),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=HERE.parent,
    )
    try:
        _wait(lambda: len(_ids_in_spool(db)) == 1000)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    a_ids = {f"app_a-{n:08d}" for n in range(1000)}
    assert set(_ids_in_spool(db)) == a_ids

    with LineReceiver() as collector_b:
        pipeline = eventlog.configure(**_settings(collector_b.port, db))
        b_ids = _log("app_b", 100)
        assert eventlog.flush(10)
        time.sleep(1.5)  # past a housekeeping round: A's rows are free (A is dead) ...
        assert eventlog.flush(10)
        eventlog.shutdown(5)
        collector_b.wait_for(100)
        time.sleep(0.3)
        got_b = [e["id"] for e in collector_b.events()]
    assert Counter(got_b) == Counter(b_ids)  # ... and still not B's to send
    assert set(_ids_in_spool(db)) == a_ids
    assert pipeline.stats.sent == 100

    info = _cli("info", "--db", str(db))
    assert info.returncode == 0, info.stderr
    assert f"to       1000 as json for tcp 127.0.0.1:{port_a}" in info.stdout

    with LineReceiver(port=port_a) as collector_a:
        replay = _cli("replay", "--db", str(db))  # no EVENTLOG_HOST: the rows say where
        assert replay.returncode == 0, replay.stderr
        collector_a.wait_for(1000)
        got_a = [e["id"] for e in collector_a.events()]
    assert f"sent 1000 events to tcp as json (tcp 127.0.0.1:{port_a})" in replay.stdout
    assert Counter(got_a) == Counter(a_ids)
    assert _ids_in_spool(db) == []


def test_a_changed_timeout_does_not_strand_the_rows_of_the_run_before(db: Path) -> None:
    port = free_port()
    eventlog.configure(**_settings(port, db, shutdown_timeout=0.2))
    before = _log("before", 300)
    _wait(lambda: len(_ids_in_spool(db)) == 300)
    eventlog.shutdown(0.2)
    with LineReceiver(port=port) as receiver:
        # How it sends changed, not where: the rows are this pipeline's.
        eventlog.configure(**_settings(port, db, tcp_connect_timeout=2.0, tcp_send_timeout=3.0))
        assert eventlog.flush(20)
        receiver.wait_for(300)
        assert Counter(e["id"] for e in receiver.events()) == Counter(before)


# ---------------------------------------------------------------- item 12: replay without a peer


def _legacy_rows(db: Path, count: int) -> list[str]:
    """Rows as eventlog 0.1.0 wrote them: no destination recorded."""
    ids = [f"legacy-{n:06d}" for n in range(count)]
    payloads = [json.dumps({"id": i}).encode() + b"\n" for i in ids]
    fd = os.open(db, os.O_CREAT | os.O_WRONLY, 0o600)
    os.close(fd)
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.executescript(
            "CREATE TABLE batches (seq INTEGER PRIMARY KEY AUTOINCREMENT, format TEXT NOT NULL, "
            "events INTEGER NOT NULL, records TEXT NOT NULL, payloads BLOB NOT NULL, added REAL NOT NULL, "
            "owner TEXT); CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        )
        conn.execute(
            "INSERT INTO batches (format, events, records, payloads, added) VALUES ('json', ?, ?, ?, ?)",
            (
                count,
                json.dumps([[i, "a", 0, len(p)] for i, p in zip(ids, payloads)]),
                b"".join(payloads),
                time.time(),
            ),
        )
        conn.commit()
    return ids


def test_replay_without_a_destination_refuses_and_keeps_every_row(db: Path) -> None:
    ids = _legacy_rows(db, 200)
    replay = _cli("replay", "--db", str(db))
    assert replay.returncode == 2
    assert "200 events (json) record no destination" in replay.stderr
    assert "set EVENTLOG_HOST" in replay.stderr and "--to console" in replay.stderr
    assert '"id"' not in replay.stderr + replay.stdout  # nothing printed as if sent
    assert "200 left in the spool" in replay.stdout
    assert _ids_in_spool(db) == ids


def test_replay_to_the_console_is_a_choice_and_deletes_nothing(db: Path) -> None:
    ids = _legacy_rows(db, 50)
    replay = _cli("replay", "--db", str(db), "--to", "console")
    assert replay.returncode == 0, replay.stderr
    assert [json.loads(line)["id"] for line in replay.stdout.splitlines()] == ids
    assert "printed 50 events; the spool still holds them" in replay.stderr
    assert _ids_in_spool(db) == ids


def test_replay_of_rows_without_a_destination_goes_where_the_environment_says(db: Path) -> None:
    ids = _legacy_rows(db, 80)
    with LineReceiver() as receiver:
        env = {"EVENTLOG_TRANSPORT": "tcp", "EVENTLOG_HOST": "127.0.0.1", "EVENTLOG_PORT": str(receiver.port)}
        replay = _cli("replay", "--db", str(db), env=env)
        assert replay.returncode == 0, replay.stderr
        receiver.wait_for(80)
        assert [e["id"] for e in receiver.events()] == ids
    assert _ids_in_spool(db) == []


def test_replay_to_an_environment_that_names_only_the_console_is_refused(db: Path) -> None:
    ids = _legacy_rows(db, 30)
    replay = _cli("replay", "--db", str(db), "--to", "environment", env={"EVENTLOG_TRANSPORT": "console"})
    assert replay.returncode == 2
    assert "the console is not a peer" in replay.stderr
    assert _ids_in_spool(db) == ids
