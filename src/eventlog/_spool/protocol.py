"""What the pipeline needs of a spool: the :class:`Spool` protocol, what it stores, its errors.

A leaf module: no SQLite here, and of eventlog only its errors and the batch types.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

# The spool's errors live with every other error; named here too for the spool's users.
from eventlog._core.errors import SpoolCorrupt, SpoolUnavailable
from eventlog._records.batch import EncodedBatch, Record, SheddableRecord

__all__ = ["ClassedBatch", "Spool", "SpoolCorrupt", "SpoolUnavailable"]

_new_tuple = tuple.__new__


class ClassedBatch(Sequence[Record]):
    """An encoded batch and which of its events are sheddable: what a spool stores as it is.

    ``batch`` has its payloads' ``sizes``; ``sheddable[i]`` is the class of its i-th
    event.  A spool writes ``batch.body`` into its rows with no Record made, and
    hands rows stored this way back as EncodedBatches, whose body a stream
    transport sends as it is.  As a sequence it is the batch's Records, those of
    sheddable events as :class:`SheddableRecord` (what a list of records tagged
    one by one holds), so any code that takes records takes it unchanged.
    """

    __slots__ = ("_records", "batch", "sheddable")

    def __init__(self, batch: EncodedBatch, sheddable: list[bool]) -> None:
        self.batch = batch
        self.sheddable = sheddable
        self._records: list[Record] | None = None

    def records(self) -> list[Record]:
        """The batch as Records, SheddableRecords for sheddable events (made once, on first use)."""
        records = self._records
        if records is None:
            records = self._records = [
                _new_tuple(SheddableRecord, record) if shed else record
                for record, shed in zip(self.batch.records(), self.sheddable, strict=True)
            ]
        return records

    def __len__(self) -> int:
        return len(self.batch)

    def __getitem__(self, index: Any) -> Any:
        # The whole batch (Accounting.store takes ``records[ahead:]``, ahead almost always 0).
        if type(index) is slice and not index.start and index.stop is None and index.step is None:
            return self
        return self.records()[index]

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records())


class Spool(Protocol):
    """Where formatted records wait for delivery in spool mode (``EVENTLOG_DB``).

    The pipeline adds each batch in one transaction, sends what ``pending``
    returns in order, and removes what was delivered or given up.  A method
    that cannot reach the storage raises :class:`SpoolUnavailable`.
    The engine sets the ``on_*`` callbacks to count what the spool sets aside.
    """

    #: (reason, events) set aside: a quarantined row's (``spool_quarantined``), an unstorable event.
    on_drop: Callable[[str, int], None] | None
    #: (reason, rows) moved to the quarantine table: unreadable or undecodable rows.
    on_quarantine: Callable[[str, int], None] | None
    #: (reason): the file was ``deleted`` or ``replaced`` while in use, and a fresh one opened.
    on_reopen: Callable[[str], None] | None
    #: (): another spool of this process on the same file handed rows back: look again.
    on_released: Callable[[], None] | None
    #: Told (class, reason, count) when a limit evicts events (overload control).
    on_evict_class: Callable[[str, str, int], None] | None

    def add(self, records: Sequence[Record]) -> None: ...
    def pending(self, limit: int) -> Sequence[Record]: ...
    def remove(self, records: Sequence[Record]) -> None: ...
    def depth(self) -> int: ...
    def watch(self) -> None:
        """Between send retries: notice (and repair) what happened to the storage meanwhile."""

    def reclaim(self) -> bool:
        """Take over the rows of dead owners now; True when there may be some to send."""
        return False

    def close(self) -> None: ...
    def after_fork(self) -> None:
        """In a forked child: forget the parent's connection without closing it."""
