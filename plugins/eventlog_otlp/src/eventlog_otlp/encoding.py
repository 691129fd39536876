"""The OTLP logs wire format, written directly: protobuf and OTLP/JSON.

The part of the schema eventlog writes is small (``opentelemetry/proto``:
``collector/logs/v1``, ``logs/v1``, ``common/v1``, ``resource/v1``)::

    ExportLogsServiceRequest { repeated ResourceLogs resource_logs = 1; }
    ResourceLogs   { Resource resource = 1; repeated ScopeLogs scope_logs = 2; }
    Resource       { repeated KeyValue attributes = 1; }
    ScopeLogs      { InstrumentationScope scope = 1; repeated LogRecord log_records = 2; }
    InstrumentationScope { string name = 1; }
    LogRecord      { fixed64 time_unix_nano = 1; fixed64 observed_time_unix_nano = 11;
                     SeverityNumber severity_number = 2; string severity_text = 3;
                     AnyValue body = 5; repeated KeyValue attributes = 6; fixed32 flags = 8;
                     bytes trace_id = 9; bytes span_id = 10; string event_name = 12; }
    KeyValue       { string key = 1; AnyValue value = 2; }
    AnyValue       { oneof: string string_value = 1; bool bool_value = 2; int64 int_value = 3;
                     double double_value = 4; ArrayValue array_value = 5;
                     KeyValueList kvlist_value = 6; }
    ArrayValue     { repeated AnyValue values = 1; }   KeyValueList { repeated KeyValue values = 1; }

Why by hand: measured against the ``protobuf`` runtime (upb) building the same
messages, this is faster per event and needs no dependency (numbers in
docs/transports/otlp.md); ``tests/test_otlp_encoding.py`` holds it to the official
classes with hypothesis.

The formatter cannot know everything a LogRecord needs: the event's time in
nanoseconds travels beside the payload (``Record.time_ns``), and records are
grouped by resource and scope only when a batch is sent.  So a payload is a
private envelope, ``kind | len(resource key) | len(scope) | resource key |
scope | log record``, and :func:`request_body` turns a batch of them into one
``ExportLogsServiceRequest`` by joining bytes, with the two time fields put in
front of each record (protobuf allows fields in any order).
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from eventlog.plugin import FIELDS, EventlogError

#: The wire names, by Event attribute, from the schema: spelt there and nowhere else.
_WIRE = {field.python_name: field.wire for field in FIELDS}
W_ID, W_ACTION, W_TARGET, W_TG_TYPE = _WIRE["id"], _WIRE["action"], _WIRE["target"], _WIRE["tg_type"]
W_LEVEL, W_LEVEL_NAME, W_MESSAGE = _WIRE["level"], _WIRE["level_name"], _WIRE["message"]
W_TAGS, W_FIELDS, W_METRICS = _WIRE["tags"], _WIRE["fields"], _WIRE["metrics"]
W_USER, W_SESSION, W_REQUEST_ID = _WIRE["user"], _WIRE["session"], _WIRE["request_id"]
W_SITE, W_CLUSTER, W_HOST, W_PID = _WIRE["site"], _WIRE["cluster"], _WIRE["host"], _WIRE["pid"]
W_THREAD, W_CODE_FILE, W_CODE_LINE = _WIRE["thread"], _WIRE["code_file"], _WIRE["code_line"]
W_CODE_FUNC, W_EXC_INFO = _WIRE["code_func"], _WIRE["exc_info"]
W_TRACE_ID, W_SPAN_ID, W_TRACE_FLAGS = _WIRE["trace_id"], _WIRE["span_id"], _WIRE["trace_flags"]

#: Envelope kinds: which encoding the log record (and scope) inside is in.
PROTOBUF = 1
JSON = 2
KIND_NAMES = {PROTOBUF: "http/protobuf", JSON: "http/json"}

#: The payload's header: kind, len(resource key), len(scope) (see envelope_head).
HEAD = struct.Struct(">BII")
HEAD_SIZE = HEAD.size
_TIMES = struct.Struct("<BQBQ")  # tag 1 fixed64, tag 11 fixed64
_DOUBLE = struct.Struct("<d")
_FIXED32 = struct.Struct("<I")
_MASK64 = (1 << 64) - 1
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1

# ---------------------------------------------------------------- severity


#: Python level -> SeverityNumber, by the data model's ranges (TRACE 1-4, DEBUG 5-8,
#: INFO 9-12, WARN 13-16, ERROR 17-20, FATAL 21-24): a level n steps above a standard
#: one takes the n-th step of its range, the fourth step for the rest of the range,
#: as the OpenTelemetry SDK maps levels 10 to 53.  TRACE (5) is 1; below it, 1 too
#: (a level was given); 0 (NOTSET) is UNSPECIFIED.
def severity_number(level: int) -> int:
    """The OpenTelemetry SeverityNumber of a Python logging level.

    >>> [severity_number(n) for n in (5, 10, 20, 30, 40, 50, 21, 25)]
    [1, 5, 9, 13, 17, 21, 10, 12]
    """
    if level <= 0:
        return 0
    if level < 10:
        return 1 + max(0, min(level - 5, 3)) if level > 5 else 1
    if level > 53:
        return 24
    base, step = divmod(level, 10)
    return (base - 1) * 4 + 5 + min(step, 3)


_SEVERITY = [severity_number(level) for level in range(60)]

# ---------------------------------------------------------------- protobuf primitives

#: One-byte varints, made once: most lengths and tags are below 128.
_SMALL = tuple(bytes((n,)) for n in range(128))


_SHIFTS = [tuple(range(0, 7 * groups, 7)) for groups in range(11)]


def varint(value: int) -> bytes:
    """Protobuf base-128 varint of a value in 0 .. 2**64-1 (negatives: their 64-bit form)."""
    if 0 <= value < 128:
        return _SMALL[value]
    value &= _MASK64
    # All groups of 7 bits but the last with the continuation bit, in one comprehension
    # (a nanosecond timestamp is 9 groups: half the instructions of a while loop).
    shifts = _SHIFTS[(value.bit_length() + 6) // 7]
    return bytes([(value >> shift) & 0x7F | 0x80 for shift in shifts[:-1]] + [value >> shifts[-1]])


def _len(data: bytes) -> bytes:
    n = len(data)
    return _SMALL[n] if n < 128 else varint(n)


def _utf8(text: str) -> bytes:
    # Protobuf strings must be valid UTF-8: a lone surrogate becomes "?".
    try:
        return text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace")


def any_value(value: Any) -> bytes:
    """An AnyValue message holding ``value`` with its type kept where OTLP has it."""
    kind = type(value)
    if kind is str:
        data = _utf8(value)
        return b"\x0a" + _len(data) + data
    if kind is bool:
        return b"\x10\x01" if value else b"\x10\x00"
    if kind is int:
        if _INT64_MIN <= value <= _INT64_MAX:
            return b"\x18" + varint(value)
        data = str(value).encode()  # past int64: its digits, as JSON readers see it
        return b"\x0a" + _len(data) + data
    if kind is float:
        return b"\x21" + _DOUBLE.pack(value)
    if kind is list or kind is tuple:
        inner = b"".join(b"\x0a" + _len(item) + item for item in map(any_value, value))
        return b"\x2a" + _len(inner) + inner
    if kind is dict:
        inner = b"".join(b"\x0a" + _len(kv) + kv for kv in (key_value(str(k), v) for k, v in value.items()))
        return b"\x32" + _len(inner) + inner
    if value is None:
        return b""
    return any_value(f"<{kind.__name__}>")  # no application code runs in the worker


def key_value(key: str, value: Any) -> bytes:
    """A KeyValue message."""
    name = _utf8(key)
    data = any_value(value)
    return b"\x0a" + _len(name) + name + b"\x12" + _len(data) + data


# Attribute fields (LogRecord.attributes = 6).  Most values repeat from event to event
# (thread, code location, user, a field's value): a field already made is reused, one
# tuple and one dict lookup instead of about 5,000 instructions of encoding
# (benchmarks/otlp_encoding.py).  Keyed by (key, type, value): "1", 1, 1.0 and True are
# different attributes.  Bounded: when full, the cache starts again, so a stream of
# values that never repeat costs one clear per _ATTRIBUTES_LIMIT events.  Workers of
# two pipelines may share it: a dict get or set is atomic, a race encodes a value twice.
_KEY_HEADS: dict[str, bytes] = {}
_ATTRIBUTES: dict[tuple[str, type, Any], bytes] = {}
_ATTRIBUTES_LIMIT = 16384
_CACHED_KEYS = 1024
_CACHED_CHARS = 64


def _key_head(key: str) -> bytes:
    head = _KEY_HEADS.get(key)
    if head is None:
        name = _utf8(key)
        head = b"\x0a" + _len(name) + name
        if len(_KEY_HEADS) < _CACHED_KEYS:  # field names are few; a flood of new ones is not cached
            _KEY_HEADS[key] = head
    return head


def _encode_attribute(key: str, value: Any) -> bytes:
    data = any_value(value)
    n = len(data)
    kv = _key_head(key) + b"\x12" + (_SMALL[n] if n < 128 else varint(n)) + data
    n = len(kv)
    return b"\x32" + (_SMALL[n] if n < 128 else varint(n)) + kv


def _attribute(key: str, value: Any) -> bytes:
    """One LogRecord attribute field, reused when this key had this value before."""
    kind = type(value)
    if kind is str:
        cacheable = len(value) <= _CACHED_CHARS
    elif kind is int:
        cacheable = True
    elif kind is float:
        cacheable = value != 0.0  # -0.0 == 0.0: they would share a slot
    else:  # lists, dicts: unhashable
        return _encode_attribute(key, value)
    slot = (key, kind, value)
    field = _ATTRIBUTES.get(slot)
    if field is None:
        field = _encode_attribute(key, value)
        if cacheable and len(key) <= _CACHED_CHARS:
            if len(_ATTRIBUTES) >= _ATTRIBUTES_LIMIT:
                _ATTRIBUTES.clear()
            _ATTRIBUTES[slot] = field
    return field


def _unique_attribute(key: str, text: str) -> bytes:
    """A str attribute whose value never repeats (the event id): not cached."""
    data = _utf8(text)
    n = len(data)
    value = b"\x0a" + (_SMALL[n] if n < 128 else varint(n)) + data
    n = len(value)
    kv = _key_head(key) + b"\x12" + (_SMALL[n] if n < 128 else varint(n)) + value
    n = len(kv)
    return b"\x32" + (_SMALL[n] if n < 128 else varint(n)) + kv


#: An id of 32 ASCII characters: everything of its attribute field but the id itself.
_UID_32 = _unique_attribute("log.record.uid", "0" * 32)[:-32]


# ---------------------------------------------------------------- the mapping

#: Wire fields that become LogRecord attributes of the same value, by semantic-convention
#: name (semconv 1.30+: code.file.path, code.line.number, code.function.name, user.id,
#: session.id, thread.name, log.record.uid).  ``reqId`` has no convention: eventlog's own.
ATTRIBUTE_NAMES: dict[str, str] = {
    W_ID: "log.record.uid",
    W_USER: "user.id",
    W_SESSION: "session.id",
    W_REQUEST_ID: "eventlog.request_id",
    W_THREAD: "thread.name",
    W_CODE_FILE: "code.file.path",
    W_CODE_LINE: "code.line.number",
    W_CODE_FUNC: "code.function.name",
}
#: Wire fields that describe the process: resource attributes (grouped per batch).
RESOURCE_NAMES: dict[str, str] = {
    W_HOST: "host.name",
    W_PID: "process.pid",
    W_SITE: "eventlog.site",
    W_CLUSTER: "eventlog.cluster",
}
#: An Event's target and its type, beside its action in ``event_name``.
TARGET_ATTRIBUTE = "eventlog.target"
TARGET_TYPE_ATTRIBUTE = "eventlog.target.type"
#: Scope of Events (log records have their logger's name).
EVENT_SCOPE = "eventlog"
#: The attribute of ``tags``; fields and metrics keep their own names.
TAGS_ATTRIBUTE = "tags"
#: Attribute names eventlog itself writes: a field or metric of the same name would make a
#: record with the key twice (OTLP keys are unique), so it is renamed with this prefix.
RESERVED_ATTRIBUTES = frozenset(
    {
        *ATTRIBUTE_NAMES.values(),
        TARGET_ATTRIBUTE,
        TARGET_TYPE_ATTRIBUTE,
        "exception.type",
        "exception.message",
        "exception.stacktrace",
    }
)
USER_PREFIX = "eventlog.fields."


def user_attribute(name: str) -> str:
    """A field's or metric's attribute name: its own, unless eventlog writes that one."""
    return USER_PREFIX + name if name in RESERVED_ATTRIBUTES else name


def is_log_record(wire: Mapping[str, Any]) -> bool:
    """True for a ``logging`` record's event (its target is the logger's name)."""
    return wire.get(W_TG_TYPE) == "logger" and str(wire.get(W_ACTION, "")).startswith("log.")


def scope_name(wire: Mapping[str, Any]) -> str:
    """The instrumentation scope: the logger's name, ``eventlog`` for Events."""
    if is_log_record(wire):
        return str(wire.get(W_TARGET) or "root")
    return EVENT_SCOPE


