"""The eventlog command line: plugins, config, send, demo (plugins add more commands)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
import urllib.parse
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from eventlog._config.config import CORE_OPTIONS, Settings, env_name, option_key
from eventlog._config.registry import core_version, get_registry
from eventlog._core.errors import ConfigurationError
from eventlog._core.masking import HIDDEN, SecretMask, mask_structure
from eventlog._core.options import Option

DESCRIPTION = """\
Ship application events and log records to Logstash, Fluentd, syslog, HTTP and
other collectors.  Where events go is read from EVENTLOG_* environment variables
(EVENTLOG_HOST, EVENTLOG_TRANSPORT ...): 'eventlog config' shows what they resolve
to, 'eventlog plugins --settings' lists every setting."""

EPILOG = """\
examples:
  eventlog demo                                  try it on a receiver of its own
  EVENTLOG_HOST=127.0.0.1 eventlog config        where events would go, and why
  eventlog send deploy.finish api --level INFO --field version=1.10 --field replicas:int=3

'eventlog COMMAND --help' describes each command."""


def env_text(value: Any) -> str:
    """A setting's value as it is written in the environment: ``('a', 'b')`` -> ``a,b``.

    What this returns, pasted as ``EVENTLOG_X=<text>`` (quoted for the shell where it
    needs it), is read back as the same value; None (unset) is the empty text.
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (list, tuple)):
        return ",".join(env_text(item) for item in value)
    if isinstance(value, Mapping):
        return json.dumps(dict(value)) if value else ""
    return os.fspath(value) if isinstance(value, os.PathLike) else str(value)


def _assignment(name: str, option: Option, value: Any) -> str:
    """``EVENTLOG_X=value`` for a shell, with a secret hidden (an empty one shows as unset).

    Unset where ``EVENTLOG_X=`` would mean none (an option that declares ``empty``) reads
    ``unset EVENTLOG_X``.
    """
    if value is None and option.empty:
        return f"unset {name}"
    if env_text(value) == "":
        return f"{name}="
    text = _shown_value(option, value)
    return f"{name}={text if text == HIDDEN else shlex.quote(text)}"


def _shown_value(option: Option, value: Any) -> str:
    """``value`` as text, with a secret hidden: a URL keeps its host and path, anything else goes."""
    text = env_text(value)
    if not option.secret:
        return mask_structure(text)  # credentials inside a URL or a header even so
    parts = urllib.parse.urlsplit(text)
    if parts.scheme and parts.netloc:
        return SecretMask.for_options([option], {option.name: value})(text)
    return HIDDEN


def _described(option: Option) -> str:
    """An option's help and its declared values: ``help (allowed: ...; empty: none)``."""
    allowed = option.allowed or ""
    if option.empty:
        allowed += "; empty: none"
    if not allowed or allowed == option.help:
        return option.help
    return f"{option.help} (allowed: {allowed})" if option.help else f"allowed: {allowed}"


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
        print(
            "\nSETTINGS (as written in the environment, with the default and what is allowed; "
            "empty means unset, or none where allowed says so)"
        )
        for opt in CORE_OPTIONS:
            print(f"  {_assignment(env_name(opt.name), opt, opt.default)}  # {_described(opt)}")
        tables: list[tuple[str, Any]] = [
            *registry.formatters.items(),
            *registry.transports.items(),
            *registry.enrichers.items(),
        ]
        for name, reg in tables:
            for opt in reg.spec.options:
                print(
                    f"  {_assignment(env_name(option_key(name, opt)), opt, opt.default)}  # {_described(opt)}"
                )
    # Non-zero only for something broken, so `eventlog plugins` can gate a deployment.
    return 1 if problems else 0


