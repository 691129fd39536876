"""The ``otlp`` transport against an independent OTLP/HTTP receiver (tests/peers/otlp.py).

Every test sends real events through a real pipeline to a real HTTP server on
loopback, which decodes each request with the official ``opentelemetry-proto``
classes; assertions are on what was decoded, record by record.
"""

from __future__ import annotations

import gzip
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from otlp_model import expected, observed, severity
from tests.peers.otlp import Answer, OtlpPeer, attributes, records, response

import eventlog
from eventlog import ConfigurationError, Event
from eventlog._core.errors import TransportError
from eventlog._engine.pipeline import Pipeline
from eventlog.plugin.testing import make_local_ca, make_records, make_transport
from eventlog_otlp.config import GRPC_REFUSED
from eventlog_otlp.transport import RETRY_AFTER_MAX, parse_retry_after

pytestmark = pytest.mark.timeout(60)

OTEL_VARIABLES = [name for name in os.environ if name.startswith("OTEL_")]


@pytest.fixture(autouse=True)
def _no_otel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OTEL_VARIABLES:
        monkeypatch.delenv(name)


@pytest.fixture
def peer() -> Iterator[OtlpPeer]:
    with OtlpPeer() as server:
        yield server


def configure(endpoint: str | None, **settings: Any) -> Pipeline:
    """A pipeline exporting to ``endpoint``; one batch per flush() (long linger)."""
    base: dict[str, Any] = {
        "transport": "otlp",
        "enrichers": ("host", "site"),
        "linger_ms": 100,
        "batch_size": 500,
        "shutdown_timeout": 3,
    }
    if endpoint is not None:
        base["otlp_endpoint"] = endpoint
    base.update(settings)
    return eventlog.configure(**base)


def app_logger(pipeline: Pipeline, name: str = "shop.checkout") -> logging.Logger:
    logger = logging.getLogger(name)
    logger.handlers[:] = [eventlog.EventHandler(pipeline=pipeline)]
    logger.setLevel(1)
    logger.propagate = False
    return logger


# ---------------------------------------------------------------- the data model


