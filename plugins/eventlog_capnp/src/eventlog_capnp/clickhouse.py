"""The ClickHouse side: the table that matches ``event.capnp``, and how to insert into it.

ClickHouse 18.16 (Debian's) reads Cap'n Proto with a library that refuses
messages not aligned to 8 bytes in memory, and the rows of an HTTP insert begin
right after the query text and its newline.  :func:`insert_query` therefore pads
the query with spaces so that its length plus one is a multiple of 8; without
that, every insert fails with "Detected unaligned data in Cap'n Proto message".
Newer servers copy the data and ignore the padding.
"""

from __future__ import annotations

import urllib.parse
from pathlib import Path

from eventlog_capnp.schema import COLUMNS, ROOT_STRUCT, SCHEMA_FILE

#: Default table name.
DEFAULT_TABLE = "events"
#: Sorting key of the table (the seed's primary key); ``day`` is derived from ``tstamp``.
ORDER_BY = ("day", "tgType", "action", "target", "user")


def render_ddl(table: str = DEFAULT_TABLE, *, if_not_exists: bool = True) -> str:
    """``CREATE TABLE`` for ClickHouse (18.16 and later) that matches ``event.capnp``.

    A MergeTree table ordered by the seed's key ``(day, tgType, action,
    target, user)`` and partitioned by month; ``day`` is MATERIALIZED from
    ``tstamp`` (UTC), so an insert does not send it.
    """
    lines = [f"    `{column.name}` {column.clickhouse_type}," for column in COLUMNS]
    lines.append("    `day` Date MATERIALIZED toDate(intDiv(tstamp, 1000), 'UTC')")
    guard = "IF NOT EXISTS " if if_not_exists else ""
    order = ", ".join(f"`{name}`" for name in ORDER_BY)
    return (
        f"CREATE TABLE {guard}{table}\n(\n"
        + "\n".join(lines)
        + "\n)\nENGINE = MergeTree\n"
        + "PARTITION BY toYYYYMM(day)\n"
        + f"ORDER BY ({order})\n"
    )


def format_schema_setting() -> str:
    """The value of ClickHouse's ``format_schema`` setting: ``event:Event``.

    ClickHouse 18.16 appends ``.capnp`` itself (``event.capnp:Event`` would
    look for ``event%2Ecapnp.capnp``); newer servers accept both spellings.
    """
    return f"{Path(SCHEMA_FILE).stem}:{ROOT_STRUCT}"


def insert_query(table: str = DEFAULT_TABLE) -> str:
    """``INSERT INTO <table> FORMAT CapnProto``, padded so the rows after it start 8-byte aligned.

    The server reads the rows from just after the query and one newline (the
    HTTP interface adds that newline to a query given in the URL; put one
    after the query yourself when the query opens the POST body).
    """
    query = f"INSERT INTO {table} FORMAT CapnProto"
    pad = -(len(query.encode("utf-8")) + 1) % 8
    return query + " " * pad


def insert_url(base_url: str, table: str = DEFAULT_TABLE) -> str:
    """The URL to POST ``capnp`` batches to: ``base_url`` plus the query and ``format_schema``.

    >>> insert_url("http://127.0.0.1:8123/")
    'http://127.0.0.1:8123/?query=INSERT+INTO+events+FORMAT+CapnProto++++&format_schema=event%3AEvent'
    """
    params = urllib.parse.urlencode({"query": insert_query(table), "format_schema": format_schema_setting()})
    separator = "&" if urllib.parse.urlsplit(base_url).query else "?"
    return f"{base_url}{separator}{params}"
