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

Its file is opened, checked and moved aside by :mod:`eventlog._spool.database`;
row owners are process identities (:mod:`eventlog._spool.identity`).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import logging
import math
import operator
import os
import sqlite3
import threading
import time
import urllib.parse
import weakref
import zlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from eventlog._core.diagnostics import Warnings
from eventlog._core.errors import ConfigurationError, DamagedRow
from eventlog._records.batch import EncodedBatch, Heads, Record, SheddableRecord, _new_tuple
from eventlog._spool.database import (
    BUSY_TIMEOUT_MS,
    SQLITE_SIBLINGS,
    _classify,
    _connect,
    _filesystem_state,
    _is_busy,
    _is_corruption,
    _path_lock,
    _transaction,
    move_aside,
    open_database,
)
from eventlog._spool.identity import closed, new_owner, owner_alive
from eventlog._spool.protocol import SpoolCorrupt, SpoolUnavailable

_orjson: Any
try:
    import orjson as _orjson
except ImportError:  # orjson is a dependency; a build without it reads and writes the same text
    _orjson = None

if TYPE_CHECKING:
    from eventlog._config.config import Settings

log = logging.getLogger(__name__)
_T = TypeVar("_T")

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
#: How long one SQLite statement of the worker waits for another process's write lock
#: while holding the spool's lock.  Between tries the lock is let go, so a fork or a
#: metrics scrape never waits out the whole busy timeout (BUSY_TIMEOUT_MS) behind it.
BUSY_STEP_MS = 50
#: How often the worker looks at the spool file between retries (:meth:`SQLiteSpool.watch`).
WATCH_SECONDS = 0.1
#: How long a carry waits for another connection's lock on the old file before giving up.
CARRY_BUSY_SECONDS = 1.0
#: How long ``depth()`` (a metrics scrape, ``flush``) waits for the spool's lock before
#: answering with the last depth it read.
DEPTH_WAIT_SECONDS = 0.05


#: Connections to files no longer at a spool's path (``_retired``) inherited from a parent
#: process: kept referenced, never closed in the child, which never opens those files again
#: (closing could checkpoint and delete a WAL by its name, which is the new file's by now).
_inherited: list[sqlite3.Connection] = []

#: Every open spool, so a fork waits until no thread is inside SQLite: a child must
#: not inherit SQLite's mutexes or lock bookkeeping in the middle of a call.
_spools: weakref.WeakSet[_Connection] = weakref.WeakSet()
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
    spools = list(_spools)
    for spool in spools:
        spool._lock = threading.Lock()
    # Every inherited connection to a spool file is closed before any spool of the child
    # opens one again (see SQLiteSpool.after_fork).
    for spool in spools:
        spool._close_inherited()


os.register_at_fork(
    before=_before_fork,
    after_in_parent=_after_fork_in_parent,
    after_in_child=_after_fork_in_child,
)


# ---------------------------------------------------------------- the spool


class _Connection:
    """The spool's state, its connection and lock, and the file under our feet (part of SQLiteSpool)."""

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
        destination: str | None = None,
        claim: str = "mine",
        on_drop: Callable[[str, int], None] | None = None,
        on_quarantine: Callable[[str, int], None] | None = None,
        on_reopen: Callable[[str], None] | None = None,
    ) -> None:
        self.path = os.path.abspath(path)  # a chdir later must not move the spool
        self.format_name = format_name
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.synchronous = synchronous
        self.row_events = row_events
        #: Told (reason, count) when the size or age limit drops events: the pipeline counts them.
        self.on_evict = on_evict
        #: Where this pipeline's rows go (:func:`destination_of`), written into each row.
        self.destination = destination
        # Which free rows this spool may claim: "mine" (its destination's, and rows of a
        # 0.1.0 spool, which record none), "exact" (only its destination's: a replay of
        # one destination) or "any" (every row of its format: a replay told where to send).
        if claim not in ("mine", "exact", "any"):
            raise ConfigurationError(f"claim must be 'mine', 'exact' or 'any', not {claim!r}")
        self.claim = claim
        #: Told (reason, count) when events are set aside: a row quarantined, an event unstorable.
        self.on_drop = on_drop
        #: Told (reason, rows) for each row moved to the quarantine table.
        self.on_quarantine = on_quarantine
        #: Told (reason) when the file was deleted or replaced and a fresh one opened.
        self.on_reopen = on_reopen
        #: Told when another spool of this process on the same file handed its rows back.
        self.on_released: Callable[[], None] | None = None
        #: Told (class, reason, count) when a limit evicts events (overload control).
        self.on_evict_class: Callable[[str, str, int], None] | None = None
        #: Rows quarantined by this instance, by reason (what ``eventlog spool replay`` reports).
        self.quarantined: dict[str, int] = {}
        self._maybe_free = True  # rows without an owner may exist: look before claiming
        self.moved_aside: str | None = None
        self._lock = threading.Lock()
        _spools.add(self)
        self._conn: sqlite3.Connection | None = None
        self._file_id: tuple[int, int] | None = None  # (st_dev, st_ino) of the file opened
        self._wal_id: tuple[int, int] | None = None  # and of its WAL, at its name when opened
        self._retired: list[sqlite3.Connection] = []  # of files replaced under us: never closed
        self._owner = new_owner()
        self._retry_at = 0.0  # while unavailable: monotonic time of the next try
        self._unavailable: str | None = None  # the reason, while the spool cannot be written
        # What the last pending() returned, and for each of its rows (seq, start, end) in it:
        # remove() of that very list deletes its rows without looking at each event.
        self._batch: Sequence[Record] = []
        self._batch_rows: list[tuple[int, int, int]] = []
        self._events_of: dict[int, int] = {}  # seq -> events, of those rows
        self._recent: dict[int, Sequence[Record]] = {}  # seq -> records this process just added
        self._unremoved: dict[int, int] = {}  # seq -> events: sent, delete failed; retried
        # seq -> events of every row this process owns: only the owner changes its rows,
        # so pending() needs no query in the steady state (each query gives the GIL away).
        self._own: dict[int, int] = {}
        self._bytes_since_check = float("inf")  # payload bytes added since the size check
        self._next_housekeeping = 0.0
        self._warnings = Warnings(logger=log)
        self._page_size = 4096
        self._depth = 0  # the last depth read, answered when the lock is busy
        self._next_watch = 0.0
        # On failure: logged once; the engine sends from memory until the spool works.
        # Another process holding the write lock: the worker opens it later.
        with contextlib.suppress(SpoolUnavailable, OSError, sqlite3.Error), self._lock:
            self._open()

    def _open(self, *, now: bool = False) -> sqlite3.Connection:
        """The connection, opened when needed; the caller holds the lock.

        Raises SpoolUnavailable, or the SQLite error when another process holds
        the lock (for :meth:`_locked` to try again after letting go of ours).
        While unavailable, the path is tried again only after RETRY_SECONDS,
        unless ``now`` (a carry out of a file that left the path cannot wait).
        """
        if self._conn is not None:
            return self._conn
        if self._unavailable is not None and time.monotonic() < self._retry_at and not now:
            raise SpoolUnavailable(self._unavailable, f"spool {self.path} unavailable")
        conn: sqlite3.Connection | None = None
        try:
            conn, moved = open_database(self.path, self.synchronous, BUSY_STEP_MS)
            opened = os.stat(self.path)
            own = dict(conn.execute("SELECT seq, events FROM batches WHERE owner = ?", (self._owner,)))
            wal = _identity(self.path + "-wal")  # made by the read above
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        except (OSError, sqlite3.Error) as exc:
            if isinstance(exc, OSError) and conn is not None:
                # Opened, then gone from the path before the stat (ENOENT): never closed, as a
                # replaced file's connection, since closing the last connection to a file
                # deletes the WAL and index at the path's names, which may be another file's
                # by now (the 30-minute run of 7 Dec: "cannot be written (io_error: No such
                # file or directory ... while trying to open)").
                self._retired.append(conn)
            elif conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            if _is_busy(exc):
                raise
            self._failed(exc, "open")
        except SpoolCorrupt as exc:
            # Still unreadable after open_database moved a corrupt file aside (a disk I/O error
            # reads as corruption): unavailable for now, as any failure to open, never raised
            # into configure() or the worker.
            self._failed(SpoolUnavailable(exc.reason, str(exc)), "open")
        self.moved_aside = moved or self.moved_aside
        self._conn = conn
        self._file_id = (opened.st_dev, opened.st_ino)
        self._wal_id = wal
        self._recent.clear()
        self._maybe_free = True
        self._own = own
        self._page_size = page_size
        self._next_housekeeping = 0.0
        return conn

    def _locked(self, doing: str, body: Callable[[sqlite3.Connection], _T]) -> _T:
        """``body(conn)`` under the lock; while another process holds the write lock, try again.

        Each try waits at most BUSY_STEP_MS inside SQLite; between tries the lock
        is free for a fork or a scrape.  After BUSY_TIMEOUT_MS the spool counts as
        unavailable (``locked``) for this call.  A failure raises SpoolUnavailable.
        """
        give_up = time.monotonic() + BUSY_TIMEOUT_MS / 1000
        while True:
            with self._lock:
                try:
                    conn = self._open()
                    self._check_file(conn)
                    return body(self._open())
                except SpoolUnavailable:
                    # Said and timed already (by _failed, or _open's wait until the next try):
                    # through _failed again, each call would put the next try off, and a spool
                    # used more often than RETRY_SECONDS would never be tried again.
                    raise
                except (OSError, sqlite3.Error) as exc:
                    if not _is_busy(exc) or time.monotonic() >= give_up:
                        self._failed(exc, doing)
            time.sleep(BUSY_STEP_MS / 1000)

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
                    probe = _connect(self.path, self.synchronous, BUSY_STEP_MS)
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

    def _close_inherited(self) -> None:
        """In a forked child: close the connection inherited from the parent.

        Left open, it holds SQLite's one lock record per file and process, so the child's
        own connection takes no lock; the parent, closing its last one, then deletes the
        WAL under the child's later rows.  Safe: no thread was inside SQLite at the fork,
        and a fork copies no POSIX lock, so the parent keeps its own.
        """
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def _recovered(self) -> None:
        if self._unavailable is not None:
            log.warning("the spool %s can be written again; spool mode resumes", self.path)
            self._unavailable = None

    def _check_file(self, conn: sqlite3.Connection) -> None:
        """Is the file at the path still the one open, with its WAL?  (:class:`_FileWatch`)"""


