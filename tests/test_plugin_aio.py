"""eventlog.plugin.aio.EventLoopThread: coroutines from other threads, bounded waits, a clean stop."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from eventlog.plugin.aio import EventLoopThread


def test_runs_a_coroutine_on_its_own_thread_and_returns_its_result() -> None:
    runner = EventLoopThread("test-aio")
    try:

        async def where() -> str:
            await asyncio.sleep(0)
            return threading.current_thread().name

        assert runner.run(where(), timeout=5) == "test-aio"
    finally:
        runner.stop(5)
    assert not runner.thread.is_alive()
    assert runner.loop.is_closed()


def test_a_coroutine_past_its_timeout_is_cancelled_and_raises_timeout_error() -> None:
    runner = EventLoopThread("test-aio-timeout")
    cancelled = threading.Event()

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    try:
        with pytest.raises(TimeoutError, match=r"no result within 0\.1s"):
            runner.run(forever(), timeout=0.1)
        assert cancelled.wait(5), "the timed-out coroutine was not cancelled"
    finally:
        runner.stop(5)


def test_the_loop_keeps_running_between_calls_and_stop_cancels_what_is_left() -> None:
    """A client's background task (a heartbeat) runs while no send is under way."""
    runner = EventLoopThread("test-aio-heartbeat")
    beats: list[int] = []
    stopped = threading.Event()

    async def heartbeat() -> None:
        try:
            while True:
                beats.append(1)
                await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            stopped.set()
            raise

    async def start() -> None:
        asyncio.get_running_loop().create_task(heartbeat())

    runner.run(start(), timeout=5)
    deadline = time.monotonic() + 5
    while len(beats) < 5:  # the caller's thread is idle here: only the loop's thread runs it
        assert time.monotonic() < deadline, "the background task did not run between calls"
        time.sleep(0.01)
    runner.stop(5)
    assert stopped.is_set(), "stop() left the background task running"
    assert not runner.thread.is_alive()


def test_records_logged_on_the_loop_thread_never_reach_an_event_handler() -> None:
    """A client library logging from its loop must not feed the pipeline its own records."""
    import logging

    from eventlog import EventHandler
    from eventlog.testing import capture_events

    library = logging.getLogger("some.asyncio.client")
    handler = EventHandler()
    library.addHandler(handler)
    runner = EventLoopThread("test-aio-logging")

    async def chatty() -> None:
        library.warning("sent a batch")

    try:
        with capture_events() as events:
            library.warning("from the application")
            runner.run(chatty(), timeout=5)
            library.warning("from the application again")
    finally:
        runner.stop(5)
        library.removeHandler(handler)
    assert [e["message"] for e in events] == ["from the application", "from the application again"]
