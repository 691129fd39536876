"""``eventlog spool info|replay|quarantine|purge --db PATH``: look at, send or drop a spool's events."""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
from typing import Any, TextIO

from eventlog._config.hookspecs import hookimpl
from eventlog._core.errors import ConfigurationError


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
    from eventlog._spool.database import check_path
    from eventlog._spool.protocol import SpoolUnavailable

    try:
        check_path(db)
    except SpoolUnavailable as exc:
        print(f"eventlog spool {command}: refused: {exc}", file=sys.stderr)
        return True
    except OSError:
        pass  # a missing folder: "no spool at ..." says it better
    return False


def _info(args: argparse.Namespace) -> int:
    from eventlog._spool.admin import inspect
    from eventlog._spool.sqlite import describe_destination

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
    for (fmt, destination), count in sorted(info.by_destination.items(), key=lambda item: str(item[0])):
        print(f"to       {count} as {fmt} for {describe_destination(destination)}")
    if info.quarantined_rows:
        print(
            f"damaged  {info.quarantined_rows} rows ({info.quarantined_events} events) in quarantine: "
            f"eventlog spool quarantine --db {args.db}"
        )
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


#: Settings naming where events go: replay to "the environment" needs one of them.
_DESTINATION_VARIABLES = ("EVENTLOG_HOST", "EVENTLOG_TRANSPORT")


def _recorded_settings(destination: str, fmt: str) -> dict[str, Any]:
    """The settings that send to a recorded destination, as ``configure()`` keywords."""
    from eventlog._spool.sqlite import _address, parse_destination

    where = parse_destination(destination) or {}
    transport = str(where["transport"])
    given: dict[str, Any] = {"transport": transport, "format": fmt}
    for key in ("host", "port"):
        if where.get(key) is not None:
            given[key] = where[key]
    for name, value in (where.get("urls") or {}).items():
        # The spool keeps a URL without user info or query (they may hold credentials):
        # the environment's value is used when it names the same address.
        variable = f"EVENTLOG_{transport}_{name}".upper()
        configured = os.environ.get(variable)
        if configured is not None:
            items = [item.strip() for item in configured.split(",")]
            if [_address(item) for item in items] == (value if isinstance(value, list) else [value]):
                continue
        given[f"{transport}_{name}"] = ",".join(value) if isinstance(value, list) else value
    return given


def _send_group(
    args: argparse.Namespace, given: dict[str, Any], destination: str | None, claim: str
) -> tuple[int, dict[str, int], dict[str, int], str] | str:
    """Send one group of rows; (sent, dropped, quarantined, where) or a refusal's text."""
    from eventlog._config.config import Settings
    from eventlog._engine.pipeline import Pipeline
    from eventlog._spool.sqlite import SQLiteSpool

    # Secrets and tuning come from the environment as for the application, minus the spool.
    environ = {k: v for k, v in os.environ.items() if k != "EVENTLOG_DB"}
    try:
        pipeline = Pipeline(Settings.load(given, environ=environ))
    except ConfigurationError as exc:
        return str(exc)
    if pipeline.transport_name == "console":
        pipeline.shutdown(0)
        return "the console is not a peer: replay prints there only with --to console, which deletes nothing"
    where = f"{pipeline.transport_name} as {pipeline.format_name}"
    # No size or age limit: nothing is evicted.
    spool = SQLiteSpool(args.db, pipeline.format_name, destination=destination, claim=claim)
    bar = _Bar(0, sys.stderr)
    try:
        sent = pipeline.replay(spool, timeout=args.timeout, progress=bar)
    finally:
        bar.end(0)
        spool.close()
        pipeline.shutdown(0)
    return sent, pipeline.stats.dropped_by_reason(), spool.quarantined, where


def _replay(args: argparse.Namespace) -> int:
    from eventlog._spool.admin import inspect
    from eventlog._spool.sqlite import describe_destination

    if _refused("replay", args.db):
        return 1
    if not os.path.exists(args.db):
        print(f"eventlog spool replay: no spool at {args.db}", file=sys.stderr)
        return 1
    if args.to == "console":
        return _print_waiting(args)
    groups = {
        key: count
        for key, count in inspect(args.db).by_destination.items()
        if args.format is None or key[0] == args.format
    }
    named = any(os.environ.get(name) for name in _DESTINATION_VARIABLES)
    status = 0
    quarantined: dict[str, int] = {}
    plans: list[tuple[dict[str, Any], str | None, str]] = []
    if args.to == "environment":
        if not named:
            print(
                "eventlog spool replay: --to environment, but neither EVENTLOG_HOST nor "
                "EVENTLOG_TRANSPORT is set: name the peer as the application does",
                file=sys.stderr,
            )
            return 2
        for fmt in sorted({fmt for fmt, _ in groups}):
            plans.append(({"format": fmt}, None, "any"))
    else:
        for (fmt, destination), count in sorted(groups.items(), key=lambda item: str(item[0])):
            if destination is not None:
                plans.append((_recorded_settings(destination, fmt), destination, "exact"))
            elif named:  # rows of a 0.1.0 spool: where the environment says
                plans.append(({"format": fmt}, None, "exact"))
            else:
                print(
                    f"eventlog spool replay: {count} events ({fmt}) record no destination (a spool "
                    "written by eventlog 0.1.0): set EVENTLOG_HOST (and EVENTLOG_TRANSPORT) as the "
                    "application did to send them there, or print them with --to console",
                    file=sys.stderr,
                )
                status = 2
    for given, destination, claim in plans:
        outcome = _send_group(args, given, destination, claim)
        label = (
            describe_destination(destination)
            if claim == "exact" and destination
            else "the environment's peer"
        )
        if isinstance(outcome, str):
            print(f"eventlog spool replay: cannot send to {label}: {outcome}", file=sys.stderr)
            status = max(status, 2)
            continue
        sent, dropped, damaged, where = outcome
        print(f"sent {sent} events to {where} ({label})")
        if dropped:
            print(f"  given up: {dropped}")
        for reason, rows in damaged.items():
            quarantined[reason] = quarantined.get(reason, 0) + rows
    left = inspect(args.db)
    print(f"{left.events} left in the spool")
    for (fmt, destination), count in sorted(left.by_destination.items(), key=lambda item: str(item[0])):
        print(f"  {count} as {fmt} for {describe_destination(destination)}")
    if quarantined:
        rows = sum(quarantined.values())
        reasons = ", ".join(f"{reason}: {n}" for reason, n in sorted(quarantined.items()))
        print(
            f"quarantined {rows} damaged rows ({reasons}); "
            f"they are kept: eventlog spool quarantine --db {args.db}"
        )
    waiting = sum(
        count for key, count in left.by_destination.items() if args.format is None or key[0] == args.format
    )
    return status or (0 if waiting == 0 else 1)


