"""Shared by the spool tests."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator


class EventlogWarnings(logging.Handler):
    """Collects eventlog's own warnings (its logger does not propagate to pytest's)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def count(self, text: str) -> int:
        """How many warnings contain ``text``."""
        return sum(text in message for message in self.messages)


def capture_warnings() -> Iterator[EventlogWarnings]:
    """For a fixture: eventlog's warnings while it lasts."""
    handler = EventlogWarnings()
    logging.getLogger("eventlog").addHandler(handler)
    try:
        yield handler
    finally:
        logging.getLogger("eventlog").removeHandler(handler)


def log_with_ids(action: str, prefix: str, count: int) -> list[str]:
    """Log ``count`` Events with known ids (``<prefix>-000000`` ...) through the default pipeline."""
    import eventlog

    ids = []
    for number in range(count):
        event = eventlog.Event(action, prefix, "test")
        event.id = f"{prefix}-{number:06d}"
        eventlog.log_event(event)
        ids.append(event.id)
    return ids


def wait_until(check: Callable[[], object], timeout: float = 30) -> None:
    """Poll ``check`` every 50 ms until it is true; fail after ``timeout`` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {check}"
        time.sleep(0.05)
