"""What the worker makes of queued items: wire dicts, then the bytes of one batch.

:class:`Encoder` owns the worker's per-batch conversion: the fast path
(:func:`eventlog._records.logrecords.wires_of` builds each wire dict in one pass, with
the static host/site fields merged once), the careful path (an Event, the
worker enrichers, :func:`eventlog._records.wire.to_wire`), and formatting, in one call
per batch where the formatter can.  A poison event is set aside, counted as
dropped{unencodable} and warned about once; the rest of its batch goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from eventlog._config.builder import Components, Enricher
from eventlog._config.contracts import ItemsEncoder
from eventlog._core.diagnostics import Warnings
from eventlog._engine.stats import Stats
from eventlog._records import logrecords
from eventlog._records.batch import Batch, EncodedBatch, Heads, Record
from eventlog._records.event import Event
from eventlog._records.logrecords import record_to_event, wires_of
from eventlog._records.schema import W
from eventlog._records.wire import _ids, to_wire

_new_tuple = tuple.__new__


class Encoder:
    """Turns queued items (Events, or (record, message, context) tuples) into a Batch.

    ``count(n, reason)`` counts events set aside; ``enricher_failed(enrich)``
    counts and reports an enricher that raised (the pipeline's, shared with
    the caller's side).
    """

    def __init__(
        self,
        components: Components,
        *,
        stats: Stats,
        count: Callable[[int, str], object],
        enricher_failed: Callable[[Enricher], None],
        warnings: Warnings,
    ) -> None:
        self.format_name = components.format_name
        self.format = components.formatter.format
        self.format_many = components.format_many
        self.split_many = components.split_many
        self.fast = components.fast
        self.with_context = components.with_context
        self.static_enrichers = components.static_enrichers
        self.worker_enrichers = components.worker_enrichers
        self.stats = stats
        self._count = count
        self._enricher_failed = enricher_failed
        self._warnings = warnings
        self._static: dict[str, Any] | None = None  # made by the worker, once
        #: The built-in JSON formatters say what eventlog-speedups may write without wire dicts.
        self.json_lines: tuple[str, ...] | None = getattr(components.formatter, "json_lines", None)
        #: A formatter's own whole-batch writer from the queued items (Formatter.encode_items).
        self.encode_items: ItemsEncoder | None = getattr(components.formatter, "encode_items", None)
        #: Numbers each wire dict of a batch (the loss ledger), or None when it is off.
        self.stamp: Callable[[list[dict[str, Any]]], None] | None = None

    def batch(self, items: list[Any]) -> Batch:
        """The batch for the transport: encoded in one call where the formatter can."""
        format_many, split_many = self.format_many, self.split_many
        lines = self.lines(items)
        if lines is not None:
            return lines[0]
        if format_many is None or split_many is None:
            return self.each(*self.wires(items))
        wires, sources = self.wires(items)
        if not wires:
            return []
        try:
            body = format_many(wires)
        except Exception:
            return self.each(wires, sources)  # one by one, to find what cannot be encoded
        return EncodedBatch(body, len(wires), lambda: _heads(sources, wires), split_many)

    def records(self, items: list[Any]) -> Sequence[Record]:
        """One Record per event (spool mode, and formats that encode one event at a time)."""
        return self.sourced(items)[0]

    def sourced(self, items: list[Any]) -> tuple[Sequence[Record], list[Any]]:
        """:meth:`records`, and the item each Record came from (poison events left out of both).

        Overload control classes each Record by its item: by position, so the two
        lists must stay paired whatever the encoder sets aside.  A batch written in one
        piece with each payload's size is given as it is (an EncodedBatch), which the
        spool stores without a Record per event.
        """
        lines = self.lines(items)
        if lines is not None:
            batch, written = lines
            if type(batch) is EncodedBatch:
                return (batch if batch.sizes is not None else batch.records()), written
            return [], written
        format_many, split_many = self.format_many, self.split_many
        wires, sources = self.wires(items)
        if format_many is not None and split_many is not None and wires:
            try:
                body = format_many(wires)
            except Exception:
                pass  # one by one below, to find what cannot be encoded
            else:
                return EncodedBatch(
                    body, len(wires), lambda: _heads(sources, wires), split_many
                ).records(), sources
        kept: list[Any] = []
        return self.each(wires, sources, kept), kept

    def each(
        self, wires: list[dict[str, Any]], sources: list[Any], kept: list[Any] | None = None
    ) -> list[Record]:
        """One ``format()`` call per wire dict; what it refuses is set aside.

        ``kept``, if given, gets the source item of each Record made.
        """
        records: list[Record] = []
        fmt = self.format
        for wire, item in zip(wires, sources):
            try:
                payload = fmt(wire)
            except Exception as exc:
                self._set_aside(exc)
                continue
            if kept is not None:
                kept.append(item)
            # tuple.__new__ skips the NamedTuple's Python-level __new__: same Record, less cost.
            records.append(_new_tuple(Record, (wire[W.id], wire[W.action], _time_ns(item, wire), payload)))
        return records

    def lines(self, items: list[Any]) -> tuple[EncodedBatch | list[Record], list[Any]] | None:
        """The batch written straight from the items, and the items kept; None where this does
        not apply (no eventlog-speedups, a formatter that cannot, other enrichers, the loss
        ledger on).

        JSON lines (eventlog-speedups' ``lines``) or the formatter's own
        :attr:`~eventlog.plugin.Formatter.encode_items` (otlp's envelopes) write each plain
        item's payload with no wire dict and no ``format()`` call (about a third of the
        worker's instructions per event); the rest (the holes) take the wire-dict path one by
        one and are spliced in at their place: the same bytes as :meth:`wires` and the
        formatter (tests/test_fast_path.py, eventlog-otlp's tests hold them equal).
        """
        if not self.fast or self.stamp is not None:
            return None
        encode_items = self.encode_items
        write = logrecords.json_lines
        stamp, split = self.json_lines, self.split_many
        if encode_items is None and (write is None or stamp is None or split is None):
            return None
        static = self._static
        if static is None:
            static = self._static = self.static_fields()
        node, next_seq = _ids.node_and_counter()
        sizes: list[Any] | None = None
        if encode_items is not None:
            written = encode_items(items, static, self.with_context, node, next_seq)
            if written is None:
                return None
            body, ids, actions, times, holes, sizes = written
            if sizes is None and split is None:
                return None  # it broke its contract (no way back to the payloads): the wire-dict way
        else:
            assert write is not None and stamp is not None
            body, ids, actions, times, holes, sizes = write(
                items, static, self.with_context, node, next_seq, stamp or None
            )
        sources = items
        if holes:
            body, sources = self._fill(items, body, (ids, actions, times, sizes), holes)
        if not sources:
            return [], sources
        return EncodedBatch(body, len(ids), lambda: (ids, actions, times), split, sizes), sources

    def _fill(
        self,
        items: list[Any],
        body: bytes,
        columns: tuple[list[Any], list[Any], list[Any], list[Any] | None],
        holes: list[tuple[int, int]],
    ) -> tuple[bytes, list[Any]]:
        """The payloads of the items the writer left out, each from its wire dict, spliced
        into ``body`` at its place; what cannot be encoded is set aside (in the columns too:
        ids, actions, times and, where the writer gives them, sizes)."""
        ids, actions, times, sizes = columns
        parts: list[bytes] = []
        start = 0
        set_aside: set[int] = set()
        for index, offset in holes:
            parts.append(body[start:offset])
            start = offset
            item = items[index]
            records = self.each(*self.wires([item]))
            if records:
                record = records[0]
                parts.append(record.payload)
                ids[index], actions[index], times[index] = record.id, record.action, record.time_ns
                if sizes is not None:
                    sizes[index] = len(record.payload)
            else:
                set_aside.add(index)
        parts.append(body[start:])
        sources = items
        if set_aside:
            sources = [item for index, item in enumerate(items) if index not in set_aside]
            for column in columns:
                if column is not None:
                    column[:] = [value for index, value in enumerate(column) if index not in set_aside]
        return b"".join(parts), sources

    def wires(self, items: list[Any]) -> tuple[list[dict[str, Any]], list[Any]]:
        """The wire dicts of the items, and the items they came from (poison events left out).

        With the loss ledger on, each wire dict gets its sequence number here (``stamp``).
        """
        wires, sources = self._wires(items)
        if self.stamp is not None:  # the loss ledger (issue 24): eventlog._engine.ledger
            self.stamp(wires)
        return wires, sources

    def _wires(self, items: list[Any]) -> tuple[list[dict[str, Any]], list[Any]]:
        """The wire dicts of the items, and the items they came from (poison events left out).

        The fast path builds each wire dict in one pass from the log record or
        Event; what it does not take (and every event, when other enrichers are
        configured) goes the careful way: an Event, the enrichers, ``to_wire``.
        """
        conversions = self.stats.converted
        if not self.fast:
            wires: list[dict[str, Any]] = []
            sources: list[Any] = []
            for item in items:
                wire = self.careful_wire(item)
                if wire is not None:
                    wires.append(wire)
                    sources.append(item)
            return wires, sources
        static = self._static
        if static is None:
            static = self._static = self.static_fields()
        return wires_of(items, static, self.with_context, conversions, self.careful_wire)

    def static_fields(self) -> dict[str, Any]:
        """What the host and site enrichers set on an event, as wire fields in wire order."""
        blank = Event.__new__(Event)
        blank.site = blank.cluster = blank.host = blank.pid = None
        for enrich in self.static_enrichers:
            enrich(blank)
        static = {"site": blank.site, "cluster": blank.cluster, "host": blank.host, "pid": blank.pid}
        return {key: value for key, value in static.items() if value is not None}

    def careful_wire(self, item: Any) -> dict[str, Any] | None:
        """An Event, the worker enrichers, ``to_wire``; None (counted, warned) if that fails."""
        try:
            event = item if type(item) is Event else record_to_event(*item)
            for enrich in self.worker_enrichers:
                try:
                    enrich(event)
                except Exception:
                    self._enricher_failed(enrich)
            return to_wire(event, self.stats.converted)
        except Exception as exc:
            self._set_aside(exc)
            return None

    def _set_aside(self, exc: Exception) -> None:
        # A poison event: set aside with its reason; the rest of the batch goes on.
        self._count(1, "unencodable")
        self._warnings.once(
            f"encode:{type(exc).__name__}",
            f"an event could not be formatted as {self.format_name!r} and was set "
            f"aside: {type(exc).__name__}: {exc}",
        )


def _heads(items: list[Any], wires: list[dict[str, Any]]) -> Heads:
    """Each event's id, action and time, for the Records of an EncodedBatch."""
    return [wire[W.id] for wire in wires], [wire[W.action] for wire in wires], _times_ns(items, wires)


def _times_ns(items: list[Any], wires: list[dict[str, Any]]) -> list[int]:
    """``_time_ns`` of each item, in one loop (spool mode asks for every event's time)."""
    # The same as [_time_ns(item, wire) ...], without a Python call per event (~1k
    # instructions each, callgrind, 3.11); tests/test_fast_path.py holds the two equal.
    times: list[int] = []
    append = times.append
    for item, wire in zip(items, wires):
        if type(item) is not tuple:
            append(item.time_ns)
            continue
        sub_ms = 0
        try:
            created = item[0].created
            if type(created) is float:
                sub_ms = int(created * 1e9) % 1_000_000
        except Exception:
            pass
        append(int(wire[W.tstamp]) * 1_000_000 + sub_ms)
    return times


def _time_ns(item: Any, wire: dict[str, Any]) -> int:
    """The event time of a queued item (an Event, or a log record with its message and context).

    For a record: the wire's millisecond (logging's own, see ``record_time_ns``,
    or the time of the conversion for a record whose time was unusable) and the
    float's sub-millisecond part, which is all the precision ``created`` has.
    """
    if type(item) is tuple:
        sub_ms = 0
        try:
            created = item[0].created
            if type(created) is float:  # a type check first: no object's __mul__ runs here
                sub_ms = int(created * 1e9) % 1_000_000
        except Exception:  # NaN, inf, deleted: the millisecond alone
            pass
        return int(wire[W.tstamp]) * 1_000_000 + sub_ms
    time_ns: int = item.time_ns
    return time_ns
