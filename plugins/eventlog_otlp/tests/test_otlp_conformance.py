"""eventlog-otlp against the core's conformance suites: the ``otlp`` transport (a loopback
OTLP/HTTP receiver decoding with the official classes) and the ``otlp`` format."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from otlp_model import expected, observed
from tests.peers.otlp import Answer, OtlpPeer

from eventlog.plugin.testing import FormatterConformance, TransportConformance, closed_port
from eventlog_otlp.encoding import open_envelope


class TestOtlpTransport(TransportConformance):
    """eventlog-otlp's transport against an OTLP/HTTP receiver (tests/peers/otlp.py)."""

    transport = "otlp"

    @pytest.fixture
    def peer(self) -> Iterator[Any]:
        with OtlpPeer() as server:
            yield server

    def settings(self, peer: Any) -> dict[str, Any]:
        return {"transport": "otlp", "otlp_endpoint": peer.url}

    def delivered(self, peer: Any) -> list[str]:
        ids: list[str] = peer.delivered_ids()
        return ids

    def unreachable_settings(self) -> dict[str, Any]:
        return {"transport": "otlp", "otlp_endpoint": f"http://127.0.0.1:{closed_port()}/v1/logs"}

    def stop_peer(self, peer: Any) -> None:
        # stop() leaves kept-alive connections served by their threads: reset those too.
        peer.answer(*[Answer(reset=True) for _ in range(10)])
        peer.stop()

    def refuse_batches(self, peer: Any) -> None:
        peer.answer(*[Answer(status=400, body=b"bad request") for _ in range(20)])


class TestOtlpFormat(FormatterConformance):
    """The ``otlp`` format: each payload's LogRecord and scope parse with the official classes."""

    formatter = "otlp"

    def decode(self, payload: bytes) -> dict[str, Any]:
        # Only the envelope is opened with the plugin's code; what is inside, the official classes read.
        _, resource, scope, record = open_envelope(payload)
        return {
            "observed": observed(
                common_pb2.InstrumentationScope.FromString(scope), logs_pb2.LogRecord.FromString(record)
            ),
            "resource": resource,
        }

    @staticmethod
    def assert_carries(decoded: Mapping[str, Any], wire: Mapping[str, Any]) -> None:
        # The time is not in the payload: the transport writes it from Record.time_ns
        # (nanoseconds); test_otlp.py checks it on what arrives.
        assert decoded["observed"] == expected(dict(wire))
