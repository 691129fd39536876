"""Formatters ``capnp`` and ``capnp-packed``: one Cap'n Proto message per event.

``capnp`` writes the standard stream framing (segment table, then segments),
which is what ClickHouse's ``CapnProto`` input format reads: a batch body is
the messages one after another.  Every message is a whole number of 8-byte
words, so a batch keeps each message word-aligned.  ``capnp-packed`` writes
the same messages in Cap'n Proto's packed encoding (smaller, but ClickHouse
does not read it): for TCP, files or collectors that unpack it themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any

import capnp

from eventlog.plugin import FIELDS, Formatter
from eventlog_capnp.schema import ROOT_STRUCT, capnp_name, schema_path

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


@cache
def load_schema() -> Any:
    """The shipped ``event.capnp``, parsed once per process."""
    return capnp.load(str(schema_path()))


#: Wire name -> Cap'n Proto name of the plain fields (scalars and the tags list).
_PLAIN: dict[str, str] = {
    f.wire: capnp_name(f.wire) for f in FIELDS if f.kind not in ("typed_map", "number_map")
}


def _fill(builder: Any, name: str, pairs: list[tuple[str, Any]]) -> None:
    # Setting element by element is several times faster in pycapnp than assigning dicts.
    elements = builder.init(name, len(pairs))
    for i, (key, value) in enumerate(pairs):
        element = elements[i]
        element.key = key
        element.value = value


def _set_fields(builder: Any, fields: dict[str, Any], extra_strs: list[tuple[str, str]]) -> None:
    ints: list[tuple[str, Any]] = []
    floats: list[tuple[str, Any]] = []
    strs: list[tuple[str, Any]] = extra_strs
    for key, value in fields.items():
        kind = type(value)
        if kind is int:
            if INT64_MIN <= value <= INT64_MAX:
                ints.append((key, value))
            else:
                # Python ints are unbounded: keep it exact, as decimal text, not cut.
                strs.append((key, str(value)))
        elif kind is float:
            floats.append((key, value))
        else:
            strs.append((key, value))
    if ints:
        _fill(builder, "fieldsInt", ints)
    if floats:
        _fill(builder, "fieldsFloat", floats)
    if strs:
        _fill(builder, "fieldsStr", strs)


def _set_metrics(builder: Any, metrics: dict[str, Any]) -> list[tuple[str, str]]:
    """Fill ``metrics``; return the ones too big for Float64, as text for ``fieldsStr``."""
    numbers: list[tuple[str, Any]] = []
    too_big: list[tuple[str, str]] = []
    for key, value in metrics.items():
        try:
            numbers.append((key, float(value)))
        except OverflowError:
            too_big.append((key, str(value)))
    if numbers:
        _fill(builder, "metrics", numbers)
    return too_big


def build_message(new_message: Callable[[], Any], wire: dict[str, Any]) -> Any:
    """A Cap'n Proto ``Event`` builder holding the wire dict.

    ``fields`` is split by value type into ``fieldsInt``, ``fieldsFloat`` and
    ``fieldsStr``; an integer beyond Int64 (or a metric beyond Float64) goes
    to ``fieldsStr`` as exact decimal text.  A key the schema lacks is
    skipped: the drift test keeps FIELDS and ``event.capnp`` equal.
    """
    builder = new_message()
    extra_strs: list[tuple[str, str]] = []
    fields = None
    for key, value in wire.items():
        name = _PLAIN.get(key)
        if name is not None:
            setattr(builder, name, value)
        elif key == "fields":
            fields = value
        elif key == "metrics":
            extra_strs = _set_metrics(builder, value)
    if fields or extra_strs:
        _set_fields(builder, fields or {}, extra_strs)
    return builder


class CapnpFormatter(Formatter):
    """One framed (unpacked) Cap'n Proto ``Event`` message per event, as ClickHouse reads it."""

    content_type = "application/x-capnp"

    def __init__(self) -> None:
        self._new_message: Callable[..., Any] = getattr(load_schema(), ROOT_STRUCT).new_message

    def format(self, wire: dict[str, Any]) -> bytes:
        data: bytes = build_message(self._new_message, wire).to_bytes()
        return data


class PackedCapnpFormatter(CapnpFormatter):
    """Like ``capnp``, in Cap'n Proto's packed encoding (zero bytes run-length coded)."""

    content_type = "application/x-capnp-packed"

    def format(self, wire: dict[str, Any]) -> bytes:
        data: bytes = build_message(self._new_message, wire).to_bytes_packed()
        return data


def read_messages(data: bytes, *, packed: bool = False) -> list[dict[str, Any]]:
    """Decode a batch body back into dicts (Cap'n Proto names); for tests and debugging."""
    event = getattr(load_schema(), ROOT_STRUCT)
    reader = event.read_multiple_bytes_packed if packed else event.read_multiple_bytes
    return [message.to_dict() for message in reader(data)]