class _FileWatch(_Connection):
    """The file deleted, moved or replaced under our feet, or its WAL moved away (part of SQLiteSpool)."""

    def _check_file(self, conn: sqlite3.Connection) -> None:
        """Is the file at the path still the one open?  If not, start a fresh one there.

        One stat per call: a spool deleted (a tmp cleaner, ``rm -rf``) or moved while
        in use would otherwise hold every event in a file nobody can find again, and
        a kill -9 would lose them all.  The rows this instance owns are carried over
        into the fresh file, so durability resumes where it was.
        """
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            now = None
        except OSError:
            return  # cannot tell (a folder made unreadable): carry on with what is open
        else:
            now = (st.st_dev, st.st_ino)
        if now == self._file_id:
            if self._wal_id is not None and _identity(self.path + "-wal") != self._wal_id:
                self._rejoin_wal(conn)
            return
        if now is not None:
            _rejoin_others(self.path, now)  # the file there: its WAL must be at its name first
        gone = "moved" if _still_linked(self._file_id) else "deleted"
        self._replace_file(conn, "replaced" if now is not None else gone)

    def _rejoin_wal(self, conn: sqlite3.Connection) -> None:
        """The file is ours, but its WAL was moved off its name: its rows into the file, and open it again.

        ``mv spool.db* elsewhere/`` renames the file, then its -shm and -wal; a spool that
        notices in between starts the fresh file, and the rest of the move takes the fresh
        file's WAL and index along: its rows are then readable only through this connection
        (a kill -9 loses them, and a reader of the moved file sees them over the wrong file).
        Every connection of this process to the file is closed first: they share one index.
        """
        sharing = [s for s in _spools if s is not self and s._conn and s._file_id == self._file_id]
        taken = [s._lock for s in sharing if s._lock.acquire(blocking=False)]
        try:
            if len(taken) < len(sharing):
                return  # one is busy: the next call tries again
            # The last connection to a file, closing, deletes the WAL and index at the path's
            # names: under the lock that opening takes, so that no fresh file is made there
            # meanwhile (whose they would be), and only while the file is still at the path.
            with _path_lock(self.path):
                if _identity(self.path) != self._file_id:
                    return  # gone meanwhile: the next call starts the fresh file, as for any move
                for spool in (self, *sharing):
                    spool_conn, spool._conn = spool._conn, None
                    if spool_conn is not None:
                        _close_rejoined(spool_conn)
            # Opened again at once: one left closed would open whatever file is at the path
            # at its next call, and lose track of its rows here if this one is moved meanwhile.
            for spool in sharing:
                with contextlib.suppress(SpoolUnavailable, OSError, sqlite3.Error):
                    spool._open()
        finally:
            for lock in taken:
                lock.release()
        log.warning(
            "the spool file %s lost its WAL (moved or deleted by name while in use); its rows were "
            "written into the file, which was opened again",
            self.path,
        )
        self._open()

    def _claim_orphans(self, old: sqlite3.Connection) -> set[int]:
        """In a file about to be left: take the free rows and those of dead owners; return their seqs.

        Taken in the old file, in one transaction, so that of two processes noticing
        the same deletion only one carries them.  Without this they would stay in a
        file nobody opens again, counted nowhere.  Another process writing to the old
        file (a forked child that has it open) raises the busy error, for
        :meth:`_locked` to try again: given up, the free rows stayed behind in the
        deleted file (the 30-minute fault run of 7 Dec: a replaced pipeline's 82 events).
        """
        try:
            owners = [o for (o,) in old.execute("SELECT DISTINCT owner FROM batches WHERE owner IS NOT NULL")]
            dead = [o for o in owners if o != self._owner and not owner_alive(o)]
            with _transaction(old):
                freed = old.execute(
                    "UPDATE batches SET owner = ? WHERE owner IS NULL OR owner IN "
                    "(SELECT value FROM json_each(?)) RETURNING seq",
                    (self._owner, json.dumps(dead)),
                ).fetchall()
        except sqlite3.Error as exc:
            if _is_busy(exc):
                raise
            return set()  # the old file cannot be written: only our own rows are carried
        return {seq for (seq,) in freed}

    def _may_claim(self, fmt: str, destination: str | None) -> bool:
        """Whether a free row of this format and destination is one this spool sends (:meth:`_claimable`)."""
        if fmt != self.format_name:
            return False
        if self.claim == "any":
            return True
        if self.claim == "exact":
            return destination == self.destination
        return destination is None or destination == self.destination

    def _replace_file(self, old: sqlite3.Connection, reason: str) -> None:
        """The file was deleted, moved or replaced: open the one at the path, carry our rows over.

        This instance's rows, and the rows nobody else will carry: free ones (a pipeline
        that configure() replaced released them, a child that shut down) and those of dead
        processes.  Each live instance sharing the file carries its own.
        """
        free = self._claim_orphans(old)
        skip = self._unremoved  # delivered already: not carried over
        rows = [
            row
            for row in old.execute(
                "SELECT seq, format, events, records, payloads, added, destination, shed, checksum "
                "FROM batches WHERE owner = ? ORDER BY seq",
                (self._owner,),
            ).fetchall()
            if row[0] not in skip
        ]
        if reason != "replaced":
            _free_wal_names(old, self.path)
        batch_rows, recent, events_of = self._batch_rows, self._recent, self._events_of
        self._conn = None
        try:
            # At once, even within the retry wait of an open that failed a moment ago (the
            # path gone again as it was made): a close in that wait dropped the rows.
            conn = self._open(now=True)
            renumbered: dict[int, int] = {}
            with _transaction(conn):
                for seq, fmt, events, index, payloads, added, destination, shed, checksum in rows:
                    # A free row this spool does not send (another format or destination) stays free.
                    owner = self._owner if seq not in free or self._may_claim(fmt, destination) else None
                    renumbered[seq] = (
                        conn.execute(
                            "INSERT INTO batches (format, events, records, payloads, added, owner, "
                            "destination, shed, checksum) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (fmt, events, index, payloads, added, owner, destination, shed, checksum),
                        ).lastrowid
                        or 0
                    )
        except BaseException:
            new, self._conn = self._conn, old  # go on with the old file; the next call tries again
            if new is not None and new is not old:
                with contextlib.suppress(sqlite3.Error):
                    new.close()
            self._batch_rows, self._recent, self._events_of = batch_rows, recent, events_of
            raise
        # Never closed: closing would checkpoint and delete the WAL by name, which is the new
        # file's by now.  It keeps the old file's space until the process exits.
        self._retired.append(old)
        # Carried: not to be sent again from a moved file, nor counted twice.  Another
        # connection writing to the old file makes the DELETE busy: tried again for a while,
        # rather than leaving the rows in both files.
        if not _when_not_busy(lambda: old.execute("DELETE FROM batches WHERE owner = ?", (self._owner,))):
            log.warning(
                "the spool file %s was %s: its rows were written to the fresh file there, but could "
                "not be removed from the old one, which still holds them (sent twice if it is replayed)",
                self.path,
                reason,
            )
        with contextlib.suppress(sqlite3.Error):
            old.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
        self._own = {
            renumbered[row[0]]: row[2]
            for row in rows
            if row[0] not in free or self._may_claim(row[1], row[6])
        }
        self._recent = {renumbered[seq]: records for seq, records in recent.items() if seq in renumbered}
        self._batch_rows = [(renumbered[seq], a, b) for seq, a, b in batch_rows if seq in renumbered]
        self._events_of = {renumbered[seq]: n for seq, n in events_of.items() if seq in renumbered}
        self._unremoved = {}
        self._bytes_since_check = float("inf")
        events = sum(row[2] for row in rows)
        what = {
            "deleted": "deleted",
            "moved": "moved or renamed",
            "replaced": "replaced by another file",
        }[reason]
        log.warning(
            "the spool file %s was %s while in use; a fresh spool was started at that path and "
            "the %d events this process had waiting in the old one were written to it, so a "
            "crash no longer loses them (other running processes carry their own rows; free rows "
            "and those of dead processes came along)",
            self.path,
            what,
            events,
        )
        if self.on_reopen is not None:
            self.on_reopen(reason)


