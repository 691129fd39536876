"""Every transport and formatter we ship passes the suite third-party plugins run.

The built-ins run against real listeners on loopback.  The plugins in
``plugins/`` join as they land: until a plugin registers its name, its class
reports it missing (a skip here, a failure under EVENTLOG_REQUIRE_PEERS=1).
"""

from __future__ import annotations

import importlib
import io
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from eventlog.registry import Registry
from eventlog.testing import (
    DatagramReceiver,
    FormatterConformance,
    LineReceiver,
    TransportConformance,
    closed_port,
)
from tests.peers import missing


def _json_ids(lines: list[bytes]) -> list[str]:
    return [json.loads(line)["id"] for line in lines if line.strip()]


# ---------------------------------------------------------------- tcp, logstash (tcp)


class _LineReceiverPeer(TransportConformance):
    @pytest.fixture
    def peer(self) -> Iterator[LineReceiver]:
        with LineReceiver() as receiver:
            yield receiver

    def delivered(self, peer: LineReceiver) -> list[str]:
        with peer._cond:
            return _json_ids(list(peer.lines))

    def stop_peer(self, peer: LineReceiver) -> None:
        peer.stop()

    def unreachable_settings(self) -> dict[str, Any]:
        return {**self.settings_for("127.0.0.1", closed_port())}

    def settings(self, peer: LineReceiver) -> dict[str, Any]:
        return self.settings_for(peer.host, peer.port)

    def settings_for(self, host: str, port: int) -> dict[str, Any]:
        return {"transport": self.transport, "host": host, "port": port}


class TestTcp(_LineReceiverPeer):
    transport = "tcp"


class TestLogstashTcp(_LineReceiverPeer):
    transport = "logstash"


# ---------------------------------------------------------------- udp, logstash (udp)


class _UdpPeer(TransportConformance):
    detects_unreachable_peer = False  # a datagram to nowhere is not an error
    detects_peer_loss = False
    batch_sizes = (1, 7, 200)

    @pytest.fixture
    def peer(self) -> Iterator[DatagramReceiver]:
        with DatagramReceiver() as receiver:
            yield receiver

    def delivered(self, peer: DatagramReceiver) -> list[str]:
        return _json_ids(list(peer.datagrams))


class TestUdp(_UdpPeer):
    transport = "udp"

    def settings(self, peer: DatagramReceiver) -> dict[str, Any]:
        return {"transport": "udp", "host": "127.0.0.1", "port": peer.port}


class TestLogstashUdp(_UdpPeer):
    transport = "logstash"

    def settings(self, peer: DatagramReceiver) -> dict[str, Any]:
        return {
            "transport": "logstash",
            "logstash_protocol": "udp",
            "host": "127.0.0.1",
            "port": peer.port,
        }


# ---------------------------------------------------------------- console


class StandardError:
    """The console's peer: standard error, as pytest captures it."""

    def __init__(self, capsys: pytest.CaptureFixture[str]) -> None:
        self.capsys = capsys
        self.text = ""

    def lines(self) -> list[bytes]:
        self.text += self.capsys.readouterr().err  # readouterr() consumes: keep what it gave
        return self.text.encode().splitlines()


class TestConsole(TransportConformance):
    transport = "console"
    detects_unreachable_peer = False
    detects_peer_loss = False

    @pytest.fixture
    def peer(self, capsys: pytest.CaptureFixture[str]) -> StandardError:
        return StandardError(capsys)

    def settings(self, peer: StandardError) -> dict[str, Any]:
        return {"transport": "console"}

    def delivered(self, peer: StandardError) -> list[str]:
        return _json_ids(peer.lines())


# ---------------------------------------------------------------- built-in formatters


def _json_lines(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.split(b"\n") if line]


class _JsonLines(FormatterConformance):
    def decode(self, payload: bytes) -> dict[str, Any]:
        assert payload.endswith(b"\n") and payload.count(b"\n") == 1
        decoded: dict[str, Any] = json.loads(payload)
        return decoded

    def decode_stream(self, data: bytes) -> list[dict[str, Any]]:
        return _json_lines(data)

    def decode_batch(self, body: bytes) -> list[dict[str, Any]]:
        return _json_lines(body)


class TestJsonFormat(_JsonLines):
    formatter = "json"


class TestLogstashFormat(_JsonLines):
    formatter = "logstash"

    def decode(self, payload: bytes) -> dict[str, Any]:
        decoded = super().decode(payload)
        assert decoded["@version"] == "1" and decoded["@timestamp"].endswith("Z")
        return decoded


class TestJsonArrayFormat(_JsonLines):
    formatter = "json-array"

    def decode_batch(self, body: bytes) -> list[dict[str, Any]]:
        decoded: list[dict[str, Any]] = json.loads(body)
        return decoded


# ---------------------------------------------------------------- plugins/ (join as they land)


