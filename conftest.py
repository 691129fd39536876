"""Shared fixtures: every test gets a clean default pipeline and environment."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest

import eventlog
from eventlog._api import api
from eventlog._builtin.receiver import LineReceiver
from eventlog._config import config

# The peers import the SDK's test module before pytest_plugins below loads it: have its
# asserts rewritten all the same (and pytest not warn that it could not).
pytest.register_assert_rewrite("eventlog.plugin.testing")

from tests.peers.clickhouse import clickhouse  # noqa: E402, F401  (session fixture)

# The SDK's fixtures (line_receiver, datagram_receiver, local_ca), as a plugin author enables them.
pytest_plugins = ["eventlog.plugin.testing"]

# The suite's own switch, not a setting: not to be reported as a misspelt one.
config.NOT_SETTINGS.add("EVENTLOG_REQUIRE_PEERS")
# The fault-injection run's switches (tests/test_fault_injection.py; docs/delivery.md names them).
config.NOT_SETTINGS.update(
    {"EVENTLOG_FAULTS_LONG", "EVENTLOG_FAULTS_MINUTES", "EVENTLOG_FAULTS_ENABLE", "EVENTLOG_FAULTS_EXAMPLES"}
)


@pytest.fixture(autouse=True)
def _clean_eventlog(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in list(os.environ):
        if key.startswith("EVENTLOG_") and key != "EVENTLOG_REQUIRE_PEERS":
            monkeypatch.delenv(key)
    yield
    eventlog.shutdown(timeout=2)
    api._default = None
    api._config_error = None  # a configuration error of one test is not the next one's


@pytest.fixture
def receiver() -> Iterator[LineReceiver]:
    """A real JSON-lines TCP listener on 127.0.0.1."""
    with LineReceiver() as r:
        yield r


@pytest.fixture
def app_logger() -> Iterator[logging.Logger]:
    """An application's logger at DEBUG, not propagating, with an EventHandler on the default pipeline."""
    logger = logging.getLogger("tests.app")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    handler = eventlog.EventHandler()
    logger.addHandler(handler)
    yield logger
    logger.removeHandler(handler)
