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
    payloads) or ``sizes`` (each payload's length, for a format whose payloads
    are not self-delimiting) and ``heads`` (each event's id, action and time).
    A transport that knows the format may read ``body`` with ``sizes`` and
    :meth:`heads` itself, and make no Record at all.
    """

    __slots__ = ("_count", "_heads", "_records", "_split", "body", "shed", "sizes")

    def __init__(
        self,
        body: bytes,
        count: int,
        heads: Callable[[], Heads],
        split: Callable[[bytes], list[bytes]] | None,
        sizes: list[int] | None = None,
        shed: int = 0,
    ) -> None:
        if split is None and sizes is None:
            raise PluginError("an EncodedBatch needs split or sizes to give its payloads back")
        self.body = body
        self._count = count
        self._heads = heads
        self._split = split
        #: Each payload's length in ``body``, in order, or None (``split`` finds them).
        self.sizes = sizes
        self._records: list[Record] | None = None
        #: 1: every event of the batch is sheddable (overload control): its Records are
        #: SheddableRecords, and the spool stores it in rows that limits evict first.
        self.shed = shed

    def heads(self) -> Heads:
        """Each event's id, action and time (three lists, in the batch's order)."""
        return self._heads()

    def records(self) -> list[Record]:
        """The batch as a list of Records (made once, on first use)."""
        records = self._records
        if records is None:
            payloads = self._split(self.body) if self._split is not None else _cut(self.body, self.sizes)
            if len(payloads) != self._count:
                raise PluginError(f"the formatter split {self._count} events into {len(payloads)} payloads")
            ids, actions, times = self._heads()
            kind = SheddableRecord if self.shed else Record
            records = self._records = [_new_tuple(kind, head) for head in zip(ids, actions, times, payloads)]
        return records

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index: Any) -> Any:
        return self.records()[index]

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records())


def _cut(body: bytes, sizes: list[int] | None) -> list[bytes]:
    """The payloads of ``body`` by their sizes; PluginError if the sizes do not cover it."""
    assert sizes is not None
    payloads: list[bytes] = []
    start = 0
    for size in sizes:
        payloads.append(body[start : start + size])
        start += size
    if start != len(body) or any(size < 0 for size in sizes):
        raise PluginError(f"the formatter's payload sizes cover {start} of {len(body)} bytes")
    return payloads
