"""Shared fixtures: every test gets a clean default pipeline and environment."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from tests.peers.clickhouse import clickhouse  # noqa: F401  (session fixture)

import eventlog
from eventlog import api, config
from eventlog.receiver import LineReceiver

# The suite's own switch, not a setting: not to be reported as a misspelt one.
config.NOT_SETTINGS.add("EVENTLOG_REQUIRE_PEERS")


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
