"""Test helpers for applications: what a block of code logged, as wire dicts.

:func:`capture_events` records what the block logged through the default
pipeline, as the wire dicts a real pipeline produced (as structlog's
``capture_logs``)::

    from eventlog.testing import capture_events

    def test_signup_is_logged():
        with capture_events() as events:
            signup("alice")
        assert [e["action"] for e in events] == ["account.create"]

:func:`capturing_pipeline` gives such a pipeline for an ``EventHandler`` of
your own.  Plugin authors: the conformance suites, loopback receivers and test
certificates are in the SDK, :mod:`eventlog.plugin.testing`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from eventlog._api import api
from eventlog._config.config import Settings
from eventlog._config.contracts import Transport, TransportSpec
from eventlog._config.hookspecs import hookimpl
from eventlog._config.registry import Registry
from eventlog._engine.pipeline import Pipeline
from eventlog._records.batch import Batch, Record

__all__ = [
    "CAPTURE_TRANSPORT",
    "CapturedEvents",
    "CapturingTransport",
    "capture_events",
    "capturing_pipeline",
]

# ---------------------------------------------------------------- capturing


class CapturingTransport(Transport):
    """A transport that keeps every batch in memory, as :class:`Record` lists.

    ``opens``, ``closes`` and ``batches`` let a test see what the engine did.
    """

    def __init__(self, sink: Callable[[list[Record]], None] | None = None) -> None:
        self.batches: list[list[Record]] = []
        self.opens = 0
        self.closes = 0
        self._sink = sink

    def open(self) -> None:
        self.opens += 1

    def send(self, batch: Batch) -> None:
        records = list(batch)
        self.batches.append(records)
        if self._sink is not None:
            self._sink(records)

    def close(self) -> None:
        self.closes += 1

    @property
    def records(self) -> list[Record]:
        """Every record sent, in order."""
        return [record for batch in self.batches for record in batch]


#: The transport name :func:`capturing_pipeline` registers (its format is always ``json``).
CAPTURE_TRANSPORT = "capture"


class _CapturePlugin:
    """Registers the ``capture`` transport for one pipeline, through the ordinary hook."""

    def __init__(self, sink: Callable[[list[Record]], None]) -> None:
        self.sink = sink

    @hookimpl
    def eventlog_transports(self) -> list[TransportSpec]:
        return [
            TransportSpec(
                CAPTURE_TRANSPORT,
                lambda _context: CapturingTransport(self.sink),
                "keeps events in memory (eventlog.testing)",
                formats=frozenset({"json"}),
            )
        ]


class CapturedEvents(list[dict[str, Any]]):
    """The wire dicts a pipeline delivered, in order; complete once the capture block ends."""

    pipeline: Pipeline | None = None

    def flush(self, timeout: float = 10.0) -> CapturedEvents:
        """Wait until every event logged so far is in this list (inside the block)."""
        if self.pipeline is not None and not self.pipeline.flush(timeout):
            raise TimeoutError(f"events were not delivered to the capture within {timeout}s")
        return self


#: Settings that would send events somewhere else, or open a port, during a capture.
_NOT_INHERITED = ("DB", "HOST", "PORT", "TRANSPORT", "FORMAT", "METRICS_PORT", "NAME")


def capturing_pipeline(**settings: Any) -> tuple[Pipeline, CapturedEvents]:
    """A real :class:`Pipeline` whose transport keeps the events, and the list they land in.

    Settings are read as ``configure()`` reads them (keywords, then the
    environment), so the application's enrichers, site and cluster apply;
    the transport is ``capture`` and the format ``json``.  Use it for an
    ``EventHandler(pipeline=...)`` of your own; :func:`capture_events`
    covers the default pipeline.
    """
    for key in ("transport", "format", "db"):
        if key in settings:
            raise TypeError(f"capturing_pipeline() sets {key!r} itself; do not pass it")
    captured = CapturedEvents()

    def sink(records: list[Record]) -> None:
        # One worker thread calls this; list.extend is atomic for readers.
        captured.extend(json.loads(record.payload) for record in records)

    environ = {
        key: value for key, value in os.environ.items() if key.removeprefix("EVENTLOG_") not in _NOT_INHERITED
    }
    given = {"name": "capture", "linger_ms": 0, **settings}
    given.update(transport=CAPTURE_TRANSPORT, format="json")
    registry = Registry(extra_plugins=(_CapturePlugin(sink),))
    pipeline = Pipeline(Settings.load(given, environ=environ), registry)
    captured.pipeline = pipeline
    return pipeline, captured


@contextmanager
def capture_events(**settings: Any) -> Iterator[CapturedEvents]:
    """Capture the events the block logs through the default pipeline, as wire dicts.

    Inside the block, :func:`eventlog.log_event`, ``asyncEventLogger`` and
    every ``EventHandler`` without a pipeline of its own feed a real pipeline
    (caller and worker enrichers, wire conversion, the ``json`` formatter)
    whose transport keeps the result.  The list is complete when the block
    ends; call ``events.flush()`` to look inside the block.  The previous
    default pipeline is put back untouched (a ``configure()`` inside the
    block replaces the capture, as it would replace any default pipeline).

    >>> with capture_events() as events:  # doctest: +SKIP
    ...     log_event(Event("click", "my-button", "ui"))
    >>> events[0]["tgType"]  # doctest: +SKIP
    'ui'
    """
    pipeline, captured = capturing_pipeline(**settings)
    previous = api.swap_default(pipeline)
    timeout = max(10.0, pipeline.settings.shutdown_timeout)
    try:
        yield captured
    finally:
        api.swap_default(previous, only_if=pipeline)
        delivered = pipeline.shutdown(timeout)
    # Only after a block that ended normally: never hide the block's own exception.
    if not delivered:
        raise TimeoutError(f"events were not delivered to the capture within {timeout}s")