def test_every_field_of_the_data_model_arrives_as_the_spec_says(
    peer: OtlpPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opentelemetry.sdk.trace import TracerProvider

    monkeypatch.setenv("OTEL_SERVICE_NAME", "checkout")
    pipeline = configure(peer.url, site="acme", cluster="eu-1")
    logger = app_logger(pipeline)
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("request") as span:
        try:
            raise ValueError("card declined")
        except ValueError:
            logger.exception(
                "payment %s failed",
                "p-1",
                extra={"attempt": 3, "amount": 12.5, "card": "visa", "tags": ["pay"]},
            )
        logger.log(5, "trace detail")
        event = Event(
            "order.create",
            "o-17",
            "order",
            message="created",
            level=25,
            fields={"items": 2, "big": 2**70, "note": "gift ✓"},
            metrics={"total": 99.5},
            tags=["web", "v2"],
            user="alice",
            session="s-1",
            request_id="r-9",
        )
        pipeline.submit_event(event)
    context = span.get_span_context()
    assert pipeline.flush(10)
    (request,) = peer.requests
    message_count = len(records(request))
    assert message_count == 3
    got = peer.log_records()
    by_name = {
        observed(scope, record)["severity_text"] or "event": (resource, scope, record)
        for resource, scope, record in got
    }

    # One resource: the process, with the service from OTEL_SERVICE_NAME.
    resource = attributes(got[0][0].attributes)
    assert resource["service.name"] == "checkout"
    assert resource["host.name"] and resource["process.pid"] == os.getpid()
    assert resource["eventlog.site"] == "acme" and resource["eventlog.cluster"] == "eu-1"
    assert resource["telemetry.sdk.language"] == "python" and resource["telemetry.sdk.name"] == "eventlog"

    _, scope, error = by_name["ERROR"]
    seen = observed(scope, error)
    assert seen["scope"] == "shop.checkout" and seen["event_name"] == ""
    assert seen["severity_number"] == 17 and seen["severity_text"] == "ERROR"
    assert seen["body"] == "payment p-1 failed"
    assert seen["trace_id"] == context.trace_id.to_bytes(16, "big")
    assert seen["span_id"] == context.span_id.to_bytes(8, "big")
    assert seen["flags"] == int(context.trace_flags) and seen["flags"] & 1  # sampled
    attrs = seen["attributes"]
    assert attrs["exception.type"] == "ValueError" and attrs["exception.message"] == "card declined"
    assert attrs["exception.stacktrace"].startswith("Traceback (most recent call last):")
    assert attrs["exception.stacktrace"].rstrip().endswith("ValueError: card declined")
    assert attrs["code.file.path"] == __file__ and attrs["code.function.name"] == (
        "test_every_field_of_the_data_model_arrives_as_the_spec_says"
    )
    assert isinstance(attrs["code.line.number"], int) and attrs["code.line.number"] > 0
    # Types kept: int, double, string, array of strings.
    assert (attrs["attempt"], attrs["amount"], attrs["card"], attrs["tags"]) == (3, 12.5, "visa", ["pay"])
    assert attrs["thread.name"] == "MainThread"
    assert len(attrs["log.record.uid"]) == 32

    _, scope, trace = by_name["TRACE"]
    assert (trace.severity_number, trace.severity_text, trace.body.string_value) == (
        1,
        "TRACE",
        "trace detail",
    )

    _, scope, order = by_name["event"] if "event" in by_name else by_name["Level 25"]
    seen = observed(scope, order)
    assert seen["scope"] == "eventlog" and seen["event_name"] == "order.create"
    assert seen["severity_number"] == 12  # 25: INFO + 5, the last step of INFO's range
    assert seen["attributes"]["eventlog.target"] == "o-17"
    assert seen["attributes"]["eventlog.target.type"] == "order"
    assert seen["attributes"]["items"] == 2 and seen["attributes"]["big"] == str(2**70)
    assert seen["attributes"]["note"] == "gift ✓" and seen["attributes"]["total"] == 99.5
    assert seen["attributes"]["tags"] == ["web", "v2"]
    assert seen["attributes"]["user.id"] == "alice" and seen["attributes"]["session.id"] == "s-1"
    assert seen["attributes"]["eventlog.request_id"] == "r-9"
    # The event's own time in nanoseconds, and observed when it was made (by the caller).
    assert order.time_unix_nano == event.time_ns == order.observed_time_unix_nano


def test_what_arrives_matches_the_independent_model_for_every_record(peer: OtlpPeer) -> None:
    from eventlog._records.wire import to_wire
    from eventlog.plugin.testing import sample_events

    pipeline = configure(peer.url, enrichers=())
    events = sample_events()
    wires = {}
    for event in events:
        pipeline.submit_event(event)
    assert pipeline.flush(10)
    for event in events:
        wires[event.id] = to_wire(event, None)
    got = peer.log_records()
    assert len(got) == len(events)
    for _, scope, record in got:
        seen = observed(scope, record)
        wire = wires[seen["attributes"]["log.record.uid"]]
        assert seen == expected(wire)
        assert record.time_unix_nano == record.observed_time_unix_nano
        assert record.time_unix_nano // 1_000_000 == wire["tstamp"]


def test_severity_numbers_follow_the_spec_for_every_level(peer: OtlpPeer) -> None:
    pipeline = configure(peer.url)
    logger = app_logger(pipeline)
    levels = [1, 5, 7, 9, 10, 11, 13, 19, 20, 21, 22, 29, 30, 33, 40, 41, 50, 53, 54, 60, 100]
    for level in levels:
        logger.log(level, "level %d", level)
    assert pipeline.flush(10)
    got = {record.body.string_value: int(record.severity_number) for _, _, record in peer.log_records()}
    assert got == {f"level {level}": severity(level) for level in levels}
    assert [got[f"level {n}"] for n in (5, 10, 20, 30, 40, 50)] == [1, 5, 9, 13, 17, 21]


def test_one_resource_logs_per_batch_and_one_scope_logs_per_logger(peer: OtlpPeer) -> None:
    from tests.peers.otlp import decode

    pipeline = configure(peer.url)
    first, second = app_logger(pipeline, "app.db"), app_logger(pipeline, "app.web")
    for i in range(6):
        (first if i % 2 else second).info("n=%d", i)
    pipeline.submit_event(Event("user.login", "bob", "user"))
    assert pipeline.flush(10)
    (request,) = peer.requests
    message = decode(request)
    assert len(message.resource_logs) == 1
    scopes = {
        s.scope.name: [r.body.string_value for r in s.log_records]
        for s in message.resource_logs[0].scope_logs
    }
    assert scopes == {"app.web": ["n=0", "n=2", "n=4"], "app.db": ["n=1", "n=3", "n=5"], "eventlog": [""]}


# ---------------------------------------------------------------- the SDK, side by side


def test_the_sdk_exporter_sends_the_same_records(peer: OtlpPeer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The OpenTelemetry SDK's own OTLP/HTTP exporter and eventlog, same records, same receiver."""
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    monkeypatch.setenv("OTEL_SERVICE_NAME", "checkout")
    provider = LoggerProvider(resource=Resource.create())
    provider.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=peer.url)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        sdk_handler = LoggingHandler(logger_provider=provider)
    pipeline = configure(peer.url)
    logger = app_logger(pipeline, "shop.sdk")
    logger.handlers.append(sdk_handler)
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("request"):
        logger.info("paid %s", "p-1", extra={"attempt": 3, "amount": 12.5, "card": "visa"})
        logger.warning("slow")
        try:
            raise KeyError("k")
        except KeyError:
            logger.error("lookup failed", exc_info=True)
    provider.shutdown()
    assert pipeline.flush(10)
    ours = [r for r in peer.requests if r.headers.get("User-Agent", "").startswith("eventlog-otlp/")]
    theirs = [r for r in peer.requests if r not in ours]
    ours_records = [entry for r in ours for entry in records(r)]
    sdk_records = [entry for r in theirs for entry in records(r)]
    assert len(ours_records) == len(sdk_records) == 3
    for (our_resource, our_scope, our), (sdk_resource, sdk_scope, sdk) in zip(ours_records, sdk_records):
        assert our_scope.name == sdk_scope.name == "shop.sdk"
        assert (
            attributes(our_resource.attributes)["service.name"]
            == attributes(sdk_resource.attributes)["service.name"]
        )
        # The SDK takes int(record.created * 1e9), a float product off by up to a few hundred ns;
        # eventlog takes logging's own time in whole nanoseconds: the same instant, to the microsecond.
        assert abs(our.time_unix_nano - sdk.time_unix_nano) < 1_000
        assert our.severity_number == sdk.severity_number
        assert our.body == sdk.body
        assert (our.trace_id, our.span_id, our.flags) == (sdk.trace_id, sdk.span_id, sdk.flags)
        assert our.event_name == sdk.event_name == ""
        # The SDK writes WARN for WARNING; the data model says severity_text is the source's own.
        assert our.severity_text == logging.getLevelName(severity_level(int(our.severity_number)))
        mine, sdks = attributes(our.attributes), attributes(sdk.attributes)
        # eventlog adds the record's id and thread; everything the SDK sends, eventlog sends alike.
        assert set(mine) - set(sdks) == {"log.record.uid", "thread.name"}
        if "exception.message" in sdks:
            # The SDK sends str(exc.args[0]); eventlog sends str(exc), as the traceback's last line.
            assert (mine.pop("exception.message"), sdks.pop("exception.message")) == ("'k'", "k")
        assert {k: mine[k] for k in sdks} == sdks


def severity_level(number: int) -> int:
    return {9: 20, 13: 30, 17: 40}[number]


# ---------------------------------------------------------------- configuration


def test_otel_endpoint_gets_v1_logs_and_the_logs_endpoint_is_used_as_is(
    peer: OtlpPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{peer.port}/")
    pipeline = configure(None)
    pipeline.submit_event(Event("a.b"))
    assert pipeline.flush(10)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", f"http://127.0.0.1:{peer.port}/custom/path")
    pipeline = configure(None)
    pipeline.submit_event(Event("a.c"))
    assert pipeline.flush(10)
    # eventlog's own name wins over both.
    pipeline = configure(f"http://127.0.0.1:{peer.port}/mine")
    pipeline.submit_event(Event("a.d"))
    assert pipeline.flush(10)
    assert [r.path for r in peer.requests] == ["/v1/logs", "/custom/path", "/mine"]


def test_otel_headers_protocol_compression_and_timeout_are_read(
    peer: OtlpPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "api-key=s3cr%3Dt-value,x-tenant=t1")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "http/json")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "2500")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=prod,service.name=from-attrs")
    pipeline = configure(peer.url)
    assert pipeline._parts.first_transport.config.timeout == 2.5  # type: ignore[attr-defined]
    pipeline.submit_event(Event("a.json", "t", "x", message="m", fields={"n": 2**40, "f": 0.5}))
    assert pipeline.flush(10)
    (request,) = peer.requests
    assert request.headers["api-key"] == "s3cr=t-value" and request.headers["x-tenant"] == "t1"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(request.raw_body) == request.body
    ((resource, _, record),) = records(request)  # json_format: the official JSON reader
    assert attributes(resource.attributes)["service.name"] == "from-attrs"
    assert attributes(resource.attributes)["deployment.environment.name"] == "prod"
    assert record.event_name == "a.json" and record.body.string_value == "m"
    assert attributes(record.attributes)["n"] == 2**40 and attributes(record.attributes)["f"] == 0.5
    assert record.time_unix_nano > 0


