"""eventlog-fluent against the core's conformance suites: the Forward transport (FluentServer) and msgpack."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.peers.fluent import FluentPeer, require_fluent_server

from eventlog.plugin.testing import FormatterConformance, TransportConformance, closed_port


class TestFluentTransport(TransportConformance):
    """eventlog-fluent's Forward transport against FluentServer (tests/peers/fluent.py)."""

    transport = "fluent"

    @pytest.fixture
    def peer(self, tmp_path: Path) -> Iterator[Any]:
        require_fluent_server()
        server = FluentPeer(tmp_path).start()
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

    def restart_peer(self, peer: Any) -> None:
        peer.start()  # on the same port, appending to the same entries file


class TestFluentTransportForwardMode(TestFluentTransport):
    """The same checks with EVENTLOG_FLUENT_MODE=forward (FluentServer reads Forward mode too)."""

    def settings(self, peer: Any) -> dict[str, Any]:
        return {**super().settings(peer), "fluent_mode": "forward"}

    def unreachable_settings(self) -> dict[str, Any]:
        return {**super().unreachable_settings(), "fluent_mode": "forward"}


class TestMsgpackFormat(FormatterConformance):
    """eventlog-fluent's msgpack format: one msgpack map of wire names per event."""

    formatter = "msgpack"

    def decode(self, payload: bytes) -> dict[str, Any]:
        import msgpack

        decoded: dict[str, Any] = msgpack.unpackb(payload, raw=False)
        return decoded

    def decode_stream(self, data: bytes) -> list[dict[str, Any]]:
        import msgpack

        return list(msgpack.Unpacker(io.BytesIO(data), raw=False))

    def decode_batch(self, body: bytes) -> list[dict[str, Any]]:
        return self.decode_stream(body)