class _Upkeep(_FileWatch):
    """Deleting, reclaiming, quarantining and evicting rows (part of SQLiteSpool)."""

    #: Rows of kept events may outlive sheddable ones (overload control); None: max_age.
    kept_max_age: float | None = None

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

    def _free_dead(self, conn: sqlite3.Connection) -> bool:
        """Free the rows of dead owners; True when free rows this instance may claim may exist."""
        owners = [
            row[0]
            for row in conn.execute("SELECT DISTINCT owner FROM batches WHERE owner IS NOT NULL").fetchall()
        ]
        dead = [o for o in owners if o != self._owner and not owner_alive(o)]
        if not self._maybe_free:
            where, params = self._claimable()
            self._maybe_free = (
                bool(dead)
                or conn.execute(
                    f"SELECT 1 FROM batches WHERE owner IS NULL AND {where} LIMIT 1", params
                ).fetchone()
                is not None
            )
        if dead:
            with _transaction(conn):
                conn.executemany("UPDATE batches SET owner = NULL WHERE owner = ?", [(o,) for o in dead])
        return self._maybe_free

    def reclaim(self) -> bool:
        """Free the rows of dead owners now, not at the next housekeeping; True if some may be ours.

        For a flush that found nothing left to send: a forked child may have claimed
        rows this process handed back (its events) and died before sending them.
        """
        try:
            return self._locked("take over the rows of dead processes", self._free_dead)
        except SpoolUnavailable:
            return False

    def _housekeeping(self, conn: sqlite3.Connection) -> None:
        """Reclaim rows of dead processes, evict by age, hand free pages back."""
        self._next_housekeeping = time.monotonic() + HOUSEKEEPING_SECONDS
        self._free_dead(conn)
        kept_max_age = self.max_age if self.kept_max_age is None else self.kept_max_age
        if self.max_age or kept_max_age:
            # Overload control: each class has its age limit (0: none), sheddable rows' the
            # shorter, so they go first; kept rows only once past their own.
            now = time.time()
            cutoffs = {1: now - self.max_age if self.max_age else -math.inf}
            cutoffs[0] = now - kept_max_age if kept_max_age else -math.inf
            in_flight = {seq for seq, _, _ in self._batch_rows}
            old = [
                seq
                for seq, shed, added in conn.execute(
                    "SELECT seq, shed, added FROM batches WHERE added < ? AND (owner IS NULL OR owner = ?) "
                    "ORDER BY shed DESC, seq",
                    (max(cutoffs.values()), self._owner),
                )
                if seq not in in_flight and added < cutoffs[1 if shed else 0]
            ]
            if old:
                self._evict(conn, old, "spool_max_age")
        where, params = self._claimable()
        others = conn.execute(
            "SELECT format, destination, SUM(events) FROM batches "
            f"WHERE owner IS NULL AND NOT ({where}) GROUP BY format, destination",
            params,
        ).fetchall()
        for fmt, destination, count in others:
            self._warn_others(fmt, destination, count)
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        if free > FREE_PAGES_KEPT:
            # A few pages per round, so the worker never stalls on one big vacuum.
            # executescript steps it to the end; execute() would free a single page
            conn.executescript(f"PRAGMA incremental_vacuum({VACUUM_STEP_PAGES});")

    def _warn_others(self, fmt: str, destination: str | None, count: int) -> None:
        """Rows this spool does not send (another format or destination): say so once each."""
        if fmt != self.format_name:
            self._warnings.once(
                f"format:{fmt}",
                "the spool %s holds %d events formatted as %r, but this pipeline sends %r; "
                "they are kept, not sent: deliver them with eventlog spool replay --db %s "
                "--format %s, or drop them with eventlog spool purge --db %s --format %s",
                self.path,
                count,
                fmt,
                self.format_name,
                self.path,
                fmt,
                self.path,
                fmt,
            )
            return
        self._warnings.once(
            f"destination:{destination}",
            "the spool %s holds %d events meant for %s, not for this pipeline's %s; they are "
            "kept, not sent here: deliver them with eventlog spool replay --db %s (to the "
            "destination they record), or see them with eventlog spool info --db %s",
            self.path,
            count,
            describe_destination(destination),
            describe_destination(self.destination),
            self.path,
            self.path,
        )

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
            # Overload control: rows of sheddable events go first, oldest first; then kept rows.
            "SELECT seq, length(payloads) + length(records) FROM batches "
            "WHERE owner IS NULL OR owner = ? ORDER BY shed DESC, seq",
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
            "AND (owner IS NULL OR owner = ?) RETURNING events, shed",
            (json.dumps(seqs), self._owner),
        ).fetchall()
        self._forget(seqs)
        count = sum(events for events, _ in deleted)
        if count:
            self._evicted(reason, count)
        if self.on_evict_class is not None:  # overload control: by class too
            shed = sum(events for events, flag in deleted if flag)
            for klass, events in (("sheddable", shed), ("kept", count - shed)):
                if events:
                    self.on_evict_class(klass, reason, events)

    def _evicted(self, reason: str, count: int) -> None:
        if self.on_evict is not None:
            self.on_evict(reason, count)

    def _claimable(self) -> tuple[str, tuple[object, ...]]:
        """The condition (and its parameters) on free rows this spool may claim."""
        if self.claim == "any":
            return "format = ?", (self.format_name,)
        if self.claim == "exact":
            return "format = ? AND destination IS ?", (self.format_name, self.destination)
        return "format = ? AND (destination IS ? OR destination IS NULL)", (
            self.format_name,
            self.destination,
        )

    def _quarantine(self, conn: sqlite3.Connection, damaged: dict[int, tuple[str, str]]) -> None:
        """Move rows that cannot be read or decoded to the quarantine table, kept as they are.

        One transaction; a row whose columns cannot even be copied is recorded by
        its seq, reason and error.  Counted by reason, and warned about once.
        """
        now = time.time()
        with _transaction(conn):
            for seq, (reason, error) in damaged.items():
                try:
                    conn.execute(
                        "INSERT OR REPLACE INTO quarantine (seq, format, events, records, payloads, "
                        "added, owner, destination, reason, error, quarantined) SELECT seq, format, "
                        "events, CAST(records AS BLOB), payloads, added, owner, destination, ?, ?, ? "
                        "FROM batches WHERE seq = ?",
                        (reason, error, now, seq),
                    )
                except sqlite3.DatabaseError as exc:
                    if _is_busy(exc):
                        raise
                    conn.execute(
                        "INSERT OR REPLACE INTO quarantine (seq, reason, error, quarantined) "
                        "VALUES (?, ?, ?, ?)",
                        (seq, reason, f"{error}; the row could not be copied: {exc}", now),
                    )
                conn.execute("DELETE FROM batches WHERE seq = ?", (seq,))
        for seq, (reason, error) in damaged.items():
            events = self._own.pop(seq, 0)
            self._recent.pop(seq, None)
            self.quarantined[reason] = self.quarantined.get(reason, 0) + 1
            if self.on_quarantine is not None:
                self.on_quarantine(reason, 1)
            if events and self.on_drop is not None:
                self.on_drop("spool_quarantined", events)
            self._warnings.once(
                f"quarantine:{reason}",
                "a row of the spool %s (seq %d, %d events) could not be read (%s: %s); it was "
                "moved to its quarantine table, kept, and the rows behind it are sent: see "
                "eventlog spool quarantine --db %s",
                self.path,
                seq,
                events,
                reason,
                error,
                self.path,
            )

    def _remember(self, seq: int, records: Sequence[Record]) -> None:
        recent = self._recent
        recent[seq] = records
        # Bounded memory in an outage.  The row sent last goes first: the oldest rows are
        # the next to be sent, so keeping them spares a read back from the file.
        while len(recent) > RECENT_MAX:
            del recent[max(recent)]


