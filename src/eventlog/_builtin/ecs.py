"""Formatter ``ecs``: one Elastic Common Schema (ECS 8.x) JSON document per line.

The layout follows the ecs-logging spec (what Elastic's ecs-logging libraries
write, and what Filebeat's ``ndjson`` parser and Elastic Agent expect):
``@timestamp``, ``log.level`` and ``message`` come first as dotted keys, then
``ecs.version`` and nested objects.  The wire fields map to ECS names:

======================  ==========================================================
wire                    ECS
======================  ==========================================================
tstamp                  ``@timestamp`` (ISO 8601, UTC, milliseconds)
levelName / level       ``log.level`` (lower case: ``info``; ``info`` without a level,
                        as syslog's severity 6) / ``eventlog.level``
message                 ``message``
action, id              ``event.action``, ``event.id``
target (tgType logger)  ``log.logger``; other targets: ``eventlog.target``, ``eventlog.tgType``
codeFile/Line/Func      ``log.origin.file.name`` (the file's name, as ecs-logging
                        writes it), ``log.origin.file.line``, ``log.origin.function``;
                        the full path in ``eventlog.codeFile``
host, pid, thread       ``host.name``, ``process.pid``, ``process.thread.name``
user, reqId             ``user.name``, ``http.request.id``
site                    ``organization.name``
traceId, spanId         ``trace.id``, ``span.id``
exc_info                ``error.type``, ``error.message``, ``error.stack_trace``
tags                    ``tags``
fields (text)           ``labels.<key>`` (key sanitised, see below)
fields (numbers)        ``eventlog.fields.<key>`` (likewise)
metrics                 ``eventlog.metrics.<key>`` (likewise)
session, cluster, rest  ``eventlog.<wire name>``
======================  ==========================================================

Why ``labels`` holds text only: ECS maps every ``labels`` value as a keyword, so
a number there could not be summed or ranged; numbers go under the
``eventlog`` namespace, a name ECS will not take, where they keep a numeric
mapping.  Field keys are not merged into ECS names, so an application cannot
overwrite ``host.name`` by logging a field of that name.  ``service.name``,
``service.version`` and ``service.environment`` come from the options
``EVENTLOG_ECS_SERVICE_NAME``, ``..._VERSION``, ``..._ENVIRONMENT`` (left out
when unset); with a service name, ``event.dataset`` is that name, as the ecs-logging
spec says a library should set it when the user configured the service name.

Keys Elasticsearch can map: it reads ``.`` in a key as nesting, so ``{"a": "x",
"a.b": "y"}`` would make ``a`` both a keyword and an object and the document is
refused.  The keys of ``labels``, ``eventlog.fields``, ``eventlog.metrics`` and of
the ``eventlog`` namespace have ``.``, ``*`` and ``\\`` replaced by ``_`` (the
ecs-logging spec's rule for labels), and an empty key becomes ``_``.  A key that
then equals another gets ``_2``, ``_3``... (keys that needed no change keep their
name), and ``eventlog.keys`` maps every changed key back to the original
(``{"labels": {"a_b": "a.b"}}``), so nothing is lost.

Values Elasticsearch can map: it maps a JSON integer as ``long`` (64 bits) and
refuses a document whose number does not fit.  The wire already holds its
typed values to 64 bits (a larger field int arrives as its digits, so in
``labels``); what it passes on as enrichers set them (``pid`` and keys of
their own) is held here to the same rules: a bool is ``1``/``0``, as the wire
carries booleans (a field mapped ``boolean`` would refuse the next ``2``, one
mapped ``long`` takes both), and an int beyond ``long`` is its decimal digits
(a ``pid`` that is no such int goes to ``eventlog.pid`` as text instead).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

from eventlog._builtin.formats import dumps_line, dumps_lines, iso_millis, split_lines
from eventlog._config.contracts import Formatter, FormatterSpec, PluginContext
from eventlog._config.hookspecs import hookimpl
from eventlog._core.options import Option, parser
from eventlog._records import logrecords
from eventlog._records.caps import _compiled

#: The ECS version the documents follow (``ecs.version``).
ECS_VERSION = "8.11.0"
#: ECS keyword fields keep at most this many characters (``ignore_above``).
KEYWORD_MAX = 1024
#: ``log.level`` of an event without a level (the spec requires the field).
NO_LEVEL = "info"

#: Elasticsearch's ``long``, what it maps a JSON integer to (the wire's int64).
LONG_MIN = -(2**63)
LONG_MAX = 2**63 - 1

#: The ecs-logging spec's key sanitisation for labels (``.``, ``*``, ``\\`` -> ``_``).
_KEY_REPLACEMENTS = str.maketrans({".": "_", "*": "_", "\\": "_"})

#: Wire fields with a place of their own; any other key goes under ``eventlog``.
_MAPPED = frozenset(
    {
        "id",
        "tstamp",
        "action",
        "target",
        "tgType",
        "level",
        "levelName",
        "message",
        "tags",
        "fields",
        "metrics",
        "user",
        "reqId",
        "site",
        "host",
        "pid",
        "thread",
        "codeFile",
        "codeLine",
        "codeFunc",
        "exc_info",
        "traceId",
        "spanId",
    }
)


@parser(takes="text", allowed="text, not empty, at most 1024 characters (what an ECS keyword field keeps)")
def parse_keyword(value: Any) -> str:
    """Text, not empty, at most 1024 characters (what an ECS keyword field keeps)."""
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {type(value).__name__}")
    text = value.strip()
    if not text:
        raise ValueError("must not be empty")
    if len(text) > KEYWORD_MAX:
        raise ValueError(f"must be at most {KEYWORD_MAX} characters")
    return text


def error_fields(exc_info: str) -> dict[str, Any]:
    """ECS ``error.*`` from the wire's exc_info JSON (type, value, stack)."""
    try:
        parsed = json.loads(exc_info)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):  # not eventlog's JSON: the text is all there is
        return {"stack_trace": exc_info}
    error: dict[str, Any] = {}
    kind, value, stack = parsed.get("type"), parsed.get("value"), parsed.get("stack")
    if isinstance(kind, str):
        error["type"] = kind
    if isinstance(value, str):
        error["message"] = value
    if isinstance(stack, str):
        error["stack_trace"] = stack
    return error


