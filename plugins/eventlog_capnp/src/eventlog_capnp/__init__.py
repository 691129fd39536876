"""eventlog-capnp: Cap'n Proto format for eventlog, ready for ClickHouse.

Formatters ``capnp`` (framed messages, what ClickHouse's ``CapnProto`` input
format reads) and ``capnp-packed``; the schema ``event.capnp`` and the matching
ClickHouse table, both generated from :data:`eventlog._records.schema.FIELDS`.
"""

from eventlog_capnp.clickhouse import insert_query, insert_url, render_ddl
from eventlog_capnp.format import CapnpFormatter, PackedCapnpFormatter, read_messages
from eventlog_capnp.schema import render_capnp, schema_path

__all__ = [
    "CapnpFormatter",
    "PackedCapnpFormatter",
    "insert_query",
    "insert_url",
    "read_messages",
    "render_capnp",
    "render_ddl",
    "schema_path",
]
