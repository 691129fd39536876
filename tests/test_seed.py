"""Every example of the seed's README runs and produces the documented fields."""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Iterator

import pytest

import eventlog
from eventlog._builtin.receiver import LineReceiver


@pytest.fixture
def app_logger(receiver: LineReceiver) -> Iterator[logging.Logger]:
    eventlog.configure(transport="tcp", host="127.0.0.1", port=receiver.port)
    logger = logging.getLogger("my-app")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(eventlog.asyncEventLogger)
    yield logger
    logger.removeHandler(eventlog.asyncEventLogger)


def _arrived(receiver: LineReceiver, count: int) -> list[dict[str, object]]:
    assert eventlog.flush(10)
    assert receiver.wait_for(count, 10)
    events = receiver.events()
    assert len(events) == count
    return events


def test_seed_handler_example(app_logger: logging.Logger, receiver: LineReceiver) -> None:
    from eventlog import asyncEventLogger  # the seed's import works as documented

    assert asyncEventLogger is eventlog.asyncEventLogger
    app_logger.info("some message")
    (event,) = _arrived(receiver, 1)
    assert event["message"] == "some message"
    assert event["action"] == "log.info"
    assert event["level"] == 20 and event["levelName"] == "INFO"
    assert event["target"] == "my-app"


def test_seed_event_example(receiver: LineReceiver) -> None:
    from eventlog import Event, logEvent

    eventlog.configure(transport="tcp", host="127.0.0.1", port=receiver.port)
    event = Event("click", "my-button", "ui")
    logEvent(event)
    (wire,) = _arrived(receiver, 1)
    assert (wire["action"], wire["target"], wire["tgType"]) == ("click", "my-button", "ui")
    assert wire["id"] == event.id
    assert wire["tstamp"] == event.time_ns // 1_000_000


def test_seed_table_row_by_row(app_logger: logging.Logger, receiver: LineReceiver) -> None:
    log = eventlog.get_logger("my-app")
    line = 0

    def call() -> None:
        nonlocal line
        import inspect

        frame = inspect.currentframe()
        assert frame is not None and frame.f_back is not None
        line = frame.f_back.f_lineno + 1

    call()
    log.info(
        "my message",
        tags=["thing-one", "thing-two"],
        metrics={"value": 3.14159, "choice": "banana", "durationMs": 34.2},
    )
    try:
        raise KeyError("missing")
    except KeyError:
        app_logger.error("failed", exc_info=True, extra={"tags": "single", "retries": 3})
    first, second = _arrived(receiver, 2)
    # message, action
    assert first["message"] == "my message"
    assert first["action"] == "log.info"
    # codeFile, codeLine, codeFunc: the caller, never a frame inside eventlog or logging
    assert first["codeFile"] == __file__
    assert first["codeLine"] == line
    assert first["codeFunc"] == "test_seed_table_row_by_row"
    # tags: a list, or a single string
    assert first["tags"] == ["thing-one", "thing-two"]
    assert second["tags"] == ["single"]
    # metrics: numbers in metrics; the seed's choice="banana" is kept as a typed field
    assert first["metrics"] == {"value": 3.14159, "durationMs": 34.2}
    assert first["fields"] == {"choice": "banana"}
    assert second["metrics"] == {"retries": 3}
    # exc_info: JSON text with type, value and stack
    exc = json.loads(second["exc_info"])
    assert exc["type"] == "KeyError"
    assert exc["value"] == "'missing'"
    assert 'raise KeyError("missing")' in exc["stack"]
    assert second["action"] == "log.error"


def test_plain_logger_with_extra_tags_and_metrics(app_logger: logging.Logger, receiver: LineReceiver) -> None:
    app_logger.warning("disk %s at %d%%", "/var", 91, extra={"tags": ["disk"], "metrics": {"used": 0.91}})
    (event,) = _arrived(receiver, 1)
    assert event["message"] == "disk /var at 91%"
    assert event["action"] == "log.warning"
    assert event["tags"] == ["disk"]
    assert event["metrics"] == {"used": 0.91}


def test_log_code_option_records_the_caller(receiver: LineReceiver) -> None:
    eventlog.configure(transport="tcp", host="127.0.0.1", port=receiver.port)
    line = inspect.currentframe().f_lineno + 1  # type: ignore[union-attr]
    event = eventlog.Event("app_open_document", logCode=True)
    eventlog.log_event(event)
    (wire,) = _arrived(receiver, 1)
    assert (wire["codeFile"], wire["codeLine"], wire["codeFunc"]) == (
        __file__,
        line,
        "test_log_code_option_records_the_caller",
    )


def test_site_cluster_host_from_environment(receiver: LineReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import socket

    monkeypatch.setenv("EVENTLOG_HOST", "127.0.0.1")
    monkeypatch.setenv("EVENTLOG_PORT", str(receiver.port))
    monkeypatch.setenv("EVENTLOG_FORMAT", "json")
    monkeypatch.setenv("EVENTLOG_SITE", "acme")
    monkeypatch.setenv("EVENTLOG_CLUSTER", "eu-1")
    eventlog.log_event(eventlog.Event("click"))  # the default pipeline, from the environment
    (wire,) = _arrived(receiver, 1)
    assert (wire["site"], wire["cluster"]) == ("acme", "eu-1")
    assert wire["host"] == socket.gethostname()
    assert wire["pid"] == os.getpid()
