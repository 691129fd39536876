"""A real redis-server on a free loopback port, one per test, in the test's own folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from eventlog.plugin.testing import closed_port


class RedisServer:
    """redis-server with no persistence, bound to 127.0.0.1 only."""

    def __init__(self, folder: Path, *args: str) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            message = "redis-server is not installed (apt-get install redis-server)"
            # CI sets EVENTLOG_REQUIRE_PEERS=1: there a missing peer is a failure, not a skip.
            if os.environ.get("EVENTLOG_REQUIRE_PEERS") == "1":
                pytest.fail(message, pytrace=False)
            pytest.skip(message)
        self.port = closed_port()  # free on 127.0.0.1 a moment ago
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.args = args
        self.folder = folder
        self.binary = binary
        self._start()

    def _start(self) -> None:
        args = self.args
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
                *args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        password = args[args.index("--requirepass") + 1] if "--requirepass" in args else None
        self.client = redis.Redis(port=self.port, password=password)
        deadline = time.monotonic() + 10
        while True:
            try:
                self.client.ping()
                return
            except redis.ConnectionError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(f"redis-server did not start on port {self.port}")
                time.sleep(0.02)

    def stop(self) -> None:
        """Stop the server; its clients see their connections closed."""
        self.client.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def restart(self) -> None:
        """Start again on the same port after :meth:`stop` (empty: there is no persistence)."""
        self._start()


@pytest.fixture
def start_redis(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """Start a redis-server with extra command-line arguments; all are stopped after the test."""
    servers: list[RedisServer] = []

    def start(*args: str) -> RedisServer:
        folder = tmp_path / f"redis{len(servers)}"
        folder.mkdir()
        servers.append(RedisServer(folder, *args))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def redis_server(start_redis: Callable[..., RedisServer]) -> RedisServer:
    """A fresh redis-server for this test."""
    return start_redis()


@pytest.fixture(autouse=True)
def _no_eventlog_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Settings from the developer's shell must not leak into the tests.
    for key in list(os.environ):
        if key.startswith("EVENTLOG_") and key != "EVENTLOG_REQUIRE_PEERS":
            monkeypatch.delenv(key)
    yield
    import eventlog

    eventlog.shutdown(timeout=2)
