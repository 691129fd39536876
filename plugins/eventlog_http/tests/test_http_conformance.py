"""eventlog-http against the core's transport conformance suite (a loopback HTTP server)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from tests.peers.http_server import Answer, HttpPeer

from eventlog.plugin.testing import TransportConformance, closed_port


class TestHttpTransport(TransportConformance):
    """eventlog-http's POST transport against a loopback HTTP server (tests/peers/http_server)."""

    transport = "http"

    @pytest.fixture
    def peer(self) -> Iterator[Any]:
        with HttpPeer() as server:
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
        answer = Answer
        peer.answer(*[answer(reset=True) for _ in range(10)])
        peer.stop()

    def restart_peer(self, peer: Any) -> None:
        peer.restart()

    def refuse_batches(self, peer: Any) -> None:
        answer = Answer
        peer.answer(*[answer(status=400, body=b"bad request") for _ in range(20)])
