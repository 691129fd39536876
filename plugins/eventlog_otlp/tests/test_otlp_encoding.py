"""The hand-written OTLP encoder against the official ``opentelemetry-proto`` classes.

Hypothesis draws hostile wire dicts (lone surrogates, NULs, integers past 64 bits,
negative and huge levels, empty keys, extreme times); the official classes must
parse every payload and request body to exactly the message the data model asks
for, and the JSON encoding must parse to the same message as the protobuf one.
"""

from __future__ import annotations

import json
import math
from typing import Any

from google.protobuf import json_format
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.logs.v1 import logs_pb2
from otlp_model import _text, expected, observed
from tests.peers.otlp import _hex_ids_to_base64, attributes

from eventlog_otlp import encoding
from eventlog_otlp.formatter import OtlpFormatter

text = st.text(st.characters(codec=None, exclude_categories=()), max_size=30)
names = st.one_of(st.sampled_from(["app", "log.info", "a.b", "", "ü"]), text)
scalars = st.one_of(
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=False),
    text,
)


@st.composite
def wires(draw: st.DrawFn) -> dict[str, Any]:
    wire: dict[str, Any] = {"id": draw(text), "tstamp": 0, "action": draw(names)}
    if draw(st.booleans()):
        wire["target"] = draw(names)
    if draw(st.booleans()):
        wire["tgType"] = draw(st.sampled_from(["logger", "user", ""]))
    if draw(st.booleans()):
        wire["level"] = draw(st.integers(min_value=-(2**40), max_value=2**40))
        wire["levelName"] = draw(text)
    for key in ("message", "user", "session", "reqId", "thread", "codeFile", "codeFunc", "host", "site"):
        if draw(st.booleans()):
            wire[key] = draw(text)
    if draw(st.booleans()):
        wire["codeLine"] = draw(st.integers(min_value=-(2**63), max_value=2**63 - 1))
    if draw(st.booleans()):
        wire["pid"] = draw(st.integers(min_value=0, max_value=2**31))
    if draw(st.booleans()):
        wire["fields"] = draw(st.dictionaries(text, scalars, max_size=4))
    if draw(st.booleans()):
        wire["metrics"] = draw(
            st.dictionaries(
                text, st.one_of(st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=False)), max_size=3
            )
        )
    if draw(st.booleans()):
        wire["tags"] = draw(st.lists(text, max_size=4))
    if draw(st.booleans()):
        wire["exc_info"] = json.dumps({"type": draw(text), "value": draw(text), "stack": draw(text)})
    if draw(st.booleans()):
        wire["traceId"] = draw(st.binary(min_size=16, max_size=16)).hex()
        wire["spanId"] = draw(st.binary(min_size=8, max_size=8)).hex()
        wire["traceFlags"] = f"{draw(st.integers(0, 255)):02x}"
    return wire


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wires())
def test_every_payload_parses_to_the_data_model(wire: dict[str, Any]) -> None:
    payload = OtlpFormatter().format(wire)
    _, resource, scope, record = encoding.open_envelope(payload)
    # The formatter's encoder (eventlog-speedups' when installed) writes the reference's bytes.
    assert record == encoding.log_record(wire)
    parsed = logs_pb2.LogRecord.FromString(record)
    assert observed(common_pb2.InstrumentationScope.FromString(scope), parsed) == expected(wire)
    assert encoding.resource_attributes(resource) == {
        name: _text(wire[key]) if isinstance(wire[key], str) else wire[key]
        for key, name in (("host", "host.name"), ("pid", "process.pid"), ("site", "eventlog.site"))
        if key in wire
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(st.integers(min_value=-(2**70), max_value=2**70), wires()),
        min_size=1,
        max_size=6,
    )
)
def test_request_bodies_parse_to_the_same_message_in_protobuf_and_json(
    entries: list[tuple[int, dict[str, Any]]],
) -> None:
    messages = []
    for kind in (encoding.PROTOBUF, encoding.JSON):
        formatter = OtlpFormatter(kind)
        opened = [encoding.open_envelope(formatter.format(wire)) for _, wire in entries]

        def resource(key: bytes, kind: int = kind) -> bytes:
            attrs = {"service.name": "svc", **encoding.resource_attributes(key)}
            if kind == encoding.PROTOBUF:
                return encoding.resource_message(attrs)
            return encoding.resource_json(attrs)

        body = encoding.request_body(
            kind,
            [(time_ns, res, scope, rec) for (time_ns, _), (_, res, scope, rec) in zip(entries, opened)],
            resource,
        )
        if kind == encoding.PROTOBUF:
            message = ExportLogsServiceRequest.FromString(body)
        else:
            message = ExportLogsServiceRequest()
            json_format.ParseDict(_hex_ids_to_base64(json.loads(body)), message)
        messages.append(message)
    proto, from_json = messages
    assert proto == from_json
    # One ResourceLogs per process identity, one ScopeLogs per scope, records in their order.
    keys = [(w.get("host"), w.get("pid"), w.get("site"), w.get("cluster")) for _, w in entries]
    assert len(proto.resource_logs) == len(dict.fromkeys(keys))
    got = [
        (attributes(r.attributes)["log.record.uid"], r.time_unix_nano, r.observed_time_unix_nano)
        for rl in proto.resource_logs
        for sl in rl.scope_logs
        for r in sl.log_records
    ]
    want = [(w["id"].encode("utf-8", "replace").decode(), t if 0 <= t < 2**64 else 0) for t, w in entries]
    assert sorted((uid, t, o) for uid, t, o in got) == sorted((uid, t, t) for uid, t in want)
    for rl in proto.resource_logs:
        assert attributes(rl.resource.attributes)["service.name"] == "svc"
        assert len({sl.scope.name for sl in rl.scope_logs}) == len(rl.scope_logs)


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=-(2**70), max_value=2**70), text, st.binary(max_size=40))
def test_partial_success_is_read_as_the_official_classes_write_it(
    rejected: int, message: str, junk: bytes
) -> None:
    # A lone surrogate is no text the official classes can write: not an answer a peer can send.
    assume(not any("\ud800" <= char <= "\udfff" for char in message))
    answer = ExportLogsServiceResponse()
    if -(2**63) <= rejected < 2**63:
        answer.partial_success.rejected_log_records = rejected
    answer.partial_success.error_message = message
    body = answer.SerializeToString()
    count, text_read = encoding.partial_success(body, json_body=False)
    assert count == max(0, answer.partial_success.rejected_log_records)
    assert text_read == message.encode("utf-8", "replace").decode()
    as_json = json_format.MessageToJson(answer).encode()
    assert encoding.partial_success(as_json, json_body=True) == (count, text_read)
    # Hostile bytes: read or refused with ResponseError, never another exception.
    try:
        encoding.partial_success(junk, json_body=False)
    except encoding.ResponseError:
        pass