def test_eventlog_settings_win_over_otel_variables(peer: OtlpPeer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-from=otel")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "otel-name")
    pipeline = configure(
        peer.url, otlp_protocol="http/protobuf", otlp_headers={"x-from": "eventlog"}, otlp_service_name="mine"
    )
    pipeline.submit_event(Event("a.b"))
    assert pipeline.flush(10)
    (request,) = peer.requests
    assert request.headers["Content-Type"] == "application/x-protobuf"
    assert request.headers["x-from"] == "eventlog"
    assert attributes(records(request)[0][0].attributes)["service.name"] == "mine"


def test_grpc_is_refused_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigurationError, match="grpc is not supported"):
        configure("http://127.0.0.1:4318", otlp_protocol="grpc")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    with pytest.raises(ConfigurationError) as caught:
        configure("http://127.0.0.1:4318")
    assert "OTEL_EXPORTER_OTLP_PROTOCOL" in str(caught.value) and GRPC_REFUSED in str(caught.value)


def test_a_bad_otel_variable_is_a_configuration_error_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "soon")
    with pytest.raises(ConfigurationError, match="OTEL_EXPORTER_OTLP_TIMEOUT='soon': must be a number"):
        configure("http://127.0.0.1:4318")
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TIMEOUT")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization")
    with pytest.raises(ConfigurationError) as caught:
        configure("http://127.0.0.1:4318")
    assert (
        "entry 1 is not key=value" in str(caught.value) and "authorization" not in str(caught.value).lower()
    )


