"""Formatters ``json`` (the seed's field names, one JSON object per line) and ``logstash``."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from eventlog.hookspecs import hookimpl
from eventlog.interfaces import Formatter, FormatterSpec, PluginContext

_std_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode


def _std_dumps(wire: dict[str, Any]) -> bytes:
    return (_std_encode(wire) + "\n").encode("utf-8")


def _make_dumps() -> Callable[[dict[str, Any]], bytes]:
    try:
        import orjson
    except ImportError:
        return _std_dumps
    option = orjson.OPT_APPEND_NEWLINE

    def dumps(wire: dict[str, Any]) -> bytes:
        try:
            encoded: bytes = orjson.dumps(wire, option=option)
            return encoded
        except TypeError:  # e.g. an int beyond 64 bits, which the stdlib encoder writes
            return _std_dumps(wire)

    return dumps


#: One JSON object and a newline; orjson when installed, the stdlib otherwise.
dumps_line = _make_dumps()


class JsonFormatter(Formatter):
    """One JSON object per event, newline-terminated (JSON lines)."""

    content_type = "application/x-ndjson"

    def format(self, wire: dict[str, Any]) -> bytes:
        return dumps_line(wire)


class JsonArrayFormatter(JsonFormatter):
    """Like ``json``, but a batch body is one JSON array (for HTTP collectors that want one)."""

    content_type = "application/json"

    def format_batch(self, payloads: Sequence[bytes]) -> bytes:
        return b"[" + b",".join(p.rstrip(b"\n") for p in payloads) + b"]"


def iso_millis(tstamp_ms: int) -> str:
    """``2026-11-26T00:32:52.123Z`` from milliseconds since the epoch."""
    seconds, millis = divmod(tstamp_ms, 1000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{millis:03d}Z"


class LogstashFormatter(JsonFormatter):
    """The ``json`` fields plus Logstash's ``@timestamp`` (ISO-8601 UTC, ms) and ``@version``."""

    def format(self, wire: dict[str, Any]) -> bytes:
        stamped = {"@timestamp": iso_millis(wire["tstamp"]), "@version": "1"}
        stamped.update(wire)
        return dumps_line(stamped)


def _json(_: PluginContext) -> Formatter:
    return JsonFormatter()


def _json_array(_: PluginContext) -> Formatter:
    return JsonArrayFormatter()


def _logstash(_: PluginContext) -> Formatter:
    return LogstashFormatter()


@hookimpl
def eventlog_formatters() -> list[FormatterSpec]:
    return [
        FormatterSpec("json", _json, "JSON lines with the seed's field names"),
        FormatterSpec("json-array", _json_array, "JSON; a batch body is one JSON array"),
        FormatterSpec("logstash", _logstash, "JSON lines plus @timestamp and @version"),
    ]
