"""What the ``eventlog spool`` commands use: a read-only summary of a spool file, and purging it.

``eventlog spool replay`` sends through an ordinary :class:`~eventlog.spool.sqlite.SQLiteSpool`.
"""

from __future__ import annotations

import errno
import os
import time
from dataclasses import dataclass

from eventlog.spool.database import _transaction, open_database
from eventlog.spool.identity import owner_alive


@dataclass(frozen=True)
class SpoolInfo:
    """What ``eventlog spool info`` shows."""

    path: str
    events: int
    payload_bytes: int
    file_bytes: int
    oldest_added: float | None
    newest_added: float | None
    by_format: dict[str, int]
    claimed: dict[str, int]  # owner -> events, with "(dead)" after owners that are gone


def inspect(path: str) -> SpoolInfo:
    """Read-only summary of the spool at ``path``."""
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, "no spool at this path", path)
    conn, _ = open_database(path)
    try:
        events, payload, oldest, newest = conn.execute(
            "SELECT COALESCE(SUM(events), 0), COALESCE(SUM(length(payloads)), 0), MIN(added), "
            "MAX(added) FROM batches"
        ).fetchone()
        by_format = dict(conn.execute("SELECT format, SUM(events) FROM batches GROUP BY format"))
        claimed = {}
        for owner, count in conn.execute(
            "SELECT owner, SUM(events) FROM batches WHERE owner IS NOT NULL GROUP BY owner"
        ):
            claimed[owner if owner_alive(owner) else f"{owner} (dead)"] = count
    finally:
        conn.close()
    size = sum(os.path.getsize(path + suffix) for suffix in ("", "-wal") if os.path.exists(path + suffix))
    return SpoolInfo(path, events, payload, size, oldest, newest, by_format, claimed)


def purge(path: str, *, format_name: str | None = None, older_than: float | None = None) -> int:
    """Delete waiting events (all, or of one format, or added more than ``older_than`` s ago)."""
    conn, _ = open_database(path)
    try:
        clauses: list[str] = []
        params: list[str | float] = []
        if format_name is not None:
            clauses.append("format = ?")
            params.append(format_name)
        if older_than is not None:
            clauses.append("added < ?")
            params.append(time.time() - older_than)
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        with _transaction(conn):
            count = sum(
                int(row[0]) for row in conn.execute(f"DELETE FROM batches{where} RETURNING events", params)
            )
        conn.executescript("PRAGMA incremental_vacuum;")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        conn.close()
    return count