def exception_parts(exc_info: str) -> tuple[str | None, str | None, str | None]:
    """(exception.type, exception.message, exception.stacktrace) of the exc_info field."""
    try:
        loaded = json.loads(exc_info)
    except ValueError:
        return None, None, exc_info
    if not isinstance(loaded, dict):
        return None, None, exc_info

    def text(key: str) -> str | None:
        value = loaded.get(key)
        return value if isinstance(value, str) and value else None

    return text("type"), text("value"), text("stack")


def _extras(wire: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Fields, then metrics and tags, as attributes: one value per key (the first wins)."""
    pairs: list[tuple[str, Any]] = []
    fields, metrics, tags = wire.get(W_FIELDS), wire.get(W_METRICS), wire.get(W_TAGS)
    if fields:
        pairs += [(user_attribute(k), v) for k, v in fields.items()]
    if metrics:
        pairs += [(user_attribute(k), v) for k, v in metrics.items() if not (fields and k in fields)]
    if tags and not (fields and TAGS_ATTRIBUTE in fields) and not (metrics and TAGS_ATTRIBUTE in metrics):
        pairs.append((TAGS_ATTRIBUTE, list(tags)))
    return pairs


#: Call site -> its fields: see log_record.  Bounded: past it, sites are encoded each time.
_TEXT_TYPES = frozenset({str, type(None)})
_SITES: dict[tuple[Any, ...], bytes] = {}
_SITES_LIMIT = 4096


def _site_fields(wire: Mapping[str, Any]) -> bytes:
    """severity_number and severity_text, event_name, and the attributes of the call site
    (the target's type, thread, code location): the same for every event of one site."""
    parts: list[bytes] = []
    level = wire.get(W_LEVEL)
    if level is not None:
        parts.append(_severity_fields(level, wire[W_LEVEL_NAME]))
    if not is_log_record(wire):
        action = _utf8(wire[W_ACTION])
        parts.append(b"\x62" + _len(action) + action)
        if wire.get(W_TG_TYPE) is not None:
            parts.append(_attribute(TARGET_TYPE_ATTRIBUTE, wire[W_TG_TYPE]))
    for wire_name in (W_THREAD, W_CODE_FILE, W_CODE_FUNC, W_CODE_LINE):
        value = wire.get(wire_name)
        if value is not None:
            parts.append(_attribute(ATTRIBUTE_NAMES[wire_name], value))
    return b"".join(parts)


def log_record(wire: Mapping[str, Any]) -> bytes:
    """The LogRecord message of one event, without its two time fields (the transport's).

    Attributes, in this order: the call site's (``eventlog.target.type``, ``thread.name``,
    ``code.file.path``, ``code.function.name``, ``code.line.number``), ``log.record.uid``,
    ``eventlog.target``, ``user.id``, ``session.id``, ``eventlog.request_id``, the fields,
    metrics and tags, ``exception.*``.  :func:`json_log_record` writes the same order.
    """
    # Events of one call site share their level, action, thread and code location: those
    # fields are encoded once per site and reused (one tuple and one dict lookup instead
    # of five attribute encodings; benchmarks/otlp_encoding.py).  ints only in the key:
    # True == 1 == 1.0 would share a slot.
    get = wire.get
    level, line = get(W_LEVEL), get(W_CODE_LINE)
    action, target_type = wire[W_ACTION], get(W_TG_TYPE)
    level_name, thread = get(W_LEVEL_NAME), get(W_THREAD)
    code_file, code_func = get(W_CODE_FILE), get(W_CODE_FUNC)
    key = (level, level_name, action, target_type, thread, code_file, line, code_func)
    # Only ints and str (or None) in the key: True == 1 == 1.0 would share a slot, and
    # a thread of 1 would be written with a thread of True's bytes.
    plain = _TEXT_TYPES
    cacheable = (
        (level is None or type(level) is int)
        and (line is None or type(line) is int)
        and type(level_name) in plain
        and type(action) in plain
        and type(target_type) in plain
        and type(thread) in plain
        and type(code_file) in plain
        and type(code_func) in plain
    )
    site = _SITES.get(key) if cacheable else None
    if site is None:
        site = _site_fields(wire)
        if cacheable and len(_SITES) < _SITES_LIMIT:
            _SITES[key] = site
    parts = [site]
    append = parts.append
    message = get(W_MESSAGE)
    if message is not None:
        try:
            data = message.encode()  # _utf8, inlined
        except UnicodeEncodeError:
            data = message.encode("utf-8", "replace")
        n = len(data)
        value = b"\x0a" + (_SMALL[n] if n < 128 else varint(n)) + data
        n = len(value)
        append(b"\x2a" + (_SMALL[n] if n < 128 else varint(n)) + value)
    event_id = wire[W_ID]
    if type(event_id) is str and len(event_id) == 32 and event_id.isascii():
        append(_UID_32 + event_id.encode())  # eventlog's ids: 32 hex digits, lengths known
    else:
        append(_unique_attribute("log.record.uid", event_id))
    if not (target_type == "logger" and type(action) is str and action.startswith("log.")):
        target = get(W_TARGET)
        if target is not None:
            append(_attribute(TARGET_ATTRIBUTE, target))
    if W_USER in wire or W_SESSION in wire or W_REQUEST_ID in wire:  # a web request's events only
        for wire_name in (W_USER, W_SESSION, W_REQUEST_ID):
            text = get(wire_name)
            if text is not None:
                append(_attribute(ATTRIBUTE_NAMES[wire_name], text))
    fields, metrics, tags = get(W_FIELDS), get(W_METRICS), get(W_TAGS)
    if fields or metrics:
        # _attribute's cache looked up here first: a call costs more than the lookup.
        cached = _ATTRIBUTES.get
        reserved = RESERVED_ATTRIBUTES
        for name, value in fields.items() if fields else ():
            if name in reserved:
                name = USER_PREFIX + name
            try:
                field = cached((name, type(value), value))
            except TypeError:  # unhashable (a list): encoded each time
                field = None
            append(field or _attribute(name, value))
        for name, value in metrics.items() if metrics else ():
            if not (fields and name in fields):  # one value per key: the field's
                if name in reserved:
                    name = USER_PREFIX + name
                try:
                    field = cached((name, type(value), value))
                except TypeError:
                    field = None
                append(field or _attribute(name, value))
    if tags and not (fields and TAGS_ATTRIBUTE in fields) and not (metrics and TAGS_ATTRIBUTE in metrics):
        append(_encode_attribute(TAGS_ATTRIBUTE, list(tags)))
    exc_info = get(W_EXC_INFO)
    if exc_info is not None:
        exc_type, exc_message, stack = exception_parts(exc_info)
        if exc_type is not None:
            append(_attribute("exception.type", exc_type))
        if exc_message is not None:
            append(_attribute("exception.message", exc_message))
        if stack is not None:
            append(_attribute("exception.stacktrace", stack))
    if get(W_TRACE_ID) is not None:
        ids = _trace_bytes(wire)
        if ids is not None:
            trace, span, flags = ids
            append(b"\x45" + _FIXED32.pack(flags) + b"\x4a\x10" + trace + b"\x52\x08" + span)
    return b"".join(parts)


_SEVERITIES: dict[tuple[int, str], bytes] = {}


def _severity_fields(level: int, name: str) -> bytes:
    """severity_number (when not UNSPECIFIED) and severity_text, made once per level name."""
    number = _SEVERITY[level] if 0 <= level < 60 else severity_number(level)
    text = _utf8(name)
    fields = (b"\x10" + _SMALL[number] if number else b"") + b"\x1a" + _len(text) + text
    if len(_SEVERITIES) < _CACHED_KEYS and len(name) <= _CACHED_CHARS:
        _SEVERITIES[(level, name)] = fields
    return fields


def _trace_bytes(wire: Mapping[str, Any]) -> tuple[bytes, bytes, int] | None:
    """trace_id (16 bytes), span_id (8 bytes) and flags of the wire's hex ids, if well formed."""
    try:
        trace = bytes.fromhex(wire[W_TRACE_ID])
        span = bytes.fromhex(wire.get(W_SPAN_ID) or "0" * 16)
        flags = int(wire.get(W_TRACE_FLAGS) or "0", 16) & 0xFF
    except (ValueError, TypeError):
        return None
    if len(trace) != 16 or len(span) != 8:
        return None
    return trace, span, flags


def _load_accelerator() -> Any:
    """eventlog-speedups' compiled log_record, unless it is absent or ``EVENTLOG_SPEEDUPS=0``
    (the switch eventlog's core reads for its own fast path)."""
    if os.environ.get("EVENTLOG_SPEEDUPS", "").strip() == "0":
        return None
    try:
        from eventlog_speedups import _otlp  # type: ignore[attr-defined, unused-ignore]
    except ImportError:  # not installed, or a release without the OTLP encoder
        return None
    names = (
        # the order of the C encoder's ATTR_* names
        *(ATTRIBUTE_NAMES[k] for k in (W_ID, W_USER, W_SESSION, W_REQUEST_ID)),
        *(ATTRIBUTE_NAMES[k] for k in (W_THREAD, W_CODE_FILE, W_CODE_LINE, W_CODE_FUNC)),
        TARGET_ATTRIBUTE,
        TARGET_TYPE_ATTRIBUTE,
        TAGS_ATTRIBUTE,
        "exception.type",
        "exception.message",
        "exception.stacktrace",
    )
    _otlp.setup(
        log_record,
        exception_parts,
        _trace_bytes,
        RESERVED_ATTRIBUTES,
        USER_PREFIX,
        names,
        EVENT_SCOPE,
        "root",
        _WIRE,  # the C code spells no wire name
    )
    return _otlp


#: eventlog-speedups' OTLP module when installed and not switched off, else None: its
#: ``log_record`` writes :func:`log_record`'s bytes, its ``payload`` the formatter's and
#: its ``request_body`` :func:`request_body`'s (tests/test_otlp_speedups.py holds them equal).
compiled: Any = _load_accelerator()
#: The compiled log_record, or None.
accelerator: Callable[[Mapping[str, Any]], bytes] | None = compiled.log_record if compiled else None
#: What the formatter calls: the compiled encoder, or :func:`log_record`.
fast_log_record: Callable[[Mapping[str, Any]], bytes] = accelerator or log_record


# ---------------------------------------------------------------- OTLP/JSON

# OTLP/JSON is protobuf's JSON mapping with two exceptions: trace and span ids are hex,
# and keys are lowerCamelCase only.  64-bit integers are strings.


def json_any_value(value: Any) -> dict[str, Any]:
    """An AnyValue in OTLP/JSON."""
    kind = type(value)
    if kind is str:
        return {"stringValue": value}
    if kind is bool:
        return {"boolValue": value}
    if kind is int:
        if _INT64_MIN <= value <= _INT64_MAX:
            return {"intValue": str(value)}
        return {"stringValue": str(value)}
    if kind is float:
        if math.isfinite(value):
            return {"doubleValue": value}
        return {"doubleValue": "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")}
    if kind is list or kind is tuple:
        return {"arrayValue": {"values": [json_any_value(item) for item in value]}}
    if kind is dict:
        return {"kvlistValue": {"values": [json_key_value(str(k), v) for k, v in value.items()]}}
    if value is None:
        return {}
    return {"stringValue": f"<{kind.__name__}>"}


def json_key_value(key: str, value: Any) -> dict[str, Any]:
    return {"key": key, "value": json_any_value(value)}


def json_log_record(wire: Mapping[str, Any]) -> dict[str, Any]:
    """The LogRecord of one event in OTLP/JSON, without its time fields (attributes in
    :func:`log_record`'s order, so both encodings make the same message)."""
    out: dict[str, Any] = {}
    attributes: list[dict[str, Any]] = []
    level = wire.get(W_LEVEL)
    if level is not None:
        number = severity_number(level)
        if number:
            out["severityNumber"] = number
        out["severityText"] = wire[W_LEVEL_NAME]
    if wire.get(W_MESSAGE) is not None:
        out["body"] = {"stringValue": wire[W_MESSAGE]}
    is_log = is_log_record(wire)
    if not is_log:
        out["eventName"] = wire[W_ACTION]
        if wire.get(W_TG_TYPE) is not None:
            attributes.append(json_key_value(TARGET_TYPE_ATTRIBUTE, wire[W_TG_TYPE]))
    for wire_name in (W_THREAD, W_CODE_FILE, W_CODE_FUNC, W_CODE_LINE):
        if wire.get(wire_name) is not None:
            attributes.append(json_key_value(ATTRIBUTE_NAMES[wire_name], wire[wire_name]))
    attributes.append(json_key_value("log.record.uid", wire[W_ID]))
    if not is_log and wire.get(W_TARGET) is not None:
        attributes.append(json_key_value(TARGET_ATTRIBUTE, wire[W_TARGET]))
    for wire_name in (W_USER, W_SESSION, W_REQUEST_ID):
        if wire.get(wire_name) is not None:
            attributes.append(json_key_value(ATTRIBUTE_NAMES[wire_name], wire[wire_name]))
    attributes += [json_key_value(key, value) for key, value in _extras(wire)]
    if wire.get(W_EXC_INFO) is not None:
        names = ("exception.type", "exception.message", "exception.stacktrace")
        for name, part in zip(names, exception_parts(wire[W_EXC_INFO])):
            if part is not None:
                attributes.append(json_key_value(name, part))
    out["attributes"] = attributes
    if wire.get(W_TRACE_ID) is not None:
        ids = _trace_bytes(wire)
        if ids is not None:
            out["flags"] = ids[2]
            out["traceId"], out["spanId"] = ids[0].hex(), ids[1].hex()
    return out


def json_text(value: Any) -> bytes:
    """Compact JSON in UTF-8; a lone surrogate becomes ``?`` as in the protobuf strings
    (an escaped one, ``\\ud800``, is refused by protobuf's own JSON reader)."""
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "replace")


