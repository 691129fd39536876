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
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from tests.peers import free_port, missing, stop_process

T = TypeVar("T")

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

    def __init__(self, root: Path, name: str = "n1", extra: str = "", *, jetstream: bool = True) -> None:
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
        stop_process(self.process, 10)
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


async def _stream_messages(
    servers: Sequence[str], stream: str, **connect: Any
) -> list[tuple[str, str, bytes]]:
    import nats
    import nats.errors
    import nats.js.errors
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    # Right after a node restart the stream may still be electing or catching up: its API
    # times out or says unavailable for a while.  Ask again, within a bound.
    transient = (
        nats.errors.TimeoutError,
        nats.errors.NoRespondersError,
        nats.js.errors.ServiceUnavailableError,
    )
    deadline = time.monotonic() + 60

    async def settled(call: Callable[[], Awaitable[T]]) -> T:
        while True:
            try:
                return await call()
            except transient:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)

    nc = await nats.connect(servers=list(servers), connect_timeout=2, **connect)
    try:
        js = nc.jetstream(timeout=10)
        # And a node just restarted may answer for the stream before it caught up (a run on
        # CI read the 5,000 messages a killed leader held, not the 20,500 stored): read once
        # every replica is current with no lag, twice in a row with the same count.
        last = -1
        while True:
            info = await settled(lambda: js.stream_info(stream))
            replicas = (info.cluster.replicas or []) if info.cluster is not None else []
            caught_up = all(peer.current and not peer.lag for peer in replicas)
            if (caught_up and info.state.messages == last) or time.monotonic() > deadline:
                break
            last = info.state.messages if caught_up else -1
            await asyncio.sleep(0.5)
        total = info.state.messages
        found: list[tuple[str, str, bytes]] = []
        if total == 0:
            return found
        # A consumer of the whole stream (no subject filter), acknowledged per fetch.
        name = f"reader{time.monotonic_ns()}"
        config = ConsumerConfig(
            durable_name=name,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.ALL,
            max_ack_pending=FETCH,
        )
        await settled(lambda: js.add_consumer(stream, config))
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


def stream_messages(servers: Sequence[str], stream: str, **connect: Any) -> list[tuple[str, str, bytes]]:
    """Every message of ``stream``, in stream order: (subject, Nats-Msg-Id, payload).

    ``connect``: more keywords for ``nats.connect`` (credentials).
    """
    result: list[tuple[str, str, bytes]] = run(_stream_messages(servers, stream, **connect), 120)
    return result


def stream_ids(servers: Sequence[str], stream: str) -> list[str]:
    """The event ids of every message of ``stream`` (read from the JSON payload), in order."""
    ids = []
    for _, msg_id, data in stream_messages(servers, stream):
        event_id = json.loads(data)["id"]
        assert msg_id == event_id, f"Nats-Msg-Id {msg_id!r} is not the event's id {event_id!r}"
        ids.append(event_id)
    return ids


# ---------------------------------------------------------------- operator mode (JWT, .creds)


def _b64(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _jwt(claims: dict[str, Any], signer: Any) -> str:
    """A NATS JWT (ed25519-nkey), signed by ``signer``, an nkeys KeyPair."""
    import base64
    import hashlib

    claims = {**claims, "iat": int(time.time())}
    digest = hashlib.sha256(json.dumps(claims, sort_keys=True).encode()).digest()
    claims["jti"] = base64.b32encode(digest).decode().rstrip("=")
    head = _b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode())
    body = _b64(json.dumps(claims).encode())
    return f"{head}.{body}.{_b64(signer.sign(f'{head}.{body}'.encode()))}"


def _keypair(prefix: int) -> tuple[bytes, Any, str]:
    import os

    import nkeys

    seed = nkeys.encode_seed(os.urandom(32), prefix)
    pair = nkeys.from_seed(seed)
    return seed, pair, pair.public_key.decode()


def _creds(path: Path, account: Any, account_public: str) -> Path:
    import nkeys

    seed, _, public = _keypair(nkeys.PREFIX_BYTE_USER)
    user = {"type": "user", "version": 2, "pub": {}, "sub": {}, "subs": -1, "data": -1, "payload": -1}
    token = _jwt({"iss": account_public, "sub": public, "name": path.stem, "nats": user}, account)
    path.write_text(
        f"-----BEGIN NATS USER JWT-----\n{token}\n------END NATS USER JWT------\n\n"
        f"-----BEGIN USER NKEY SEED-----\n{seed.decode()}\n------END USER NKEY SEED------\n"
    )
    path.chmod(0o600)
    return path


def operator_mode(root: Path) -> tuple[str, Path, Path]:
    """Server configuration for JWT authentication (operator, system account, one account
    with JetStream), a .creds file of a user of that account, and one of an unknown account."""
    import nkeys

    _, operator, operator_public = _keypair(nkeys.PREFIX_BYTE_OPERATOR)
    _, account, account_public = _keypair(nkeys.PREFIX_BYTE_ACCOUNT)
    _, _, system_public = _keypair(nkeys.PREFIX_BYTE_ACCOUNT)
    _, stranger, stranger_public = _keypair(nkeys.PREFIX_BYTE_ACCOUNT)
    limits = {
        "subs": -1,
        "data": -1,
        "payload": -1,
        "imports": -1,
        "exports": -1,
        "wildcards": True,
        "conn": -1,
        "leaf": -1,
    }
    jetstream = {**limits, "mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1}

    def account_jwt(public: str, name: str, account_limits: dict[str, Any]) -> str:
        claims = {"type": "account", "version": 2, "limits": account_limits}
        return _jwt({"iss": operator_public, "sub": public, "name": name, "nats": claims}, operator)

    operator_claims = {"type": "operator", "version": 2}
    operator_jwt = _jwt(
        {"iss": operator_public, "sub": operator_public, "name": "test", "nats": operator_claims},
        operator,
    )
    config = (
        f'operator: "{operator_jwt}"\n'
        f"system_account: {system_public}\n"
        "resolver: MEMORY\n"
        f'resolver_preload: {{ {account_public}: "{account_jwt(account_public, "app", jetstream)}", '
        f'{system_public}: "{account_jwt(system_public, "SYS", limits)}" }}\n'
    )
    root.mkdir(parents=True, exist_ok=True)
    return (
        config,
        _creds(root / "writer.creds", account, account_public),
        _creds(root / "stranger.creds", stranger, stranger_public),
    )
