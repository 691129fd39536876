"""The SQLite spool behind ``EVENTLOG_DB``: formatted events wait here until delivered.

One row per batch: the formatted payloads back to back in a BLOB (any
format), beside each event's id, action and time and the name of the format
that produced them, so a restart with another format never sends bytes the
peer cannot read.  The database runs in WAL mode; the worker writes one
transaction per batch.

Many processes may share one path (gunicorn workers).  A row belongs to the
process that added or claimed it (``owner`` = pid and process start time);
only its owner sends it, so no row goes out twice.  Rows whose owner died are
reclaimed by any live process; rows a process could not send before it shut
down are released for the next one.

Faults degrade, never break the application: a file that is not a readable
SQLite database is moved aside (``<path>.corrupt-<UTC time>``) and a fresh
spool is started; a full disk, a read-only path or a path another user could
read, change or redirect (:func:`check_path`) raises :class:`SpoolUnavailable`,
on which the engine sends the batch from memory until the spool can be used
again.

Its file is opened, checked and moved aside by :mod:`eventlog.spool.database`;
row owners are process identities (:mod:`eventlog.spool.identity`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from eventlog.batch import Record, _new_tuple
from eventlog.spool.database import (
    _classify,
    _connect,
    _filesystem_state,
    _is_corruption,
    _path_lock,
    _transaction,
    move_aside,
    open_database,
)
from eventlog.spool.identity import owner_alive, process_identity
from eventlog.spool.protocol import SpoolCorrupt, SpoolUnavailable

_orjson: Any
try:
    import orjson as _orjson
except ImportError:  # orjson is a dependency; a build without it reads and writes the same text
    _orjson = None

if TYPE_CHECKING:
    from eventlog.config import Settings

log = logging.getLogger("eventlog")

#: How often the worker reclaims rows of dead processes, evicts by age and frees pages.
HOUSEKEEPING_SECONDS = 1.0
#: After a failed write, how long the spool is left alone before it is tried again.
RETRY_SECONDS = 1.0
#: Free pages beyond this are returned to the file system, a few at a time.
FREE_PAGES_KEPT = 256
VACUUM_STEP_PAGES = 128
#: Rough per-row overhead on top of the payload, to turn bytes over the limit into rows.
ROW_OVERHEAD = 96
#: Batches just added are kept in memory too (up to this many), so sending them
#: right away does not read their payloads back from the file.
RECENT_MAX = 10
#: Rows read back beyond those a pending() sends, in the same query (a backlog).
READ_AHEAD_ROWS = 3
#: Free rows (batches) one process claims at a time.
CLAIM_ROWS = 8


#: Connections inherited from a parent process: kept referenced, never closed in the
#: child, because closing would touch the parent's locks and WAL index.
_inherited: list[sqlite3.Connection] = []

#: Every open spool, so a fork waits until no thread is inside SQLite: a child must
#: not inherit SQLite's mutexes or lock bookkeeping in the middle of a call.
_spools: weakref.WeakSet[SQLiteSpool] = weakref.WeakSet()
_held: list[threading.Lock] = []


def _before_fork() -> None:
    for spool in list(_spools):
        spool._lock.acquire()
        _held.append(spool._lock)


def _after_fork_in_parent() -> None:
    while _held:
        _held.pop().release()


def _after_fork_in_child() -> None:
    _held.clear()  # the child's spools get fresh locks (SQLiteSpool.after_fork)
    for spool in list(_spools):
        spool._lock = threading.Lock()


os.register_at_fork(
    before=_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)


# ---------------------------------------------------------------- the spool


class SQLiteSpool:
    """The spool of one pipeline (see the module docstring).

    The worker thread calls ``add``, ``pending`` and ``remove``; metrics and
    ``flush`` may call ``depth`` from other threads, so a lock guards the
    connection.
    """

    def __init__(
        self,
        path: str,
        format_name: str,
        *,
        max_bytes: int = 0,
        max_age: float = 0.0,
        synchronous: str = "NORMAL",
        row_events: int = 500,
        on_evict: Callable[[str, int], None] | None = None,
    ) -> None:
        self.path = path
        self.format_name = format_name
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.synchronous = synchronous
        self.row_events = row_events
        #: Told (reason, count) when the size or age limit drops events: the pipeline counts them.
        self.on_evict = on_evict
        self._maybe_free = True  # rows without an owner may exist: look before claiming
        self.moved_aside: str | None = None
        self._lock = threading.Lock()
        _spools.add(self)
        self._conn: sqlite3.Connection | None = None
        self._owner = process_identity(os.getpid()) or f"{os.getpid()}:0"
        self._retry_at = 0.0  # while unavailable: monotonic time of the next try
        self._unavailable: str | None = None  # the reason, while the spool cannot be written
        # What the last pending() returned, and for each of its rows (seq, start, end) in it:
        # remove() of that very list deletes its rows without looking at each event.
        self._batch: list[Record] = []
        self._batch_rows: list[tuple[int, int, int]] = []
        self._events_of: dict[int, int] = {}  # seq -> events, of those rows
        self._recent: dict[int, list[Record]] = {}  # seq -> records this process just added
        self._unremoved: dict[int, int] = {}  # seq -> events: sent, delete failed; retried
        # seq -> events of every row this process owns: only the owner changes its rows,
        # so pending() needs no query in the steady state (each query gives the GIL away).
        self._own: dict[int, int] = {}
        self._bytes_since_check = float("inf")  # payload bytes added since the size check
        self._next_housekeeping = 0.0
        self._warned_formats: set[str] = set()
        self._page_size = 4096
        # On failure: logged once; the engine sends from memory until the spool works.
        with contextlib.suppress(SpoolUnavailable):
            self._open()

    # ------------------------------------------------------------ connection

    def _open(self) -> sqlite3.Connection:
        if self._conn is not None:
            return self._conn
        if self._unavailable is not None and time.monotonic() < self._retry_at:
            raise SpoolUnavailable(self._unavailable, f"spool {self.path} unavailable")
        try:
            conn, moved = open_database(self.path, self.synchronous)
        except (OSError, sqlite3.Error) as exc:
            self._failed(exc, "open")
        self.moved_aside = moved or self.moved_aside
        self._conn = conn
        self._recent.clear()
        self._maybe_free = True
        self._own = dict(conn.execute("SELECT seq, events FROM batches WHERE owner = ?", (self._owner,)))
        self._page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        self._next_housekeeping = 0.0
        return conn

    def _failed(self, exc: BaseException, doing: str) -> NoReturn:
        """Turn a write failure into SpoolUnavailable (logged once per outage); never returns."""
        if _is_corruption(exc):
            self._recover_corruption(exc)
            raise SpoolUnavailable("corrupt", f"spool {self.path} was corrupt: {exc}")
        reason = exc.reason if isinstance(exc, SpoolUnavailable) else _classify(exc)
        if reason == "io_error":
            reason = _filesystem_state(self.path) or reason
        if self._unavailable is None and reason == "unsafe_path":
            log.warning(
                "the spool %s is refused: %s. Events are sent from memory (lost if the process "
                "dies) until it is fixed; it is checked again every %g s",
                self.path,
                exc,
                RETRY_SECONDS,
            )
        elif self._unavailable is None:
            log.warning(
                "the spool %s cannot be written (%s: %s while trying to %s); events are "
                "sent from memory (lost if the process dies) until it can be written again",
                self.path,
                reason,
                exc,
                doing,
            )
        self._unavailable = reason
        self._retry_at = time.monotonic() + RETRY_SECONDS
        raise SpoolUnavailable(reason, f"spool {self.path}: {reason}: {exc}") from None

    def _recover_corruption(self, exc: BaseException) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._batch, self._batch_rows = [], []
        self._events_of.clear()
        self._unremoved.clear()
        self._own.clear()
        self._recent.clear()  # a fresh file numbers its rows from 1 again
        try:
            with _path_lock(self.path):
                # Another process may have moved it already: check before renaming.
                probe = None
                try:
                    probe = _connect(self.path, self.synchronous)
                except SpoolCorrupt:
                    self.moved_aside = move_aside(self.path)
                    log.warning(
                        "the spool %s became unreadable (%s); it was moved to %s and a fresh spool started",
                        self.path,
                        exc,
                        self.moved_aside,
                    )
                finally:
                    if probe is not None:
                        probe.close()
        except (OSError, sqlite3.Error):
            pass
        self._retry_at = 0.0

    def _recovered(self) -> None:
        if self._unavailable is not None:
            log.warning("the spool %s can be written again; spool mode resumes", self.path)
            self._unavailable = None

    # ------------------------------------------------------------ the Spool protocol

    def add(self, records: Sequence[Record]) -> None:
        """Store events, one row per ``row_events``, in one statement.

        Few SQLite calls per batch: each lets the application's thread take the
        GIL for a while (a switch interval) before the worker gets it back.
        """
        if not records:
            return
        now, fmt, owner, size = time.time(), self.format_name, self._owner, self.row_events
        chunks = [records[i : i + size] for i in range(0, len(records), size)]
        rows = [
            (
                fmt,
                len(chunk),
                _index([[r.id, r.action, r.time_ns, len(r.payload)] for r in chunk]),
                b"".join(r.payload for r in chunk),
                now,
                owner,
            )
            for chunk in chunks
        ]
        values = ", ".join(["(?, ?, ?, ?, ?, ?)"] * len(rows))
        params = [value for row in rows for value in row]
        with self._lock:
            conn = self._open()
            try:
                # One statement, its own transaction: its rows get contiguous seqs.
                last = conn.execute(
                    f"INSERT INTO batches (format, events, records, payloads, added, owner) VALUES {values}",
                    params,
                ).lastrowid
                assert last is not None
                first = last - len(chunks) + 1
                for offset, chunk in enumerate(chunks):
                    self._own[first + offset] = len(chunk)
                    self._remember(first + offset, list(chunk))
                self._recovered()
            except (OSError, sqlite3.Error) as exc:
                self._failed(exc, "store a batch")
            # The batch is stored (its INSERT committed): a failure from here on must not
            # make the engine send it from memory too, or it would go out twice.
            try:
                self._bytes_since_check += sum(len(row[3]) for row in rows)
                if self._bytes_since_check >= self.max_bytes // 64:
                    self._bytes_since_check = 0
                    self._enforce_size(conn)
                if time.monotonic() >= self._next_housekeeping:
                    self._housekeeping(conn)  # also while a send is being retried
            except (OSError, sqlite3.Error) as exc:
                self._next_housekeeping = time.monotonic() + 1.0
                log.warning("spool upkeep failed, will try again: %s", exc)

    def pending(self, limit: int) -> list[Record]:
        """The oldest events this process may send (claiming free rows), in order.

        Whole stored batches, at least one, up to ``limit`` events when they fit.
        """
        while True:
            batch, again = self._pending_once(limit)
            if not again:
                return batch

    def _pending_once(self, limit: int) -> tuple[list[Record], bool]:
        """One try of :meth:`pending`; ``again`` when every chosen row had vanished."""
        with self._lock:
            conn = self._open()
            try:
                self._retry_removals(conn)
                if time.monotonic() >= self._next_housekeeping:
                    self._housekeeping(conn)
                fmt, owner, skip = self.format_name, self._owner, self._unremoved
                # Free rows (left by an earlier run or a dead process) go first: claim
                # them.  Housekeeping says when there may be some.
                if self._maybe_free:
                    claimed = conn.execute(
                        "UPDATE batches SET owner = ? WHERE seq IN (SELECT seq FROM batches "
                        "WHERE owner IS NULL AND format = ? ORDER BY seq LIMIT ?) "
                        "RETURNING seq, events",
                        (owner, fmt, CLAIM_ROWS),
                    ).fetchall()
                    self._own.update(claimed)
                    self._maybe_free = len(claimed) == CLAIM_ROWS
                chosen: list[int] = []
                total = 0
                self._events_of = {}
                for seq in sorted(self._own):
                    if seq in skip:
                        continue
                    events = self._own[seq]
                    if chosen and total + events > limit:
                        break
                    chosen.append(seq)
                    total += events
                    self._events_of[seq] = events
                recent = self._recent
                missing = [seq for seq in chosen if seq not in recent]
                ahead: list[int] = []
                if missing:
                    # A backlog is read back a few rows per query: each SQLite call gives the
                    # GIL away, and in a flood getting it back waits out the caller's switch
                    # interval.  The rows read ahead wait in `recent` for the next pending().
                    after = chosen[-1]
                    ahead = [
                        seq
                        for seq in sorted(self._own)
                        if seq > after and seq not in skip and seq not in recent
                    ][:READ_AHEAD_ROWS]
                loaded = (
                    {
                        seq: _decode(index, payloads)
                        for seq, index, payloads in conn.execute(
                            "SELECT seq, records, payloads FROM batches "
                            "WHERE seq IN (SELECT value FROM json_each(?))",
                            (json.dumps(missing + ahead),),
                        )
                    }
                    if missing
                    else {}
                )
                for seq in ahead:
                    if seq in loaded:
                        self._remember(seq, loaded.pop(seq))
                # Rows that vanished (purged, or evicted by another process) are no longer
                # ours: forget them, or the oldest would be chosen again and again.
                gone = [seq for seq in missing if seq not in loaded]
                for seq in gone:
                    self._own.pop(seq, None)
                    self._events_of.pop(seq, None)
                if gone and len(gone) == len(chosen):
                    return [], bool(self._own)
            except (OSError, sqlite3.Error) as exc:
                self._failed(exc, "read pending events")
        batch: list[Record] = []
        rows = []
        for seq in chosen:
            records = recent.get(seq) or loaded.get(seq) or []  # [] if purged meanwhile
            rows.append((seq, len(batch), len(batch) + len(records)))
            batch.extend(records)
        self._batch, self._batch_rows = batch, rows
        return batch, False

    def _remember(self, seq: int, records: list[Record]) -> None:
        recent = self._recent
        recent[seq] = records
        # Bounded memory in an outage.  The row sent last goes first: the oldest rows are
        # the next to be sent, so keeping them spares a read back from the file.
        while len(recent) > RECENT_MAX:
            del recent[max(recent)]

    def remove(self, records: Sequence[Record]) -> None:
        """Delete what was delivered (or given up): the rows ``pending`` returned it from.

        Called right after the peer acknowledged the batch: until this DELETE
        commits, a ``kill -9`` makes the next run send the batch again.
        """
        rows, batch = self._batch_rows, self._batch
        if records is batch:  # the whole batch, as the engine removes it: nothing per event
            done, self._batch, self._batch_rows = rows, [], []
        else:  # a part of it: the rows its events came from
            ids = {record.id for record in records}
            done = [row for row in rows if any(r.id in ids for r in batch[row[1] : row[2]])]
            self._batch_rows = [row for row in rows if row not in done]
        seqs = [seq for seq, _, _ in done]
        if not seqs:
            return
        with self._lock:
            for seq in seqs:
                self._unremoved[seq] = self._events_of.get(seq, 0)
            if self._conn is None:
                return
            try:
                self._retry_removals(self._conn)
            except (OSError, sqlite3.Error) as exc:
                # Kept in memory and retried, so the rows are not sent twice by us.
                with contextlib.suppress(SpoolUnavailable):
                    self._failed(exc, "delete delivered events")

    def depth(self) -> int:
        """Events waiting in the spool file (every process's, every format)."""
        with self._lock:
            if self._conn is None:
                return 0
            try:
                count = int(self._conn.execute("SELECT COALESCE(SUM(events), 0) FROM batches").fetchone()[0])
            except sqlite3.Error:
                return 0
            return max(0, count - sum(self._unremoved.values()))

    def release(self) -> None:
        """Hand the rows this process owns back, for the next process or run to send."""
        with self._lock:
            conn = self._conn
            if conn is None:
                return
            with contextlib.suppress(sqlite3.Error):
                self._retry_removals(conn)
            with contextlib.suppress(sqlite3.Error), _transaction(conn):
                conn.execute("UPDATE batches SET owner = NULL WHERE owner = ?", (self._owner,))
            self._own.clear()

    def close(self) -> None:
        """Release this process's rows and close the file."""
        self.release()
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                conn.close()

    def after_fork(self) -> None:
        """In a forked child: forget the parent's connection and rows, become a new owner."""
        self._lock = threading.Lock()
        if self._conn is not None:
            _inherited.append(self._conn)
            self._conn = None
        self._owner = process_identity(os.getpid()) or f"{os.getpid()}:0"
        self._batch, self._batch_rows = [], []
        self._events_of = {}
        self._unremoved = {}
        self._recent = {}
        self._own = {}
        self._unavailable = None
        self._retry_at = 0.0

    # ------------------------------------------------------------ upkeep

    def _retry_removals(self, conn: sqlite3.Connection) -> None:
        if not self._unremoved:
            return
        seqs = list(self._unremoved)
        self._delete_rows(conn, seqs)  # one statement, its own transaction
        self._forget(seqs)

    @staticmethod
    def _delete_rows(conn: sqlite3.Connection, seqs: list[int]) -> None:
        conn.execute(
            "DELETE FROM batches WHERE seq IN (SELECT value FROM json_each(?))",
            (json.dumps(seqs),),
        )

    def _forget(self, seqs: list[int]) -> None:
        """Rows deleted: no longer waiting for a delete, nor remembered."""
        for seq in seqs:
            self._unremoved.pop(seq, None)
            self._recent.pop(seq, None)
            self._own.pop(seq, None)

    def _housekeeping(self, conn: sqlite3.Connection) -> None:
        """Reclaim rows of dead processes, evict by age, hand free pages back."""
        self._next_housekeeping = time.monotonic() + HOUSEKEEPING_SECONDS
        owners = [
            row[0]
            for row in conn.execute("SELECT DISTINCT owner FROM batches WHERE owner IS NOT NULL").fetchall()
        ]
        dead = [o for o in owners if o != self._owner and not owner_alive(o)]
        if not self._maybe_free:
            self._maybe_free = (
                bool(dead)
                or conn.execute(
                    "SELECT 1 FROM batches WHERE owner IS NULL AND format = ? LIMIT 1",
                    (self.format_name,),
                ).fetchone()
                is not None
            )
        if dead:
            with _transaction(conn):
                conn.executemany("UPDATE batches SET owner = NULL WHERE owner = ?", [(o,) for o in dead])
        if self.max_age:
            cutoff = time.time() - self.max_age
            in_flight = {seq for seq, _, _ in self._batch_rows}
            old = [
                (seq, events)
                for seq, events in conn.execute(
                    "SELECT seq, events FROM batches WHERE added < ? AND (owner IS NULL OR owner = ?)",
                    (cutoff, self._owner),
                )
                if seq not in in_flight
            ]
            if old:
                self._evict(conn, [seq for seq, _ in old], "spool_max_age")
        others = conn.execute(
            "SELECT format, SUM(events) FROM batches WHERE format != ? AND owner IS NULL GROUP BY format",
            (self.format_name,),
        ).fetchall()
        for fmt, count in others:
            if fmt not in self._warned_formats:
                self._warned_formats.add(fmt)
                log.warning(
                    "the spool %s holds %d events formatted as %r, but this pipeline sends %r; "
                    "they are kept, not sent: deliver them with EVENTLOG_FORMAT=%s eventlog spool "
                    "replay --db %s, or drop them with eventlog spool purge --db %s --format %s",
                    self.path,
                    count,
                    fmt,
                    self.format_name,
                    fmt,
                    self.path,
                    self.path,
                    fmt,
                )
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        if free > FREE_PAGES_KEPT:
            # A few pages per round, so the worker never stalls on one big vacuum.
            # executescript steps it to the end; execute() would free a single page
            conn.executescript(f"PRAGMA incremental_vacuum({VACUUM_STEP_PAGES});")

    def _used_bytes(self, conn: sqlite3.Connection) -> int:
        used = conn.execute(
            "SELECT (SELECT page_count FROM pragma_page_count()) - "
            "(SELECT freelist_count FROM pragma_freelist_count())"
        ).fetchone()[0]
        return int(used) * self._page_size

    def _enforce_size(self, conn: sqlite3.Connection) -> None:
        """Over ``max_bytes``: evict the oldest rows not being sent right now."""
        if not self.max_bytes:
            return
        excess = self._used_bytes(conn) - self.max_bytes
        if excess <= 0:
            return
        excess += self.max_bytes // 10  # some room, so the next batch does not evict again
        in_flight = {seq for seq, _, _ in self._batch_rows}
        doomed: list[int] = []
        freed = 0
        for seq, size in conn.execute(
            "SELECT seq, length(payloads) + length(records) FROM batches "
            "WHERE owner IS NULL OR owner = ? ORDER BY seq",
            (self._owner,),
        ):
            if seq in in_flight:
                continue
            doomed.append(seq)
            freed += size + ROW_OVERHEAD
            if freed >= excess:
                break
        if doomed:
            self._evict(conn, doomed, "spool_max_bytes")

    def _evict(self, conn: sqlite3.Connection, seqs: list[int], reason: str) -> None:
        """Delete rows for a limit, counting only what was deleted.

        Another process may have claimed a row since it was selected: the owner
        condition leaves it to that process, so no event is counted twice.
        """
        deleted = conn.execute(
            "DELETE FROM batches WHERE seq IN (SELECT value FROM json_each(?)) "
            "AND (owner IS NULL OR owner = ?) RETURNING events",
            (json.dumps(seqs), self._owner),
        ).fetchall()
        self._forget(seqs)
        count = sum(events for (events,) in deleted)
        if count:
            self._evicted(reason, count)

    def _evicted(self, reason: str, count: int) -> None:
        if self.on_evict is not None:
            self.on_evict(reason, count)


def _index(entries: list[list[object]]) -> str:
    """A row's index (id, action, time, payload size of each event) as JSON text.

    orjson: about 1k instructions an event where the stdlib encoder takes 8k,
    in the worker, whose every instruction the application pays for (one GIL).
    """
    if _orjson is not None:
        text: str = _orjson.dumps(entries).decode()
        return text
    return json.dumps(entries, separators=(",", ":"))


def _decode(index: str, payloads: bytes) -> list[Record]:
    """The records of one stored batch."""
    records = []
    offset = 0
    # Read back in a backlog (rows past RECENT_MAX): orjson and tuple.__new__ (the
    # NamedTuple's Python-level __new__ costs more than the tuple) keep it cheap.
    loads = json.loads if _orjson is None else _orjson.loads
    for id_, action, time_ns, size in loads(index):
        end = offset + size
        records.append(_new_tuple(Record, (id_, action, time_ns, payloads[offset:end])))
        offset = end
    return records


def open_spool(
    settings: Settings, format_name: str, on_evict: Callable[[str, int], None] | None = None
) -> SQLiteSpool:
    """The spool at ``settings.db`` for payloads formatted as ``format_name`` (the pipeline's entry point)."""
    return SQLiteSpool(
        settings.db,
        format_name,
        max_bytes=settings.spool_max_bytes,
        max_age=settings.spool_max_age,
        synchronous=settings.spool_sync.upper(),
        row_events=settings.batch_size,
        on_evict=on_evict,
    )
