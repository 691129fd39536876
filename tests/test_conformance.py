"""Every transport and formatter we ship passes the suite third-party plugins run.

The built-ins run against real listeners on loopback.  The plugins in
``plugins/`` join as they land: until a plugin registers its name, its class
reports it missing (a skip here, a failure under EVENTLOG_REQUIRE_PEERS=1).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from eventlog.plugin.testing import (
    DatagramReceiver,
    FormatterConformance,
    LineReceiver,
    TransportConformance,
    closed_port,
)


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

    def restart_peer(self, peer: LineReceiver) -> None:
        peer.restart()

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
