"""What the pipeline needs of a spool: the :class:`Spool` protocol and the errors a spool raises.

A leaf module: no SQLite here, and of eventlog only its errors and ``Record``, for typing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

# The spool's errors live with every other error; named here too for the spool's users.
from eventlog._core.errors import SpoolCorrupt, SpoolUnavailable

__all__ = ["Spool", "SpoolCorrupt", "SpoolUnavailable"]

if TYPE_CHECKING:
    from eventlog._records.batch import Record


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
