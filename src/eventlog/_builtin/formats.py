"""Formatters ``json`` (the seed's field names, one JSON object per line) and ``logstash``."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Self

from eventlog._config.contracts import Formatter, FormatterSpec, PluginContext
from eventlog._config.hookspecs import hookimpl
from eventlog._records.schema import W

_std_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def _std_dumps(wire: dict[str, Any]) -> bytes:
    return (_std_encode(wire) + "\n").encode("utf-8")


def _std_dumps_many(wires: list[dict[str, Any]]) -> bytes:
    return "".join([_std_encode(wire) + "\n" for wire in wires]).encode("utf-8")


def _make_dumps() -> tuple[Callable[[dict[str, Any]], bytes], Callable[[list[dict[str, Any]]], bytes]]:
    try:
        import orjson
    except ImportError:  # a build without it (orjson is a dependency): same bytes, slower
        return _std_dumps, _std_dumps_many
    option = orjson.OPT_APPEND_NEWLINE
    orjson_dumps = orjson.dumps

    def dumps(wire: dict[str, Any]) -> bytes:
        try:
            encoded: bytes = orjson_dumps(wire, option=option)
            return encoded
        except TypeError:  # e.g. an int beyond 64 bits, which the stdlib encoder writes
            return _std_dumps(wire)

    def dumps_many(wires: list[dict[str, Any]]) -> bytes:
        if not wires:
            return b""
        try:
            # One C call per event and one join: the measured cheapest way to JSON lines.
            return b"\n".join(map(orjson_dumps, wires)) + b"\n"
        except TypeError:
            return b"".join(map(dumps, wires))

    return dumps, dumps_many


#: One JSON object and a newline; orjson, or the stdlib when orjson cannot encode a value.
#: ``dumps_lines``: the same for many objects, in one call.
dumps_line, dumps_lines = _make_dumps()


def split_lines(body: bytes) -> list[bytes]:
    """JSON lines back into one payload per event (JSON escapes newlines inside strings)."""
    lines = body.split(b"\n")
    lines.pop()  # after the last newline
    return [line + b"\n" for line in lines]


def exc_info_object(wire: dict[str, Any]) -> dict[str, Any]:
    """The wire dict with ``exc_info`` as the object its JSON text holds (same key order)."""
    try:
        parsed = json.loads(wire[W.exc_info])
    except (TypeError, ValueError):  # not the JSON eventlog writes: the text as it is
        return wire
    if type(parsed) is not dict:
        return wire
    return {**wire, W.exc_info: parsed}


def _exc_objects(wires: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [exc_info_object(wire) if W.exc_info in wire else wire for wire in wires]


class JsonFormatter(Formatter):
    """One JSON object per event, newline-terminated (JSON lines).

    ``exc_info`` is JSON text inside a string (the documented form), or with
    ``exc_info_format="object"`` (``EVENTLOG_EXC_INFO_FORMAT=object``) the
    object itself: ``"exc_info": {"type": ..., "value": ..., "stack": ...}``.
    """

    content_type = "application/x-ndjson"
    #: What goes before the wire fields of each line (Logstash's stamp), for :attr:`json_lines`.
    _stamp: tuple[str, ...] = ()

    def __init__(self, exc_info_format: str = "text") -> None:
        self.exc_info_format = exc_info_format
        #: Read by the engine: with eventlog-speedups it writes these lines straight from the
        #: queued records, no wire dict, the same bytes (tests/test_fast_path.py).  Only for the
        #: built-in classes themselves (a subclass may change what format() writes), the text
        #: form of exc_info, and orjson's bytes (the stdlib writes 1e-05, orjson 0.00001).
        self.json_lines: tuple[str, ...] | None = (
            self._stamp
            if type(self) in _DIRECT and exc_info_format == "text" and dumps_line is not _std_dumps
            else None
        )
        if exc_info_format == "object":
            # Only then a Python step per batch; the text form keeps the one C call.
            self.format_many = self._format_many_objects  # type: ignore[method-assign]

    @classmethod
    def from_context(cls, context: PluginContext) -> Self:
        return cls(exc_info_format=getattr(context.settings, "exc_info_format", "text"))

    def format(self, wire: dict[str, Any]) -> bytes:
        if self.exc_info_format == "object" and W.exc_info in wire:
            wire = exc_info_object(wire)
        return dumps_line(wire)

    def _format_many_objects(self, wires: list[dict[str, Any]]) -> bytes:
        return dumps_lines(_exc_objects(wires))

    format_many = staticmethod(dumps_lines)
    split_many = staticmethod(split_lines)


class JsonArrayFormatter(JsonFormatter):
    """Like ``json``, but a batch body is one JSON array (for HTTP collectors that want one)."""

    content_type = "application/json"

    def format_batch(self, payloads: Sequence[bytes]) -> bytes:
        return b"[" + b",".join(p.rstrip(b"\n") for p in payloads) + b"]"


#: The last second iso_millis formatted, with its text: events come in bursts within a second.
#: One tuple in a list, read and replaced whole: another pipeline's worker may use it at once.
_last_second: list[tuple[int, str]] = [(-1, "")]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: RFC 3339's range (four-digit years): 0001-01-01T00:00:00.000Z to 9999-12-31T23:59:59.999Z.
#: Events keep their times within int64 ns (1677 to 2262, see eventlog._records.text), so only a wire
#: dict made by other code (a plugin, an old spool row) can be clamped here.
_FIRST_MS = -62_135_596_800_000
_LAST_MS = 253_402_300_799_999


def iso_millis(tstamp_ms: int) -> str:
    """``2026-11-26T00:32:52.123Z`` from milliseconds since the epoch (RFC 3339, UTC).

    The year always has four digits (strftime's ``%Y`` writes ``999`` on glibc);
    a time outside years 1 to 9999 is clamped to the nearest one RFC 3339 can write.
    """
    if not _FIRST_MS <= tstamp_ms <= _LAST_MS:
        tstamp_ms = _FIRST_MS if tstamp_ms < _FIRST_MS else _LAST_MS
    seconds, millis = divmod(tstamp_ms, 1000)
    cached = _last_second[0]
    if cached[0] != seconds:
        moment = _EPOCH + timedelta(seconds=seconds)
        text = (
            f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
            f"T{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}."
        )
        cached = (seconds, text)
        _last_second[0] = cached
    return f"{cached[1]}{millis:03d}Z"


#: Logstash's keys before the wire fields: (timestamp key, version key, version).
LOGSTASH_STAMP = ("@timestamp", "@version", "1")


class LogstashFormatter(JsonFormatter):
    """The ``json`` fields plus Logstash's ``@timestamp`` (ISO-8601 UTC, ms) and ``@version``."""

    _stamp = LOGSTASH_STAMP

    def format(self, wire: dict[str, Any]) -> bytes:
        if self.exc_info_format == "object" and W.exc_info in wire:
            wire = exc_info_object(wire)
        return dumps_line(_stamped(wire))

    def format_many(self, wires: list[dict[str, Any]]) -> bytes:  # type: ignore[override]
        if self.exc_info_format == "object":
            wires = _exc_objects(wires)
        return dumps_lines([_stamped(wire) for wire in wires])

    _format_many_objects = format_many


def _stamped(wire: dict[str, Any]) -> dict[str, Any]:
    timestamp, version, value = LOGSTASH_STAMP
    stamped = {timestamp: iso_millis(wire[W.tstamp]), version: value}
    stamped.update(wire)
    return stamped


#: The formatters whose lines eventlog-speedups may write itself (see JsonFormatter.json_lines).
_DIRECT = frozenset({JsonFormatter, JsonArrayFormatter, LogstashFormatter})


@hookimpl
def eventlog_formatters() -> list[FormatterSpec]:
    return [
        FormatterSpec(
            "json", JsonFormatter.from_context, "JSON lines with the seed's field names", framing="lines"
        ),
        # Each payload is a JSON line; only a batch body (HTTP) is one array.
        FormatterSpec(
            "json-array",
            JsonArrayFormatter.from_context,
            "JSON; a batch body is one JSON array",
            framing="lines",
        ),
        FormatterSpec(
            "logstash",
            LogstashFormatter.from_context,
            "JSON lines plus @timestamp and @version",
            framing="lines",
        ),
    ]
