"""Real peers for the tests: each helper starts a real server on loopback.

A test that cannot get its peer calls :func:`missing`, which skips with the
reason, or fails when ``EVENTLOG_REQUIRE_PEERS=1`` (as ``.ci/run`` sets).
"""

from __future__ import annotations

import os
import socket
import subprocess
from typing import NoReturn

import pytest


def missing(peer: str, reason: str) -> NoReturn:
    """Skip (or, with EVENTLOG_REQUIRE_PEERS=1, fail) because ``peer`` is not available."""
    message = f"peer {peer} is not available: {reason} (run scripts/provision-peers)"
    if os.environ.get("EVENTLOG_REQUIRE_PEERS") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago, for a peer process to listen on.

    Released (unlike closed_port's): not every peer binds with SO_REUSEADDR.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(process: subprocess.Popen[bytes] | None, grace: float = 10.0) -> None:
    """SIGTERM, and SIGKILL when ``process`` has not ended ``grace`` seconds later."""
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)