# ---------------------------------------------------------------- the envelope


def resource_key(wire: Mapping[str, Any]) -> bytes:
    """The event's process attributes (host, pid, site, cluster) as a compact key."""
    return json_text([wire.get(W_HOST), wire.get(W_PID), wire.get(W_SITE), wire.get(W_CLUSTER)])


def envelope_head(kind: int, resource: bytes, scope: bytes) -> bytes:
    """The header of a payload; the payload is ``head + resource + scope + record``, what
    :func:`request_body` needs to place the record (:func:`open_envelope` reads it)."""
    return HEAD.pack(kind, len(resource), len(scope))


def scope_bytes(kind: int, name: str) -> bytes:
    """An InstrumentationScope message (protobuf) or object (JSON) with this name."""
    if kind == PROTOBUF:
        data = _utf8(name)
        return b"\x0a" + _len(data) + data
    return json_text({"name": name})


def open_envelope(payload: bytes) -> tuple[int, bytes, bytes, bytes]:
    """(kind, resource key, scope, record) of a payload; ValueError if it is none."""
    if len(payload) < HEAD_SIZE:
        raise ValueError("payload shorter than its header")
    kind, resource_len, scope_len = HEAD.unpack_from(payload)
    start = HEAD_SIZE + resource_len
    end = start + scope_len
    if kind not in KIND_NAMES or end > len(payload):
        raise ValueError("not an eventlog-otlp payload")
    return kind, payload[HEAD_SIZE:start], payload[start:end], payload[end:]