def _config(args: argparse.Namespace) -> int:
    from eventlog._config.selection import select_plugins

    _load_django_settings()
    given = dict(args.set or [])
    try:
        settings = Settings.load(given)
        selection = select_plugins(settings, get_registry())
    except ConfigurationError as exc:
        print(f"eventlog config: {exc}", file=sys.stderr)
        return 2
    set_aside = settings.set_aside()
    rows: list[tuple[str, str, str]] = []

    def add(key: str, option: Option, value: Any, default_source: str = "default") -> None:
        found = settings.raw(key)
        source = default_source if found is None else _source_word(found[1])
        name = env_name(key)
        if name in set_aside:
            source += f" ({set_aside[name]} {name} set aside: code names the destination)"
        rows.append((key, _shown_value(option, value) if env_text(value) else "", source))

    for opt in CORE_OPTIONS:
        value = settings.values[opt.name]
        if opt.name == "transport" and value is None:
            add("transport", opt, selection.transport_name, "default (logstash with a host, else console)")
        elif opt.name == "format" and value is None:
            add("format", opt, selection.format_name, f"default (the {selection.transport_name} transport's)")
        elif opt.name == "port" and value is not None and settings.raw("port") is None:
            add("port", opt, value, "from host")
        else:
            add(opt.name, opt, value)
    plugins: list[tuple[str, Any]] = [
        (selection.transport_name, selection.transport),
        (selection.format_name, selection.formatter),
    ]
    plugins += list(selection.enrichers)
    seen: set[str] = set()
    for name, registered in plugins:
        for opt in registered.spec.options:
            key = option_key(name, opt)
            if key not in seen:
                seen.add(key)
                add(key, opt, settings.resolve(key, opt))
    width = max(len(key) for key, _, _ in rows)
    value_width = min(40, max(len(value) for _, value, _ in rows))
    print(f"{'SETTING'.ljust(width)}  {'VALUE'.ljust(value_width)}  SOURCE")
    for key, value, source in rows:
        print(f"{key.ljust(width)}  {(value or '(unset)').ljust(value_width)}  {source}")
    spool = settings.values["db"]
    print(
        f"\nevents go to: {selection.transport_name} ({selection.format_name})"
        + (f" {settings.host}:{settings.port}" if settings.host and settings.port else "")
        + (f" {settings.host}" if settings.host and not settings.port else "")
        + (f", spooled in {spool}" if spool else ", memory mode (no spool)")
    )
    return 0


def _source_word(source: str) -> str:
    """``configure(host=...)`` -> ``argument --set host=...``; other sources stay as they are."""
    if source.startswith("configure("):
        return "argument --set " + source[len("configure(") : -1]
    return source


def _load_django_settings() -> None:
    """With DJANGO_SETTINGS_MODULE set, read the project's settings as the application would."""
    if not os.environ.get("DJANGO_SETTINGS_MODULE"):
        return
    try:
        sys.path.insert(0, os.getcwd())  # manage.py's folder, where a project's settings live
        from django.conf import settings

        settings.INSTALLED_APPS  # noqa: B018 - reading one setting loads the module
    except Exception as exc:
        print(f"eventlog config: Django settings not read ({type(exc).__name__}: {exc})", file=sys.stderr)


_INT_TEXT = "a whole number"


def _field(text: str) -> tuple[str, int | float | str]:
    """``key=value`` (text), ``key:int=5``, ``key:float=1.5``, ``key:str=007``."""
    key, sep, value = text.partition("=")
    name, colon, kind = key.partition(":")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected key=value (or key:int=5, key:float=1.5), got {text!r}")
    if not colon or kind == "str":
        return name, value  # text, as written: version=1.10 stays '1.10'
    try:
        if kind == "int":
            return name, int(value)
        if kind == "float":
            return name, float(value)
    except ValueError:
        words = _INT_TEXT if kind == "int" else "a number"
        raise argparse.ArgumentTypeError(f"--field {text!r}: {value!r} is not {words}") from None
    raise argparse.ArgumentTypeError(f"--field {text!r}: the type is int, float or str, not {kind!r}")


_LEVELS = {name: getattr(logging, name) for name in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")}


def _level(text: str) -> int:
    """A level name (INFO, warning ...) or a number."""
    if text.upper() in _LEVELS:
        return int(_LEVELS[text.upper()])
    if text.upper() == "WARN":
        return logging.WARNING
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a level: use DEBUG, INFO, WARNING, ERROR, CRITICAL or a number"
        ) from None


def _send(args: argparse.Namespace) -> int:
    from eventlog._api import api
    from eventlog._records.event import Event

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
    from eventlog import Event, configure, context, get_logger, log_event
    from eventlog._api.handler import EventHandler
    from eventlog._builtin.receiver import LineReceiver
    from eventlog._engine import prometheus

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


