"""The OpenTelemetry logs data model as eventlog maps it, written independently of the plugin.

:func:`expected` says, from a wire dict alone, what the LogRecord must hold;
:func:`observed` reads a LogRecord decoded by the official ``opentelemetry-proto``
classes into the same shape.  Tests compare the two: every field of the data
model is checked on decoded bytes.
"""

from __future__ import annotations

import json
from typing import Any

from tests.peers.otlp import attributes

#: The data model's SeverityNumber of Python's levels (logs data-model, "Mapping of SeverityNumber").
STANDARD_SEVERITY = {5: 1, 10: 5, 20: 9, 30: 13, 40: 17, 50: 21}
#: The ranges: TRACE 1-4, DEBUG 5-8, INFO 9-12, WARN 13-16, ERROR 17-20, FATAL 21-24.
RANGES = {
    0: range(1, 5),
    1: range(5, 9),
    2: range(9, 13),
    3: range(13, 17),
    4: range(17, 21),
    5: range(21, 25),
}


def severity(level: int) -> int:
    """SeverityNumber of a level: standard ones exactly, others inside their range, rising."""
    if level in STANDARD_SEVERITY:
        return STANDARD_SEVERITY[level]
    if level <= 0:
        return 0
    if level < 10:
        return min(1 + max(0, level - 5), 4)
    if level > 53:
        return 24
    base, step = divmod(level, 10)
    number = RANGES[base][0] + min(step, 3)
    assert number in RANGES[base]
    return number


INT64 = range(-(2**63), 2**63)


def _value(value: Any) -> Any:
    """A wire value as it must come back from an AnyValue (ints past int64 as their digits)."""
    if type(value) is int and value not in INT64:
        return str(value)
    if isinstance(value, list):
        return [_value(v) for v in value]
    if isinstance(value, str):
        return _text(value)
    return value


def _text(value: str) -> str:
    # Protobuf strings are UTF-8: a lone surrogate arrives as U+FFFD.
    return value.encode("utf-8", "replace").decode("utf-8")


def expected(wire: dict[str, Any]) -> dict[str, Any]:
    """What the LogRecord (and its scope and resource) must hold for this wire dict."""
    is_log = wire.get("tgType") == "logger" and str(wire["action"]).startswith("log.")
    attrs: dict[str, Any] = {"log.record.uid": wire["id"]}
    out: dict[str, Any] = {
        "scope": (wire.get("target") or "root") if is_log else "eventlog",
        "event_name": "" if is_log else wire["action"],
        "severity_number": severity(wire["level"]) if "level" in wire else 0,
        "severity_text": wire.get("levelName", ""),
        "body": wire.get("message"),
    }
    if not is_log:
        for key, name in (("target", "eventlog.target"), ("tgType", "eventlog.target.type")):
            if key in wire:
                attrs[name] = wire[key]
    names = {
        "user": "user.id",
        "session": "session.id",
        "reqId": "eventlog.request_id",
        "thread": "thread.name",
        "codeFile": "code.file.path",
        "codeLine": "code.line.number",
        "codeFunc": "code.function.name",
    }
    for key, name in names.items():
        if key in wire:
            attrs[name] = wire[key]
    # A field or metric named like an attribute eventlog writes keeps its value under a
    # prefix (OTLP attribute keys are unique within a record).
    reserved = {
        "log.record.uid", "eventlog.target", "eventlog.target.type", *names.values(),
        "exception.type", "exception.message", "exception.stacktrace",
    }  # fmt: skip
    fields, metrics = wire.get("fields") or {}, wire.get("metrics") or {}
    for key, value in [*fields.items(), *metrics.items()]:
        attrs.setdefault(f"eventlog.fields.{key}" if key in reserved else key, value)
    if wire.get("tags"):
        attrs.setdefault("tags", list(wire["tags"]))
    if "exc_info" in wire:
        exc = json.loads(wire["exc_info"])
        for key, name in (
            ("type", "exception.type"),
            ("value", "exception.message"),
            ("stack", "exception.stacktrace"),
        ):
            if exc.get(key):
                attrs[name] = exc[key]
    out["attributes"] = {_text(k): _value(v) for k, v in attrs.items()}
    for key in ("scope", "event_name", "severity_text", "body"):
        if isinstance(out[key], str):
            out[key] = _text(out[key])
    if "traceId" in wire:
        out["trace_id"] = bytes.fromhex(wire["traceId"])
        out["span_id"] = bytes.fromhex(wire["spanId"])
        out["flags"] = int(wire["traceFlags"], 16)
    else:
        out["trace_id"], out["span_id"], out["flags"] = b"", b"", 0
    return out


def observed(scope: Any, record: Any) -> dict[str, Any]:
    """The same shape, read from an official ``LogRecord`` and ``InstrumentationScope``."""
    body = record.body.string_value if record.HasField("body") else None
    return {
        "scope": scope.name,
        "event_name": record.event_name,
        "severity_number": int(record.severity_number),
        "severity_text": record.severity_text,
        "body": body,
        "attributes": attributes(record.attributes),
        "trace_id": record.trace_id,
        "span_id": record.span_id,
        "flags": record.flags,
    }
