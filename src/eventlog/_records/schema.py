"""The event schema: one declaration that every formatter reads.

Wire names follow the seed document, because they are the columns users query.
JSON keys, msgpack keys, the Cap'n Proto schema and the ClickHouse DDL are all
derived from :data:`FIELDS`; a test keeps the shipped ``.capnp`` file in step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

#: Value kinds a wire field can have.  ``typed_map`` is a str -> int|float|str
#: map whose values are kept apart by type; ``number_map`` is str -> float.
Kind = Literal["str", "int", "str_list", "typed_map", "number_map"]


@dataclass(frozen=True, slots=True)
class Field:
    """One wire field of an event."""

    wire: str
    kind: Kind
    doc: str
    #: True when every event carries it (the rest are omitted when empty).
    always: bool = False
    #: The Event attribute it comes from, where that is not the wire name.
    attr: str = ""

    @property
    def python_name(self) -> str:
        """The Event attribute (snake_case) this field comes from."""
        return self.attr or self.wire


FIELDS: tuple[Field, ...] = (
    Field("id", "str", "unique, time-ordered event id; lets receivers drop duplicates", True),
    Field("tstamp", "int", "milliseconds since the epoch, UTC", True),
    Field("action", "str", "the event's name, dotted general to specific", True),
    Field("target", "str", "the object of the event"),
    Field("tgType", "str", "the type of the target", attr="tg_type"),
    Field("level", "int", "Python logging level number (TRACE is 5)"),
    Field("levelName", "str", "the level's name, e.g. INFO", attr="level_name"),
    Field("message", "str", "log message, or the (redacted) HTTP POST body"),
    Field("tags", "str_list", "free-form strings"),
    Field("fields", "typed_map", "str -> int|float|str, kept apart by value type"),
    Field("metrics", "number_map", "str -> number, from metrics= or extra="),
    Field("user", "str", "the current user (request context)"),
    Field("session", "str", "the current session (request context)"),
    Field("reqId", "str", "the current request id (request context)", attr="request_id"),
    Field("site", "str", "EVENTLOG_SITE"),
    Field("cluster", "str", "EVENTLOG_CLUSTER"),
    Field("host", "str", "host name of the process that made the event"),
    Field("pid", "int", "process id of the process that made the event"),
    Field("thread", "str", "name of the thread that made the event"),
    Field("codeFile", "str", "source file of the call (log_code=True, log records)", attr="code_file"),
    Field("codeLine", "int", "source line of the call", attr="code_line"),
    Field("codeFunc", "str", "function of the call", attr="code_func"),
    Field("exc_info", "str", "JSON text: exception type, value and stack"),
    # Last, so the Cap'n Proto ordinals of the fields above stay what they were.
    Field("traceId", "str", "OpenTelemetry trace id of the caller's span, 32 hex digits", attr="trace_id"),
    Field("spanId", "str", "OpenTelemetry span id of the caller's span, 16 hex digits", attr="span_id"),
    Field(
        "traceFlags",
        "str",
        "W3C trace flags of the caller's span, 2 hex digits (01: sampled)",
        attr="trace_flags",
    ),
)

FIELD_NAMES: tuple[str, ...] = tuple(f.wire for f in FIELDS)
FIELDS_BY_NAME: dict[str, Field] = {f.wire: f for f in FIELDS}
#: Wire names by Event attribute (``{"tg_type": "tgType", ...}``): how code that is not
#: Python (eventlog-speedups) learns the names, at set-up.
WIRE_NAMES: dict[str, str] = {f.python_name: f.wire for f in FIELDS}


@dataclass(frozen=True, slots=True)
class WireNames:
    """The wire names as attributes named after the Event's (``W.tg_type == "tgType"``).

    Made from :data:`FIELDS`, so code that writes a wire dict spells no wire name
    itself; a field added to FIELDS without an attribute here fails at import.
    """

    id: str
    tstamp: str
    action: str
    target: str
    tg_type: str
    level: str
    level_name: str
    message: str
    tags: str
    fields: str
    metrics: str
    user: str
    session: str
    request_id: str
    site: str
    cluster: str
    host: str
    pid: str
    thread: str
    code_file: str
    code_line: str
    code_func: str
    exc_info: str
    trace_id: str
    span_id: str
    trace_flags: str


#: The wire names, by Event attribute: ``W.request_id`` is ``"reqId"``.
W = WireNames(**WIRE_NAMES)

#: Level numbers, Python's plus TRACE.
TRACE = 5
LEVEL_NAMES: dict[int, str] = {
    5: "TRACE",
    10: "DEBUG",
    20: "INFO",
    30: "WARNING",
    40: "ERROR",
    50: "CRITICAL",
}
