"""The spool behind ``EVENTLOG_DB``: formatted events wait here, in a SQLite file, until delivered.

- :mod:`eventlog._spool.protocol`: the :class:`Spool` protocol the pipeline uses, and its errors.
- :mod:`eventlog._spool.sqlite`: :class:`SQLiteSpool` and :func:`open_spool`, the pipeline's entry point.
- :mod:`eventlog._spool.database`: the SQLite file: path safety, opening, schema, transactions.
- :mod:`eventlog._spool.identity`: which spool instance owns a row, and whether it still runs.
- :mod:`eventlog._spool.admin`: what ``eventlog spool info|quarantine|purge`` read and delete.

Each row records its format and destination (:func:`destination_of`); rows that
cannot be read are moved to the file's ``quarantine`` table.

The names below are re-exported for the pipeline and the CLI.  A tuning constant is
read where it is defined: a test that changes one patches that module
(``eventlog._spool.sqlite.RETRY_SECONDS``), not this package.
"""

from __future__ import annotations

from eventlog._spool.admin import QuarantinedRow, SpoolInfo, inspect, purge, quarantined
from eventlog._spool.database import (
    BUSY_TIMEOUT_MS,
    QUICK_CHECK_MAX_BYTES,
    SCHEMA_VERSION,
    SQLITE_SIBLINGS,
    check_path,
    move_aside,
    open_database,
)
from eventlog._spool.identity import new_owner, owner_alive, process_identity
from eventlog._spool.protocol import Spool, SpoolCorrupt, SpoolUnavailable
from eventlog._spool.sqlite import (
    BUSY_STEP_MS,
    CLAIM_ROWS,
    DEPTH_WAIT_SECONDS,
    FREE_PAGES_KEPT,
    HOUSEKEEPING_SECONDS,
    READ_AHEAD_ROWS,
    RECENT_MAX,
    RETRY_SECONDS,
    ROW_OVERHEAD,
    VACUUM_STEP_PAGES,
    SQLiteSpool,
    describe_destination,
    destination_of,
    open_spool,
)

__all__ = [
    "BUSY_STEP_MS",
    "BUSY_TIMEOUT_MS",
    "CLAIM_ROWS",
    "DEPTH_WAIT_SECONDS",
    "FREE_PAGES_KEPT",
    "HOUSEKEEPING_SECONDS",
    "QUICK_CHECK_MAX_BYTES",
    "READ_AHEAD_ROWS",
    "RECENT_MAX",
    "RETRY_SECONDS",
    "ROW_OVERHEAD",
    "SCHEMA_VERSION",
    "SQLITE_SIBLINGS",
    "VACUUM_STEP_PAGES",
    "QuarantinedRow",
    "SQLiteSpool",
    "Spool",
    "SpoolCorrupt",
    "SpoolInfo",
    "SpoolUnavailable",
    "check_path",
    "describe_destination",
    "destination_of",
    "inspect",
    "move_aside",
    "new_owner",
    "open_database",
    "open_spool",
    "owner_alive",
    "process_identity",
    "purge",
    "quarantined",
]
