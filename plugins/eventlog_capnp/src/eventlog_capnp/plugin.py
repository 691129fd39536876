"""Hook implementations of eventlog-capnp (registered through the entry point group 'eventlog').

Formatters ``capnp`` and ``capnp-packed``, and the command ``eventlog capnp``
with ``schema``, ``ddl`` and ``url``: everything a user needs to create the
ClickHouse table, place the schema and point the ``http`` transport at it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from eventlog.plugin import FormatterSpec, hookimpl
from eventlog_capnp.clickhouse import DEFAULT_TABLE, insert_url, render_ddl
from eventlog_capnp.format import CapnpFormatter, PackedCapnpFormatter
from eventlog_capnp.schema import SCHEMA_FILE, shipped_schema


@hookimpl
def eventlog_formatters() -> list[FormatterSpec]:
    return [
        # Both are self-delimiting: the stream framing's segment table (packed or not) says
        # how long each message is, so a stream of them reads back (read_multiple_bytes).
        FormatterSpec(
            "capnp",
            CapnpFormatter.from_context,
            "Cap'n Proto messages, as ClickHouse's CapnProto format reads them",
            framing="self-delimiting",
        ),
        FormatterSpec(
            "capnp-packed",
            PackedCapnpFormatter.from_context,
            "Cap'n Proto, packed encoding (not for ClickHouse)",
            framing="self-delimiting",
        ),
    ]


def _schema(args: argparse.Namespace) -> int:
    text = shipped_schema()
    if args.output is None:
        sys.stdout.write(text)
        return 0
    folder = Path(args.output)
    if not folder.is_dir():
        print(
            f"eventlog capnp schema: --output {folder} is not a directory; give the server's "
            "format_schema_path (see its config.xml)",
            file=sys.stderr,
        )
        return 2
    target = folder / SCHEMA_FILE
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target}")
    return 0


def _ddl(args: argparse.Namespace) -> int:
    sys.stdout.write(render_ddl(args.table))
    return 0


def _url(args: argparse.Namespace) -> int:
    print(insert_url(args.base_url, args.table))
    return 0


@hookimpl
def eventlog_add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = subparsers.add_parser(
        "capnp", help="Cap'n Proto schema, ClickHouse table and insert URL (eventlog-capnp)"
    )
    commands = parser.add_subparsers(dest="capnp_command", required=True)

    p = commands.add_parser("schema", help=f"print {SCHEMA_FILE} (or write it into a folder)")
    p.add_argument("--output", metavar="DIR", help="write DIR/event.capnp, e.g. the format_schema_path")
    p.set_defaults(func=_schema)

    p = commands.add_parser("ddl", help="print CREATE TABLE for ClickHouse")
    p.add_argument("--table", default=DEFAULT_TABLE, help="table name (default: %(default)s)")
    p.set_defaults(func=_ddl)

    p = commands.add_parser("url", help="print the URL the http transport posts capnp batches to")
    p.add_argument(
        "base_url",
        nargs="?",
        default="http://127.0.0.1:8123/",
        help="ClickHouse's HTTP interface (default: %(default)s)",
    )
    p.add_argument("--table", default=DEFAULT_TABLE, help="table name (default: %(default)s)")
    p.set_defaults(func=_url)
