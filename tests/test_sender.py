"""The Sender alone: one batch, the transport's lifecycle and the retry policy, without a worker.

The wait between tries is injected (a list of the delays it was asked for),
so no test sleeps for a backoff or asserts a duration; counts go to a tally.
The network cases use the real tcp transport against a loopback listener;
where a test needs an exact failure, a small Transport subclass raises it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from eventlog._config.builder import Components, build
from eventlog._config.config import Settings
from eventlog._config.contracts import Transport
from eventlog._config.registry import get_registry
from eventlog._core.diagnostics import Warnings
from eventlog._core.errors import ConnectError, RejectedError, TransportError
from eventlog._core.masking import SecretMask
from eventlog._engine.pipeline import MAX_UNEXPECTED_FAILURES
from eventlog._engine.sender import BACKOFF_START, Sender
from eventlog._engine.stats import Stats
from eventlog._records.batch import Batch, Record
from eventlog._records.event import Event
from eventlog._records.wire import to_wire
from eventlog.plugin.testing import LineReceiver, closed_port
from tests.spool_support import EventlogWarnings, capture_warnings

NEVER = math.inf
SECRET = "tok-9f8e7d6c5b4a"


class Tally:
    """The ``count`` callback: (events, reason) as the Sender reported them."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, str | None]] = []

    def __call__(self, count: int, reason: str | None) -> int:
        self.calls.append((count, reason))
        return count


class Waits:
    """The injected wait: keeps each delay asked for; ``sleep`` makes it really wait that long."""

    def __init__(self, sleep: float = 0.0) -> None:
        self.asked: list[float] = []
        self.sleep = sleep

    def __call__(self, delay: float) -> None:
        self.asked.append(delay)
        if self.sleep:
            time.sleep(self.sleep)


class Scripted(Transport):
    """Fails (raises) as its script says, send by send, then succeeds; logs what it was asked."""

    def __init__(self, script: list[BaseException | list[tuple[Record, str]] | None], log: list[str]) -> None:
        self.script = script
        self.log = log

    def open(self) -> None:
        self.log.append("open")

    def send(self, batch: Batch) -> list[tuple[Record, str]] | None:
        self.log.append(f"send {len(batch)}")
        step = self.script.pop(0) if self.script else None
        if isinstance(step, BaseException):
            raise step
        return step

    def close(self) -> None:
        self.log.append("close")


@pytest.fixture
def warned() -> Iterator[EventlogWarnings]:
    yield from capture_warnings()


def _settings(**given: Any) -> Settings:
    return Settings.load(
        {"transport": "tcp", "host": "127.0.0.1", "port": closed_port(), **given}, environ={}
    )


def _components(port: int, **given: Any) -> Components:
    return build(_settings(port=port, **given), get_registry())


def _batch(components: Components, count: int) -> list[Record]:
    records = []
    for i in range(count):
        wire = to_wire(Event("sent", str(i)), {})
        records.append(Record(wire["id"], wire["action"], time.time_ns(), components.formatter.format(wire)))
    return records


def _sender(
    factory: Callable[[], Transport],
    tally: Tally,
    waits: Waits,
    stats: Stats,
    *,
    mask: Callable[[str], str] = str,
    transport: Transport | None = None,
    **given: Any,
) -> Sender:
    return Sender(
        factory,
        transport_name="tcp",
        settings=_settings(**given),
        stats=stats,
        count=tally,
        wait=waits,
        warnings=Warnings("sender-test"),
        mask=mask,
        transport=transport,
    )


def _scripted(
    *script: BaseException | list[tuple[Record, str]] | None,
) -> tuple[Callable[[], Transport], list[str]]:
    """A factory whose instances share one script and one log of calls."""
    steps, log = list(script), []
    return (lambda: Scripted(steps, log)), log


