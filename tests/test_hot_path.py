"""The caller's path after the benchmark's optimisations: what the receiver gets is unchanged."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

import eventlog
from eventlog._builtin.receiver import LineReceiver


@pytest.fixture
def receiver() -> Iterator[LineReceiver]:
    with LineReceiver() as peer:
        yield peer


@pytest.fixture
def logger(receiver: LineReceiver) -> Iterator[logging.Logger]:
    eventlog.configure(transport="tcp", host="127.0.0.1", port=receiver.port)
    log = logging.getLogger("test.hot_path")
    log.handlers[:] = [eventlog.EventHandler()]
    log.propagate = False
    log.setLevel(logging.INFO)
    yield log
    log.handlers.clear()


def test_messages_read_their_arguments_as_they_were_at_the_call(
    receiver: LineReceiver, logger: logging.Logger
) -> None:
    items = [1]
    logger.info("items %s", items)  # a list can change: rendered in the caller
    items.append(2)
    logger.info("user %s did %d in %.1f ms", "alice", 3, 2.5)  # immutable: rendered in the worker
    logger.info("plain 100%")  # no arguments: the text as it is
    logger.info("dict %(a)s", {"a": 5})
    assert eventlog.flush(10)
    assert receiver.wait_for(4, 10)
    assert [e["message"] for e in receiver.events()] == [
        "items [1]",
        "user alice did 3 in 2.5 ms",
        "plain 100%",
        "dict 5",
    ]


def test_arguments_that_do_not_fit_the_message_keep_the_event(
    receiver: LineReceiver, logger: logging.Logger
) -> None:
    # Straight to the handler: pytest's own log capture would raise on this record.
    record = logger.makeRecord(logger.name, logging.INFO, __file__, 1, "count %d", ("no",), None)
    logger.handlers[0].handle(record)
    assert eventlog.flush(10)
    assert receiver.wait_for(1, 10)
    assert [e["message"] for e in receiver.events()] == ["count %d <unrenderable: TypeError; args: ('no',)>"]
    assert eventlog.get_pipeline().stats.converted == {"unrenderable": 1}


def test_extra_keys_keep_their_order_and_types(receiver: LineReceiver, logger: logging.Logger) -> None:
    logger.info("m", extra={"z_ms": 1.5, "a_count": 2, "req": "r-1", "flag": True, "tags": "t"})
    assert eventlog.flush(10)
    assert receiver.wait_for(1, 10)
    event = receiver.events()[0]
    assert list(event["metrics"].items()) == [("z_ms", 1.5), ("a_count", 2)]
    assert list(event["fields"].items()) == [("req", "r-1"), ("flag", 1)]  # a bool is no metric
    assert event["tags"] == ["t"]
    assert event["action"] == "log.info"
