"""The worker's life is one State: what it is at each step, and what callers see of it.

A real TCP receiver takes the events; the pipeline is driven through its public
methods, and the state read after each step.
"""

from __future__ import annotations

import ast
from pathlib import Path

from eventlog import Event
from eventlog._builtin.receiver import LineReceiver
from eventlog._config.config import Settings
from eventlog._engine.pipeline import Pipeline
from eventlog._engine.worker import _WAKE, State

SRC = Path(__file__).resolve().parent.parent / "src" / "eventlog"


def _pipeline(port: int, **more: object) -> Pipeline:
    given = {"transport": "tcp", "host": "127.0.0.1", "port": port, "enrichers": "", **more}
    return Pipeline(Settings.load(given, environ={}))


def test_the_worker_goes_idle_running_closing_closed_and_counts_what_comes_late() -> None:
    with LineReceiver() as receiver:
        pipeline = _pipeline(receiver.port)
        worker = pipeline.worker
        assert (worker.state, worker.thread, worker.wake_needed) == (State.IDLE, None, True)
        pipeline.submit_event(Event("first", "a"))
        assert worker.thread is not None  # the first event started the thread
        assert pipeline.flush(10)
        assert worker.state in (State.RUNNING, State.SLEEPING)
        assert pipeline.shutdown(10)
        assert (worker.state, worker.wake_needed, worker.thread.is_alive()) == (State.CLOSED, True, False)
        pipeline.submit_event(Event("late", "b"))
        assert pipeline.stats.dropped_by_reason() == {"closed": 1}
        assert receiver.wait_for(1)
        assert [event["action"] for event in receiver.events()] == ["first"]


def test_wake_needed_is_always_the_state_s_projection() -> None:
    with LineReceiver() as receiver:
        pipeline = _pipeline(receiver.port)
        worker = pipeline.worker
        seen = []
        for state in State:
            worker._enter(state)
            seen.append((state, worker.wake_needed))
        worker._enter(State.IDLE)
        assert seen == [(state, state in _WAKE) for state in State]
        assert {s for s, needed in seen if needed} == {State.IDLE, State.SLEEPING, State.CLOSED}
        pipeline.shutdown(5)


def test_start_false_serves_no_metrics_until_start() -> None:
    with LineReceiver() as receiver:
        given = {"transport": "tcp", "host": "127.0.0.1", "port": receiver.port, "metrics_port": 0}
        pipeline = Pipeline(Settings.load(given, environ={}), start=False)
        try:
            assert pipeline.metrics_port is None
            pipeline.start()
            assert pipeline.metrics_port
        finally:
            pipeline.shutdown(5)


def test_the_doors_use_no_private_attribute_of_the_pipeline() -> None:
    """handler, api, counters and bridge queue through the declared submit contract only."""
    found = []
    for name in ("handler", "api", "counters", "bridge"):
        tree = ast.parse((SRC / "_api" / f"{name}.py").read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in ("pipeline", "target", "worker")
                and node.attr.startswith("_")
            ):
                found.append(f"{name}.py:{node.lineno} {node.value.id}.{node.attr}")
    assert found == []
