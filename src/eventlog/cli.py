"""The ``eventlog`` command: plugins, send, demo (plugins add more through a hook)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from eventlog.config import CORE_OPTIONS, env_name, option_key
from eventlog.errors import ConfigurationError
from eventlog.registry import get_registry


def _plugins(args: argparse.Namespace) -> int:
    registry = get_registry()
    rows = registry.rows()
    header = ("KIND", "NAME", "DISTRIBUTION", "VERSION", "FRAMING")
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)) + "  DESCRIPTION")
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row[:5], widths)) + "  " + row[5])
    problems = registry.problems()
    if problems:
        print(f"\nBROKEN ({len(problems)}): left out; pipelines that do not select these names work")
        for problem in problems:
            print(f"  {problem}")
    if args.settings:
        print("\nSETTINGS (environment variable = default: meaning)")
        for opt in CORE_OPTIONS:
            print(f"  {env_name(opt.name)} = {opt.default!r}: {opt.help}")
        tables: list[tuple[str, Any]] = [
            *registry.formatters.items(),
            *registry.transports.items(),
            *registry.enrichers.items(),
        ]
        for name, reg in tables:
            for opt in reg.spec.options:
                default = "<secret>" if opt.secret else repr(opt.default)
                print(f"  {env_name(option_key(name, opt))} = {default}: {opt.help}")
    # Non-zero only for something broken, so `eventlog plugins` can gate a deployment.
    return 1 if problems else 0


def _field(text: str) -> tuple[str, int | float | str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--field takes key=value, got {text!r}")
    for kind in (int, float):
        try:
            return key, kind(value)
        except ValueError:
            pass
    return key, value


def _send(args: argparse.Namespace) -> int:
    from eventlog import api
    from eventlog.event import Event

    try:
        pipeline = api.configure()
    except ConfigurationError as exc:
        print(f"eventlog send: {exc}", file=sys.stderr)
        return 2
    event = Event(
        args.action,
        args.target,
        args.type,
        message=args.message,
        tags=args.tag or None,
        fields=dict(args.field) if args.field else None,
        level=args.level,
    )
    pipeline.submit_event(event)
    flushed = pipeline.flush(args.timeout)
    delivered = flushed and pipeline.stats.sent >= 1 and not pipeline.stats.dropped_by_reason()
    pipeline.shutdown(0.5)
    if not delivered:
        print(
            f"eventlog send: not delivered to {pipeline.transport_name} within {args.timeout}s "
            f"(dropped: {pipeline.stats.dropped_by_reason() or 'none'})",
            file=sys.stderr,
        )
        return 1
    print(f"sent {event.id} via {pipeline.transport_name} ({pipeline.format_name})")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from eventlog import Event, configure, context, get_logger, log_event, prometheus
    from eventlog.handler import EventHandler
    from eventlog.receiver import LineReceiver

    with LineReceiver() as receiver:
        print(f"embedded receiver: JSON lines over TCP on 127.0.0.1:{receiver.port}\n")
        pipeline = configure(
            transport="tcp", host="127.0.0.1", port=receiver.port, site="demo", cluster="local"
        )
        logger = logging.getLogger("demo-app")
        logger.setLevel(logging.INFO)
        logger.propagate = False
        handler = EventHandler()
        logger.addHandler(handler)
        log = get_logger("demo-app")

        log.info("some message")
        log_event(Event("click", "my-button", "ui"))
        with context(user="alice", session="s-1", request_id="req-42"):
            log.info(
                "my message",
                tags=["thing-one", "thing-two"],
                metrics={"value": 3.14159, "choice": "banana", "durationMs": 34.2},
            )
            log_event(Event("account.admin.create", "bob", "user", fields={"plan": "pro"}))
            try:
                1 / 0  # noqa: B018 - the demo shows exc_info
            except ZeroDivisionError:
                log.exception("division failed")
        expected = 5
        pipeline.flush(5)
        arrived = receiver.wait_for(expected, 5)
        logger.removeHandler(handler)
        for event in receiver.events():
            if "exc_info" in event:
                event["exc_info"] = json.loads(event["exc_info"])["type"] + ": ..."
            print(json.dumps(event, ensure_ascii=False))
        print(f"\n{len(receiver.lines)} of {expected} events arrived\n")
        print("metrics (as a Prometheus scrape shows them):")
        for line in prometheus.render().splitlines():
            if line.startswith("eventlog_") and "_bucket" not in line:
                print("  " + line)
        pipeline.shutdown(2)
    return 0 if arrived else 1


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with plugin sub-commands added."""
    parser = argparse.ArgumentParser(prog="eventlog", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "plugins",
        help="list installed formatters, transports and enrichers, and broken plugins",
        description="List every installed formatter, transport and enricher with its "
        "distribution, version and framing (what a formatter writes, what a transport "
        "carries), then any plugin that failed to load and any name two distributions "
        "register.  Exit status: 0 when nothing is broken, 1 when something is.",
    )
    p.add_argument("--settings", action="store_true", help="also list every setting")
    p.set_defaults(func=_plugins)

    p = sub.add_parser("send", help="send one event through the configured pipeline")
    p.add_argument("action")
    p.add_argument("target", nargs="?")
    p.add_argument("--type", help="the target's type (tgType)")
    p.add_argument("--message")
    p.add_argument("--tag", action="append", help="a tag (repeatable)")
    p.add_argument("--field", action="append", type=_field, help="key=value (repeatable)")
    p.add_argument("--level", type=int)
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for delivery")
    p.set_defaults(func=_send)

    p = sub.add_parser("demo", help="log through both APIs to an embedded receiver")
    p.set_defaults(func=_demo)

    get_registry().add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``eventlog`` command."""
    try:
        parser = build_parser()
    except ConfigurationError as exc:
        print(f"eventlog: {exc}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # `eventlog plugins --settings | head`: the reader left; that is not an error to report.
        # Point stdout at /dev/null so the interpreter's own flush at exit does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141  # what a shell reports for a command killed by SIGPIPE (128 + 13)
    return result


if __name__ == "__main__":
    sys.exit(main())