def test_a_refused_connection_is_retried_then_the_batch_arrives(receiver: LineReceiver) -> None:
    # Real tcp transports: the first two connect where nothing listens, the third to the receiver.
    ports = iter([closed_port(), closed_port(), receiver.port])
    made = _components(receiver.port)
    records = _batch(made, 3)
    tally, waits, stats = Tally(), Waits(), Stats()
    sender = _sender(lambda: _components(next(ports)).first_transport, tally, waits, stats)
    assert sender.send(records, lambda: NEVER) is True
    assert receiver.wait_for(3)
    assert [e["target"] for e in receiver.events()] == ["0", "1", "2"]
    assert tally.calls == [(3, None)]
    assert stats.retries == 2 and stats.send_errors == {"ConnectError": 2} and stats.transport_up == 1
    # Exponential backoff with jitter: try n waits BACKOFF_START * 2**n, times 0.5 to 1.
    assert len(waits.asked) == 2
    for attempt, delay in enumerate(waits.asked, start=1):
        assert BACKOFF_START * 2**attempt * 0.5 <= delay <= BACKOFF_START * 2**attempt
    assert sum(stats.latency_counts) == 1
    sender.close()
    assert sender.transport is None


def test_the_transport_is_opened_before_its_first_send_and_made_again_after_a_failure() -> None:
    factory, log = _scripted(ConnectError("peer gone"), None, None)
    tally, waits, stats = Tally(), Waits(), Stats()
    sender = _sender(factory, tally, waits, stats, transport=factory())
    records = _batch(_components(closed_port()), 2)
    assert sender.send(records, lambda: NEVER)
    assert sender.send(records, lambda: NEVER)
    # The failed instance is closed; a new one is opened; a working one stays open.
    assert log == ["open", "send 2", "close", "open", "send 2", "send 2"]
    sender.close()
    assert log[-1] == "close" and sender.transport is None
    assert tally.calls == [(2, None), (2, None)]


def test_a_batch_the_peer_refuses_for_good_is_set_aside(warned: EventlogWarnings) -> None:
    factory, log = _scripted(RejectedError("400 bad request"))
    tally, waits, stats = Tally(), Waits(), Stats()
    sender = _sender(factory, tally, waits, stats)
    assert sender.send(_batch(_components(closed_port()), 4), lambda: NEVER)
    assert tally.calls == [(4, "rejected")]
    assert waits.asked == [] and stats.retries == 0
    assert stats.send_errors == {"RejectedError": 1} and stats.transport_up == 0
    assert log == ["open", "send 4", "close"]
    assert "4 events set aside: the tcp peer refused them for good: 400 bad request" in "\n".join(
        warned.messages
    )


def test_single_events_the_peer_refuses_are_counted_apart() -> None:
    records = _batch(_components(closed_port()), 3)
    factory, _ = _scripted([(records[1], "field too long: message")])
    tally, waits, stats = Tally(), Waits(), Stats()
    assert _sender(factory, tally, waits, stats).send(records, lambda: NEVER)
    assert tally.calls == [(2, None), (1, "rejected")]


@pytest.mark.parametrize(("retry_after", "asked"), [(3.0, 3.0), (60.0, 10.0)])
def test_retry_after_is_honoured_up_to_the_longest_backoff(retry_after: float, asked: float) -> None:
    factory, _ = _scripted(TransportError("503 busy", retry_after=retry_after))
    tally, waits, stats = Tally(), Waits(), Stats()
    sender = _sender(factory, tally, waits, stats, retry_backoff_max=10)
    assert sender.send(_batch(_components(closed_port()), 1), lambda: NEVER)
    assert waits.asked == [asked]
    assert tally.calls == [(1, None)] and stats.retries == 1


def test_a_wait_never_runs_past_the_deadline() -> None:
    factory, _ = _scripted(TransportError("503 busy", retry_after=5))
    tally, waits, stats = Tally(), Waits(), Stats()
    sender = _sender(factory, tally, waits, stats, retry_backoff_max=10)
    until = time.monotonic() + 0.5
    assert sender.send(_batch(_components(closed_port()), 1), lambda: until)
    assert len(waits.asked) == 1 and 0 <= waits.asked[0] <= 0.5  # not the 5 s the peer asked for


def test_max_retry_age_gives_the_batch_up(warned: EventlogWarnings) -> None:
    # The injected wait sleeps longer than max_retry_age: the second failure finds the batch too old.
    factory, log = _scripted(*[ConnectError("peer gone")] * 10)
    tally, waits, stats = Tally(), Waits(sleep=0.05), Stats()
    sender = _sender(factory, tally, waits, stats, max_retry_age=0.01)
    assert sender.send(_batch(_components(closed_port()), 2), lambda: NEVER)
    assert tally.calls == [(2, "expired")]
    assert log.count("send 2") == 2 and len(waits.asked) == 1
    assert "gave up on 2 events after 0s of failures" in "\n".join(warned.messages)


