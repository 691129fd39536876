"""The spool behind ``EVENTLOG_DB``: formatted events wait here, in a SQLite file, until delivered.

- :mod:`eventlog.spool.protocol`: the :class:`Spool` protocol the pipeline uses, and its errors.
- :mod:`eventlog.spool.sqlite`: :class:`SQLiteSpool` and :func:`open_spool`, the pipeline's entry point.
- :mod:`eventlog.spool.database`: the SQLite file: path safety, opening, schema, transactions.
- :mod:`eventlog.spool.identity`: which process owns a row, and whether it still runs.
- :mod:`eventlog.spool.admin`: what ``eventlog spool info|purge`` read and delete.

The names below are re-exported for the pipeline and the CLI.  A tuning constant is
read where it is defined: a test that changes one patches that module
(``eventlog.spool.sqlite.RETRY_SECONDS``), not this package.
"""

from __future__ import annotations

from eventlog.spool.admin import SpoolInfo, inspect, purge
from eventlog.spool.database import (
    BUSY_TIMEOUT_MS,
    QUICK_CHECK_MAX_BYTES,
    SCHEMA_VERSION,
    SQLITE_SIBLINGS,
    check_path,
    move_aside,
    open_database,
)
from eventlog.spool.identity import owner_alive, process_identity
from eventlog.spool.protocol import Spool, SpoolCorrupt, SpoolUnavailable
from eventlog.spool.sqlite import (
    CLAIM_ROWS,
    FREE_PAGES_KEPT,
    HOUSEKEEPING_SECONDS,
    READ_AHEAD_ROWS,
    RECENT_MAX,
    RETRY_SECONDS,
    ROW_OVERHEAD,
    VACUUM_STEP_PAGES,
    SQLiteSpool,
    open_spool,
)

__all__ = [
    "BUSY_TIMEOUT_MS",
    "CLAIM_ROWS",
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
    "SQLiteSpool",
    "Spool",
    "SpoolCorrupt",
    "SpoolInfo",
    "SpoolUnavailable",
    "check_path",
    "inspect",
    "move_aside",
    "open_database",
    "open_spool",
    "owner_alive",
    "process_identity",
    "purge",
]
