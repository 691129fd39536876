"""Record and Batch: one formatted event, and what a transport is handed to send."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

from eventlog._core.errors import PluginError


class Record(NamedTuple):
    """One formatted event as transports see it.

    ``payload`` is what the formatter produced; the other fields are kept
    beside it (also in the spool) so a transport can route without parsing it.
    """

    id: str
    action: str
    time_ns: int
    payload: bytes


class SheddableRecord(Record):
    """A Record of a sheddable event (overload control): the spool evicts these first."""

    __slots__ = ()


Batch = Sequence[Record]

_new_tuple = tuple.__new__


#: Each event's id, action and time, for the Records of an EncodedBatch.
Heads = tuple[list[str], list[str], list[int]]


class EncodedBatch(Sequence[Record]):
    """A batch the formatter encoded in one call: ``body`` is its payloads back to back.

    A transport that writes a byte stream sends ``body`` as it is; indexing or
    iterating gives the :class:`Record` objects as for any batch, built on
    first use from ``split`` (the formatter's way back from ``body`` to the
    payloads) and ``heads`` (each event's id, action and time).
    """

    __slots__ = ("_count", "_heads", "_records", "_split", "body")

    def __init__(
        self,
        body: bytes,
        count: int,
        heads: Callable[[], Heads],
        split: Callable[[bytes], list[bytes]],
    ) -> None:
        self.body = body
        self._count = count
        self._heads = heads
        self._split = split
        self._records: list[Record] | None = None

    def records(self) -> list[Record]:
        """The batch as a list of Records (made once, on first use)."""
        records = self._records
        if records is None:
            payloads = self._split(self.body)
            if len(payloads) != self._count:
                raise PluginError(f"the formatter split {self._count} events into {len(payloads)} payloads")
            ids, actions, times = self._heads()
            records = self._records = [
                _new_tuple(Record, head) for head in zip(ids, actions, times, payloads)
            ]
        return records

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index: Any) -> Any:
        return self.records()[index]

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records())