class _Writer(_Upkeep):
    """Storing batches (part of SQLiteSpool)."""

    def add(self, records: Sequence[Record]) -> None:
        """Store events, one row per ``row_events``, in one statement.

        Few SQLite calls per batch: each lets the application's thread take the
        GIL for a while (a switch interval) before the worker gets it back.
        An event whose index cannot be written (see :func:`_index`) is set aside
        and counted (``spool_unstorable``); the others are stored.
        """
        if not records:
            return
        now, fmt, owner, size = time.time(), self.format_name, self._owner, self.row_events
        destination = self.destination
        try:
            if type(records) is EncodedBatch and records.sizes is not None:
                # A batch encoded in one piece, of one class: its rows are cut from the body by
                # the sizes the encoder gave, with no Record and no payload copy per event.
                chunks, rows = _encoded_rows(records, size, fmt, now, owner, destination)
            else:
                chunks, rows = _record_rows(records, size, fmt, now, owner, destination)
        except Exception as exc:  # one event: contained to it, not to the batch or the worker
            chunks, rows = self._storable(records, exc, now)
            if not rows:
                return
        values = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * len(rows))
        params = [value for row in rows for value in row]

        def insert(conn: sqlite3.Connection) -> None:
            # One statement, its own transaction: its rows get contiguous seqs.
            last = conn.execute(
                "INSERT INTO batches (format, events, records, payloads, added, owner, destination, shed, "
                f"checksum) VALUES {values}",
                params,
            ).lastrowid
            assert last is not None
            first = last - len(chunks) + 1
            for offset, chunk in enumerate(chunks):
                self._own[first + offset] = len(chunk)
                self._remember(first + offset, chunk if type(chunk) is EncodedBatch else list(chunk))
            self._recovered()

        self._locked("store a batch", insert)
        # The batch is stored (its INSERT committed): a failure from here on must not
        # make the engine send it from memory too, or it would go out twice.
        with self._lock:
            conn = self._conn
            if conn is None:
                return
            try:
                self._bytes_since_check += sum(len(row[3]) for row in rows)
                if self._bytes_since_check >= self.max_bytes // 64:
                    self._bytes_since_check = 0
                    self._enforce_size(conn)
                if time.monotonic() >= self._next_housekeeping:
                    self._housekeeping(conn)  # also while a send is being retried
            except (OSError, sqlite3.Error) as exc:
                self._next_housekeeping = time.monotonic() + 1.0
                if not _is_busy(exc):  # another process writes: upkeep waits for the next batch
                    log.warning("spool upkeep failed, will try again: %s", exc)

    def _storable(
        self, records: Sequence[Record], exc: Exception, now: float
    ) -> tuple[list[Sequence[Record]], list[tuple[Any, ...]]]:
        """The rows of ``records`` without the events that cannot be stored, which are counted."""
        kept: list[Record] = []
        entries: list[list[object]] = []
        lost = 0
        for record in records:
            try:
                entry: list[object] = [record.id, record.action, record.time_ns, len(record.payload)]
                _index([entry])
                if type(record.payload) is not bytes:
                    raise TypeError(f"payload is {type(record.payload).__name__}, not bytes")
            except Exception as error:
                lost += 1
                exc = error
                continue
            kept.append(record)
            entries.append(entry)
        if lost:
            self._warnings.once(
                "unstorable",
                "%d events could not be stored in the spool %s (%s); they were set aside, "
                'counted as dropped{reason="spool_unstorable"}, and the rest of the batch stored',
                lost,
                self.path,
                exc,
            )
            if self.on_drop is not None:
                self.on_drop("spool_unstorable", lost)
        size = self.row_events
        chunks: list[Sequence[Record]] = [kept[i : i + size] for i in range(0, len(kept), size)]
        rows = [
            _row(
                self.format_name,
                len(chunk),
                _index(entries[i : i + size]),
                b"".join(r.payload for r in chunk),
                now,
                self._owner,
                self.destination,
                _shed(chunk),
            )
            for i, chunk in zip(range(0, len(kept), size), chunks)
        ]
        return chunks, rows


