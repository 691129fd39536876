"""``eventlog spool info|replay|purge --db PATH``: look at, send or drop a spool's events."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import TextIO

from eventlog.errors import ConfigurationError
from eventlog.hookspecs import hookimpl


def _size(count: int) -> str:
    value = float(count)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{count} B"


def _age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    if seconds < 172800:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def _refused(command: str, db: str) -> bool:
    """Say so and return True when the spool path is not safe to open (as the engine checks)."""
    from eventlog.spool.database import check_path
    from eventlog.spool.protocol import SpoolUnavailable

    try:
        check_path(db)
    except SpoolUnavailable as exc:
        print(f"eventlog spool {command}: refused: {exc}", file=sys.stderr)
        return True
    except OSError:
        pass  # a missing folder: "no spool at ..." says it better
    return False


def _info(args: argparse.Namespace) -> int:
    from eventlog.spool.admin import inspect

    if _refused("info", args.db):
        return 1
    try:
        info = inspect(args.db)
    except FileNotFoundError:
        print(f"eventlog spool info: no spool at {args.db}", file=sys.stderr)
        return 1
    now = time.time()
    formats = ", ".join(f"{name}: {count}" for name, count in sorted(info.by_format.items()))
    print(f"spool    {info.path}")
    print(f"events   {info.events}" + (f" ({formats})" if formats else ""))
    print(f"size     {_size(info.payload_bytes)} of payloads, {_size(info.file_bytes)} on disk")
    if info.oldest_added is not None and info.newest_added is not None:
        print(f"oldest   {_age(now - info.oldest_added)} ago")
        print(f"newest   {_age(now - info.newest_added)} ago")
    for owner, count in sorted(info.claimed.items()):
        print(f"owned    {count} by process {owner}")
    return 0


class _Bar:
    """A one-line progress bar on a terminal; a final summary line elsewhere."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total, self.stream = max(total, 1), stream
        self.tty = stream.isatty()

    def __call__(self, done: int) -> None:
        if not self.tty:
            return
        width = 30
        filled = min(width, width * done // self.total)
        self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{self.total}")
        self.stream.flush()

    def end(self, done: int) -> None:
        if self.tty:
            self.stream.write("\n")
        self.stream.flush()


def _replay(args: argparse.Namespace) -> int:
    from eventlog.config import Settings
    from eventlog.pipeline import Pipeline
    from eventlog.spool.admin import inspect
    from eventlog.spool.sqlite import SQLiteSpool

    if _refused("replay", args.db):
        return 1
    if not os.path.exists(args.db):
        print(f"eventlog spool replay: no spool at {args.db}", file=sys.stderr)
        return 1
    # Where to send comes from the environment as for the application, minus the spool itself.
    environ = {k: v for k, v in os.environ.items() if k != "EVENTLOG_DB"}
    given = {"format": args.format} if args.format else {}
    try:
        pipeline = Pipeline(Settings.load(given, environ=environ))
    except ConfigurationError as exc:
        print(f"eventlog spool replay: {exc}", file=sys.stderr)
        return 2
    total = inspect(args.db).by_format.get(pipeline.format_name, 0)
    spool = SQLiteSpool(args.db, pipeline.format_name)  # no size or age limit: nothing is evicted
    bar = _Bar(total, sys.stderr)
    try:
        sent = pipeline.replay(spool, timeout=args.timeout, progress=bar)
    finally:
        bar.end(0)
        spool.close()
        pipeline.shutdown(0)
    left = inspect(args.db)
    others = {f: n for f, n in left.by_format.items() if f != pipeline.format_name}
    print(
        f"sent {sent} events to {pipeline.transport_name} as {pipeline.format_name}; "
        f"{left.events} left in the spool"
    )
    for fmt, count in sorted(others.items()):
        print(
            f"  {count} are formatted as {fmt!r}: replay them with --format {fmt} "
            "(and a transport that carries it)"
        )
    waiting = left.events - sum(others.values())
    dropped = pipeline.stats.dropped_by_reason()
    if dropped:
        print(f"  given up: {dropped}")
    return 0 if waiting == 0 else 1


def _purge(args: argparse.Namespace) -> int:
    from eventlog.spool.admin import purge

    if _refused("purge", args.db):
        return 1
    if not os.path.exists(args.db):
        print(f"eventlog spool purge: no spool at {args.db}", file=sys.stderr)
        return 1
    count = purge(args.db, format_name=args.format, older_than=args.older_than)
    print(f"dropped {count} events from {args.db}")
    return 0


@hookimpl
def eventlog_add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``eventlog spool``."""
    parser = subparsers.add_parser(
        "spool", help="look at, send or drop the events waiting in a spool (EVENTLOG_DB)"
    )
    commands = parser.add_subparsers(dest="spool_command", required=True)
    default_db = os.environ.get("EVENTLOG_DB")

    def db_option(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--db",
            default=default_db,
            required=default_db is None,
            help="the spool file (default: $EVENTLOG_DB)",
        )

    info = commands.add_parser("info", help="what is waiting: count, formats, age, size")
    db_option(info)
    info.set_defaults(func=_info)

    replay = commands.add_parser("replay", help="send what is waiting now, to the peer EVENTLOG_* names")
    db_option(replay)
    replay.add_argument(
        "--format", help="send the events stored in this format (default: the configured one)"
    )
    replay.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="stop retrying an unreachable peer after so many seconds (default 30)",
    )
    replay.set_defaults(func=_replay)

    purge = commands.add_parser("purge", help="drop waiting events")
    db_option(purge)
    purge.add_argument("--format", help="only events stored in this format")
    purge.add_argument("--older-than", type=float, metavar="SECONDS", help="only events spooled before that")
    purge.set_defaults(func=_purge)