#: Names of our own in the ``eventlog`` namespace, which a wire key cannot take.
_RESERVED = frozenset({"keys", "fields", "metrics", "level", "target", "tgType", "codeFile"})


def _needs_rename(key: str) -> bool:
    return not key.strip() or "." in key or "*" in key or "\\" in key


def mappable_keys(
    values: dict[str, Any],
    renamed: dict[str, dict[str, str]],
    where: str,
    reserved: frozenset[str] = frozenset(),
) -> dict[str, Any]:
    """``values`` with keys Elasticsearch maps as flat names (see the module docstring).

    Changed keys are recorded in ``renamed[where]`` (new name -> original key);
    ``reserved`` names are taken and renamed like colliding keys.
    """
    if not any(_needs_rename(key) or key in reserved for key in values):
        return values  # the common case: nothing to copy
    out: dict[str, Any] = {}
    # Keys that need no change keep their names first, so a renamed key never takes one.
    keep = {key for key in values if not _needs_rename(key) and key not in reserved}
    taken = keep | reserved
    for key, value in values.items():
        if key in keep:
            out[key] = value
            continue
        name = key.translate(_KEY_REPLACEMENTS) if key.strip() else "_"
        if name in taken or name in out:
            number = 2
            while f"{name}_{number}" in taken or f"{name}_{number}" in out:
                number += 1
            name = f"{name}_{number}"
        out[name] = value
        renamed.setdefault(where, {})[name] = key
    # Dict order follows the input's, with renamed keys where their originals were.
    return out


def mappable_value(value: Any) -> Any:
    """A value set by an enricher as Elasticsearch maps it: a bool as 1/0, an int beyond
    ``long`` as its digits (see the module docstring); anything else as it is."""
    kind = type(value)
    if kind is bool:
        return int(value)
    if kind is int and not LONG_MIN <= value <= LONG_MAX:
        return str(value)
    return value


def _compiled_records() -> Callable[..., Any] | None:
    """eventlog-speedups' ``ecs_records``, unless absent, a release without it, or switched off
    (``EVENTLOG_SPEEDUPS=0``: then the core has not set up the walk it uses either)."""
    if logrecords.accelerator is None:
        return None
    records: Callable[..., Any] | None = _compiled("_wires", "ecs_records")
    return records


def _file_name(path: str) -> str:
    """The last part of a path, as ``LogRecord.filename`` has it (either separator)."""
    return path.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]