def test_doubles_keep_their_bits() -> None:
    for value in (0.0, -0.0, 5e-324, 1e308, math.inf, -math.inf):
        parsed = common_pb2.AnyValue.FromString(encoding.any_value(value))
        assert (
            math.copysign(1, parsed.double_value) == math.copysign(1, value) and parsed.double_value == value
        )
    assert math.isnan(common_pb2.AnyValue.FromString(encoding.any_value(math.nan)).double_value)
    nested = {"a": [1, "x", [True, None]], "b": {"c": 2.5}}
    parsed = common_pb2.AnyValue.FromString(encoding.any_value(nested))
    assert json_format.MessageToDict(parsed) == {
        "kvlistValue": {
            "values": [
                {
                    "key": "a",
                    "value": {
                        "arrayValue": {
                            "values": [
                                {"intValue": "1"},
                                {"stringValue": "x"},
                                {"arrayValue": {"values": [{"boolValue": True}, {}]}},
                            ]
                        }
                    },
                },
                {
                    "key": "b",
                    "value": {"kvlistValue": {"values": [{"key": "c", "value": {"doubleValue": 2.5}}]}},
                },
            ]
        }
    }


def test_a_call_site_is_reused_only_for_values_of_the_same_type() -> None:
    # 1 == 1.0 == True: a cache keyed on the values alone would write True as the int 1.
    site = {"id": "1", "action": "signup", "codeLine": 3}
    kinds = []
    for thread in (1, True, 1.0, "1"):
        record = logs_pb2.LogRecord.FromString(encoding.log_record({**site, "thread": thread}))
        value = next(kv.value for kv in record.attributes if kv.key == "thread.name")
        kinds.append((value.WhichOneof("value"), getattr(value, value.WhichOneof("value") or "")))
    assert kinds == [("int_value", 1), ("bool_value", True), ("double_value", 1.0), ("string_value", "1")]