def _setting(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected name=value (host=127.0.0.1), got {text!r}")
    return key.lower().removeprefix("eventlog_"), value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser, with plugin sub-commands added."""
    parser = argparse.ArgumentParser(
        prog="eventlog",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"eventlog {core_version()}")
    sub = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")

    def command(name: str, help: str, description: str, epilog: str | None = None) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=help,
            description=description,
            epilog=epilog,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    p = command(
        "plugins",
        "list installed formatters, transports, enrichers; broken plugins",
        "List every installed formatter, transport and enricher with its distribution,\n"
        "version and framing (what a formatter writes, what a transport carries), then\n"
        "any plugin that failed to load and any name two distributions register.\n\n"
        "Exit status: 0 when nothing is broken, 1 when something is.",
    )
    p.add_argument(
        "--settings",
        action="store_true",
        help="also list every setting as an environment variable with its default",
    )
    p.set_defaults(func=_plugins)

    p = command(
        "config",
        "show where events would go, and where each setting comes from",
        "Print the configuration this environment resolves to: every general setting\n"
        "and those of the transport, format and enrichers it selects, each with its value\n"
        "(secrets hidden) and its source: default, environment variable, Django setting\n"
        "(with DJANGO_SETTINGS_MODULE set) or an argument given with --set.  Nothing is sent.\n\n"
        "Exit status: 0, or 2 when the configuration is refused (the reason is printed).",
        "example:\n  EVENTLOG_HOST=collector.internal:5959 eventlog config --set transport=tcp",
    )
    p.add_argument(
        "--set",
        action="append",
        type=_setting,
        metavar="NAME=VALUE",
        help="a setting as the application would pass it to configure() (repeatable)",
    )
    p.set_defaults(func=_config)

    p = command(
        "send",
        "send one event and wait until it is delivered",
        "Send one event, configured from the EVENTLOG_* environment variables as an\n"
        "application would be, and wait until it is delivered.\n\n"
        "Exit status: 0 when delivered, 1 when not within --timeout, 2 for a bad configuration.",
        "fields are text unless a type is given:\n"
        "  --field version=1.10         the text '1.10'\n"
        "  --field replicas:int=3       the whole number 3\n"
        "  --field ratio:float=0.5      the number 0.5\n\n"
        "example:\n"
        "  eventlog send deploy.finish api --type service --level INFO --field version=1.10",
    )
    p.add_argument("action", help="what happened, e.g. deploy.finish")
    p.add_argument("target", nargs="?", help="what it happened to, e.g. api")
    p.add_argument("--type", help="the kind of target, e.g. service (sent as tgType)")
    p.add_argument("--message", help="a human-readable message")
    p.add_argument("--tag", action="append", help="a tag (repeat for more)")
    p.add_argument(
        "--field",
        action="append",
        type=_field,
        metavar="KEY[:TYPE]=VALUE",
        help="a field; TYPE is str (the default), int or float (repeat for more)",
    )
    p.add_argument(
        "--level",
        type=_level,
        help="DEBUG, INFO, WARNING, ERROR, CRITICAL or a number (default: none)",
    )
    p.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for delivery (default: %(default)s)"
    )
    p.set_defaults(func=_send)

    p = command(
        "demo",
        "try it: log events to a receiver of its own, show what arrived",
        "Start a receiver on 127.0.0.1 (JSON lines over TCP), log five events to it\n"
        "through the logging handler and through Event objects, print them as they\n"
        "arrived, then the metrics.  Needs no server and no settings.\n\n"
        "Exit status: 0 when all five arrived.",
    )
    p.set_defaults(func=_demo)

    get_registry().add_commands(sub)
    _describe_commands(sub.choices.values(), {a.dest: a.help for a in sub._choices_actions})
    return parser


def _describe_commands(parsers: Iterable[argparse.ArgumentParser], helps: dict[str, str | None]) -> None:
    """A plugin command without a description gets its one-line help as one, for its --help page."""
    for parser in parsers:
        name = parser.prog.rsplit(" ", 1)[-1]
        if parser.description is None and helps.get(name):
            parser.description = helps[name]
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                _describe_commands(action.choices.values(), {a.dest: a.help for a in action._choices_actions})


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``eventlog`` command."""
    try:
        parser = build_parser()
    except ConfigurationError as exc:
        print(f"eventlog: {exc}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    if args.command is None:  # `eventlog` alone: what it can do, as --help says it
        parser.print_help()
        return 0
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