class _Reader(_Writer):
    """Choosing and reading the rows the worker sends next (part of SQLiteSpool)."""

    def pending(self, limit: int) -> Sequence[Record]:
        """The oldest events this process may send (claiming free rows), in order.

        Whole stored batches, at least one, up to ``limit`` events when they fit.
        A row that cannot be read or decoded is quarantined (:meth:`_quarantine`)
        and the rows behind it are sent.
        """
        while True:
            batch, again = self._pending_once(limit)
            if not again:
                return batch

    def _pending_once(self, limit: int) -> tuple[Sequence[Record], bool]:
        """One try of :meth:`pending`; ``again`` when every chosen row had vanished."""

        def choose(conn: sqlite3.Connection) -> tuple[list[int], dict[int, Sequence[Record]], bool]:
            self._retry_removals(conn)
            if time.monotonic() >= self._next_housekeeping:
                self._housekeeping(conn)
            owner, skip = self._owner, self._unremoved
            # Free rows (left by an earlier run or a dead process) go first: claim
            # them.  Housekeeping says when there may be some.
            if self._maybe_free:
                where, params = self._claimable()
                claimed = conn.execute(
                    "UPDATE batches SET owner = ? WHERE seq IN (SELECT seq FROM batches "
                    f"WHERE owner IS NULL AND {where} ORDER BY seq LIMIT ?) "
                    "RETURNING seq, events",
                    (owner, *params, CLAIM_ROWS),
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
                    seq for seq in sorted(self._own) if seq > after and seq not in skip and seq not in recent
                ][:READ_AHEAD_ROWS]
            loaded: dict[int, Sequence[Record]] = {}
            damaged: dict[int, tuple[str, str]] = {}
            if missing:
                for seq, index, payloads, events, checksum in self._read_rows(conn, missing + ahead, damaged):
                    try:
                        loaded[seq] = _decode(index, payloads, events, checksum)
                    except _Damaged as exc:
                        damaged[seq] = (exc.reason, str(exc))
                    except Exception as exc:  # whatever a damaged row makes the decoder raise
                        damaged[seq] = ("undecodable", f"{type(exc).__name__}: {exc}")
            if damaged:
                self._quarantine(conn, damaged)
            for seq in ahead:
                if seq in loaded:
                    self._remember(seq, loaded.pop(seq))
            # Rows that vanished (purged, evicted by another process, quarantined) are no
            # longer ours: forget them, or the oldest would be chosen again and again.
            gone = [seq for seq in missing if seq not in loaded]
            for seq in gone:
                self._own.pop(seq, None)
                self._events_of.pop(seq, None)
            if gone and len(gone) == len(chosen):
                return [], {}, bool(self._own) or self._maybe_free
            return chosen, loaded, False

        chosen, loaded, again = self._locked("read pending events", choose)
        if again:
            return [], True
        rows = []
        parts: list[Sequence[Record]] = []
        count = 0
        recent = self._recent
        for seq in chosen:
            if seq not in recent and seq not in loaded:
                continue  # vanished or quarantined meanwhile
            records = recent.get(seq) or loaded.get(seq) or []
            rows.append((seq, count, count + len(records)))
            parts.append(records)
            count += len(records)
        batch = _joined(parts)
        self._batch, self._batch_rows = batch, rows
        return batch, False

    def _read_rows(
        self, conn: sqlite3.Connection, seqs: list[int], damaged: dict[int, tuple[str, str]]
    ) -> list[tuple[int, Any, Any, Any, Any]]:
        """``(seq, records, payloads, events, checksum)`` of the rows still there.

        Rows that cannot be read go into ``damaged``.
        """
        query = (
            "SELECT seq, records, payloads, events, checksum FROM batches "
            "WHERE seq IN (SELECT value FROM json_each(?))"
        )
        try:
            return conn.execute(query, (json.dumps(seqs),)).fetchall()
        except sqlite3.DatabaseError as exc:
            if _is_busy(exc) or (isinstance(exc, sqlite3.OperationalError) and not _is_corruption(exc)):
                raise
        rows = []  # one row's page is damaged: read them one by one to find it
        for seq in seqs:
            try:
                rows.extend(conn.execute(query, (json.dumps([seq]),)).fetchall())
            except sqlite3.DatabaseError as exc:
                if _is_busy(exc):
                    raise
                damaged[seq] = ("unreadable", f"{type(exc).__name__}: {exc}")
        return rows


