"""Formatter ``msgpack``: the wire dict as one msgpack map with string keys.

The payload is the Forward protocol's *record*.  Its time with nanoseconds is
not inside the map: the ``fluent`` transport puts it in front as a Forward
EventTime (msgpack ext type 0), taken from ``Record.time_ns``, which turns each
payload into an *entry* ``[EventTime, record]`` by prefixing 11 bytes and
without decoding anything (see :func:`eventlog_fluent.forward.entry_head`).
The map keeps ``tstamp`` (milliseconds) like every other format.

EventTime holds 1970-01-01 to 2106-02-07 (two uint32); the transport clamps a
time outside it.  So that the record never says another time than its EventTime,
``tstamp`` is clamped the same way here, counted as ``event_time_clamped``, and
the time given is kept as ``fields.tstamp_original`` (milliseconds, as text).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, MutableMapping
from typing import Any, Self

import msgpack

from eventlog.plugin import Formatter, PluginContext

#: Largest integer msgpack can carry; Python's ints are unbounded.
_INT_MIN, _INT_MAX = -(2**63), 2**64 - 1
#: The milliseconds EventTime can hold: 1970-01-01 to 2106-02-07 (seconds are a uint32).
TSTAMP_MIN, TSTAMP_MAX = 0, (2**32 - 1) * 1000 + 999


def _load_compiled() -> Callable[..., Any] | None:
    """eventlog-speedups' ``msgpack_records`` (see :attr:`MsgpackFormatter.encode_items`),
    unless it is absent, a release without it, or switched off (``EVENTLOG_SPEEDUPS=0``, the
    switch eventlog's core reads for its own fast path, which also sets up the walk it uses)."""
    if os.environ.get("EVENTLOG_SPEEDUPS", "").strip() == "0":
        return None
    try:
        from eventlog_speedups import _wires  # type: ignore[import-not-found, unused-ignore]
    except ImportError:
        return None
    records: Callable[..., Any] | None = getattr(_wires, "msgpack_records", None)
    if records is None:
        return None
    try:  # the core set the walk up (it does on import, unless switched off): an empty batch
        records(bytes, TSTAMP_MIN, TSTAMP_MAX, [], {}, False, "0" * 12, int)
    except Exception:
        return None
    return records


#: eventlog-speedups' writer of a batch's msgpack maps straight from the queued items, or None.
compiled_records = _load_compiled()


def _big_ints_as_text(value: Any) -> Any:
    """The same value with integers beyond 64 bits as decimal text (as JSON readers see them)."""
    if type(value) is int:
        return value if _INT_MIN <= value <= _INT_MAX else str(value)
    if isinstance(value, dict):
        return {key: _big_ints_as_text(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_big_ints_as_text(item) for item in value]
    return value


class MsgpackFormatter(Formatter):
    """One msgpack map per event: str keys, str values as msgpack str, no binary types.

    >>> MsgpackFormatter().format({"id": "1", "tstamp": 0, "action": "a"})
    b'\\x83\\xa2id\\xa11\\xa6tstamp\\x00\\xa6action\\xa1a'
    """

    content_type = "application/msgpack"

    def __init__(self, conversions: MutableMapping[str, int] | None = None) -> None:
        # One Packer per formatter: it reuses its buffer.  Only the worker thread formats.
        self._pack = msgpack.Packer(use_bin_type=True, autoreset=True).pack
        #: Where clamped times are counted (the pipeline's conversions).
        self.conversions: MutableMapping[str, int] = {} if conversions is None else conversions
        if compiled_records is not None and type(self) is MsgpackFormatter:
            # eventlog-speedups: a batch's maps written straight from the queued records and
            # Events in C (the core's walk; no wire dict, no Packer call): format()'s bytes for
            # each event (tests/test_fluent_speedups.py).  An event whose time this format
            # clamps goes through format() of its wire dict, from C, in its turn; what the
            # walk does not take (an int beyond 64 bits, a value of another kind) is left to
            # the engine's wire-dict way.  Not for a subclass: it may change format().
            self.encode_items = functools.partial(compiled_records, self.format, TSTAMP_MIN, TSTAMP_MAX)

    @classmethod
    def from_context(cls, context: PluginContext) -> Self:
        return cls(context.conversions)

    def format(self, wire: dict[str, Any]) -> bytes:
        tstamp = wire.get("tstamp", 0)
        if not TSTAMP_MIN <= tstamp <= TSTAMP_MAX:
            # As the transport's EventTime: 0 before 1970, the last instant of 2106-02-07 after.
            # The time given stays in the record, as the core keeps a time it had to replace
            # (fields.tstamp_original, text); one the core already replaced keeps the core's.
            fields = {"tstamp_original": str(tstamp), **wire.get("fields", {})}
            wire = {**wire, "tstamp": TSTAMP_MIN if tstamp < TSTAMP_MIN else TSTAMP_MAX, "fields": fields}
            self.conversions["event_time_clamped"] = self.conversions.get("event_time_clamped", 0) + 1
        try:
            payload: bytes = self._pack(wire)
        except OverflowError:
            payload = self._pack(_big_ints_as_text(wire))
        return payload