def test_tls_with_the_otel_certificate_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ca = make_local_ca(tmp_path)
    with OtlpPeer() as server:
        server.server.socket = ca.server_context().wrap_socket(server.server.socket, server_side=True)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_CERTIFICATE", str(ca.ca_cert))
        pipeline = configure(f"https://127.0.0.1:{server.port}/v1/logs")
        pipeline.submit_event(Event("tls.ok"))
        assert pipeline.flush(10)
        assert [record.event_name for _, _, record in server.log_records()] == ["tls.ok"]


# ---------------------------------------------------------------- answers


@pytest.mark.parametrize("status", [429, 502, 503, 504])
def test_retryable_statuses_are_retried_with_retry_after(peer: OtlpPeer, status: int) -> None:
    peer.answer(Answer(status, headers={"Retry-After": "1"}))
    pipeline = configure(peer.url)
    for i in range(4):
        pipeline.submit_event(Event("r.t", str(i)))
    assert pipeline.flush(20)
    first, second = peer.requests
    assert second.arrived - first.arrived >= 0.95  # not sooner than the server asked
    assert first.body == second.body
    assert len(peer.delivered_ids()) == 4 and pipeline.stats.sent == 4
    assert pipeline.stats.retries == 1 and pipeline.stats.dropped_by_reason() == {}