class SQLiteSpool(_Reader):
    """The spool of one pipeline (see the module docstring).

    The worker thread calls ``add``, ``pending`` and ``remove``; metrics and
    ``flush`` may call ``depth`` from other threads, so a lock guards the
    connection.  No SQLite statement waits long for another process while that
    lock is held (:data:`BUSY_STEP_MS`): a fork and a scrape need it.
    """

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
                # Kept in memory and retried (also when another process holds the write
                # lock: no waiting here), so the rows are not sent twice by us.
                if not _is_busy(exc):
                    with contextlib.suppress(SpoolUnavailable):
                        self._failed(exc, "delete delivered events")

    def depth(self) -> int:
        """Events waiting in the spool file (every process's, every format).

        Never waits behind the worker for long (a metrics scrape calls this):
        while the lock is busy, the depth read last is the answer.
        """
        if not self._lock.acquire(timeout=DEPTH_WAIT_SECONDS):
            return self._depth
        try:
            if self._conn is None:
                return self._depth if self._unavailable is None else 0
            try:
                self._depth = self._waiting(self._conn)
            except sqlite3.Error:
                pass
            return self._depth
        finally:
            self._lock.release()

    def _waiting(self, conn: sqlite3.Connection) -> int:
        """Events in the file, less those delivered whose rows are still to be removed."""
        count = int(conn.execute("SELECT COALESCE(SUM(events), 0) FROM batches").fetchone()[0])
        return max(0, count - sum(self._unremoved.values()))

    def watch(self) -> None:
        """Between send retries: notice a deleted or moved file even while nothing is stored.

        In a quiet outage the worker only retries the batch in hand; without this, a
        spool deleted meanwhile would go unnoticed until the next event.
        """
        now = time.monotonic()
        if now < self._next_watch or self._conn is None:
            return
        self._next_watch = now + WATCH_SECONDS
        with contextlib.suppress(SpoolUnavailable):
            self._locked("check the spool file", lambda conn: None)

    def release(self) -> bool:
        """Hand the rows this instance owns back, for the next pipeline, process or run to send.

        False when they could not be (the spool unavailable): they stay this instance's.
        """

        def release(conn: sqlite3.Connection) -> None:
            with contextlib.suppress(sqlite3.Error):
                self._retry_removals(conn)
            with _transaction(conn):
                conn.execute("UPDATE batches SET owner = NULL WHERE owner = ?", (self._owner,))
            self._own.clear()

        released = True
        try:
            if self._conn is not None:
                self._locked("release this process's rows", release)
        except SpoolUnavailable:
            released = False
        # A pipeline of this process on the same file (configure() again) may take them now,
        # without waiting for its next event.
        for other in list(_spools):
            if other is not self and other.path == self.path and other._conn is not None:
                other._maybe_free = True
                if other.on_released is not None:
                    with contextlib.suppress(Exception):
                        other.on_released()
        return released

    def close(self) -> None:
        """Release this instance's rows and close the file."""
        released = self.release()
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None and not released and _identity(self.path) != self._file_id:
                # Its rows could not be carried out of a file no longer at the path: closing
                # would drop the last way to them.  Kept open, and said (a restart loses them).
                self._retired.append(conn)
                self._depth = 0  # none of them waits for the next run
                with contextlib.suppress(sqlite3.Error):
                    left = conn.execute("SELECT COALESCE(SUM(events), 0) FROM batches").fetchone()[0]
                    log.warning(
                        "the spool file %s left its path while in use and the fresh file there "
                        "could not be made: %d events stay in the old file, open until this "
                        "process exits, and are lost then",
                        self.path,
                        left,
                    )
            elif conn is not None:
                # depth() of a closed spool answers this (shutdown says how many wait for
                # the next run): the last read would be stale, or 0 if none was made.
                with contextlib.suppress(sqlite3.Error):
                    self._depth = self._waiting(conn)
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
                conn.close()
        closed(self._owner)  # rows it could not release are reclaimed by the next one

    def after_fork(self) -> None:
        """In a forked child: close the parent's connection, forget its rows, become a new owner."""
        self._lock = threading.Lock()
        self._close_inherited()
        _inherited.extend(self._retired)
        self._retired = []
        self._owner = new_owner()
        self._batch, self._batch_rows = [], []
        self._events_of = {}
        self._unremoved = {}
        self._recent = {}
        self._own = {}
        self._unavailable = None
        self._retry_at = 0.0


def _joined(parts: list[Sequence[Record]]) -> Sequence[Record]:
    """The rows chosen for one send as one batch: rows this process stored in one piece
    (EncodedBatch) are joined into one, whose body a stream transport sends as it is;
    otherwise a list of Records."""
    if len(parts) == 1 and type(parts[0]) is EncodedBatch:
        return parts[0]
    if parts and all(type(part) is EncodedBatch and part.sizes is not None for part in parts):
        pieces: list[EncodedBatch] = parts  # type: ignore[assignment]

        def heads() -> Heads:
            ids: list[str] = []
            actions: list[str] = []
            times: list[int] = []
            for piece in pieces:
                more = piece.heads()
                ids += more[0]
                actions += more[1]
                times += more[2]
            return ids, actions, times

        sizes = list(itertools.chain.from_iterable(piece.sizes or () for piece in pieces))
        body = b"".join([piece.body for piece in pieces])
        return EncodedBatch(body, len(sizes), heads, None, sizes)
    batch: list[Record] = []
    for part in parts:
        batch.extend(part)
    return batch


def _record_rows(
    records: Sequence[Record], size: int, fmt: str, now: float, owner: str, destination: str | None
) -> tuple[list[Sequence[Record]], list[tuple[Any, ...]]]:
    """The rows of ``records`` (``size`` events each at most), and the records of each row."""
    # Overload control: sheddable events get rows of their own, which limits evict first.
    kinds = set(map(type, records))  # one C pass: a batch is mostly of one class
    if len(kinds) == 1:
        groups: list[Sequence[Record]] = [records]
        shed = int(SheddableRecord in kinds)
    else:
        groups = _by_class(records)
        shed = -1  # per chunk
    chunks = [group[i : i + size] for group in groups for i in range(0, len(group), size)]
    rows = [
        _row(
            fmt,
            len(chunk),
            _index(_entries(chunk)),
            b"".join(map(_payload_of, chunk)),
            now,
            owner,
            destination,
            _shed(chunk) if shed < 0 else shed,
        )
        for chunk in chunks
    ]
    return chunks, rows


