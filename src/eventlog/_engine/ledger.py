"""The loss ledger: sequence numbers on events, and ledger events that account for the gaps.

With ``ledger_interval`` set, the worker numbers every event of this process
(``fields["eventlog_seq"]``, 1, 2, 3 ...) as it encodes it.  Events the caller's
side shed when the queue was full (:mod:`eventlog._engine.overload`) take their
numbers too, as a gap before the next batch: a receiver sees a hole where they
would have been.  Every ``ledger_interval`` seconds, and at shutdown, the
pipeline sends an ``eventlog.ledger`` event through the same transport with the
numbers it covers and what was sent, dropped (by reason) and shed (by class and
reason) so far.  ``eventlog ledger check FILE`` reads what arrived and says, per
process, which numbers are missing and whether the ledger accounts for them.

Off by default: on, every event carries one more field on the wire.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from eventlog._engine.overload import Overload
from eventlog._engine.stats import Stats
from eventlog._records.event import Event

__all__ = ["LEDGER_ACTION", "SEQ_FIELD", "Ledger", "Stream", "check"]

SEQ_FIELD = "eventlog_seq"
LEDGER_ACTION = "eventlog.ledger"
#: Queue-side reasons: these events never reach the encoder, so their numbers are skipped.
_QUEUE_REASONS = frozenset(
    {"queue_full", "queue_bytes", "evicted", "shed_oldest", "collapsed", "sampled", "rate_limited"}
)


class Ledger:
    """Numbers events in the worker and makes the ledger events of one pipeline."""

    def __init__(
        self, name: str, interval: float, *, stats: Stats, overload: Overload, queue: deque[Any]
    ) -> None:
        self.name = name
        self.interval = interval
        self._stats = stats
        self._overload = overload
        self._queue = queue
        self.next = 1  # the number the next event gets
        self.first = 1  # the first number the next ledger event covers
        self._skipped = 0  # queue-side sheds already given their numbers
        self._due = time.monotonic() + interval

    def stamp(self, wires: list[dict[str, Any]]) -> None:
        """Number the wire dicts of one batch (the worker thread), after a gap for what was shed."""
        shed = self._queue_shed()
        if shed > self._skipped:
            self.next += shed - self._skipped
            self._skipped = shed
        number = self.next
        for wire in wires:
            fields = wire.get("fields")
            # A copy: the dict may be the event's own.
            wire["fields"] = {**fields, SEQ_FIELD: number} if fields else {SEQ_FIELD: number}
            number += 1
        self.next = number
        if time.monotonic() >= self._due:
            self._due = time.monotonic() + self.interval
            self._queue.append(self.event())  # sent with the next batch, numbered like any event

    def _queue_shed(self) -> int:
        # A copy first (one C call): callers add keys while the worker reads.
        shed = dict(self._overload.shed)
        return sum(count for (_, reason), count in shed.items() if reason in _QUEUE_REASONS)

    def event(self, *, final: bool = False) -> Event:
        """The ledger event: the numbers so far, and sent, dropped and shed counts so far."""
        stats = self._stats
        last = self.next - 1 + max(0, self._queue_shed() - self._skipped)
        fields: dict[str, int] = {
            "ledger_seq_first": self.first,
            "ledger_seq_last": last,
            "ledger_sent": stats.sent,
            "ledger_final": int(final),
        }
        for reason, count in sorted(stats.dropped_by_reason().items()):
            fields[f"ledger_dropped_{reason}"] = count
        for (klass, reason), count in sorted(dict(self._overload.shed).items()):
            fields[f"ledger_shed_{klass}_{reason}"] = count
        self.first = last + 1
        return Event(LEDGER_ACTION, self.name, "eventlog", fields=fields)


@dataclass
class Stream:
    """What arrived from one process: its event numbers and its latest ledger."""

    numbers: set[int] = field(default_factory=set)
    duplicates: int = 0
    ledger: dict[str, Any] | None = None

    def missing(self) -> list[tuple[int, int]]:
        """The gaps, as (first, last) ranges, among the numbers up to the highest seen or
        covered by the ledger.  Computed from what arrived, so a hostile number (10**12) in
        a line costs nothing."""
        last = max(self.numbers, default=0)
        if self.ledger is not None:
            last = max(last, _whole(self.ledger.get("ledger_seq_last")))
        gaps: list[tuple[int, int]] = []
        expected = 1
        for number in sorted(n for n in self.numbers if n >= 1):
            if number > expected:
                gaps.append((expected, number - 1))
            expected = number + 1
        if last >= expected:
            gaps.append((expected, last))
        return gaps

    def dropped(self) -> int:
        """Events the latest ledger counts as dropped or shed (its queue_full counts once)."""
        if self.ledger is None:
            return 0
        return sum(_whole(v) for k, v in self.ledger.items() if k.startswith("ledger_dropped_"))


def _whole(value: Any) -> int:
    """A ledger count as sent (an int), else 0: what arrived is input, not trusted."""
    return value if type(value) is int else 0


def check(lines: Iterable[str | bytes]) -> dict[tuple[str, str], Stream]:
    """Read JSON lines (one event each) into a Stream per process (host, pid)."""
    streams: dict[tuple[str, str], Stream] = {}
    for line in lines:
        if not line.strip():
            continue
        event = json.loads(line)
        if not isinstance(event, dict):
            continue  # not an event: nothing to number
        fields = event.get("fields")
        if not isinstance(fields, dict):
            fields = {}
        key = (str(event.get("host", "")), str(event.get("pid", "")))
        stream = streams.setdefault(key, Stream())
        number = fields.get(SEQ_FIELD)
        if type(number) is int:
            if number in stream.numbers:
                stream.duplicates += 1
            stream.numbers.add(number)
        if event.get("action") == LEDGER_ACTION:
            last = _whole(fields.get("ledger_seq_last"))
            if stream.ledger is None or last >= _whole(stream.ledger.get("ledger_seq_last")):
                stream.ledger = fields
    return streams
