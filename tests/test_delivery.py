"""Spool delivery alone: a real SQLite spool, a capturing transport, no worker thread."""

from __future__ import annotations

import math
import threading
from collections import deque
from pathlib import Path
from typing import Any

from eventlog._config.builder import build
from eventlog._config.config import Settings
from eventlog._config.registry import get_registry
from eventlog._core.diagnostics import Warnings
from eventlog._engine.accounting import Accounting
from eventlog._engine.delivery import SpoolDelivery, open_spool
from eventlog._engine.encoder import Encoder
from eventlog._engine.sender import Sender
from eventlog._engine.stats import Stats
from eventlog._records.batch import Record
from eventlog._records.event import Event
from eventlog._spool import SpoolUnavailable
from eventlog.plugin.testing import closed_port
from eventlog.testing import CapturingTransport


class Parts:
    """A SpoolDelivery and what it works with, as the pipeline would make them."""

    def __init__(self, tmp_path: Path, **given: Any) -> None:
        settings = Settings.load(
            {
                "transport": "tcp",
                "host": "127.0.0.1",
                "port": closed_port(),
                "db": str(tmp_path / "s.db"),
                **given,
            },
            environ={},
        )
        components = build(settings, get_registry())
        self.stats = stats = Stats()
        self.accounts = Accounting(stats)
        warnings = Warnings("delivery-test")
        self.encoder = Encoder(
            components,
            stats=stats,
            count=self.accounts.count,
            enricher_failed=lambda _: None,
            warnings=warnings,
        )
        self.transport = CapturingTransport()
        sender = Sender(
            lambda: self.transport,
            transport_name="tcp",
            settings=settings,
            stats=stats,
            count=self.accounts.count,
            wait=lambda _: None,
            warnings=warnings,
            mask=str,
        )
        self.spool = open_spool(settings, components.format_name)
        self.queue: deque[Any] = deque()
        self.stop = threading.Event()  # the pipeline's stop event: set when a shutdown starts
        self.delivery = SpoolDelivery(
            self.spool,
            settings,
            queue=self.queue,
            stop_event=self.stop,
            deadline=lambda: math.inf,
            sender=sender,
            encoder=self.encoder,
            accounts=self.accounts,
            stats=stats,
            warnings=warnings,
        )

    def records(self, *targets: str) -> list[Record]:
        """Events the worker took and encoded."""
        self.accounts.took(len(targets))
        return self.encoder.records([Event("delivered", target) for target in targets])


def test_a_batch_is_stored_then_sent_from_the_spool(tmp_path: Path) -> None:
    parts = Parts(tmp_path)
    records = parts.records("a", "b", "c")
    assert parts.delivery.handle(records) is True
    assert [r.id for r in parts.transport.records] == [r.id for r in records]
    assert parts.spool.depth() == 0 and parts.delivery.idle()
    assert (parts.stats.taken, parts.stats.sent, parts.stats.dropped) == (3, 3, {})
    parts.spool.close()


def test_a_batch_the_spool_cannot_take_is_sent_from_memory(tmp_path: Path) -> None:
    parts = Parts(tmp_path)

    def full(records: list[Record]) -> None:
        raise SpoolUnavailable("disk_full", "no space left on device")

    parts.spool.add = full  # type: ignore[method-assign]
    records = parts.records("a", "b")
    assert parts.delivery.handle(records) is True
    assert [r.id for r in parts.transport.records] == [r.id for r in records]
    assert parts.stats.spool_fallback == {"disk_full": 2}
    assert (parts.stats.sent, parts.stats.dropped) == (2, {})
    parts.spool.close()


def test_a_retry_wait_moves_every_queued_event_into_the_spool_past_a_waiting_flush(
    tmp_path: Path,
) -> None:
    parts = Parts(tmp_path, queue_size=4)
    parts.queue.extend([Event("queued", "1"), Event("queued", "2")])
    marker = parts.accounts.marker(parts.queue)  # a flush of these two, not in the queue
    parts.queue.append(Event("queued", "3"))
    parts.stop.set()  # the wait moves once, then a shutdown cuts it short
    parts.delivery.wait(10.0)
    assert parts.spool.depth() == 3 and not parts.queue
    assert parts.stats.taken == 3 and parts.stats.sent == 0 and not marker.done.is_set()
    assert parts.delivery.drain() is True  # the spool is empty after: everything taken is settled
    parts.accounts.settled()
    assert marker.done.is_set() and parts.stats.sent == 3 and parts.accounts.markers == []
    assert sorted(r.payload.count(b'"queued"') for r in parts.transport.records) == [1, 1, 1]
    parts.spool.close()


def test_the_worker_stopping_moves_the_queue_into_the_spool(tmp_path: Path) -> None:
    parts = Parts(tmp_path)
    parts.queue.extend([Event("queued", "1"), Event("queued", "2")])
    parts.delivery.finish()  # the worker stops: everything goes into the spool
    assert not parts.queue
    assert (parts.stats.taken, parts.stats.sent, parts.stats.dropped) == (2, 0, {})  # both wait in the spool
    assert open_spool(Settings.load({"db": str(tmp_path / "s.db")}, environ={}), "json").depth() == 2
