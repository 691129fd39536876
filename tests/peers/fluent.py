"""A real Fluent Forward server (``FluentServer`` from the npm package ``@fluent-org/logger``).

``tests/peers/fluent_server.js`` runs it on 127.0.0.1 (or a Unix socket) and
appends every entry it receives to a file as a JSON line; :class:`FluentPeer`
starts and stops that script and reads the entries back.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.peers import missing

HERE = Path(__file__).parent
SCRIPT = HERE / "fluent_server.js"
PACKAGE = HERE / "node" / "node_modules" / "@fluent-org" / "logger"


class FluentPeer:
    """One FluentServer process; ``entries()`` is everything it received so far, in order."""

    def __init__(
        self,
        root: Path,
        *,
        shared_key: str | None = None,
        users: dict[str, str] | None = None,
        tls: tuple[Path, Path] | None = None,
        unix_path: Path | None = None,
        ack: bool = True,
    ) -> None:
        self.root = root
        self.entries_file = root / "entries.jsonl"
        self.entries_file.touch()
        self.env = {"PATH": os.environ.get("PATH", "")}
        if shared_key is not None:
            self.env["FLUENT_SHARED_KEY"] = shared_key
        if users is not None:
            self.env["FLUENT_USERS"] = json.dumps(users)
        if tls is not None:
            self.env["FLUENT_TLS_CERT"], self.env["FLUENT_TLS_KEY"] = str(tls[0]), str(tls[1])
        if unix_path is not None:
            self.env["FLUENT_UNIX_PATH"] = str(unix_path)
        if not ack:
            self.env["FLUENT_ACK"] = "0"
        self.unix_path = unix_path
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> FluentPeer:
        """Start the server (after a restart: on the same port) and wait until it listens."""
        env = dict(self.env)
        if self.port:
            env["FLUENT_PORT"] = str(self.port)
        if self.unix_path is not None and self.unix_path.exists():
            self.unix_path.unlink()  # a killed server leaves its socket file behind
        with open(self.root / "stderr.log", "ab") as stderr:  # the child keeps its own copy
            self.process = subprocess.Popen(
                ["node", str(SCRIPT), str(self.entries_file)],
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=env,
            )
        assert self.process.stdout is not None
        os.set_blocking(self.process.stdout.fileno(), False)
        deadline = time.monotonic() + timeout
        line = b""
        while not line.endswith(b"\n"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                errors = (self.root / "stderr.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"FluentServer did not start: {errors}")
            line += self.process.stdout.read() or b""
            time.sleep(0.02)
        where = json.loads(line)
        self.port = int(where.get("port", 0))
        return self

    def diagnostics(self) -> str:
        """What a failed assertion shows: the server's stderr (its tail) and what it received."""
        errors = (self.root / "stderr.log").read_text(errors="replace")[-2000:]
        alive = self.process is not None and self.process.poll() is None
        return f"FluentServer alive={alive}, {len(self.entries())} entries; stderr: {errors or '(empty)'}"

    def entries(self) -> list[dict[str, Any]]:
        """Every entry received so far: {"tag", "time", "record"} dicts."""
        text = _whole_lines(self.entries_file.read_bytes())
        return [
            json.loads(line) for line in text.split("\n") if line.endswith("}")
        ]  # not splitlines(): U+2028

    def messages(self) -> list[dict[str, Any]]:
        """Every message received so far: {"mode", "tag", "entries" (count), "option"} dicts."""
        path = self.entries_file.with_name(self.entries_file.name + ".messages")
        text = _whole_lines(path.read_bytes()) if path.exists() else ""
        return [
            json.loads(line) for line in text.split("\n") if line.endswith("}")
        ]  # not splitlines(): U+2028

    def wait_for(
        self, done: Callable[[list[dict[str, Any]]], bool], timeout: float = 30.0
    ) -> list[dict[str, Any]]:
        """Poll ``entries()`` until ``done(entries)`` or the timeout; return the last entries."""
        deadline = time.monotonic() + timeout
        while True:
            entries = self.entries()
            if done(entries) or time.monotonic() > deadline:
                return entries
            time.sleep(0.05)

    def kill(self) -> None:
        """kill -9: no goodbye to the connected clients."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self._forget()

    def _forget(self) -> None:
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()
        self.process = None

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.kill()
        self._forget()


def require_fluent_server() -> None:
    """Skip (or fail under EVENTLOG_REQUIRE_PEERS=1) without node or the npm package."""
    if shutil.which("node") is None:
        missing("FluentServer", "node is not installed")
    if not PACKAGE.exists():
        missing("FluentServer", f"{PACKAGE} is missing (npm install in tests/peers/node)")


@pytest.fixture(name="fluent_peer")
def fluent_peer_fixture(tmp_path: Path) -> Iterator[Callable[..., FluentPeer]]:
    """``fluent_peer(shared_key=..., users=..., tls=..., unix_path=..., ack=...)`` starts a server.

    Every server started through it is stopped when the test ends.
    """
    require_fluent_server()
    started: list[FluentPeer] = []

    def start(**options: Any) -> FluentPeer:
        root = tmp_path / f"fluent{len(started)}"
        root.mkdir()
        peer = FluentPeer(root, **options)
        started.append(peer)
        try:
            return peer.start()
        except RuntimeError as exc:
            missing("FluentServer", str(exc))

    yield start
    for peer in started:
        peer.stop()


def _whole_lines(data: bytes) -> str:
    """The whole lines of ``data``: a read while the server writes may end inside a character."""
    return data[: data.rfind(b"\n") + 1].decode("utf-8")
