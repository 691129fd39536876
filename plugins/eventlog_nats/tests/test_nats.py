"""The ``nats`` transport against real nats-server processes with JetStream (tests/peers/nats_server.py).

Every test publishes real events and reads the stream back with a consumer:
counts and ids are what JetStream stored.  The cluster test kills a server and
the producer during a run and counts every id in the stream.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.peers import missing
from tests.peers.nats_server import (
    NatsServer,
    add_stream,
    require_nats_server,
    start_cluster,
    stream_ids,
    stream_messages,
)

import eventlog
from eventlog import ConfigurationError, Event
from eventlog._core.errors import AuthError, ConnectError, TransportError
from eventlog.plugin.testing import TransportConformance, closed_port, make_records, make_transport
from eventlog.plugin.testing import make_local_ca as make_ca

pytestmark = pytest.mark.timeout(120)

STREAM = "EVENTS"


@pytest.fixture(autouse=True)
def _installed() -> None:
    try:
        import eventlog_nats  # noqa: F401
    except ImportError:
        missing("eventlog-nats", "pip install -e plugins/eventlog_nats")
    require_nats_server()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NatsServer]:
    """One nats-server with JetStream and a stream EVENTS on the subject 'eventlog'."""
    peer = NatsServer(tmp_path).start()
    try:
        add_stream([peer.url], STREAM, ["eventlog"])
        yield peer
    finally:
        peer.kill()


def settings(server: NatsServer, **extra: Any) -> dict[str, Any]:
    return {"transport": "nats", "nats_servers": server.url, "nats_ack_timeout": 5, **extra}


def send(settings: dict[str, Any], count: int, prefix: str = "e") -> list[str]:
    """Open a transport, send ``count`` records in one batch, close; the ids sent."""
    transport, formatter = make_transport(settings)
    batch = make_records(count, formatter, prefix=prefix)
    transport.open()
    try:
        assert not transport.send(batch)
    finally:
        transport.close()
    return [r.id for r in batch]


def counts() -> Any:
    from eventlog_nats.transport import counts

    return counts


# ---------------------------------------------------------------- the conformance suite


class TestNatsConformance(TransportConformance):
    transport = "nats"

    @pytest.fixture
    def peer(self, server: NatsServer) -> NatsServer:
        return server

    def settings(self, peer: NatsServer) -> dict[str, Any]:
        return settings(peer)

    def delivered(self, peer: NatsServer) -> list[str]:
        return stream_ids([peer.url], STREAM)

    def unreachable_settings(self) -> dict[str, Any]:
        return {"transport": "nats", "nats_servers": f"127.0.0.1:{closed_port()}", "nats_connect_timeout": 1}

    def stop_peer(self, peer: NatsServer) -> None:
        peer.kill()

    def restart_peer(self, peer: NatsServer) -> None:
        peer.start()  # the same port and JetStream store: the stream is still there

    def refuse_batches(self, peer: NatsServer) -> None:
        # Every event is larger than the stream takes: JetStream refuses each one for good.
        from nats.js.api import StreamConfig
        from tests.peers.nats_server import run

        async def shrink() -> None:
            import nats

            nc = await nats.connect(peer.url)
            try:
                await nc.jetstream().update_stream(
                    StreamConfig(name=STREAM, subjects=["eventlog"], max_msg_size=64)
                )
            finally:
                await nc.close()

        run(shrink())


# ---------------------------------------------------------------- what lands in the stream


def test_each_event_is_one_message_whose_msg_id_is_the_event_id(server: NatsServer) -> None:
    sent = send(settings(server), 50)
    messages = stream_messages([server.url], STREAM)
    assert [msg_id for _, msg_id, _ in messages] == sent
    assert [json.loads(data)["id"] for _, _, data in messages] == sent
    assert {subject for subject, _, _ in messages} == {"eventlog"}


def test_subject_mode_action_publishes_on_prefix_dot_action(tmp_path: Path) -> None:
    peer = NatsServer(tmp_path).start()
    try:
        add_stream([peer.url], "APP", ["app.>"])
        pipeline = eventlog.configure(
            **settings(peer, nats_subject="app", nats_subject_mode="action"), enrichers=(), linger_ms=0
        )
        for action in ("account.admin.create", "odd action*", "a..b", "click"):
            pipeline.submit_event(Event(action, "t"))
        assert pipeline.flush(30)
        subjects = [subject for subject, _, _ in stream_messages([peer.url], "APP")]
        assert subjects == ["app.account.admin.create", "app.odd_action_", "app.a._.b", "app.click"]
    finally:
        peer.kill()


def test_a_resent_batch_is_stored_once_and_acked_as_duplicate(server: NatsServer) -> None:
    transport, formatter = make_transport(settings(server))
    batch = make_records(30, formatter)
    before = counts().duplicates
    transport.open()
    try:
        transport.send(batch)
        transport.send(batch)  # as the engine does after a lost ack, or a restart from the spool
        transport.send(batch[10:20])
    finally:
        transport.close()
    assert stream_ids([server.url], STREAM) == [r.id for r in batch]
    assert counts().duplicates - before == 40


def test_a_cluster_address_list_skips_a_dead_server(server: NatsServer) -> None:
    dead = f"nats://127.0.0.1:{closed_port()}"
    sent = send(settings(server, nats_servers=f"{dead},{server.url}", nats_connect_timeout=1), 5)
    assert stream_ids([server.url], STREAM) == sent


def test_a_killed_server_fails_the_batch_as_a_lost_connection_not_an_ack_timeout(
    server: NatsServer,
) -> None:
    # With an ack timeout far beyond the test's, only noticing the lost connection can pass.
    transport, formatter = make_transport(settings(server, nats_ack_timeout=600))
    transport.open()
    try:
        transport.send(make_records(2, formatter))
        server.kill()
        with pytest.raises(ConnectError) as caught:
            transport.send(make_records(2, formatter, prefix="after"))
    finally:
        transport.close()
    assert caught.value.retryable
    assert server.url in str(caught.value) or f":{server.port}" in str(caught.value)


# ---------------------------------------------------------------- JetStream's errors, mapped


def _open_error(settings: dict[str, Any]) -> TransportError:
    transport, formatter = make_transport(settings)
    try:
        with pytest.raises(TransportError) as caught:
            transport.open()
            transport.send(make_records(1, formatter))
    finally:
        transport.close()
    return caught.value


def test_a_missing_stream_is_a_retryable_error_naming_the_setting(server: NatsServer) -> None:
    error = _open_error(settings(server, nats_stream="NOPE"))
    assert error.retryable
    assert "no stream 'NOPE'" in str(error) and "EVENTLOG_NATS_STREAM" in str(error)


def test_a_subject_no_stream_captures_is_a_retryable_error_naming_the_setting(
    server: NatsServer,
) -> None:
    error = _open_error(settings(server, nats_subject="other.subject"))
    assert error.retryable
    assert "'other.subject'" in str(error) and "EVENTLOG_NATS_SUBJECT" in str(error)


def test_a_stream_that_does_not_capture_the_subject_is_named(server: NatsServer) -> None:
    add_stream([server.url], "OTHER", ["other"])
    error = _open_error(settings(server, nats_stream="OTHER"))
    assert error.retryable
    assert "'OTHER'" in str(error) and "'eventlog'" in str(error) and "['other']" in str(error)


def test_a_subject_moved_to_another_stream_is_retried_naming_the_setting(
    server: NatsServer,
) -> None:
    from tests.peers.nats_server import run

    async def move() -> None:  # the subject now belongs to another stream
        import nats
        from nats.js.api import StreamConfig

        nc = await nats.connect(server.url)
        try:
            await nc.jetstream().delete_stream(STREAM)
            await nc.jetstream().add_stream(StreamConfig(name="MOVED", subjects=["eventlog"]))
        finally:
            await nc.close()

    transport, formatter = make_transport(settings(server, nats_stream=STREAM))
    transport.open()
    try:
        run(move())
        with pytest.raises(TransportError) as caught:
            transport.send(make_records(2, formatter))
    finally:
        transport.close()
    assert caught.value.retryable
    assert "EVENTLOG_NATS_STREAM = 'EVENTS'" in str(caught.value)
    assert stream_ids([server.url], "MOVED") == []


def test_a_server_without_jetstream_is_named(tmp_path: Path) -> None:
    peer = NatsServer(tmp_path, jetstream=False).start()
    try:
        error = _open_error(settings(peer))
        assert "has no JetStream" in str(error) and error.retryable
    finally:
        peer.kill()


def test_a_full_stream_is_retried_and_the_resend_stores_only_the_rest(tmp_path: Path) -> None:
    peer = NatsServer(tmp_path).start()
    try:
        from nats.js.api import DiscardPolicy

        add_stream([peer.url], "SMALL", ["eventlog"], max_msgs=5, discard=DiscardPolicy.NEW)
        transport, formatter = make_transport(settings(peer))
        batch = make_records(8, formatter)
        transport.open()
        try:
            with pytest.raises(TransportError) as caught:
                transport.send(batch)
        finally:
            transport.close()
        assert caught.value.retryable
        assert "the stream 'SMALL' is full" in str(caught.value)
        assert "maximum messages exceeded" in str(caught.value)
        assert stream_ids([peer.url], "SMALL") == [r.id for r in batch[:5]]
    finally:
        peer.kill()


def test_an_action_the_stream_does_not_capture_is_refused_alone(tmp_path: Path) -> None:
    peer = NatsServer(tmp_path).start()
    try:
        add_stream([peer.url], "KEEP", ["app.keep.>"])
        transport, _ = make_transport(settings(peer, nats_subject="app", nats_subject_mode="action"))
        kept = make_records(3, prefix="keep")
        other = make_records(2, prefix="other")
        transport.open()
        try:
            refused = transport.send([kept[0], other[0], kept[1], other[1], kept[2]])
        finally:
            transport.close()
        assert refused is not None
        assert [record.id for record, _ in refused] == [r.id for r in other]
        assert all(reason.startswith("not_captured: ") and "app.other." in reason for _, reason in refused)
        assert stream_ids([peer.url], "KEEP") == [r.id for r in kept]
    finally:
        peer.kill()


def test_an_event_larger_than_the_stream_takes_is_refused_alone(tmp_path: Path) -> None:
    peer = NatsServer(tmp_path).start()
    try:
        add_stream([peer.url], "SIZED", ["eventlog"], max_msg_size=2000)
        pipeline = eventlog.configure(**settings(peer), enrichers=(), linger_ms=0, batch_size=10)
        events = [Event("small.a"), Event("big", message="x" * 5000), Event("small.b")]
        for event in events:
            pipeline.submit_event(event)
        assert pipeline.flush(30)
        assert stream_ids([peer.url], "SIZED") == [events[0].id, events[2].id]
        assert pipeline.stats.dropped_by_reason() == {"rejected": 1}
        assert pipeline.stats.sent == 2 and pipeline.stats.retries == 0
    finally:
        peer.kill()


def test_an_event_that_fits_max_payload_only_without_its_headers_is_refused_alone(
    tmp_path: Path,
) -> None:
    # The server closes a connection whose message passes max_payload (headers included):
    # such an event must be refused before it is written, not close the connection.
    peer = NatsServer(tmp_path, extra="max_payload: 2048").start()
    try:
        add_stream([peer.url], STREAM, ["eventlog"])
        transport, formatter = make_transport(settings(peer, nats_stream=STREAM))
        small = make_records(2, formatter)
        edge = small[0]._replace(id="f" * 32, payload=b"x" * 2000)
        transport.open()
        try:
            refused = transport.send([small[0], edge, small[1]])
            transport.send(make_records(1, formatter, prefix="after"))  # the connection lives
        finally:
            transport.close()
        assert refused is not None and [(r.id, why.split(":")[0]) for r, why in refused] == [
            (edge.id, "too_large")
        ]
        assert stream_ids([peer.url], STREAM)[:2] == [r.id for r in small]
    finally:
        peer.kill()


# ---------------------------------------------------------------- credentials and TLS


def _auth_server(tmp_path: Path, block: str) -> NatsServer:
    peer = NatsServer(tmp_path, extra=block)
    peer.start()
    return peer


def test_user_and_password(tmp_path: Path) -> None:
    peer = _auth_server(tmp_path, 'authorization { user: "app", password: "s3cret-pw" }')
    try:
        add_stream([f"nats://app:s3cret-pw@127.0.0.1:{peer.port}"], STREAM, ["eventlog"])
        sent = send(settings(peer, nats_user="app", nats_password="s3cret-pw"), 3)
        assert len(sent) == 3
        error = _open_error(settings(peer, nats_user="app", nats_password="wrong"))
        assert isinstance(error, AuthError) and error.retryable
        assert "EVENTLOG_NATS_USER" in str(error) and "wrong" not in str(error)
    finally:
        peer.kill()


def test_token(tmp_path: Path) -> None:
    peer = _auth_server(tmp_path, 'authorization { token: "t0ken-abc" }')
    try:
        add_stream([f"nats://t0ken-abc@127.0.0.1:{peer.port}"], STREAM, ["eventlog"])
        assert len(send(settings(peer, nats_token="t0ken-abc"), 2)) == 2
        error = _open_error(settings(peer, nats_token="other-token"))
        assert isinstance(error, AuthError)
        assert "other-token" not in str(error)
    finally:
        peer.kill()


def test_nkey_seed_file(tmp_path: Path) -> None:
    try:
        import nkeys
    except ImportError:
        missing("nkeys", "the nkeys package is not installed (noxfile.py's TEST_DEPS has it)")
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    public = nkeys.from_seed(seed).public_key.decode()
    seed_file = tmp_path / "user.nk"
    seed_file.write_bytes(seed + b"\n")
    peer = _auth_server(tmp_path, f'authorization {{ users: [ {{ nkey: "{public}" }} ] }}')
    try:
        from tests.peers.nats_server import run

        async def create() -> None:
            import nats
            from nats.js.api import StreamConfig

            nc = await nats.connect(peer.url, nkeys_seed_str=seed.decode())
            try:
                await nc.jetstream().add_stream(StreamConfig(name=STREAM, subjects=["eventlog"]))
            finally:
                await nc.close()

        run(create())
        sent = send(settings(peer, nats_nkey_seed=str(seed_file)), 4)
        other = tmp_path / "other.nk"
        other.write_bytes(nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER))
        assert isinstance(_open_error(settings(peer, nats_nkey_seed=str(other))), AuthError)
    finally:
        peer.kill()
    assert len(sent) == 4


def test_creds_file(tmp_path: Path) -> None:
    try:
        import nkeys  # noqa: F401
    except ImportError:
        missing("nkeys", "the nkeys package is not installed (noxfile.py's TEST_DEPS has it)")
    from tests.peers.nats_server import operator_mode, run

    config, creds, stranger = operator_mode(tmp_path / "jwt")
    peer = NatsServer(tmp_path, extra=config).start()
    try:

        async def create() -> None:
            import nats
            from nats.js.api import StreamConfig

            nc = await nats.connect(peer.url, user_credentials=str(creds))
            try:
                await nc.jetstream().add_stream(StreamConfig(name=STREAM, subjects=["eventlog"]))
            finally:
                await nc.close()

        run(create())
        sent = send(settings(peer, nats_creds=str(creds)), 3)
        error = _open_error(settings(peer, nats_creds=str(stranger)))
        assert isinstance(error, AuthError) and "EVENTLOG_NATS_USER" in str(error)
        stored = stream_messages([peer.url], STREAM, user_credentials=str(creds))
    finally:
        peer.kill()
    assert [msg_id for _, msg_id, _ in stored] == sent


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[NatsServer, Path]]:
    ca = make_ca(tmp_path / "ca")
    block = f'tls {{ cert_file: "{ca.server_cert}", key_file: "{ca.server_key}", timeout: 5 }}'
    peer = NatsServer(tmp_path, extra=block).start()
    try:
        yield peer, ca.ca_cert
    finally:
        peer.kill()


def test_tls_with_verification(tls_server: tuple[NatsServer, Path]) -> None:
    peer, ca = tls_server
    url = f"tls://127.0.0.1:{peer.port}"
    from tests.peers.nats_server import run

    async def create() -> None:
        import ssl

        import nats
        from nats.js.api import StreamConfig

        nc = await nats.connect(url, tls=ssl.create_default_context(cafile=str(ca)))
        try:
            await nc.jetstream().add_stream(StreamConfig(name=STREAM, subjects=["eventlog"]))
        finally:
            await nc.close()

    run(create())
    assert len(send(settings(peer, nats_servers=url, nats_tls_ca=str(ca)), 3)) == 3
    # Verification is on by default: the system CAs do not know the test CA.
    error = _open_error(settings(peer, nats_servers=url))
    assert isinstance(error, ConnectError)
    assert "TLS" in str(error) and "EVENTLOG_NATS_TLS_CA" in str(error)


def test_tls_on_refuses_a_server_without_tls(server: NatsServer, tmp_path: Path) -> None:
    ca = make_ca(tmp_path / "ca")
    error = _open_error(settings(server, nats_tls=True, nats_tls_ca=str(ca.ca_cert)))
    assert isinstance(error, ConnectError) and "does not offer TLS" in str(error)
    assert stream_ids([server.url], STREAM) == []


# ---------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({}, "EVENTLOG_NATS_SERVERS"),
        ({"nats_servers": "http://127.0.0.1:4222"}, "must start with nats:// or tls://"),
        ({"nats_servers": "nats://u:pw@127.0.0.1:4222"}, "carries credentials"),
        ({"nats_servers": "127.0.0.1", "nats_subject": "a.*"}, "without spaces or wildcards"),
        ({"nats_servers": "127.0.0.1", "nats_subject": "a..b"}, "without spaces or wildcards"),
        ({"nats_servers": "127.0.0.1", "nats_stream": "A.B"}, "a stream name has no"),
        ({"nats_servers": "127.0.0.1", "nats_subject_mode": "tag"}, "fixed"),
        ({"nats_servers": "127.0.0.1", "nats_user": "u", "nats_token": "t"}, "choose one way"),
        ({"nats_servers": "127.0.0.1", "nats_password": "p"}, "without EVENTLOG_NATS_USER"),
        ({"nats_servers": "127.0.0.1", "nats_ack_timeout": 0}, "more than 0 seconds"),
        ({"nats_servers": "127.0.0.1", "nats_nkey_seed": "/no/such/seed"}, "cannot read it"),
        ({"nats_servers": "127.0.0.1", "nats_creds": "/no/such/creds"}, "cannot read it"),
        ({"nats_servers": "tls://127.0.0.1", "nats_tls_ca": "/no/ca.pem"}, "cannot load TLS files"),
    ],
)
def test_configuration_errors_name_the_setting(given: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=None) as caught:
        make_transport({"transport": "nats", **given})
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("subject", "pattern", "captured"),
    [
        ("app.a.b", "app.>", True),
        ("app", "app.>", False),
        ("app.a", "app.*", True),
        ("app.a.b", "app.*", False),
        ("app.a.b", "app.*.b", True),
        ("app.a.b", "*.*.*", True),
        ("app.a.b", ">", True),
        ("other.a", "app.>", False),
        ("app.a", "app.a", True),
    ],
)
def test_subject_matching_follows_nats_wildcards(subject: str, pattern: str, captured: bool) -> None:
    from eventlog_nats.transport import subject_matches

    assert subject_matches(subject, pattern) is captured


def test_host_and_port_are_the_default_server() -> None:
    transport, _ = make_transport({"transport": "nats", "host": "127.0.0.1", "port": 4333})
    assert transport.config.servers == ("nats://127.0.0.1:4333",)  # type: ignore[attr-defined]
    transport, _ = make_transport({"transport": "nats", "nats_servers": "a, b:5,tls://[::1]:7"})
    servers = transport.config.servers  # type: ignore[attr-defined]
    assert servers == ("nats://a:4222", "nats://b:5", "tls://[::1]:7")


# ---------------------------------------------------------------- fork


def test_a_fork_child_publishes_on_its_own_connection(server: NatsServer) -> None:
    transport, formatter = make_transport(settings(server))
    first, child_batch, last = (make_records(3, formatter, prefix=p) for p in ("a", "b", "c"))
    transport.open()
    try:
        transport.send(first)
        pid = os.fork()
        if pid == 0:  # the child: the parent's transport is forgotten, a new open() works
            code = 1
            try:
                transport.send(child_batch)
                transport.close()
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        transport.send(last)  # the parent's connection was not disturbed by the child
    finally:
        transport.close()
    got = stream_ids([server.url], STREAM)
    assert sorted(got) == sorted(r.id for r in first + child_batch + last)
    assert got[:3] == [r.id for r in first] and got[-3:] == [r.id for r in last]


# ---------------------------------------------------------------- a cluster under faults

PRODUCER = Path(__file__).parent / "nats_producer.py"
ROOT = Path(__file__).resolve().parents[3]  # the checkout: tests.peers and this folder importable
#: Events of the cluster test (CI: 20,000; the README's figures: NATS_FAULT_EVENTS=100000).
FAULT_EVENTS = int(os.environ.get("NATS_FAULT_EVENTS", "20000"))
FAULT_CHUNK = 1000


class Progress:
    """The producers' progress file: one JSON line per flushed chunk."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def lines(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        text = self.path.read_text()
        # A line cut by kill -9 cannot happen (one write each), but stay safe: complete lines only.
        return [json.loads(line) for line in text.splitlines() if line.endswith("}")]

    def flushed(self) -> int:
        return max((line["flushed"] + 1 for line in self.lines() if "flushed" in line), default=0)

    def wait_flushed(self, at_least: int, producer: subprocess.Popen[bytes], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.flushed() < at_least:
            assert producer.poll() is None, f"the producer exited with {producer.returncode}"
            assert time.monotonic() < deadline, f"only {self.flushed()} of {at_least} flushed"
            time.sleep(0.05)


def _producer(servers: list[str], db: Path, progress: Path, start: int) -> subprocess.Popen[bytes]:
    options = {
        "servers": ",".join(servers),
        "db": str(db),
        "stream": "FAULTS",
        "subject": "faults",
        "start": start,
        "count": FAULT_EVENTS,
        "chunk": FAULT_CHUNK,
        "progress": str(progress),
    }
    return subprocess.Popen(
        [sys.executable, str(PRODUCER), json.dumps(options)],
        env={**os.environ, "PYTHONPATH": os.pathsep.join((str(ROOT), str(Path(__file__).parent)))},
    )


def _stream_leader(servers: list[str]) -> str:
    from tests.peers.nats_server import run

    async def leader() -> str:
        import nats

        nc = await nats.connect(servers=servers, connect_timeout=2)
        try:
            info = await nc.jetstream(timeout=5).stream_info("FAULTS")
            assert info.cluster is not None and info.cluster.leader
            return str(info.cluster.leader)
        finally:
            await nc.close()

    result: str = run(leader())
    return result


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_cluster_keeps_every_event_exactly_once_through_a_node_kill_and_a_producer_kill(
    tmp_path: Path,
) -> None:
    """3 servers, a stream of 3 replicas; the stream leader is SIGKILLed and restarted during
    the run, then the producer is killed (-9) and restarted on its spool: every flushed id is
    in the stream, every n is there, and no id is there twice."""
    began = time.monotonic()
    marks: list[tuple[str, float]] = []

    def mark(what: str) -> None:
        marks.append((what, round(time.monotonic() - began, 1)))

    cluster = start_cluster(tmp_path / "cluster")
    mark("cluster up")
    producers: list[subprocess.Popen[bytes]] = []
    try:
        urls = [server.url for server in cluster]
        add_stream(urls, "FAULTS", ["faults"], num_replicas=3)
        mark("stream")
        progress, db = Progress(tmp_path / "progress.jsonl"), tmp_path / "spool.db"
        producers.append(_producer(urls, db, progress.path, 0))
        progress.wait_flushed(FAULT_EVENTS // 5, producers[0], 120)

        # The stream's leader dies without a word, mid-run; a new one is elected.
        leader = next(s for s in cluster if s.name == _stream_leader(urls))
        leader.kill()
        mark("leader killed")
        progress.wait_flushed(FAULT_EVENTS * 7 // 20, producers[0], 120)
        leader.start()
        mark("leader restarted")

        # The producer dies mid-batch; its successor starts from the last chunk it knows flushed.
        progress.wait_flushed(FAULT_EVENTS // 2, producers[0], 120)
        producers[0].send_signal(signal.SIGKILL)
        producers[0].wait(10)
        mark("producer killed")
        checkpoint = progress.flushed()
        producers.append(_producer(urls, db, progress.path, checkpoint))
        assert producers[1].wait(180) == 0
        mark("producer done")

        messages = stream_messages(urls, "FAULTS")
        mark("stream read")
    finally:
        for producer in producers:
            if producer.poll() is None:
                producer.kill()
                producer.wait(10)
        for server in cluster:
            server.kill()

    ids = [msg_id for _, msg_id, _ in messages]
    numbers = Counter(json.loads(data)["fields"]["n"] for _, _, data in messages)
    lines = progress.lines()
    flushed_ids = {i for line in lines if "ids" in line for i in line["ids"]}
    stored = Counter(ids)
    twice = {i: c for i, c in stored.items() if c > 1}
    missing_ids = flushed_ids - set(stored)
    # Events the first producer logged after its last flush: in the stream only if spooled.
    unflushed = [json.loads(data)["fields"]["n"] for _, i, data in messages if i not in flushed_ids]
    duplicates = sum(line["duplicates"] for line in _last_per_pid(lines))
    print(
        f"\nnats cluster faults: {FAULT_EVENTS} events, stream leader {leader.name} SIGKILLed and "
        f"restarted, producer kill -9 after {checkpoint} flushed; stream holds {len(ids)} "
        f"messages, {len(stored)} distinct ids, {len(twice)} ids twice; flushed ids missing: "
        f"{len(missing_ids)}; unflushed events of the killed producer kept from its spool: "
        f"{len(unflushed)}; resends acked as duplicate (dropped by the store): {duplicates}; "
        f"seconds: {marks}"
    )
    assert twice == {}, f"{len(twice)} ids are in the stream more than once"
    assert missing_ids == set(), f"{len(missing_ids)} flushed ids are not in the stream"
    assert set(numbers) == set(range(FAULT_EVENTS)), "some event numbers are not in the stream"
    assert all(checkpoint <= n < checkpoint + 2 * FAULT_CHUNK for n in unflushed)
    assert len(ids) == FAULT_EVENTS + len(unflushed)


def _last_per_pid(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    last: dict[int, dict[str, Any]] = {}
    for line in lines:
        last[line["pid"]] = line
    return list(last.values())