def test_a_transport_bug_sets_the_batch_aside_after_a_few_tries(warned: EventlogWarnings) -> None:
    factory, log = _scripted(*[KeyError("plugin bug")] * 10)
    tally, waits, stats = Tally(), Waits(), Stats()
    sender = _sender(factory, tally, waits, stats)
    assert sender.send(_batch(_components(closed_port()), 3), lambda: NEVER)
    assert tally.calls == [(3, "transport_bug")]
    assert log.count("send 3") == MAX_UNEXPECTED_FAILURES
    assert log.count("close") == MAX_UNEXPECTED_FAILURES  # each failed instance is closed
    assert len(waits.asked) == MAX_UNEXPECTED_FAILURES - 1
    assert f"raised KeyError (not a TransportError) {MAX_UNEXPECTED_FAILURES} times" in "\n".join(
        warned.messages
    )


def test_the_deadline_ends_the_retries_with_false() -> None:
    tally, waits, stats = Tally(), Waits(), Stats()
    made = _components(closed_port())
    sender = _sender(made.transport_factory, tally, waits, stats)
    # Already past: the first failure ends the send; the caller counts the batch, not the Sender.
    assert sender.send(_batch(made, 2), lambda: 0.0) is False
    assert tally.calls == [] and waits.asked == [] and stats.retries == 0
    # Past the deadline the transport does not even connect (Transport.time_left).
    assert stats.send_errors == {"SendTimeout": 1}
    # A deadline that passes while waiting: False after the tries that fit before it.
    until = time.monotonic() + 0.2
    sender = _sender(made.transport_factory, tally, Waits(sleep=0.1), stats)
    assert sender.send(_batch(made, 2), lambda: until) is False
    assert tally.calls == [] and time.monotonic() > until


def test_a_count_for_one_send_replaces_the_senders_own() -> None:
    factory, _ = _scripted(None)
    own, rows, waits = Tally(), Tally(), Waits()
    assert _sender(factory, own, waits, Stats()).send(
        _batch(_components(closed_port()), 2), lambda: NEVER, rows
    )
    assert own.calls == [] and rows.calls == [(2, None)]


def test_warnings_name_no_secret_and_come_once_per_outage(warned: EventlogWarnings) -> None:
    mask = SecretMask([SECRET])
    records = _batch(_components(closed_port()), 2)
    factory, _ = _scripted(
        ConnectError(f"GET https://u:{SECRET}@127.0.0.1/ failed"),
        ConnectError(f"again with {SECRET}"),
        None,
        ConnectError(f"the second outage, Authorization: Bearer {SECRET}"),
        [(records[0], f"refused: token {SECRET} is invalid")],
        RejectedError(f"denied for {SECRET}"),
        *[ValueError(f"bug with {SECRET}")] * MAX_UNEXPECTED_FAILURES,
    )
    tally, waits, stats = Tally(), Waits(), Stats()
    sender = _sender(factory, tally, waits, stats, mask=mask)
    with caplog_info() as info:
        for _ in range(4):
            assert sender.send(records, lambda: NEVER)
    text = "\n".join(warned.messages)
    assert SECRET not in text and "<hidden>" in text
    # One "will retry" per outage (a success re-arms it): two connection outages, then the bug;
    # the refusal for good is no outage.  Recovery is said once per outage that ended.
    assert text.count("sending failed, will retry") == 3
    assert info.count("sending to tcp works again") == 2
    assert "refused: token <hidden> is invalid" in text
    assert "refused them for good: denied for <hidden>" in text
    assert "(not a TransportError) 5 times: bug with <hidden>" in text
    assert tally.calls == [(2, None), (1, None), (1, "rejected"), (2, "rejected"), (2, "transport_bug")]


class _InfoLines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno == logging.INFO:
            self.lines.append(record.getMessage())

    def count(self, text: str) -> int:
        return sum(text in line for line in self.lines)


@contextlib.contextmanager
def caplog_info() -> Iterator[_InfoLines]:
    """eventlog's INFO lines while the block runs (its logger does not propagate)."""
    handler = _InfoLines()
    logging.getLogger("eventlog").addHandler(handler)
    try:
        yield handler
    finally:
        logging.getLogger("eventlog").removeHandler(handler)
