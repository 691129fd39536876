"""Memory mode's delivery: each batch is encoded and sent at once, nothing is kept on disk."""

from __future__ import annotations

import threading
from typing import Any

from eventlog._engine.accounting import Accounting
from eventlog._engine.encoder import Encoder
from eventlog._engine.sender import Deadline, Sender

__all__ = ["MemoryDelivery"]


class MemoryDelivery:
    """The worker's memory mode (a :class:`eventlog._engine.worker.Delivery`).

    What the worker took is sent now; at the shutdown deadline what could not
    be sent is counted as dropped{shutdown}: there is nowhere left to keep it.
    """

    settles_on_failure = True

    def __init__(
        self,
        *,
        encoder: Encoder,
        sender: Sender,
        accounts: Accounting,
        stopped: threading.Event,
        deadline: Deadline,
    ) -> None:
        self._encoder = encoder
        self._sender = sender
        self._accounts = accounts
        self._stopped = stopped
        self._deadline = deadline

    def begin(self) -> None:
        """Nothing was left by an earlier run."""

    def deliver(self, items: list[Any]) -> bool:
        """Encode and send ``items``; always True: nothing of them waits afterwards."""
        batch = self._encoder.batch(items)
        if batch and not self._sender.send(batch, self._deadline):
            # At the shutdown deadline: nowhere left to keep them.
            self._accounts.count(len(batch), "shutdown")
        return True

    def wait(self, delay: float, cut: threading.Event | None = None) -> None:
        """Between send retries; a shutdown (or ``cut``) cuts it short."""
        (cut or self._stopped).wait(delay)

    def finish(self) -> None:
        """Nothing to keep: the worker counts what is still queued."""

    def close(self) -> None:
        """Nothing held open."""

    def forget(self) -> None:
        """Nothing held."""

    def idle(self) -> bool:
        """Nothing waits outside the queue."""
        return True

    def depth(self) -> int:
        """No spool."""
        return 0
