"""eventlog-speedups' compiled OTLP encoder against the Python one: the same bytes.

``encoding.log_record`` is the reference; ``eventlog_speedups._otlp.log_record``
(what the formatter calls when eventlog-speedups is installed) must write exactly
its bytes for any wire dict, the plain case in C and the odd one (a non-str id,
fields that are not a dict ...) by handing the wire to the reference.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.logs.v1 import logs_pb2
from tests.peers.otlp import OtlpPeer, records

from eventlog.plugin import Record
from eventlog.plugin.testing import make_records, make_transport
from eventlog_otlp import encoding
from eventlog_otlp.formatter import OtlpFormatter

if encoding.accelerator is None:
    if os.environ.get("EVENTLOG_SPEEDUPS", "").strip() == "0":
        pytest.skip("EVENTLOG_SPEEDUPS=0: the compiled encoder is off", allow_module_level=True)
    pytest.skip(
        "eventlog-speedups is not installed: pip install -e plugins/eventlog_speedups (needs a C compiler)",
        allow_module_level=True,
    )
compiled = encoding.accelerator

# Lone surrogates, NULs, non-BMP characters: every code point.
text = st.text(st.characters(codec=None, exclude_categories=()), max_size=20)
names = st.one_of(st.sampled_from(["app", "log.info", "log.", "a.b", "", "ü", "tags", "user.id"]), text)


class Opaque:
    """A type no encoder knows: written as its name, never str() (no application code)."""

    def __str__(self) -> str:
        raise AssertionError("the encoder ran application code")


scalars = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 127, 128, -(2**63), 2**63 - 1, 2**63, -(2**63) - 1, 2**64]),
    st.floats(),  # nan, inf, -0.0, subnormals
    st.booleans(),
    text,
    st.none(),
    st.builds(Opaque),
    st.binary(max_size=4),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=3).map(tuple),
        st.dictionaries(st.one_of(text, st.integers(-5, 5)), inner, max_size=3),
    ),
    max_leaves=12,
)
hexes = st.sampled_from("0123456789abcdefABCDEF")


def hex_text(length: int) -> st.SearchStrategy[str]:
    return st.lists(hexes, min_size=length, max_size=length).map("".join)


# Besides plain hex: what bytes.fromhex also takes (spaces, upper case) or refuses.
trace_ids = st.one_of(
    hex_text(32), st.sampled_from(["", "zz" * 16, "0" * 31, " " + "1" * 32, "ab " * 16]), text
)
span_ids = st.one_of(
    st.none(), hex_text(16), st.sampled_from(["", "0" * 15, "1" * 18, "12 34 56 78 9a bc de f0"])
)
flags = st.one_of(
    st.none(),
    st.integers(0, 255).map(lambda n: f"{n:02x}"),
    st.integers(0, 15).map(lambda n: f"{n:x}"),
    st.sampled_from(["", "0x1", "fff", "g", " 1", "1_0", "-1", "+f"]),
)
exc_infos = st.one_of(
    st.builds(
        lambda t, v, s: json.dumps({"type": t, "value": v, "stack": s}),
        st.one_of(text, st.none()),
        st.one_of(text, st.none(), st.integers()),
        text,
    ),
    text,  # not JSON: the whole text is the stack trace
    st.just("[1, 2]"),
)


@st.composite
def wires(draw: st.DrawFn) -> dict[str, Any]:
    wire: dict[str, Any] = {"id": draw(st.one_of(text, hex_text(32))), "tstamp": 0, "action": draw(names)}
    if draw(st.booleans()):
        wire["target"] = draw(st.one_of(names, values))
    if draw(st.booleans()):
        wire["tgType"] = draw(st.sampled_from(["logger", "user", "", None]))
    if draw(st.booleans()):
        wire["level"] = draw(st.one_of(st.integers(-(2**70), 2**70), st.integers(-3, 65)))
        wire["levelName"] = draw(text)
    for key in ("message", "user", "session", "reqId", "thread", "codeFile", "codeFunc"):
        if draw(st.booleans()):
            wire[key] = draw(st.one_of(text, st.none()) if key == "message" else st.one_of(text, values))
    if draw(st.booleans()):
        wire["codeLine"] = draw(st.one_of(st.integers(-(2**64), 2**64), values))
    for key in ("fields", "metrics"):
        if draw(st.booleans()):
            wire[key] = draw(st.dictionaries(names, values, max_size=5))
    if draw(st.booleans()):
        wire["tags"] = draw(st.one_of(st.lists(text, max_size=4), st.lists(text, max_size=3).map(tuple)))
    if draw(st.booleans()):
        wire["exc_info"] = draw(exc_infos)
    if draw(st.booleans()):
        wire["traceId"] = draw(trace_ids)
        if draw(st.booleans()):
            wire["spanId"] = draw(span_ids)
        if draw(st.booleans()):
            wire["traceFlags"] = draw(flags)
    return wire


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(wires())
def test_compiled_encoder_writes_the_reference_bytes(wire: dict[str, Any]) -> None:
    assert compiled(wire) == encoding.log_record(wire)


def test_the_odd_wire_takes_the_reference_path() -> None:
    plain = {"id": "1", "action": "signup"}
    for odd in (
        {**plain, "id": 5},  # the reference raises: the same error from either
        {**plain, "action": 5},
        {**plain, "message": b"bytes"},
        {**plain, "fields": [("a", 1)]},
        {**plain, "fields": {1: "a"}},
        {**plain, "level": 20.0, "levelName": "INFO"},
        {**plain, "level": 20},  # no levelName: KeyError
        {"action": "x"},  # no id: KeyError
    ):
        try:
            want: bytes | type[BaseException] = encoding.log_record(odd)
        except Exception as exc:  # the error's type is compared
            want = type(exc)
        try:
            got: bytes | type[BaseException] = compiled(odd)
        except Exception as exc:
            got = type(exc)
        assert got == want, odd
    assert compiled({**plain, "tags": {"b", "a"}}) == encoding.log_record({**plain, "tags": {"b", "a"}})


def test_values_keep_their_types_in_both() -> None:
    wire = {
        "id": "0" * 32,
        "action": "log.info",
        "tgType": "logger",
        "target": "app",
        "level": 20,
        "levelName": "INFO",
        "message": "caf\u00e9 \U0001f600 \ud800",
        "fields": {
            "n": -1,
            "big": 2**64,
            "f": math.nan,
            "inf": -math.inf,
            "b": True,
            "s": "\udfff",
            "a": [1, [2.5, None], {"k": "v"}],
            "o": Opaque(),
            "id": "mine",  # not eventlog's: renamed
            "log.record.uid": "mine too",
        },
        "metrics": {"n": 2, "m": 0.5},
        "tags": ["x"],
        "exc_info": json.dumps({"type": "ValueError", "value": "bad", "stack": "Traceback ..."}),
        "traceId": "0af7651916cd43dd8448eb211c80319c",
        "spanId": "b7ad6b7169203331",
        "traceFlags": "01",
    }
    record = compiled(wire)
    assert record == encoding.log_record(wire)
    parsed = logs_pb2.LogRecord.FromString(record)
    got = {kv.key: kv.value.WhichOneof("value") for kv in parsed.attributes}
    assert got["n"] == "int_value" and got["big"] == "string_value" and got["f"] == "double_value"
    assert got["b"] == "bool_value" and got["a"] == "array_value" and got["o"] == "string_value"
    assert got["eventlog.fields.log.record.uid"] == "string_value"
    # one value per key: the field's, not the metric's
    assert [kv.value.int_value for kv in parsed.attributes if kv.key == "n"] == [-1]
    assert parsed.body.string_value == "caf\u00e9 \U0001f600 ?"
    assert parsed.trace_id.hex() == wire["traceId"] and parsed.span_id.hex() == wire["spanId"]
    assert parsed.flags == 1 and parsed.severity_number == 9 and parsed.severity_text == "INFO"


def test_formatter_uses_the_compiled_encoder_unless_switched_off() -> None:
    assert encoding.fast_log_record is compiled
    script = "from eventlog_otlp import encoding; print(encoding.accelerator is None)"
    env = {**os.environ, "EVENTLOG_SPEEDUPS": "0"}
    off = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert off.stdout.strip() == "True"


# Process identities as the core gives them: the same objects event after event.
identities = st.sampled_from(
    [
        {"host": "web-1", "pid": 4242},
        {"host": "web-1", "pid": 4242, "site": "eu", "cluster": "c1"},
        {"host": "web-2", "pid": 7},
        {},
    ]
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(identities, wires()), min_size=1, max_size=8))
def test_compiled_payloads_are_the_formatters_bytes(
    events: list[tuple[dict[str, Any], dict[str, Any]]],
) -> None:
    compiled_formatter, reference = OtlpFormatter(), OtlpFormatter()
    assert compiled_formatter.format != compiled_formatter._format  # the compiled payload() is in use
    for identity, wire in events:
        wire = {**wire, **identity}
        if not isinstance(wire.get("target"), str | None):
            wire["target"] = "x"  # an unhashable one: format() raises TypeError (both paths)
        assert compiled_formatter.format(wire) == reference._format(wire)


def resource(key: bytes) -> bytes:
    return encoding.resource_message({"service.name": "svc", **encoding.resource_attributes(key)})


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(
            st.one_of(st.integers(-(2**65), 2**65), st.sampled_from([0, -1, 2**64 - 1, 2**64])),
            identities,
            wires(),
        ),
        max_size=12,
    )
)
def test_compiled_request_body_is_the_references(
    events: list[tuple[int, dict[str, Any], dict[str, Any]]],
) -> None:
    formatter = OtlpFormatter()
    records = []
    for time_ns, identity, wire in events:
        if not isinstance(wire.get("target"), str | None):
            wire["target"] = "x"  # as above
        payload = formatter.format({**wire, **identity})
        records.append(Record(wire["id"], wire["action"], time_ns, payload))
    entries = [(r.time_ns, *encoding.open_envelope(r.payload)[1:]) for r in records]
    assert encoding.compiled.request_body(records, resource) == encoding.request_body(
        encoding.PROTOBUF, entries, resource
    )


def test_compiled_request_body_leaves_other_payloads_to_the_transport() -> None:
    wire = {"id": "1", "action": "signup"}
    good = Record("1", "signup", 5, OtlpFormatter().format(wire))
    for odd in (
        OtlpFormatter(encoding.JSON).format(wire),  # another protocol's envelope
        good.payload[:8],  # shorter than its header
        good.payload[:9] + b"x",  # its header says more than it holds
        b"\x07" + good.payload[1:],  # no kind eventlog-otlp writes
    ):
        assert encoding.compiled.request_body([good, Record("2", "signup", 5, odd)], resource) is None
    assert encoding.compiled.request_body([good._replace(time_ns=True)], resource) is None
    assert encoding.compiled.request_body([], resource) == b""


@pytest.mark.parametrize("compiled_body", [True, False], ids=["compiled", "python"])
def test_a_batch_past_max_body_bytes_is_split_by_either_request_builder(compiled_body: bool) -> None:
    with OtlpPeer() as peer:
        transport, formatter = make_transport(
            {"transport": "otlp", "otlp_endpoint": peer.url, "otlp_max_body_bytes": 700}
        )
        assert transport._compiled_body is not None  # eventlog-speedups is installed (module skip above)
        if not compiled_body:
            transport._compiled_body = None
        batch = make_records(8, formatter)
        assert transport.send(batch) == []
        assert [len(records(r)) for r in peer.requests] == [2, 2, 2, 2]
        assert peer.delivered_ids() == [record.id for record in batch]
        transport.close()
