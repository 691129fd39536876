"""The spool's SQLite file: path safety, opening and checking it, its schema, transactions, error labels.

Everything here works on a path or a connection, not on a spool's rows: those are
:mod:`eventlog._spool.sqlite`'s; ``eventlog spool`` (:mod:`eventlog._spool.admin`)
opens the file through here too.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import sqlite3
import stat
import time
from collections.abc import Iterator

from eventlog._spool.protocol import SpoolCorrupt, SpoolUnavailable

log = logging.getLogger(__name__)


#: How long one process waits for another's write lock before giving up on a batch.
BUSY_TIMEOUT_MS = 10_000
#: Spool files up to this size are checked page by page when opened.
QUICK_CHECK_MAX_BYTES = 32 * 1024 * 1024


#: Rows that could not be read or decoded, moved here whole (as far as they could be
#: read) from ``batches`` with the reason and the error: kept for a post-mortem and for
#: ``eventlog spool quarantine --export``, never sent.  Columns are nullable: a damaged
#: row may have some that cannot be read.
_QUARANTINE = """
CREATE TABLE IF NOT EXISTS quarantine (
    seq         INTEGER PRIMARY KEY,
    format      TEXT,
    events      INTEGER,
    records     BLOB,
    payloads    BLOB,
    added       REAL,
    owner       TEXT,
    destination TEXT,
    reason      TEXT NOT NULL,
    error       TEXT NOT NULL,
    quarantined REAL NOT NULL
);
"""
_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS batches (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    format      TEXT    NOT NULL,
    events      INTEGER NOT NULL,
    records     TEXT    NOT NULL,
    payloads    BLOB    NOT NULL,
    added       REAL    NOT NULL,
    owner       TEXT,
    destination TEXT,
    shed        INTEGER NOT NULL DEFAULT 0,
    checksum    INTEGER
);
CREATE INDEX IF NOT EXISTS batches_owned ON batches(owner, format, seq) WHERE owner IS NOT NULL;
CREATE INDEX IF NOT EXISTS batches_free ON batches(format, seq) WHERE owner IS NULL;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
    + _QUARANTINE
)
#: ``records`` is JSON, ``[[id, action, time_ns, payload length], ...]``; ``payloads`` the
#: formatted payloads back to back.  One row per batch: the worker writes a batch
#: with one INSERT and deletes it with one DELETE, whatever its size.  ``destination``
#: says where the rows were meant to go (:func:`eventlog._spool.sqlite.destination_of`);
#: NULL in rows a 0.1.0 spool wrote, which any pipeline of their format may send.
#: ``checksum`` is the CRC-32 of ``records`` (UTF-8) and ``payloads``
#: (:func:`eventlog._spool.sqlite.row_checksum`): a byte changed on disk that still
#: decodes is caught by it; NULL in rows an older version wrote, which are not checked.

#: 1: 0.1.0; 2: ``batches.destination`` and the ``quarantine`` table; 3: ``batches.checksum``
#: (each added on open).
SCHEMA_VERSION = "3"


# ---------------------------------------------------------------- error labels


def _classify(exc: BaseException) -> str:
    """A short reason label for a write failure."""
    if isinstance(exc, OSError):
        return {
            errno.ENOSPC: "disk_full",
            errno.EDQUOT: "disk_full",
            errno.EFBIG: "disk_full",
            errno.EROFS: "read_only",
            errno.EACCES: "read_only",
            errno.EPERM: "read_only",
        }.get(exc.errno or 0, "io_error")
    text = str(exc).lower()
    if "full" in text:
        return "disk_full"
    if "readonly" in text or "read-only" in text or "read only" in text:
        return "read_only"
    if "locked" in text or "busy" in text:
        return "locked"
    if "unable to open" in text:
        return "unopenable"
    return "io_error"


def _filesystem_state(path: str) -> str | None:
    """``read_only`` or ``disk_full`` when the file system says so (SQLite's I/O errors do not)."""
    try:
        stat = os.statvfs(os.path.dirname(os.path.abspath(path)))
    except OSError:
        return None
    if stat.f_flag & os.ST_RDONLY:
        return "read_only"
    if stat.f_bavail == 0:
        return "disk_full"
    return None


def _is_busy(exc: BaseException) -> bool:
    """Another connection holds the lock this statement needs (SQLITE_BUSY or SQLITE_LOCKED)."""
    return isinstance(exc, sqlite3.OperationalError) and _classify(exc) == "locked"


def _is_corruption(exc: BaseException) -> bool:
    if not isinstance(exc, sqlite3.DatabaseError) or isinstance(exc, sqlite3.OperationalError):
        return False
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text or "corrupt" in text


# ---------------------------------------------------------------- path safety
#
# The spool may be opened by root, in a folder other users can write (/tmp).  As
# OpenSSH does with its StrictModes, nothing there is used unless only this user
# (or root) could have put it there: no symlink planted by another user on the
# way, folders that only root or this user may change (or sticky ones, where
# nobody removes another's file), and files that are this user's alone.  A path
# that fails is refused (SpoolUnavailable, reason ``unsafe_path``): the engine
# then sends from memory, as for a read-only path, and tries again every second.

#: Files SQLite keeps next to the spool: checked like the spool itself when present.
SQLITE_SIBLINGS = ("-wal", "-shm", "-journal")


def _unsafe(problem: str, remedy: str) -> SpoolUnavailable:
    return SpoolUnavailable("unsafe_path", f"{problem}; {remedy}")


def _check_file(path: str, st: os.stat_result) -> None:
    """Refuse a file that is not a regular file of this user with one name, kept from others."""
    me = os.geteuid()
    if stat.S_ISLNK(st.st_mode):
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        raise _unsafe(
            f"{path} is a symlink to {target}",
            "name the file itself in EVENTLOG_DB, not a link to it",
        )
    if not stat.S_ISREG(st.st_mode):
        raise _unsafe(f"{path} is not a regular file", "remove it or choose another path")
    if st.st_uid != me:
        raise _unsafe(
            f"{path} is owned by uid {st.st_uid}, not {me} (the user this process runs as), "
            "so that user could read or change every event",
            f"remove it, or if it is yours: chown {me} {path} && chmod 600 {path}",
        )
    # As PostgreSQL with its data folder: the group may read (0640, a deliberate choice
    # SQLite copies to -wal and -shm), but nobody else may write, and others not even read.
    if st.st_mode & 0o027:
        who = "other users may change" if st.st_mode & 0o022 else "every user may read"
        raise _unsafe(
            f"{path} has mode {stat.S_IMODE(st.st_mode):04o}: {who} the events",
            f"chmod 600 {path}",
        )
    if st.st_nlink != 1:
        raise _unsafe(
            f"{path} has {st.st_nlink} names (hard links), one of them possibly another user's",
            "remove it and let eventlog create a fresh spool",
        )


def _check_links(path: str) -> None:
    """Refuse a folder on the way that is a symlink owned by another user (planted there)."""
    me = os.geteuid()
    current = os.path.dirname(path)
    folders = []
    while current != os.path.dirname(current):
        folders.append(current)
        current = os.path.dirname(current)
    for folder in reversed(folders):
        try:
            st = os.lstat(folder)
        except FileNotFoundError:
            return  # what is missing is made by this process
        if stat.S_ISLNK(st.st_mode) and st.st_uid not in (0, me):
            raise _unsafe(
                f"the folder {folder} in the spool path is a symlink to "
                f"{os.readlink(folder)} owned by uid {st.st_uid}, another user",
                "remove the link, or name a path without it in EVENTLOG_DB",
            )


def _check_folders(folder: str) -> None:
    """Refuse a folder (or one above it) that another user may change.

    Owned by root or this user; writable by others only if sticky (like /tmp),
    where nobody can remove or rename another user's file.
    """
    me = os.geteuid()
    current = os.path.realpath(folder)
    while True:
        st = os.stat(current)
        mode = stat.S_IMODE(st.st_mode)
        if st.st_uid not in (0, me):
            raise _unsafe(
                f"the spool folder {current} is owned by uid {st.st_uid}, not by root or "
                f"uid {me} (the user this process runs as), so that user could swap the spool",
                f"chown {me} {current}, or choose a folder of this user in EVENTLOG_DB",
            )
        if mode & 0o022 and not mode & stat.S_ISVTX:
            raise _unsafe(
                f"the spool folder {current} has mode {mode:04o}: other users may replace the files in it",
                f"chmod go-w {current} (or chmod +t {current})",
            )
        parent = os.path.dirname(current)
        if parent == current:
            return
        current = parent


def _open_own(path: str) -> int:
    """Open ``path`` read-write, creating it with mode 0600 when missing; refuse what is not ours.

    O_EXCL with O_NOFOLLOW makes a new file here, never at a link's target, and
    O_NOFOLLOW fails on a link; the checks look at the file opened (fstat) and
    lstat confirms the path still names it.
    """
    flags = os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        _check_file(path, os.lstat(path))  # says what is wrong: a link, another's file
        try:
            fd = os.open(path, flags)
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # became a link since the lstat
                _check_file(path, os.lstat(path))
            raise
    else:
        os.fchmod(fd, 0o600)  # whatever the umask: SQLite gives its -wal and -shm this mode
    try:
        opened = os.fstat(fd)
        _check_file(path, opened)
        named = os.lstat(path)
        if (named.st_dev, named.st_ino) != (opened.st_dev, opened.st_ino):
            raise _unsafe(f"{path} was replaced while it was opened", "check who writes there")
    except BaseException:
        os.close(fd)
        raise
    return fd


def _create_or_check(path: str) -> None:
    """Create the spool file (mode 0600) when missing, or check the one there: ours, private, no link.

    An existing file is checked by ``lstat``, never opened: this process may have it open
    through SQLite (another pipeline, configure() again), and closing any descriptor of a
    file drops every POSIX lock the process holds on it, SQLite's too.  Without its lock,
    another process closing its last connection found the file unused and deleted the WAL
    under this one: every later write of this process was lost to all others (rows gone,
    delivered rows back, "disk I/O error" and the file moved aside as corrupt).  A file
    made here (O_EXCL) is new: no connection of this process has it open yet.
    """
    if os.path.lexists(path):
        _check_file(path, os.lstat(path))  # says what is wrong: a link, another's file
        return
    os.close(_open_own(path))


def check_path(path: str) -> None:
    """Refuse a spool path another user could read, change or redirect (see above).

    Raises :class:`SpoolUnavailable` with reason ``unsafe_path`` and a message
    that says what is wrong and what to do.
    """
    path = os.path.abspath(path)
    _check_links(path)
    _check_folders(os.path.dirname(path))
    for name in (path, *(path + suffix for suffix in SQLITE_SIBLINGS)):
        try:
            st = os.lstat(name)
        except FileNotFoundError:
            continue
        _check_file(name, st)


# ---------------------------------------------------------------- opening


@contextlib.contextmanager
def _path_lock(path: str) -> Iterator[None]:
    """Serialise opening, checking and moving aside among processes on one path."""
    fd = _open_own(path + ".lock")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # also releases the lock


def move_aside(path: str) -> str:
    """Rename a damaged spool (and its WAL) to ``<path>.corrupt-<UTC time>``; return that."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = f"{path}.corrupt-{stamp}"
    number = 1
    while os.path.exists(target):
        number += 1
        target = f"{path}.corrupt-{stamp}-{number}"
    os.rename(path, target)
    for suffix in ("-wal", "-journal"):
        if os.path.exists(path + suffix):
            os.rename(path + suffix, target + suffix)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path + "-shm")  # the shared-memory index is rebuilt from the WAL
    return target


def _connect(path: str, synchronous: str, busy_ms: int = BUSY_TIMEOUT_MS) -> sqlite3.Connection:
    """Open and check the spool at ``path``, creating it (mode 0600) when missing.

    Raises :class:`SpoolCorrupt` when the file is not a readable SQLite
    spool, ``OSError``/``sqlite3.Error`` when it cannot be opened at all.
    """
    _create_or_check(path)
    for suffix in SQLITE_SIBLINGS:  # SQLite opens these by name, following links
        with contextlib.suppress(FileNotFoundError):
            _check_file(path + suffix, os.lstat(path + suffix))
    conn = sqlite3.connect(path, timeout=busy_ms / 1000, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_ms)}")
        try:
            fresh = conn.execute("PRAGMA page_count").fetchone()[0] == 0
            if fresh:
                conn.execute("PRAGMA auto_vacuum = INCREMENTAL")  # before the first table
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            # A full check reads every page: worth it for a small file; a big one is
            # checked as it is read (a damaged page is moved aside when met).
            if os.path.getsize(path) <= QUICK_CHECK_MAX_BYTES:
                check = conn.execute("PRAGMA quick_check").fetchall()
            else:
                check = [("ok",)]
                conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        except sqlite3.DatabaseError as exc:
            # Only SQLite's word for a damaged file ("malformed", "not a database") moves
            # it aside.  A "disk I/O error" is the system's, not the file's (its -wal or
            # -shm deleted under a live connection, a failing read): the spool is
            # unavailable for now and opened again later, never set aside while healthy.
            if not _is_corruption(exc):
                raise
            raise SpoolCorrupt(str(exc)) from None
        if check != [("ok",)]:
            raise SpoolCorrupt("; ".join(str(row[0]) for row in check[:3]))
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"cannot use WAL mode here (journal_mode={mode})")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        conn.execute("PRAGMA journal_size_limit = 4194304")  # truncate the WAL after checkpoints
        # Where SQLite is built with SECURE_DELETE (Debian's is), deleting a delivered row
        # would write zeros over every page of its payloads: as much I/O as the INSERT,
        # while the batch is delivered but still in the file (a kill -9 then sends it
        # again).  FAST zeroes what costs no extra I/O; freed pages keep old payloads until
        # reused or vacuumed, in a file only this user may read (check_path), as they were.
        conn.execute("PRAGMA secure_delete = FAST")
        if fresh or not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'batches'").fetchone():
            conn.executescript(_SCHEMA)
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))
        else:
            columns = {row[1] for row in conn.execute("PRAGMA table_info(batches)")}
            needed = {"seq", "format", "events", "records", "payloads", "added", "owner"}
            if not needed <= columns:
                raise SpoolCorrupt(f"table 'batches' lacks columns {sorted(needed - columns)}")
            _migrate(conn, columns)
    except BaseException:
        conn.close()
        raise
    return conn


def _migrate(conn: sqlite3.Connection, columns: set[str]) -> None:
    """Bring a spool an older version wrote up to :data:`SCHEMA_VERSION`; its rows stay as they are.

    Only additions, which that older version ignores (it names the columns it
    writes): a 0.1.0 process may still share the file.
    """
    missing_table = not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'quarantine'").fetchone()
    if {"destination", "shed", "checksum"} <= columns and not missing_table:
        return
    with _transaction(conn):
        # Read again inside the write lock: another process may have added them meanwhile.
        columns = {row[1] for row in conn.execute("PRAGMA table_info(batches)")}
        if "destination" not in columns:
            conn.execute("ALTER TABLE batches ADD COLUMN destination TEXT")
        if "shed" not in columns:  # overload control: 1 for a row of sheddable events
            conn.execute("ALTER TABLE batches ADD COLUMN shed INTEGER NOT NULL DEFAULT 0")
        if "checksum" not in columns:
            conn.execute("ALTER TABLE batches ADD COLUMN checksum INTEGER")
        conn.execute(_QUARANTINE)
        conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (SCHEMA_VERSION,))


def open_database(
    path: str, synchronous: str = "NORMAL", busy_ms: int = BUSY_TIMEOUT_MS
) -> tuple[sqlite3.Connection, str | None]:
    """Open the spool file, moving a damaged one aside; return it and the moved name (or None).

    ``busy_ms`` is how long one statement waits for another process's write lock.
    """
    path = os.path.abspath(path)
    _check_links(path)  # before makedirs, which would follow a planted link
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    check_path(path)
    with _path_lock(path):
        try:
            return _connect(path, synchronous, busy_ms), None
        except SpoolCorrupt as exc:
            moved = move_aside(path)
            conn = _connect(path, synchronous, busy_ms)
            log.warning(
                "the spool %s was not a readable SQLite spool (%s); it was moved to %s "
                "and a fresh spool started",
                path,
                exc,
                moved,
            )
            return conn, moved


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE ... COMMIT: take the write lock up front, waiting up to the busy timeout."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
