"""What the ``eventlog spool`` commands use: a summary of a spool file, its quarantine, purging it.

``eventlog spool replay`` sends through an ordinary :class:`~eventlog._spool.sqlite.SQLiteSpool`.
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

from eventlog._records.batch import Record
from eventlog._spool.database import _transaction, open_database
from eventlog._spool.identity import owner_alive
from eventlog._spool.sqlite import _decode


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
    #: (format, recorded destination or None) -> events: where the waiting rows go.
    by_destination: dict[tuple[str, str | None], int]
    quarantined_rows: int
    quarantined_events: int


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
        by_destination = {
            (fmt, destination): count
            for fmt, destination, count in conn.execute(
                "SELECT format, destination, SUM(events) FROM batches GROUP BY format, destination"
            )
        }
        quarantined_rows, quarantined_events = conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(events), 0) FROM quarantine"
        ).fetchone()
        claimed = {}
        for owner, count in conn.execute(
            "SELECT owner, SUM(events) FROM batches WHERE owner IS NOT NULL GROUP BY owner"
        ):
            claimed[owner if owner_alive(owner) else f"{owner} (dead)"] = count
    finally:
        conn.close()
    size = sum(os.path.getsize(path + suffix) for suffix in ("", "-wal") if os.path.exists(path + suffix))
    return SpoolInfo(
        path,
        events,
        payload,
        size,
        oldest,
        newest,
        by_format,
        claimed,
        by_destination,
        quarantined_rows,
        quarantined_events,
    )


@dataclass(frozen=True)
class QuarantinedRow:
    """A spool row that could not be read or decoded, as the quarantine table keeps it."""

    seq: int
    reason: str
    error: str
    quarantined: float
    format: str | None
    events: int | None
    destination: str | None
    added: float | None
    owner: str | None
    records: bytes | None  # the row's index, as stored (JSON text when intact)
    payloads: bytes | None  # the formatted events back to back, as stored


def quarantined(path: str) -> list[QuarantinedRow]:
    """The rows in the quarantine table of the spool at ``path``, oldest first."""
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, "no spool at this path", path)
    conn, _ = open_database(path)
    try:
        rows = conn.execute(
            "SELECT seq, reason, error, quarantined, format, events, destination, added, owner, "
            "CAST(records AS BLOB), payloads FROM quarantine ORDER BY seq"
        ).fetchall()
    finally:
        conn.close()
    return [QuarantinedRow(*row) for row in rows]


def waiting_records(path: str, format_name: str | None = None) -> Iterator[Record]:
    """Every event waiting in the spool (of one format), oldest first; rows that fail to decode are skipped.

    Read only: nothing is claimed or deleted (``eventlog spool replay --to console``).
    """
    conn, _ = open_database(path)
    try:
        where, params = ("WHERE format = ?", (format_name,)) if format_name else ("", ())
        seqs = [seq for (seq,) in conn.execute(f"SELECT seq FROM batches {where} ORDER BY seq", params)]
        for seq in seqs:
            row = conn.execute(
                "SELECT records, payloads, events, checksum FROM batches WHERE seq = ?", (seq,)
            ).fetchone()
            if row is None:
                continue
            try:
                yield from _decode(*row)
            except Exception:
                continue  # a damaged row: the spool quarantines it when it is sent
    finally:
        conn.close()


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
