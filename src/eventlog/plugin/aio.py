"""An asyncio event loop in a thread of its own, for transports whose client library is asyncio.

The engine's worker is a plain thread and calls ``open``, ``send`` and
``close`` synchronously.  A client library built on asyncio (nats-py,
aio-pika, redis.asyncio ...) needs its loop running between batches too: its
reader and heartbeat tasks (PING/PONG, AMQP heartbeats) would otherwise stop
while the application is quiet, and the server would drop the connection as
stale.  :class:`EventLoopThread` keeps one loop running in a daemon thread;
the transport hands it coroutines with a bounded wait::

    from eventlog.plugin.aio import EventLoopThread

    class MyTransport(Transport):
        def open(self) -> None:
            self._runner = EventLoopThread("eventlog-mine")
            self._client = self._runner.run(connect(...), timeout=5.0)

        def send(self, batch):
            self._runner.run(self._publish(batch), timeout=10.0)

        def close(self) -> None:
            if self._runner is not None:
                with contextlib.suppress(Exception):
                    self._runner.run(self._client.close(), timeout=2.0)
                self._runner.stop(2.0)

After ``os.fork()`` the loop's thread does not exist in the child: a transport
forgets its runner and client there without closing them (the socket is the
parent's) and opens afresh; see ``eventlog_nats.transport`` for the pattern.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from eventlog._core.diagnostics import WORKER_THREADS

__all__ = ["EventLoopThread"]

T = TypeVar("T")


class EventLoopThread:
    """One asyncio event loop running in a daemon thread, fed from other threads."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        # A worker thread as the engine's own: what the client library logs from its loop
        # never reaches an EventHandler, so a library that logs per send cannot feed itself.
        ident = threading.get_ident()
        WORKER_THREADS.add(ident)
        try:
            self.loop.run_forever()
        finally:
            WORKER_THREADS.discard(ident)
            # Whatever is left (a task of the client that outlived close()) is cancelled here.
            tasks = asyncio.all_tasks(self.loop)
            for task in tasks:
                task.cancel()
            with contextlib.suppress(Exception):
                self.loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            self.loop.close()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``coroutine`` on the loop; :class:`TimeoutError` (cancelling it) after ``timeout``."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"no result within {timeout}s") from None

    def stop(self, timeout: float) -> None:
        """Stop the loop and wait (up to ``timeout``) for its thread to end."""
        with contextlib.suppress(RuntimeError):  # already closed
            self.loop.call_soon_threadsafe(self.loop.stop)
        if self.thread is not threading.current_thread():
            self.thread.join(timeout)