def test_the_retry_after_reaches_the_engine_parsed_within_bounds(peer: OtlpPeer) -> None:
    peer.answer(Answer(503, headers={"Retry-After": "7"}), Answer(429, headers={"Retry-After": "9" * 40}))
    transport, formatter = make_transport({"transport": "otlp", "otlp_endpoint": peer.url})
    batch = make_records(3, formatter)
    for wanted in (7.0, RETRY_AFTER_MAX):
        with pytest.raises(TransportError) as caught:
            transport.send(batch)
        assert caught.value.retryable and caught.value.retry_after == wanted
    transport.close()


def test_retry_after_parsing() -> None:
    now = 1_000_000_000.0
    assert parse_retry_after("0") == 0.0 and parse_retry_after(" 12 ") == 12.0
    assert parse_retry_after("1" * 10_000) is None  # too long to be a header we read
    assert parse_retry_after("٣") is None  # a digit, but not an ASCII one
    assert parse_retry_after("-5") is None and parse_retry_after("1.5") is None
    assert parse_retry_after("Sun, 09 Sep 2001 01:47:00 GMT", now) == 20.0
    assert parse_retry_after("Sun, 09 Sep 2001 01:40:00 GMT", now) == 0.0  # in the past
    assert parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now) == RETRY_AFTER_MAX
    assert parse_retry_after("Sun, 09 Sep 2001 01:47:00", now) is None  # no zone: unreadable


def test_partial_success_counts_the_rejected_records_as_dropped(peer: OtlpPeer) -> None:
    peer.answer(
        Answer(200, headers={"Content-Type": "application/x-protobuf"}, body=response(2, "bad attribute"))
    )
    pipeline = configure(peer.url)
    for i in range(5):
        pipeline.submit_event(Event("p.s", str(i)))
    assert pipeline.flush(10)
    assert pipeline.stats.sent == 3
    assert pipeline.stats.dropped_by_reason() == {"rejected": 2}
    assert len(peer.requests) == 1  # a rejection is not retried


def test_partial_success_in_json_and_the_whole_batch_rejected(peer: OtlpPeer) -> None:
    body = b'{"partialSuccess":{"rejectedLogRecords":"4","errorMessage":"quota"}}'
    peer.answer(Answer(200, headers={"Content-Type": "application/json"}, body=body))
    pipeline = configure(peer.url, otlp_protocol="http/json")
    for i in range(4):
        pipeline.submit_event(Event("p.j", str(i)))
    assert pipeline.flush(10)
    assert pipeline.stats.sent == 0 and pipeline.stats.dropped_by_reason() == {"rejected": 4}


def test_a_400_is_rejected_and_its_message_hides_the_header_values(peer: OtlpPeer, caplog: Any) -> None:
    key = "abcdef0123456789-key"
    peer.answer(Answer(400, body=f"invalid api-key {key}".encode()))
    transport, formatter = make_transport(
        {"transport": "otlp", "otlp_endpoint": peer.url, "otlp_headers": f"api-key={key}"}
    )
    with pytest.raises(TransportError) as caught:
        transport.send(make_records(2, formatter))
    assert not caught.value.retryable
    assert (
        "http 400" in str(caught.value) and key not in str(caught.value) and "<hidden>" in str(caught.value)
    )
    transport.close()


def test_a_413_splits_the_batch(peer: OtlpPeer) -> None:
    peer.answer(Answer(413))
    pipeline = configure(peer.url)
    for i in range(6):
        pipeline.submit_event(Event("big.batch", str(i)))
    assert pipeline.flush(10)
    assert [len(records(r)) for r in peer.requests] == [6, 3, 3]
    assert len(peer.delivered_ids()) == 6 and pipeline.stats.sent == 6


