"""Shared by the spool tests."""

from __future__ import annotations

import logging
from collections.abc import Iterator


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
