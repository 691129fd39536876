"""A stateful fault-injection run against the worker: hypothesis interleaves hostile steps.

Steps: events (plain, a poison batch for the transport, a poison event that kills
the worker thread), flushes with random timeouts, the peer going down and coming
back (a real TCP listener on one port), and configure() again onto the same peer.
After every step: the worker is alive or comes back on the next flush, and no
event is in two places; at the end, with the peer up, one flush settles
everything: accepted = sent + dropped exactly, and every event the receiver got
was logged.

A short run is part of the suite; ``EVENTLOG_FAULT_EXAMPLES=2000`` runs a long one.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from eventlog import Event
from eventlog._builtin.receiver import LineReceiver
from eventlog._config.config import Settings
from eventlog._config.registry import Registry
from eventlog._engine.pipeline import Pipeline
from eventlog.plugin.testing import closed_port
from tests.test_worker import PoisonPlugin

EXAMPLES = int(os.environ.get("EVENTLOG_FAULT_EXAMPLES", "8"))

pytestmark = pytest.mark.timeout(600 if EXAMPLES <= 8 else 0)


class WorkerFaults(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.registry = Registry(extra_plugins=(PoisonPlugin(),))
        self.port = closed_port()
        self.peer: LineReceiver | None = LineReceiver(port=self.port)
        self.received: list[dict[str, Any]] = []  # what stopped peers had received
        self.pipelines: list[Pipeline] = []
        self.pipeline = self._make()
        self.logged: set[str] = set()
        self.serial = 0

    def _make(self) -> Pipeline:
        given = {
            "transport": "poisoned",
            "host": "127.0.0.1",
            "port": self.port,
            "enrichers": "host,site,context,poisoner",
            "retry_backoff_max": 0.02,
            "queue_size": 500,
            "shutdown_timeout": 2,
            "linger_ms": 2,
        }
        pipeline = Pipeline(Settings.load(given, environ={}, use_django=False), self.registry)
        self.pipelines.append(pipeline)
        return pipeline

    def _log(self, action: str, count: int, target: str | None = None) -> None:
        for _ in range(count):
            self.serial += 1
            name = target or str(self.serial)
            self.logged.add(name)
            self.pipeline.submit_event(Event(action, name))

    @rule(count=st.integers(1, 300))
    def log_events(self, count: int) -> None:
        self._log("ok", count)

    @rule()
    def log_transport_poison(self) -> None:
        self._log("poison", 1)

    @rule()
    def log_worker_killer(self) -> None:
        self.serial += 1
        self.logged.add("kill")
        self.pipeline.submit_event(Event("ok", "kill"))

    @rule(timeout=st.sampled_from([0, 0.001, 0.05, 0.5]))
    def flush(self, timeout: float) -> None:
        self.pipeline.flush(timeout)

    @precondition(lambda self: self.peer is not None)
    @rule()
    def peer_down(self) -> None:
        assert self.peer is not None
        self.received += self.peer.events()
        self.peer.stop()
        self.peer = None

    @precondition(lambda self: self.peer is None)
    @rule()
    def peer_up(self) -> None:
        self.peer = LineReceiver(port=self.port)

    @rule()
    def configure_again(self) -> None:
        old, self.pipeline = self.pipeline, self._make()
        old.retire()

    @invariant()
    def counts_never_exceed_what_was_accepted(self) -> None:
        for pipeline in self.pipelines:
            stats = pipeline.stats
            accepted = stats.taken + pipeline.queue_depth()
            settled = stats.sent + sum(stats.dropped_by_reason().values())
            assert settled <= accepted + stats.overflow

    def teardown(self) -> None:
        try:
            if self.peer is None:
                self.peer_up()
            # Every pipeline settles with the peer up: retired ones shut down, the last flushes.
            assert self.pipeline.flush(60)
            for pipeline in self.pipelines[:-1]:
                pipeline.shutdown(10)
            for pipeline in self.pipelines:
                worker = pipeline.worker.thread
                if pipeline is self.pipeline:
                    assert worker is None or worker.is_alive() or pipeline.worker.died is not None
                stats = pipeline.stats
                accepted = stats.taken + pipeline.queue_depth() + stats.overflow
                settled = stats.sent + sum(stats.dropped_by_reason().values())
                assert settled == accepted, (pipeline, stats.__dict__)
            assert self.peer is not None
            got = [event["target"] for event in self.received + self.peer.events()]
            assert set(got) <= self.logged
        finally:
            for pipeline in self.pipelines:
                pipeline.shutdown(2)
            if self.peer is not None:
                self.peer.stop()


WorkerFaults.TestCase.settings = settings(
    max_examples=EXAMPLES,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
test_worker_faults = WorkerFaults.TestCase