def _encoded_rows(
    batch: EncodedBatch, size: int, fmt: str, now: float, owner: str, destination: str | None
) -> tuple[list[Sequence[Record]], list[tuple[Any, ...]]]:
    """:func:`_record_rows` of a batch encoded in one piece (its events all of one class):
    each row's payloads are a slice of the body (the body itself for a row that is all of
    it), its index made from the encoder's columns; each row is kept as an EncodedBatch of
    its own.  Raises where the sizes do not cover the body (the caller takes the Records
    path, which finds what cannot be stored)."""
    ids, actions, times = batch.heads()
    sizes, body, shed = batch.sizes, batch.body, batch.shed
    assert sizes is not None
    chunks: list[Sequence[Record]] = []
    rows: list[tuple[Any, ...]] = []
    start = 0
    for first in range(0, len(sizes), size):
        part = sizes[first : first + size]
        end = start + sum(part)
        if min(part) < 0 or end > len(body):
            raise ValueError(f"the encoder's payload sizes cover {end} of {len(body)} bytes")
        payloads = body if start == 0 and end == len(body) else body[start:end]
        heads = (ids[first : first + size], actions[first : first + size], times[first : first + size])
        index = _index(list(zip(*heads, part, strict=True)))
        rows.append(_row(fmt, len(part), index, payloads, now, owner, destination, shed))
        chunks.append(EncodedBatch(payloads, len(part), functools.partial(_same, heads), None, part, shed))
        start = end
    if start != len(body):
        raise ValueError(f"the encoder's payload sizes cover {start} of {len(body)} bytes")
    return chunks, rows


def _same(heads: Heads) -> Heads:
    return heads


def _by_class(records: Sequence[Record]) -> list[Sequence[Record]]:
    """``records`` cut into runs of one class (overload control), in their order: rows of
    sheddable events of their own, and the events still sent in the order they were logged."""
    if not any(type(r) is SheddableRecord for r in records) or all(
        type(r) is SheddableRecord for r in records
    ):
        return [records]
    return [list(run) for _, run in itertools.groupby(records, key=lambda r: type(r) is SheddableRecord)]


_id_of, _action_of, _time_of, _payload_of = (operator.itemgetter(n) for n in range(4))


def _entries(chunk: Sequence[Record]) -> list[tuple[str, str, int, int]]:
    """A row's index entries, ``(id, action, time_ns, payload size)`` per event.

    The same as ``[[r.id, r.action, r.time_ns, len(r.payload)] for r in chunk]`` (the
    JSON of a tuple is that of a list; tests/test_spool_edges.py holds the two equal),
    in C loops: ~250 instructions an event where the comprehension takes ~600.
    """
    return list(
        zip(
            map(_id_of, chunk),
            map(_action_of, chunk),
            map(_time_of, chunk),
            map(len, map(_payload_of, chunk)),
            strict=True,
        )
    )


def _shed(chunk: Sequence[Record]) -> int:
    """1 for a row whose events are all sheddable: limits evict it before kept rows."""
    return int(all(type(r) is SheddableRecord for r in chunk))


def _when_not_busy(statement: Callable[[], object], seconds: float = CARRY_BUSY_SECONDS) -> bool:
    """Run ``statement``, again while another connection holds the lock, for up to ``seconds``.

    False when it failed (or stayed busy).  Bounded well below the busy timeout: the caller
    holds the spool's lock, which a fork and a scrape wait for.
    """
    give_up = time.monotonic() + seconds
    while True:
        try:
            statement()
            return True
        except sqlite3.Error as exc:
            if not _is_busy(exc) or time.monotonic() >= give_up:
                return False
        time.sleep(BUSY_STEP_MS / 1000)


