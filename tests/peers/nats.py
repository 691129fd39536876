"""Real ``nats-server`` processes (Debian's package, 2.9) with JetStream, on loopback.

:class:`NatsServer` runs one server from a configuration file written into the
test's folder (ports chosen free, JetStream storage in that folder);
:func:`start_cluster` runs three of them routed into one JetStream cluster.
:func:`stream_ids` reads a stream back with a consumer: the ids of every stored
message, in stream order.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tests.peers import free_port, missing

SERVER = "nats-server"
#: Messages per fetch when reading a stream back (each fetch acknowledges the one before).
FETCH = 1000


def require_nats_server() -> str:
    """The nats-server binary, or skip/fail (scripts/provision-peers installs it)."""
    path = shutil.which(SERVER) or (
        "/usr/sbin/nats-server" if Path("/usr/sbin/nats-server").exists() else None
    )
    if path is None:
        missing("nats-server", "the nats-server binary is not installed (apt-get install nats-server)")
    return path


def wait_listening(port: int, timeout: float, alive: Callable[[], bool]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError("nats-server exited while starting")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nats-server did not listen on 127.0.0.1:{port} within {timeout}s")


class NatsServer:
    """One nats-server process; ``extra`` is appended to its configuration file."""

    def __init__(
        self, root: Path, name: str = "n1", extra: str = "", *, jetstream: bool = True
    ) -> None:
        self.binary = require_nats_server()
        self.root = root / name
        self.root.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.port = free_port()
        self.cluster_port = free_port()
        self.extra = extra
        self.jetstream = jetstream
        self.process: subprocess.Popen[bytes] | None = None
        self.config = self.root / "server.conf"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def write_config(self, routes: Sequence[int] = ()) -> None:
        store = self.root / "jetstream"
        lines = [f"server_name: {self.name}", f"listen: 127.0.0.1:{self.port}"]
        if self.jetstream:
            lines += [
                "jetstream {",
                f"  store_dir: {json.dumps(str(store))}",
                "  max_memory_store: 64MB",
                "  max_file_store: 1GB",
                "}",
            ]
        if routes:
            lines += [
                "cluster {",
                "  name: eventlog",
                f"  listen: 127.0.0.1:{self.cluster_port}",
                "  routes: [" + ", ".join(f"nats-route://127.0.0.1:{p}" for p in routes) + "]",
                "}",
            ]
        self.config.write_text("\n".join(lines) + "\n" + self.extra + "\n")

    def start(self, timeout: float = 20.0) -> NatsServer:
        """Start (again, on the same ports and storage) and wait until it listens."""
        if not self.config.exists():
            self.write_config()
        with open(self.root / "server.log", "ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "-c", str(self.config)], stdout=log, stderr=subprocess.STDOUT
            )
        process = self.process
        try:
            wait_listening(self.port, timeout, lambda: process.poll() is None)
        except RuntimeError as exc:
            self.kill()
            raise RuntimeError(f"{exc}; log:\n{self.log()[-2000:]}") from None
        return self

    def log(self) -> str:
        path = self.root / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: no goodbye to clients or routes, nothing flushed."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self.process = None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None


def start_cluster(root: Path, size: int = 3) -> list[NatsServer]:
    """``size`` servers routed to each other: one JetStream cluster on loopback."""
    servers = [NatsServer(root, f"n{i + 1}") for i in range(size)]
    routes = [s.cluster_port for s in servers]
    try:
        for server in servers:
            server.write_config(routes)
            server.start()
    except BaseException:
        for server in servers:
            server.kill()
        raise
    return servers


# ---------------------------------------------------------------- the client side


def run(coroutine: Any, timeout: float = 60.0) -> Any:
    """Run a nats-py coroutine from a test (its own loop, bounded)."""
    return asyncio.run(asyncio.wait_for(coroutine, timeout))


async def _add_stream(servers: Sequence[str], name: str, subjects: list[str], **config: Any) -> None:
    import nats
    from nats.js.api import StreamConfig

    deadline = time.monotonic() + 30
    while True:
        nc = await nats.connect(servers=list(servers), connect_timeout=2, allow_reconnect=False)
        try:
            # A new cluster answers "JetStream system temporarily unavailable" until it elected
            # its meta leader: try again for a while.
            await nc.jetstream(timeout=5).add_stream(StreamConfig(name=name, subjects=subjects, **config))
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.25)
        finally:
            await nc.close()


def add_stream(servers: Sequence[str], name: str, subjects: list[str], **config: Any) -> None:
    """Create a stream (``num_replicas``, ``max_msgs``, ``discard`` ... as keywords)."""
    run(_add_stream(servers, name, subjects, **config))


async def _stream_messages(servers: Sequence[str], stream: str) -> list[tuple[str, str, bytes]]:
    import nats
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    nc = await nats.connect(servers=list(servers), connect_timeout=2)
    try:
        js = nc.jetstream(timeout=10)
        total = (await js.stream_info(stream)).state.messages
        found: list[tuple[str, str, bytes]] = []
        if total == 0:
            return found
        # A consumer of the whole stream (no subject filter), acknowledged per fetch.
        name = f"reader{time.monotonic_ns()}"
        await js.add_consumer(
            stream,
            ConsumerConfig(
                durable_name=name,
                deliver_policy=DeliverPolicy.ALL,
                ack_policy=AckPolicy.ALL,
                max_ack_pending=FETCH,
            ),
        )
        sub = await js.pull_subscribe_bind(durable=name, stream=stream)
        while len(found) < total:
            msgs = await sub.fetch(batch=min(FETCH, total - len(found)), timeout=10)
            for msg in msgs:
                found.append((msg.subject, (msg.headers or {}).get("Nats-Msg-Id", ""), msg.data))
            await msgs[-1].ack()
        await sub.unsubscribe()
        await js.delete_consumer(stream, name)
        return found
    finally:
        await nc.close()


def stream_messages(servers: Sequence[str], stream: str) -> list[tuple[str, str, bytes]]:
    """Every message of ``stream``, in stream order: (subject, Nats-Msg-Id, payload)."""
    result: list[tuple[str, str, bytes]] = run(_stream_messages(servers, stream), 120)
    return result


def stream_ids(servers: Sequence[str], stream: str) -> list[str]:
    """The event ids of every message of ``stream`` (read from the JSON payload), in order."""
    ids = []
    for _, msg_id, data in stream_messages(servers, stream):
        event_id = json.loads(data)["id"]
        assert msg_id == event_id, f"Nats-Msg-Id {msg_id!r} is not the event's id {event_id!r}"
        ids.append(event_id)
    return ids