class EcsFormatter(Formatter):
    """One ECS 8.x JSON document per event, newline-terminated (see the module docstring)."""

    content_type = "application/x-ndjson"

    def __init__(
        self,
        *,
        service_name: str | None = None,
        service_version: str | None = None,
        service_environment: str | None = None,
    ) -> None:
        service = {
            "name": service_name,
            "version": service_version,
            "environment": service_environment,
        }
        self.service = {key: value for key, value in service.items() if value is not None}
        # The spec: "the logging library should set event.dataset=${service.name}"
        # (Elastic's APM agent dropped its ".log" suffix for the same reason).
        self.dataset = service_name or None
        records = _compiled_records()
        if records is not None and type(self) is EcsFormatter:
            # eventlog-speedups: a batch's documents written straight from the queued records
            # and Events in C (the core's walk; no wire dict, no document(), no orjson call):
            # format()'s bytes for each event (tests/test_ecs_speedups.py).  What its walk takes
            # and it does not write (an exception, a key Elasticsearch could not map as it is,
            # an odd pid) goes through format() of its wire dict, from C, in its turn; the
            # rest, the wire-dict way.  Not for a subclass: it may change format() or document().
            # The option-made parts of every document, as JSON, so that C spells none of them.
            version = dumps_line({"ecs.version": ECS_VERSION})[1:-2]  # '"ecs.version":"8.11.0"'
            dataset = b"" if self.dataset is None else b"," + dumps_line({"dataset": self.dataset})[1:-2]
            services = b"" if not self.service else b"," + dumps_line({"service": self.service})[1:-2]
            self.encode_items = functools.partial(records, self.format, version, dataset, services)

    def document(self, wire: dict[str, Any]) -> dict[str, Any]:
        """The ECS document of one wire dict (a new dict; the wire dict is not changed)."""
        get = wire.get
        doc: dict[str, Any] = {"@timestamp": iso_millis(wire["tstamp"])}
        level_name = get("levelName")
        # Required by the spec, and second in every document (field order).
        doc["log.level"] = level_name.lower() if level_name is not None else NO_LEVEL
        message = get("message")
        if message is not None:
            doc["message"] = message
        doc["ecs.version"] = ECS_VERSION
        event = doc["event"] = {"action": wire["action"], "id": wire["id"]}
        if self.dataset is not None:
            event["dataset"] = self.dataset
        own: dict[str, Any] = {}  # the eventlog namespace
        log: dict[str, Any] = {}
        target, tg_type = get("target"), get("tgType")
        if tg_type == "logger" and target is not None:
            log["logger"] = target
        else:
            if target is not None:
                own["target"] = target
            if tg_type is not None:
                own["tgType"] = tg_type
        code_file, code_line, code_func = get("codeFile"), get("codeLine"), get("codeFunc")
        if code_file is not None or code_line is not None or code_func is not None:
            origin: dict[str, Any] = {}
            if code_file is not None or code_line is not None:
                where: dict[str, Any] = {}
                if code_file is not None:
                    where["name"] = _file_name(code_file)
                    own["codeFile"] = code_file
                if code_line is not None:
                    where["line"] = code_line
                origin["file"] = where
            if code_func is not None:
                origin["function"] = code_func
            log["origin"] = origin
        if log:
            doc["log"] = log
        if self.service:
            doc["service"] = dict(self.service)
        if "host" in wire:
            doc["host"] = {"name": wire["host"]}
        pid, thread = get("pid"), get("thread")
        if pid is not None and not (type(pid) is int and LONG_MIN <= pid <= LONG_MAX):
            pid = mappable_value(pid)  # an enricher's: 1/0 for a bool
            if type(pid) is not int:  # no long (or digits now): ECS's process.pid cannot hold it
                own["pid"] = str(pid)
                pid = None
        if pid is not None or thread is not None:
            process: dict[str, Any] = {}
            if pid is not None:
                process["pid"] = pid
            if thread is not None:
                process["thread"] = {"name": thread}
            doc["process"] = process
        if "user" in wire:
            doc["user"] = {"name": wire["user"]}
        if "reqId" in wire:
            doc["http"] = {"request": {"id": wire["reqId"]}}
        if "site" in wire:
            doc["organization"] = {"name": wire["site"]}
        if "traceId" in wire:
            doc["trace"] = {"id": wire["traceId"]}
        if "spanId" in wire:
            doc["span"] = {"id": wire["spanId"]}
        exc_info = get("exc_info")
        if exc_info is not None:
            doc["error"] = error_fields(exc_info)
        tags = get("tags")
        if tags:
            doc["tags"] = list(tags)
        renamed: dict[str, dict[str, str]] = {}
        fields = get("fields")
        if fields:
            labels = {k: v for k, v in fields.items() if type(v) is str}
            if labels:
                doc["labels"] = mappable_keys(labels, renamed, "labels")
            if len(labels) != len(fields):
                numbers = {k: v for k, v in fields.items() if type(v) is not str}
                own["fields"] = mappable_keys(numbers, renamed, "fields")
        metrics = get("metrics")
        if metrics:
            own["metrics"] = mappable_keys(dict(metrics), renamed, "metrics")
        if "level" in wire:
            own["level"] = wire["level"]
        extra = {key: mappable_value(wire[key]) for key in wire if key not in _MAPPED}
        if extra:  # session, cluster, and what enrichers add, in the wire's order
            own.update(mappable_keys(extra, renamed, "eventlog", _RESERVED))
        if renamed:
            own["keys"] = renamed
        if own:
            doc["eventlog"] = own
        return doc

    def format(self, wire: dict[str, Any]) -> bytes:
        return dumps_line(self.document(wire))

    def format_many(self, wires: list[dict[str, Any]]) -> bytes:  # type: ignore[override]
        document = self.document
        return dumps_lines([document(wire) for wire in wires])

    split_many = staticmethod(split_lines)


OPTIONS: tuple[Option, ...] = (
    Option("service_name", parse_keyword, None, "ECS service.name (left out when unset)"),
    Option("service_version", parse_keyword, None, "ECS service.version (left out when unset)"),
    Option(
        "service_environment",
        parse_keyword,
        None,
        "ECS service.environment, e.g. production (left out when unset)",
    ),
)


def _ecs(context: PluginContext) -> Formatter:
    options = context.options
    return EcsFormatter(
        service_name=options["service_name"],
        service_version=options["service_version"],
        service_environment=options["service_environment"],
    )


@hookimpl
def eventlog_formatters() -> list[FormatterSpec]:
    return [
        FormatterSpec("ecs", _ecs, "Elastic Common Schema 8.x JSON lines", options=OPTIONS, framing="lines"),
    ]
