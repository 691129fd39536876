"""An independent OTLP/HTTP logs receiver: :class:`~tests.peers.http_server.HttpPeer`
decoding every request with the official ``opentelemetry-proto`` classes.

Nothing of eventlog-otlp decodes here: protobuf bodies go through
``ExportLogsServiceRequest.FromString`` and JSON bodies through protobuf's own
``json_format`` (with OTLP/JSON's hex trace and span ids turned back into
protobuf's base64 first, as the OTLP specification describes the difference).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.common.v1 import common_pb2

from tests.peers.http_server import Answer, HttpPeer, Received

ExportLogsServiceRequest = logs_service_pb2.ExportLogsServiceRequest
ExportLogsServiceResponse = logs_service_pb2.ExportLogsServiceResponse


def _hex_ids_to_base64(value: Any) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key in ("traceId", "spanId") and isinstance(item, str):
                out[key] = base64.b64encode(bytes.fromhex(item)).decode()
            else:
                out[key] = _hex_ids_to_base64(item)
        return out
    if isinstance(value, list):
        return [_hex_ids_to_base64(item) for item in value]
    return value


def decode(request: Received) -> Any:
    """The ExportLogsServiceRequest of one received request (protobuf or OTLP/JSON)."""
    if "json" in request.headers.get("Content-Type", ""):
        from google.protobuf import json_format

        message = ExportLogsServiceRequest()
        json_format.ParseDict(_hex_ids_to_base64(json.loads(request.body)), message)
        return message
    return ExportLogsServiceRequest.FromString(request.body)


def plain(value: Any) -> Any:
    """An AnyValue as a Python value (arrays as lists, kvlists as dicts)."""
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [plain(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: plain(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, kind)


def attributes(items: Any) -> dict[str, Any]:
    """Repeated KeyValue as a dict (a repeated key fails: OTLP keys are unique)."""
    out: dict[str, Any] = {}
    for kv in items:
        assert kv.key not in out, f"attribute {kv.key!r} appears twice"
        out[kv.key] = plain(kv.value)
    return out


def records(request: Received) -> list[tuple[Any, Any, Any]]:
    """(resource, scope, log record) of every log record in a request, in order."""
    message = decode(request)
    return [
        (resource_logs.resource, scope_logs.scope, record)
        for resource_logs in message.resource_logs
        for scope_logs in resource_logs.scope_logs
        for record in scope_logs.log_records
    ]


def response(rejected: int = 0, message: str = "") -> bytes:
    """An ExportLogsServiceResponse, with a partial_success when ``rejected`` or ``message``."""
    answer = ExportLogsServiceResponse()
    if rejected or message:
        answer.partial_success.rejected_log_records = rejected
        answer.partial_success.error_message = message
    return bytes(answer.SerializeToString())


class OtlpPeer(HttpPeer):
    """HttpPeer answering 200 with an empty ExportLogsServiceResponse unless told otherwise."""

    def __init__(self) -> None:
        super().__init__()
        self.url = f"http://127.0.0.1:{self.port}/v1/logs"

    def log_records(self, delivered_only: bool = True) -> list[tuple[Any, Any, Any]]:
        with self._lock:
            done = [
                r
                for r in self.requests
                if not delivered_only or (200 <= r.answer.status < 300 and not r.answer.reset)
            ]
        return [entry for request in done for entry in records(request)]

    def delivered_ids(self) -> list[str]:
        """``log.record.uid`` of each record in requests answered 2xx (duplicates kept)."""
        return [str(attributes(record.attributes)["log.record.uid"]) for _, _, record in self.log_records()]


__all__ = ["Answer", "OtlpPeer", "attributes", "common_pb2", "decode", "plain", "records", "response"]