def resource_attributes(key: bytes) -> dict[str, Any]:
    """The resource attributes a :func:`resource_key` holds (None values left out)."""
    values = json.loads(key)
    names = ("host.name", "process.pid", "eventlog.site", "eventlog.cluster")
    return {name: value for name, value in zip(names, values) if value is not None}


def resource_message(attributes: Mapping[str, Any]) -> bytes:
    """A Resource message (protobuf)."""
    return b"".join(b"\x0a" + _len(kv) + kv for kv in (key_value(k, v) for k, v in attributes.items()))


def resource_json(attributes: Mapping[str, Any]) -> bytes:
    """A Resource object (OTLP/JSON)."""
    return json_text({"attributes": [json_key_value(k, v) for k, v in attributes.items()]})


def _time(time_ns: int) -> int:
    return time_ns if 0 <= time_ns <= _MASK64 else 0


def request_body(
    kind: int,
    entries: Iterable[tuple[int, bytes, bytes, bytes]],
    resource: Callable[[bytes], bytes],
) -> bytes:
    """One ExportLogsServiceRequest of ``(time_ns, resource key, scope, record)`` entries.

    One ResourceLogs per resource key (one per batch unless the spool holds events of
    an earlier process), one ScopeLogs per scope in it, records in their order.
    ``resource(key)`` gives the Resource message (or JSON object) of a key.
    """
    groups: dict[bytes, dict[bytes, list[bytes]]] = {}
    if kind == PROTOBUF:
        pack = _TIMES.pack
        for time_ns, res, scope, record in entries:
            t = _time(time_ns)
            n = len(record) + 18
            piece = b"\x12" + (_SMALL[n] if n < 128 else varint(n)) + pack(0x09, t, 0x59, t) + record
            scopes = groups.get(res)
            if scopes is None:
                scopes = groups[res] = {}
            records = scopes.get(scope)
            if records is None:
                scopes[scope] = [piece]
            else:
                records.append(piece)
        out: list[bytes] = []
        for res, scopes in groups.items():
            inner = [b"\x0a" + _len(message) + message for message in (resource(res),)]
            for scope, records in scopes.items():
                scope_logs = b"\x0a" + _len(scope) + scope + b"".join(records)
                inner.append(b"\x12" + _len(scope_logs) + scope_logs)
            resource_logs = b"".join(inner)
            out.append(b"\x0a" + _len(resource_logs) + resource_logs)
        return b"".join(out)
    for time_ns, res, scope, record in entries:
        t = _time(time_ns)
        times = b'{"timeUnixNano":"%d","observedTimeUnixNano":"%d",' % (t, t)
        groups.setdefault(res, {}).setdefault(scope, []).append(times + record[1:])
    resource_logs_json = [
        b'{"resource":'
        + resource(res)
        + b',"scopeLogs":['
        + b",".join(
            b'{"scope":' + scope + b',"logRecords":[' + b",".join(records) + b"]}"
            for scope, records in scopes.items()
        )
        + b"]}"
        for res, scopes in groups.items()
    ]
    return b'{"resourceLogs":[' + b",".join(resource_logs_json) + b"]}"