def _identity(path: str) -> tuple[int, int] | None:
    """(st_dev, st_ino) of the file at ``path``, or None when there is none."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _rejoin_others(path: str, file_id: tuple[int, int]) -> None:
    """Before a spool opens the file ``file_id`` at ``path``: every spool of this process that
    has it open with its WAL moved off its name writes that WAL into it and opens it again.

    Otherwise the opener takes the index those spools share with a WAL by the name, which is
    not the one the index describes ("disk I/O error"), and the rows it carries stay behind.
    """
    wal = _identity(path + "-wal")
    for spool in list(_spools):
        if not (
            isinstance(spool, _FileWatch)
            and spool._file_id == file_id
            and spool._conn is not None
            and spool._wal_id not in (None, wal)
            and spool._lock.acquire(blocking=False)  # busy: the open may fail, and is tried again
        ):
            continue
        try:
            with contextlib.suppress(SpoolUnavailable, OSError, sqlite3.Error):
                spool._rejoin_wal(spool._conn)
        finally:
            spool._lock.release()


def _close_rejoined(conn: sqlite3.Connection) -> None:
    """Close a connection whose WAL lost its name, its rows first written into the file itself."""
    with contextlib.suppress(sqlite3.Error):
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    with contextlib.suppress(sqlite3.Error):
        conn.close()


def _still_linked(file_id: tuple[int, int] | None) -> bool:
    """Whether the file this process has open as ``file_id`` still has a name (moved, not deleted)."""
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            st = os.stat(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == file_id:
            return st.st_nlink > 0
    return False


#: A row whose index does not describe its payloads; ``reason`` labels it for counting.
_Damaged = DamagedRow


def _index(entries: Sequence[Sequence[object]]) -> str:
    """A row's index (id, action, time, payload size of each event) as JSON text.

    orjson: about 1k instructions an event where the stdlib encoder takes 8k,
    in the worker, whose every instruction the application pays for (one GIL).
    orjson refuses an int beyond 64 bits (a time in ms given as ns): the stdlib
    writes any int, so such an event is stored, not lost.
    """
    if _orjson is not None:
        try:
            text: str = _orjson.dumps(entries).decode()
            return text
        except TypeError:
            pass
    return json.dumps(entries, separators=(",", ":"))


def row_checksum(index: str, payloads: bytes) -> int:
    """A row's checksum: CRC-32 of its index (UTF-8) and its payloads.

    zlib's CRC-32 runs in C at several bytes a cycle: a few microseconds for a
    batch of hundreds of events, beside the INSERT that writes them.
    """
    return zlib.crc32(payloads, zlib.crc32(index.encode("utf-8", "surrogatepass")))


def _row(
    fmt: str,
    events: int,
    index: str,
    payloads: bytes,
    added: float,
    owner: str,
    destination: str | None,
    shed: int,
) -> tuple[Any, ...]:
    """The values of one ``batches`` row, in the order of its INSERT (checksum last)."""
    return (fmt, events, index, payloads, added, owner, destination, shed, row_checksum(index, payloads))


def _decode(index: str | bytes, payloads: bytes, events: int, checksum: int | None = None) -> list[Record]:
    """The records of one stored batch; raises :class:`_Damaged` when the row is not as written.

    The index must be a list of ``events`` entries whose sizes add up to the
    payloads exactly: a changed byte that still parses is caught here, not sent
    as events cut at the wrong places.  A changed byte that keeps all of that
    (in a payload, an id) is caught by the row's ``checksum`` (None: a row an
    older version wrote, not checked).
    """
    loads = json.loads if _orjson is None else _orjson.loads
    try:
        entries = loads(index)
    except ValueError as exc:
        raise _Damaged("undecodable", f"the row's index is not JSON: {exc}") from None
    if type(entries) is not list or len(entries) != events or type(payloads) is not bytes:
        raise _Damaged("index_mismatch", f"the row's index does not list its {events} events")
    records = []
    offset = 0
    # Read back in a backlog (rows past RECENT_MAX): orjson and tuple.__new__ (the
    # NamedTuple's Python-level __new__ costs more than the tuple) keep it cheap.
    for id_, action, time_ns, size in entries:
        end = offset + size
        if end < offset or type(id_) is not str:
            raise _Damaged(
                "index_mismatch", f"the row's index has a bad entry: {[id_, action, time_ns, size]}"
            )
        records.append(_new_tuple(Record, (id_, action, time_ns, payloads[offset:end])))
        offset = end
    if offset != len(payloads):
        raise _Damaged(
            "index_mismatch",
            f"the row's index counts {offset} bytes of payloads, the row holds {len(payloads)}",
        )
    if checksum is not None:
        text = index if isinstance(index, str) else index.decode("utf-8", "surrogatepass")
        actual = row_checksum(text, payloads)
        if actual != checksum:
            raise _Damaged(
                "checksum", f"the row's checksum is {checksum}, its index and payloads give {actual}"
            )
    return records


def destination_of(settings: Settings, transport_name: str, transport_options: dict[str, Any]) -> str:
    """Where a pipeline's events go, as the text a spool row records (JSON, keys sorted).

    The transport, ``host`` and ``port``, and every transport setting holding a URL
    (an HTTP endpoint, NATS servers), reduced to scheme, host, port and path: a URL's
    user info and query may carry credentials, which a spool file never holds.
    Timeouts, TLS files and other settings of *how* to send are left out, so changing
    them does not strand the rows of the run before.
    """
    urls = {}
    for name, value in sorted(transport_options.items()):
        values = value if isinstance(value, (list, tuple)) else [value]
        reduced = [_address(item) for item in values if isinstance(item, str) and "://" in item]
        if reduced:
            urls[name] = reduced if isinstance(value, (list, tuple)) else reduced[0]
    where = {"transport": transport_name, "host": settings.host, "port": settings.port, "urls": urls}
    return json.dumps(where, sort_keys=True, separators=(",", ":"))


def _address(url: str) -> str:
    """``scheme://host:port/path`` of a URL: no user info, query or fragment."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        port = ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def parse_destination(destination: str | None) -> dict[str, Any] | None:
    """The fields of a recorded destination, or None for a row that records none (0.1.0)."""
    if destination is None:
        return None
    try:
        where = json.loads(destination)
    except ValueError:
        return None
    return where if isinstance(where, dict) and isinstance(where.get("transport"), str) else None


def describe_destination(destination: str | None) -> str:
    """A recorded destination for people: ``tcp 127.0.0.1:5170``, ``http http://.../``."""
    where = parse_destination(destination)
    if where is None:
        return "no recorded destination" if destination is None else repr(destination)
    text = str(where["transport"])
    if where.get("host") is not None:
        host = str(where["host"])
        text += f" [{host}]" if ":" in host else f" {host}"
        if where.get("port") is not None:
            text += f":{where['port']}"
    elif where.get("port") is not None:
        text += f" port {where['port']}"
    for value in (where.get("urls") or {}).values():
        text += " " + (",".join(value) if isinstance(value, list) else str(value))
    return text


def open_spool(
    settings: Settings,
    format_name: str,
    on_evict: Callable[[str, int], None] | None = None,
    *,
    destination: str | None = None,
    on_drop: Callable[[str, int], None] | None = None,
    on_quarantine: Callable[[str, int], None] | None = None,
    on_reopen: Callable[[str], None] | None = None,
) -> SQLiteSpool:
    """The spool at ``settings.db`` for payloads formatted as ``format_name`` (the pipeline's entry point)."""
    if settings.db is None:
        raise ConfigurationError("a spool needs a path: set EVENTLOG_DB (or configure(db=...))")
    kept_max_age = _kept_max_age(settings)
    spool = SQLiteSpool(
        settings.db,
        format_name,
        max_bytes=settings.spool_max_bytes,
        max_age=settings.spool_max_age,
        synchronous=settings.spool_sync.upper(),
        row_events=settings.batch_size,
        on_evict=on_evict,
        destination=destination,
        on_drop=on_drop,
        on_quarantine=on_quarantine,
        on_reopen=on_reopen,
    )
    spool.kept_max_age = kept_max_age
    return spool


def _kept_max_age(settings: Settings) -> float | None:
    """``spool_kept_max_age``, checked: kept rows never go by age before sheddable ones."""
    kept, sheddable = settings.spool_kept_max_age, settings.spool_max_age
    if kept and sheddable and kept < sheddable:
        raise ConfigurationError(
            f"spool_kept_max_age = {kept:g} is shorter than spool_max_age = {sheddable:g}: kept "
            f"events would go before sheddable ones; set it to at least {sheddable:g}, "
            "or 0 for no age limit on kept events"
        )
    return kept


def _free_wal_names(old: sqlite3.Connection, path: str) -> None:
    """A spool file gone from ``path``: its WAL into it, then the WAL's and index's names freed.

    SQLite finds the WAL and the shared-memory index by name, so a new file at the path
    would use the old file's.  What the WAL holds goes into the old file first (a moved
    spool stays whole); ``old`` keeps them open.
    """
    with contextlib.suppress(sqlite3.Error):
        old.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    # Only while the path is still empty, under the lock that opening takes: another
    # spool (a pipeline of this process, another process) may have noticed first and
    # made the fresh file, and those names are then its live WAL and index (unlinked,
    # its rows were lost and the open here failed with "disk I/O error").
    with _path_lock(path):
        if not os.path.lexists(path):
            for suffix in SQLITE_SIBLINGS:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path + suffix)
