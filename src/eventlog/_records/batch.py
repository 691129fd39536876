"""Record and Batch: one formatted event, and what a transport is handed to send."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

from eventlog._core.errors import PluginError
from eventlog._records.schema import W


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


class EncodedBatch(Sequence[Record]):
    """A batch the formatter encoded in one call: ``body`` is its payloads back to back.

    A transport that writes a byte stream sends ``body`` as it is; indexing or
    iterating gives the :class:`Record` objects as for any batch, built on
    first use from ``split`` (the formatter's way back from ``body`` to the
    payloads), the wire dicts and the events' times.
    """

    __slots__ = ("_actions", "_ids", "_records", "_split", "_times", "_wires", "body")

    def __init__(
        self,
        body: bytes,
        wires: list[dict[str, Any]],
        times: Callable[[], list[int]],
        split: Callable[[bytes], list[bytes]],
    ) -> None:
        self.body = body
        self._wires = wires
        self._ids: list[str] | None = None  # set by from_lines
        self._actions: list[str] | None = None
        self._times = times
        self._split = split
        self._records: list[Record] | None = None

    @classmethod
    def from_lines(
        cls,
        body: bytes,
        ids: list[str],
        actions: list[str],
        times: list[int],
        split: Callable[[bytes], list[bytes]],
    ) -> EncodedBatch:
        """A batch written without wire dicts: each event's id, action and time beside ``body``."""
        batch = cls(body, [], times.copy, split)
        batch._ids, batch._actions = ids, actions
        return batch

    def records(self) -> list[Record]:
        """The batch as a list of Records (made once, on first use)."""
        records = self._records
        if records is None:
            payloads = self._split(self.body)
            if len(payloads) != len(self):
                raise PluginError(f"the formatter split {len(self)} events into {len(payloads)} payloads")
            ids, actions = self._ids, self._actions
            if ids is None or actions is None:
                ids = [wire[W.id] for wire in self._wires]
                actions = [wire[W.action] for wire in self._wires]
            records = self._records = [
                _new_tuple(Record, head) for head in zip(ids, actions, self._times(), payloads)
            ]
        return records

    def __len__(self) -> int:
        return len(self._wires) if self._ids is None else len(self._ids)

    def __getitem__(self, index: Any) -> Any:
        return self.records()[index]

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records())