def test_a_payload_spooled_for_another_protocol_is_refused_with_the_reason(peer: OtlpPeer) -> None:
    _, json_formatter = make_transport(
        {"transport": "otlp", "otlp_endpoint": peer.url, "otlp_protocol": "http/json"}
    )
    transport, formatter = make_transport({"transport": "otlp", "otlp_endpoint": peer.url})
    batch = make_records(2, formatter) + make_records(1, json_formatter, prefix="old")
    refused = transport.send(batch)
    assert [(record.action, reason.split(" (")[0]) for record, reason in refused or []] == [
        ("old.0", "encoded for http/json")
    ]
    assert len(peer.delivered_ids()) == 2
    transport.close()


def test_a_payload_that_is_no_otlp_envelope_is_refused_and_the_rest_sent(peer: OtlpPeer) -> None:
    from eventlog.plugin import Record

    transport, formatter = make_transport({"transport": "otlp", "otlp_endpoint": peer.url})
    good = make_records(2, formatter)
    short = Record("short", "bad.short", 1, b"\x01\x00")
    overlong = Record("overlong", "bad.overlong", 1, b"\x01\x00\x00\x00\x05\x00\x00\x00\x00ab")
    unknown = Record("unknown", "bad.kind", 1, b"\x07" + b"\x00" * 8)
    refused = transport.send([good[0], short, overlong, unknown, good[1]])
    assert [(record.id, reason) for record, reason in refused or []] == [
        ("short", "not an otlp payload: payload shorter than its header"),
        ("overlong", "not an otlp payload: not an eventlog-otlp payload"),
        ("unknown", "not an otlp payload: not an eventlog-otlp payload"),
    ]
    assert peer.delivered_ids() == [good[0].id, good[1].id]
    transport.close()


def test_a_reset_kept_alive_connection_is_reopened_at_once(peer: OtlpPeer) -> None:
    transport, formatter = make_transport({"transport": "otlp", "otlp_endpoint": peer.url})
    transport.send(make_records(1, formatter, prefix="one"))
    # The server resets the kept-alive connection (as a collector restarting does).
    peer.answer(Answer(reset=True))
    transport.send(make_records(1, formatter, prefix="two"))  # sent again on a new connection
    first, reset, again = peer.requests
    assert reset.body == again.body and reset.client_port != again.client_port
    assert first.client_port == reset.client_port  # the connection was kept alive until then
    assert len(peer.delivered_ids()) == 2
    # A fresh connection that fails is the engine's to retry: no second try inside the send.
    peer.answer(Answer(reset=True))
    transport.close()
    with pytest.raises(TransportError) as caught:
        transport.send(make_records(1, formatter, prefix="three"))
    assert caught.value.retryable and len(peer.requests) == 4
    transport.close()


def test_exports_are_not_held_back_by_nagles_algorithm(peer: OtlpPeer) -> None:
    import socket

    transport, _ = make_transport({"transport": "otlp", "otlp_endpoint": peer.url})
    transport.open()
    sock = transport.connection.sock  # type: ignore[attr-defined]
    # Headers and body go in two writes: the body must not wait for the headers' ACK.
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    transport.close()


# ---------------------------------------------------------------- spool and acks


def test_spooled_batches_wait_for_the_receiver_and_are_acked_once(tmp_path: Path) -> None:
    db = str(tmp_path / "spool.db")
    with OtlpPeer() as second:
        first = second
        url = first.url
        first.answer(*[Answer(503) for _ in range(100)])
        pipeline = configure(url, db=db, retry_backoff_max=0.2)
        for i in range(20):
            pipeline.submit_event(Event("spool.wait", str(i)))
        assert not pipeline.flush(1)  # not acknowledged: still in the spool
        pipeline.shutdown(timeout=0.5)
        assert first.delivered_ids() == []
        # The receiver comes back at the same address (rows are kept for the destination
        # they were logged for) and the next process sends them.
        second.stop()
        second.restart()
        pipeline = configure(second.url, db=db)
        assert pipeline.flush(10)
        delivered = second.delivered_ids()
        assert len(delivered) == 20 and len(set(delivered)) == 20
        assert {record.event_name for _, _, record in second.log_records()} == {"spool.wait"}
        assert pipeline.shutdown(timeout=3)
