"""Property-based: hostile events and log calls through a spool pipeline.

No exception reaches the caller, every delivered payload parses, and the
counts add up: accepted = sent + dropped + waiting.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventlog import Event
from eventlog._api.handler import EventHandler
from eventlog._builtin.receiver import LineReceiver
from eventlog._config.config import Settings
from eventlog._engine.pipeline import Pipeline


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")

    __str__ = __repr__


class Weird(float):
    """A float subclass whose value is NaN: not JSON."""


any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=60)
hostile_value = st.one_of(
    st.integers(),  # unbounded: beyond 64 bits too
    st.floats(allow_nan=True, allow_infinity=True),
    any_text,
    st.binary(max_size=40),
    st.none(),
    st.booleans(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(any_text, st.integers(), max_size=3),
    st.just(BadRepr()),
    st.just(Weird(math.nan)),
    st.text(max_size=5).map(lambda s: s * 20_000),  # long enough to be cut
)


@st.composite
def hostile_event(draw: st.DrawFn) -> Event:
    return Event(
        draw(any_text.filter(bool)),
        draw(st.none() | any_text),
        draw(st.none() | any_text),
        message=draw(st.none() | any_text | st.text(max_size=3).map(lambda s: s * 100_000)),
        level=draw(st.none() | st.integers(-(2**70), 2**70)),
        tags=draw(st.none() | st.lists(any_text, max_size=4)),
        fields=draw(st.none() | st.dictionaries(any_text, hostile_value, max_size=5)),
        metrics=draw(st.none() | st.dictionaries(any_text, hostile_value, max_size=3)),
        user=draw(st.none() | any_text),
        log_code=draw(st.booleans()),
    )


log_call = st.tuples(
    st.sampled_from([logging.INFO, logging.WARNING, logging.ERROR, 5, 60]),
    any_text,
    st.lists(st.one_of(any_text, st.integers(), st.floats(), st.binary(max_size=8)), max_size=3),
    st.booleans(),
)

operations = st.lists(st.one_of(hostile_event(), log_call), min_size=1, max_size=40)


@pytest.fixture(scope="module")
def shared_receiver() -> Iterator[LineReceiver]:
    with LineReceiver() as receiver:
        yield receiver


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=operations)
def test_hostile_input_never_raises_and_counts_add_up(ops: list[Any], shared_receiver: LineReceiver) -> None:
    receiver = shared_receiver
    with tempfile.TemporaryDirectory() as folder:
        before = len(receiver.lines)
        pipeline = Pipeline(
            Settings.load(
                {
                    "transport": "tcp",
                    "host": "127.0.0.1",
                    "port": receiver.port,
                    "db": str(Path(folder) / "events.db"),
                    "name": "props",
                },
                environ={},
            )
        )
        logger = logging.getLogger("eventlog.tests.props")
        logger.propagate = False
        logger.setLevel(1)
        handler = EventHandler(pipeline=pipeline)
        logger.addHandler(handler)
        try:
            for op in ops:
                if isinstance(op, Event):
                    pipeline.submit_event(op)
                else:
                    level, text, args, with_exc = op
                    fmt = text.replace("%", "%%") + " %s" * len(args)
                    try:
                        raise ValueError(text)
                    except ValueError:
                        logger.log(level, fmt, *args, exc_info=with_exc, extra={"k": BadRepr()})
            assert pipeline.flush(30)
        finally:
            logger.removeHandler(handler)
        stats = pipeline.stats
        waiting = pipeline.spool_depth() + pipeline.queue_depth()
        accepted = stats.taken + pipeline.queue_depth() + stats.overflow
        dropped = sum(stats.dropped_by_reason().values())
        assert accepted == len(ops)
        assert accepted == stats.sent + dropped + waiting
        assert waiting == 0
        assert receiver.wait_for(before + stats.sent, timeout=10)
        pipeline.shutdown(5)
        lines = receiver.lines[before:]
        assert len(lines) == stats.sent
        parsed = [json.loads(line) for line in lines]  # every delivered payload parses
        assert len({event["id"] for event in parsed}) == len(parsed)
