"""The redis_streams transport against a real redis-server."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from conftest import RedisServer
from eventlog_redis_streams.plugin import RedisStreamsConfig, RedisStreamsTransport

import eventlog
import eventlog.plugin
from eventlog.plugin.testing import TransportConformance, closed_port, make_records, make_transport


class TestConformance(TransportConformance):
    """The contract every eventlog transport keeps (eventlog.plugin.testing)."""

    transport = "redis_streams"

    @pytest.fixture
    def peer(self, redis_server: RedisServer) -> RedisServer:
        return redis_server

    def settings(self, peer: RedisServer) -> dict[str, Any]:
        return {"transport": "redis_streams", "redis_streams_url": peer.url}

    def delivered(self, peer: RedisServer) -> list[str]:
        return [fields[b"id"].decode() for _, fields in peer.client.xrange("eventlog")]

    def unreachable_settings(self) -> dict[str, Any]:
        return {
            "transport": "redis_streams",
            "redis_streams_url": f"redis://127.0.0.1:{closed_port()}/0",
        }

    def stop_peer(self, peer: RedisServer) -> None:
        peer.stop()

    def restart_peer(self, peer: RedisServer) -> None:
        peer.restart()

    def refuse_batches(self, peer: RedisServer) -> None:
        _exhaust(peer, "eventlog")


def _exhaust(server: RedisServer, stream: str) -> None:
    """Give the stream the largest possible last id: Redis refuses every XADD with "*"."""
    server.client.xadd(stream, {"id": "first"})
    server.client.execute_command("XSETID", stream, "18446744073709551615-18446744073709551615")


def _transport(server: RedisServer, **settings: Any) -> RedisStreamsTransport:
    transport, _ = make_transport({"transport": "redis_streams", "redis_streams_url": server.url, **settings})
    assert isinstance(transport, RedisStreamsTransport)
    return transport


def _calls(server: RedisServer, command: str) -> int:
    stats = server.client.info("commandstats").get(f"cmdstat_{command}", {})
    return int(stats.get("calls", 0))


def test_a_batch_is_one_transaction_of_xadds(redis_server: RedisServer) -> None:
    transport = _transport(redis_server, redis_streams_stream="app")
    transport.open()
    transport.send(make_records(250))
    transport.close()
    assert _calls(redis_server, "exec") == 1
    assert _calls(redis_server, "xadd") == 250
    assert redis_server.client.xlen("app") == 250


def test_entries_carry_id_action_and_the_formatted_payload(redis_server: RedisServer) -> None:
    transport = _transport(redis_server)
    records = make_records(3)
    transport.open()
    transport.send(records)
    transport.close()
    entries = redis_server.client.xrange("eventlog")
    assert [fields for _, fields in entries] == [
        {b"id": r.id.encode(), b"action": r.action.encode(), b"payload": r.payload} for r in records
    ]


def test_maxlen_trims_the_stream(redis_server: RedisServer) -> None:
    transport = _transport(redis_server, redis_streams_maxlen=10)
    transport.open()
    for _ in range(30):
        transport.send(make_records(100))
    transport.close()
    # "~" trimming removes whole macro-nodes only: the stream stays near, never below, maxlen.
    assert 10 <= redis_server.client.xlen("eventlog") < 3000


def test_a_key_of_the_wrong_type_is_retryable_and_nothing_is_half_written(
    redis_server: RedisServer,
) -> None:
    redis_server.client.set("eventlog", "not a stream")
    transport = _transport(redis_server)
    transport.open()
    with pytest.raises(eventlog.plugin.TransportError) as caught:
        transport.send(make_records(5))
    transport.close()
    assert caught.value.retryable  # an operator can fix the key; the events wait
    assert type(caught.value) is eventlog.plugin.TransportError
    assert "WRONGTYPE" in str(caught.value) and "payload" not in str(caught.value)
    assert redis_server.client.get("eventlog") == b"not a stream"


def test_a_stream_that_cannot_grow_rejects_the_batch_for_good(redis_server: RedisServer) -> None:
    _exhaust(redis_server, "eventlog")
    transport = _transport(redis_server)
    transport.open()
    with pytest.raises(eventlog.plugin.RejectedError) as caught:
        transport.send(make_records(2))
    transport.close()
    assert not caught.value.retryable
    assert redis_server.client.xlen("eventlog") == 1


def test_a_wrong_password_is_an_auth_error_and_the_right_one_works(
    start_redis: Callable[..., RedisServer],
) -> None:
    server = start_redis("--requirepass", "s3cret")
    transport = _transport(server, redis_streams_password="wrong")
    with pytest.raises(eventlog.plugin.AuthError) as caught:
        transport.open()
    transport.close()
    assert caught.value.retryable and "wrong" not in str(caught.value)
    transport = _transport(server, redis_streams_password="s3cret")
    transport.open()
    transport.send(make_records(4))
    transport.close()
    assert server.client.xlen("eventlog") == 4


def test_configured_from_the_environment_end_to_end(
    redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVENTLOG_TRANSPORT", "redis_streams")
    monkeypatch.setenv("EVENTLOG_REDIS_STREAMS_URL", redis_server.url)
    monkeypatch.setenv("EVENTLOG_REDIS_STREAMS_STREAM", "orders")
    eventlog.configure()
    eventlog.log_event(eventlog.Event("order.create", "o-1", "order", fields={"total": 12}))
    assert eventlog.shutdown(timeout=10)
    [(_, fields)] = redis_server.client.xrange("orders")
    assert fields[b"action"] == b"order.create"
    assert b'"target":"o-1"' in fields[b"payload"]


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("EVENTLOG_REDIS_STREAMS_URL", "http://127.0.0.1", "redis://"),
        ("EVENTLOG_REDIS_STREAMS_MAXLEN", "-1", "0 (no trimming) or more"),
    ],
)
def test_a_bad_setting_is_named_with_its_value(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv("EVENTLOG_TRANSPORT", "redis_streams")
    monkeypatch.setenv(variable, value)
    with pytest.raises(eventlog.ConfigurationError) as caught:
        eventlog.configure()
    assert variable in str(caught.value) and value in str(caught.value)
    assert expected in str(caught.value)


def test_a_password_in_the_url_is_not_shown_in_errors() -> None:
    url = f"redis://app:hunter2@127.0.0.1:{closed_port()}/0"
    transport = RedisStreamsTransport(RedisStreamsConfig(url, "eventlog"))
    with pytest.raises(eventlog.plugin.ConnectError) as caught:
        transport.open()
    assert "hunter2" not in str(caught.value) and "app:***@" in str(caught.value)