def require_plugin(kind: str, name: str, distribution: str) -> None:
    """Report a plugin of ``plugins/`` that is not installed or not registered yet."""
    table = getattr(Registry(), f"{kind}s")
    if name not in table:
        missing(
            distribution,
            f"{kind} {name!r} is not registered (pip install -e plugins/{distribution.replace('-', '_')})",
        )


class _FromPlugins:
    """A plugin of plugins/: reported missing until its distribution registers the name."""

    kind = "transport"
    name = ""
    distribution = ""

    @pytest.fixture(autouse=True)
    def _installed(self) -> None:
        require_plugin(self.kind, self.name, self.distribution)


def _peer_module(name: str, peer: str) -> Any:
    """``tests.peers.<name>``, written with its plugin; reported missing until it lands."""
    try:
        return importlib.import_module(f"tests.peers.{name}")
    except ImportError as exc:
        missing(peer, f"tests/peers/{name}.py is not there yet: {exc}")


class TestFluentTransport(_FromPlugins, TransportConformance):
    """eventlog-fluent's Forward transport against FluentServer (tests/peers/fluent.py)."""

    transport = name = "fluent"
    distribution = "eventlog-fluent"

    @pytest.fixture
    def peer(self, tmp_path: Path) -> Iterator[Any]:
        fluent = _peer_module("fluent", "FluentServer")
        fluent.require_fluent_server()
        server = fluent.FluentPeer(tmp_path).start()
        yield server
        server.stop()

    def settings(self, peer: Any) -> dict[str, Any]:
        return {"transport": "fluent", "host": "127.0.0.1", "port": peer.port}

    def delivered(self, peer: Any) -> list[str]:
        return [entry["record"]["id"] for entry in peer.entries()]

    def unreachable_settings(self) -> dict[str, Any]:
        return {"transport": "fluent", "host": "127.0.0.1", "port": closed_port()}

    def stop_peer(self, peer: Any) -> None:
        peer.stop()


class TestHttpTransport(_FromPlugins, TransportConformance):
    """eventlog-http's POST transport against a loopback HTTP server (tests/peers/http_server)."""

    transport = name = "http"
    distribution = "eventlog-http"

    @pytest.fixture
    def peer(self) -> Iterator[Any]:
        http_server = _peer_module("http_server", "HTTP server")
        with http_server.HttpPeer() as server:
            yield server

    def settings(self, peer: Any) -> dict[str, Any]:
        return {"transport": "http", "http_url": peer.url}

    def delivered(self, peer: Any) -> list[str]:
        ids: list[str] = peer.delivered_ids()
        return ids

    def unreachable_settings(self) -> dict[str, Any]:
        return {"transport": "http", "http_url": f"http://127.0.0.1:{closed_port()}/"}

    def stop_peer(self, peer: Any) -> None:
        # stop() leaves kept-alive connections served by their threads: reset those too.
        answer = _peer_module("http_server", "HTTP server").Answer
        peer.answer(*[answer(reset=True) for _ in range(10)])
        peer.stop()

    def refuse_batches(self, peer: Any) -> None:
        answer = _peer_module("http_server", "HTTP server").Answer
        peer.answer(*[answer(status=400, body=b"bad request") for _ in range(20)])


class TestMsgpackFormat(_FromPlugins, FormatterConformance):
    """eventlog-fluent's msgpack format: one msgpack map of wire names per event."""

    formatter = name = "msgpack"
    kind = "formatter"
    distribution = "eventlog-fluent"

    def decode(self, payload: bytes) -> dict[str, Any]:
        import msgpack

        decoded: dict[str, Any] = msgpack.unpackb(payload, raw=False)
        return decoded

    def decode_stream(self, data: bytes) -> list[dict[str, Any]]:
        import msgpack

        return list(msgpack.Unpacker(io.BytesIO(data), raw=False))

    def decode_batch(self, body: bytes) -> list[dict[str, Any]]:
        return self.decode_stream(body)


class _Capnp(_FromPlugins, FormatterConformance):
    """eventlog-capnp's formats: Cap'n Proto messages that ClickHouse reads."""

    kind = "formatter"
    distribution = "eventlog-capnp"
    packed = False

    def decode_stream(self, data: bytes) -> list[dict[str, Any]]:
        from eventlog_capnp.format import read_messages

        messages: list[dict[str, Any]] = read_messages(data, packed=self.packed)
        return messages

    def decode_batch(self, body: bytes) -> list[dict[str, Any]]:
        return self.decode_stream(body)

    @staticmethod
    def assert_carries(decoded: Mapping[str, Any], wire: Mapping[str, Any]) -> None:
        # Cap'n Proto names its columns its own way and splits the maps into typed
        # columns; the scalar fields must come back equal.
        from eventlog_capnp.schema import capnp_name

        for key in ("id", "tstamp", "action", "target", "tgType", "level", "message", "pid"):
            if key in wire:
                assert decoded[capnp_name(key)] == wire[key], f"{key!r} differs after a round trip"


class TestCapnpFormat(_Capnp):
    formatter = name = "capnp"


class TestCapnpPackedFormat(_Capnp):
    formatter = name = "capnp-packed"
    packed = True