def _print_waiting(args: argparse.Namespace) -> int:
    """``--to console``: every waiting event on stdout, as stored; nothing is deleted."""
    from eventlog._spool.admin import waiting_records

    count = 0
    out = sys.stdout.buffer
    for record in waiting_records(args.db, args.format):
        payload = record.payload
        out.write(payload if payload.endswith(b"\n") else payload + b"\n")
        count += 1
    out.flush()
    print(
        f"eventlog spool replay: printed {count} events; the spool still holds them "
        f"(drop them with eventlog spool purge --db {args.db})",
        file=sys.stderr,
    )
    return 0


def _new_private_file(path: str) -> TextIO:
    """A new file only readable by its owner, never an existing file or a link's target.

    Run as root, ``open(path, "w")`` would truncate whatever a planted link points at,
    and leave the copied payloads readable by everyone under the usual umask.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    return os.fdopen(fd, "w", encoding="utf-8")


def _quarantine(args: argparse.Namespace) -> int:
    from eventlog._spool.admin import quarantined
    from eventlog._spool.sqlite import describe_destination

    if _refused("quarantine", args.db):
        return 1
    try:
        rows = quarantined(args.db)
    except FileNotFoundError:
        print(f"eventlog spool quarantine: no spool at {args.db}", file=sys.stderr)
        return 1
    if args.export:
        try:
            out = _new_private_file(args.export)
        except OSError as exc:
            print(
                f"eventlog spool quarantine: refused to export to {args.export}: {exc.strerror or exc}; "
                "give the name of a file that does not exist yet (the export holds event payloads)",
                file=sys.stderr,
            )
            return 1
        with out:
            for row in rows:
                line = {
                    "seq": row.seq,
                    "reason": row.reason,
                    "error": row.error,
                    "quarantined": row.quarantined,
                    "format": row.format,
                    "events": row.events,
                    "destination": row.destination,
                    "added": row.added,
                    "owner": row.owner,
                    "records_base64": None if row.records is None else base64.b64encode(row.records).decode(),
                    "payloads_base64": None
                    if row.payloads is None
                    else base64.b64encode(row.payloads).decode(),
                }
                out.write(json.dumps(line) + "\n")
        print(f"exported {len(rows)} quarantined rows to {args.export}")
        return 0
    now = time.time()
    print(f"{len(rows)} quarantined rows in {args.db}")
    for row in rows:
        size = len(row.payloads) if row.payloads is not None else 0
        print(
            f"  seq {row.seq}: {row.reason}, {row.events if row.events is not None else '?'} events "
            f"({row.format or '?'}, {_size(size)}) for {describe_destination(row.destination)}, "
            f"quarantined {_age(now - row.quarantined)} ago: {row.error}"
        )
    return 0


def _purge(args: argparse.Namespace) -> int:
    from eventlog._spool.admin import purge

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

    replay = commands.add_parser(
        "replay", help="send what is waiting now, to the destination each row records"
    )
    db_option(replay)
    replay.add_argument("--format", help="only the events stored in this format (default: every format)")
    replay.add_argument(
        "--to",
        choices=("recorded", "environment", "console"),
        default="recorded",
        help="recorded: where each row was meant to go (default); environment: the peer "
        "EVENTLOG_HOST/EVENTLOG_TRANSPORT name, for every row; console: print them on stdout "
        "and delete nothing",
    )
    replay.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="stop retrying an unreachable peer after so many seconds (default 30)",
    )
    replay.set_defaults(func=_replay)

    quarantine = commands.add_parser(
        "quarantine", help="list the damaged rows set aside, or export them (--export FILE)"
    )
    db_option(quarantine)
    quarantine.add_argument(
        "--export", metavar="FILE", help="write them to FILE as JSON lines, their bytes in base64"
    )
    quarantine.set_defaults(func=_quarantine)

    purge = commands.add_parser("purge", help="drop waiting events")
    db_option(purge)
    purge.add_argument("--format", help="only events stored in this format")
    purge.add_argument("--older-than", type=float, metavar="SECONDS", help="only events spooled before that")
    purge.set_defaults(func=_purge)