# ---------------------------------------------------------------- the answer


class ResponseError(EventlogError, ValueError):
    """An ExportLogsServiceResponse that cannot be read."""


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ResponseError("truncated or overlong varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(data: bytes) -> Iterable[tuple[int, int, Any]]:
    """(field number, wire type, value) of each field of a protobuf message."""
    pos = 0
    while pos < len(data):
        tag, pos = _read_varint(data, pos)
        number, wire_type = tag >> 3, tag & 7
        value: int | bytes
        if wire_type == 0:
            value, pos = _read_varint(data, pos)
        elif wire_type == 1:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire_type == 5:
            value, pos = data[pos : pos + 4], pos + 4
        elif wire_type == 2:
            size, pos = _read_varint(data, pos)
            value, pos = data[pos : pos + size], pos + size
        else:
            raise ResponseError(f"wire type {wire_type} is not expected here")
        if pos > len(data):
            raise ResponseError("truncated field")
        yield number, wire_type, value


def partial_success(body: bytes, json_body: bool) -> tuple[int, str]:
    """(rejected_log_records, error_message) of an ExportLogsServiceResponse (0, "" if none)."""
    if not body.strip():
        return 0, ""
    if json_body:
        try:
            loaded = json.loads(body)
        except ValueError as exc:
            raise ResponseError(f"not JSON ({exc})") from None
        partial = loaded.get("partialSuccess") if isinstance(loaded, dict) else None
        if not isinstance(partial, dict):
            return 0, ""
        count = partial.get("rejectedLogRecords") or 0
        if not (type(count) is int or (isinstance(count, str) and len(count) <= 20)):
            raise ResponseError("rejectedLogRecords is not a number")
        try:
            rejected = int(count)
        except ValueError:
            raise ResponseError("rejectedLogRecords is not a number") from None
        message = partial.get("errorMessage")
        # A negative count is nonsense, as in the protobuf answer: none rejected.
        return max(0, rejected), message if isinstance(message, str) else ""
    rejected, message = 0, ""
    for number, wire_type, value in _fields(body):
        if number == 1 and wire_type == 2:
            for inner, inner_type, inner_value in _fields(value):
                if inner == 1 and inner_type == 0:
                    # int64: a negative count is nonsense; read it as none rejected.
                    rejected = inner_value if inner_value < (1 << 63) else 0
                elif inner == 2 and inner_type == 2:
                    message = inner_value.decode("utf-8", "replace")
    return rejected, message
