"""eventlog-capnp's two formats against the core's formatter conformance suite."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eventlog.plugin.testing import FormatterConformance


class _Capnp(FormatterConformance):
    """eventlog-capnp's formats: Cap'n Proto messages that ClickHouse reads."""

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
    formatter = "capnp"


class TestCapnpPackedFormat(_Capnp):
    formatter = "capnp-packed"
    packed = True
