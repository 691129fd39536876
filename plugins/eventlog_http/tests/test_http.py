"""The ``http`` transport against a real HTTP server on loopback (tests/peers/http_server.py).

Every test sends real events through a real pipeline and asserts what the
server received, event by event id.  Waits are only checked from below (the
server cannot have been asked again sooner than it said), never from above.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import socket
import ssl
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from tests.peers.clickhouse import ClickHouse
from tests.peers.http_server import Answer, HttpPeer

import eventlog
from eventlog import ConfigurationError, Event
from eventlog._core.errors import RejectedError
from eventlog._engine import prometheus
from eventlog._engine.pipeline import Pipeline
from eventlog._records.wire import make_id
from eventlog.plugin.testing import LocalCA, closed_port, make_local_ca, make_records, make_transport

pytestmark = pytest.mark.timeout(60)


def configure(url: str, **settings: object) -> Pipeline:
    """A pipeline posting to ``url``; one batch per flush() (long linger, no enrichers)."""
    base: dict[str, object] = {
        "transport": "http",
        "http_url": url,
        "enrichers": (),
        "linger_ms": 100,
        "batch_size": 100,
        "shutdown_timeout": 3,
    }
    base.update(settings)
    return eventlog.configure(**base)


def send(pipeline: Pipeline, targets: list[str], message: str = "hello") -> None:
    """Log one event per target, then wait until the batch is delivered or set aside."""
    for target in targets:
        pipeline.submit_event(Event("test.http", target, "test", message=f"{message} {target}"))
    assert pipeline.flush(30), "flush did not finish"


def targets(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{i}" for i in range(count)]


@pytest.fixture
def http_peer() -> Iterator[HttpPeer]:
    """A scriptable HTTP server on 127.0.0.1, stopped after the test."""
    with HttpPeer() as peer:
        yield peer


class LogLines:
    """Every log record (eventlog's own, urllib3's, requests') formatted as text, at DEBUG."""

    def __init__(self) -> None:
        self.records: list[logging.LogRecord] = []
        self._format = logging.Formatter("%(name)s %(levelname)s %(message)s")

    def text(self) -> str:
        return "\n".join(self._format.format(r) for r in self.records)


def own_warnings(lines: LogLines) -> list[str]:
    """eventlog's own warnings, without the pipeline name in front."""
    return [
        r.getMessage().partition("] ")[2]
        for r in lines.records
        if r.name.startswith("eventlog") and r.levelno == logging.WARNING
    ]


@pytest.fixture
def log_lines() -> Iterator[LogLines]:
    lines = LogLines()

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.records.append(record)

    handler = Keep(logging.DEBUG)
    root, own = logging.getLogger(), logging.getLogger("eventlog")
    old_level = root.level
    root.setLevel(logging.DEBUG)  # urllib3 and requests log through the root at DEBUG
    root.addHandler(handler)
    own.addHandler(handler)  # eventlog's logger does not propagate
    try:
        yield lines
    finally:
        root.removeHandler(handler)
        own.removeHandler(handler)
        root.setLevel(old_level)


# ---------------------------------------------------------------- one POST per batch


@pytest.mark.parametrize(
    ("format_name", "content_type"),
    [
        ("json", "application/x-ndjson"),
        ("json-array", "application/json"),
        ("logstash", "application/x-ndjson"),
    ],
)
def test_a_batch_is_one_post_with_the_formatters_body(
    http_peer: HttpPeer, format_name: str, content_type: str
) -> None:
    query = "?query=INSERT%20INTO%20t%20FORMAT%20JSONEachRow&x=1&x=2"
    pipeline = configure(http_peer.url + "ingest" + query, format=format_name)
    sent = targets("a", 10)
    send(pipeline, sent)
    [request] = http_peer.requests
    assert request.path == "/ingest" + query  # the query string goes through untouched
    assert request.headers["Content-Type"] == content_type
    assert request.headers["User-Agent"].startswith("eventlog-http/")
    events = request.events()
    assert [e["target"] for e in events] == sent
    assert len(set(request.ids())) == 10
    if format_name == "logstash":
        assert all("@timestamp" in e for e in events)
    assert pipeline.stats.sent == 10
    assert pipeline.stats.dropped_by_reason() == {}


def test_batches_reuse_one_pooled_connection(http_peer: HttpPeer) -> None:
    pipeline = configure(http_peer.url)
    for batch in range(3):
        send(pipeline, targets(f"b{batch}-", 5))
    assert len(http_peer.requests) == 3
    assert len({r.client_port for r in http_peer.requests}) == 1


# ---------------------------------------------------------------- retries


def test_503_then_200_is_retried_inside_the_send(http_peer: HttpPeer) -> None:
    http_peer.answer(Answer(503, body=b"busy"))
    pipeline = configure(http_peer.url)
    send(pipeline, targets("c", 5))
    first, second = http_peer.requests
    assert first.answer.status == 503 and second.answer.status == 200
    assert first.ids() == second.ids()  # the same batch again, same ids
    assert sorted(http_peer.delivered_ids()) == sorted(second.ids())
    assert pipeline.stats.sent == 5
    assert pipeline.stats.retries == 0  # urllib3's quick retry did it; the engine never backed off


def test_server_errors_past_the_quick_retries_go_to_the_engines_backoff(
    http_peer: HttpPeer, log_lines: LogLines
) -> None:
    http_peer.answer(*[Answer(503, body=b"still busy")] * 3)
    pipeline = configure(http_peer.url, http_retries=1)
    send(pipeline, targets("d", 4))
    statuses = [r.answer.status for r in http_peer.requests]
    assert statuses == [503, 503, 503, 200]  # 2 tries per send, the engine retried once
    assert len({tuple(r.ids()) for r in http_peer.requests}) == 1
    assert len(http_peer.delivered_ids()) == 4
    assert pipeline.stats.retries == 1
    assert pipeline.stats.sent == 4
    assert "got 503" in log_lines.text() and "still busy" in log_lines.text()


def test_429_with_a_short_retry_after_is_waited_out_inside_the_send(http_peer: HttpPeer) -> None:
    http_peer.answer(Answer(429, headers={"Retry-After": "1"}))
    pipeline = configure(http_peer.url)
    send(pipeline, targets("e", 3))
    first, second = http_peer.requests
    assert second.arrived - first.arrived >= 0.95  # not sooner than the server asked
    assert first.ids() == second.ids()
    assert len(http_peer.delivered_ids()) == 3
    assert pipeline.stats.retries == 0


def test_429_with_a_long_retry_after_is_left_to_the_engine(http_peer: HttpPeer) -> None:
    http_peer.answer(Answer(429, headers={"Retry-After": "2"}))
    pipeline = configure(http_peer.url, http_retry_after_max=0.5)
    send(pipeline, targets("f", 3))
    first, second = http_peer.requests  # no quick retry in between: exactly two requests
    assert second.arrived - first.arrived >= 1.95
    assert first.ids() == second.ids()
    assert pipeline.stats.retries == 1  # the engine waited, where shutdown can cut it short
    assert pipeline.stats.sent == 3


def test_a_400_sets_that_batch_aside_and_the_rest_flows(http_peer: HttpPeer, log_lines: LogLines) -> None:
    http_peer.answer(Answer(200), Answer(400, body=b'{"error": "field tgType: unknown type"}'))
    pipeline = configure(http_peer.url)
    good1, bad, good2 = targets("g", 3), targets("h", 4), targets("i", 2)
    send(pipeline, good1)
    send(pipeline, bad)
    send(pipeline, good2)
    assert [r.answer.status for r in http_peer.requests] == [200, 400, 200]  # no retry storm
    refused = http_peer.requests[1]
    assert [e["target"] for e in refused.events()] == bad
    delivered = http_peer.delivered_ids()
    assert delivered == http_peer.requests[0].ids() + http_peer.requests[2].ids()
    assert not set(delivered) & set(refused.ids())
    assert pipeline.stats.dropped_by_reason() == {"rejected": 4}
    assert pipeline.stats.sent == 5
    warnings = [r.getMessage() for r in log_lines.records if r.name.startswith("eventlog")]
    said = [w for w in warnings if "400" in w]
    assert len(said) == 1 and "field tgType: unknown type" in said[0]


def test_a_slow_answer_times_out_and_the_batch_is_sent_again(
    http_peer: HttpPeer, log_lines: LogLines
) -> None:
    http_peer.answer(Answer(200, delay=2.0))
    pipeline = configure(http_peer.url, http_read_timeout=0.5, http_retries=0)
    send(pipeline, targets("j", 3))
    first, second = http_peer.requests
    assert first.ids() == second.ids()  # at-least-once: the slow server got it twice, same ids
    assert pipeline.stats.retries == 1
    assert pipeline.stats.sent == 3
    assert "no answer within 0.5s" in log_lines.text()


def test_a_reset_connection_is_retried(http_peer: HttpPeer) -> None:
    http_peer.answer(Answer(reset=True))
    pipeline = configure(http_peer.url)
    send(pipeline, targets("k", 6))
    first, second = http_peer.requests
    assert first.answer.reset and second.answer.status == 200
    assert first.ids() == second.ids()
    assert len(http_peer.delivered_ids()) == 6
    assert pipeline.stats.sent == 6


def test_an_unreachable_server_keeps_the_events_and_says_why(log_lines: LogLines) -> None:
    dead = ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: None)  # type: ignore[arg-type]
    port = dead.server_address[1]
    dead.server_close()  # the port is now closed: connections are refused
    pipeline = configure(f"http://127.0.0.1:{port}/x", http_retries=0)
    pipeline.submit_event(Event("test.http", "l0", "test"))
    assert not pipeline.flush(1.0)
    assert pipeline.stats.sent == 0 and pipeline.stats.retries >= 1
    assert pipeline.stats.dropped_by_reason() == {}
    assert f"POST to http://127.0.0.1:{port}/x failed" in log_lines.text()
    assert "Connection refused" in log_lines.text()
    pipeline.shutdown(0.1)  # nothing will take the event: not the fixture's 2 s to find that out


# ---------------------------------------------------------------- bodies


def test_gzip_bodies_decode_to_exactly_the_events_sent(http_peer: HttpPeer) -> None:
    pipeline = configure(http_peer.url, http_gzip=True)
    sent = targets("m", 50)
    send(pipeline, sent, message="h\u00e9llo \u2713 " + "x" * 200)
    [request] = http_peer.requests
    assert request.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(request.raw_body) == request.body
    assert len(request.raw_body) < len(request.body) / 5
    events = request.events()
    assert [e["target"] for e in events] == sent
    assert events[0]["message"] == "h\u00e9llo \u2713 " + "x" * 200 + " m0"


def test_a_batch_above_max_body_bytes_is_split_in_order(http_peer: HttpPeer) -> None:
    pipeline = configure(http_peer.url, http_max_body_bytes=2000, format="json-array")
    sent = targets("n", 30)
    send(pipeline, sent, message="y" * 200)
    assert len(http_peer.requests) > 1
    assert all(len(r.body) <= 2000 for r in http_peer.requests)
    received = [e["target"] for r in http_peer.requests for e in r.events()]
    assert received == sent
    assert pipeline.stats.sent == 30


def test_one_event_larger_than_max_body_bytes_is_set_aside_alone(http_peer: HttpPeer) -> None:
    pipeline = configure(http_peer.url, http_max_body_bytes=1000)
    pipeline.submit_event(Event("test.http", "small0", "test"))
    pipeline.submit_event(Event("test.http", "huge", "test", message="z" * 5000))
    pipeline.submit_event(Event("test.http", "small1", "test"))
    assert pipeline.flush(10)
    received = [e["target"] for r in http_peer.requests for e in r.events()]
    assert received == ["small0", "small1"]
    assert pipeline.stats.dropped_by_reason() == {"rejected": 1}


def test_a_413_splits_the_batch_until_the_server_takes_it(http_peer: HttpPeer) -> None:
    http_peer.answer(Answer(413), Answer(200), Answer(413), Answer(200), Answer(413))
    pipeline = configure(http_peer.url)
    sent = targets("o", 8)
    send(pipeline, sent)
    sizes = [(len(r.ids()), r.answer.status) for r in http_peer.requests]
    # 8 refused -> halves of 4: the first taken, the second refused -> 2 taken, 2 refused -> 1, 1
    assert sizes == [(8, 413), (4, 200), (4, 413), (2, 200), (2, 413), (1, 200), (1, 200)]
    assert sorted(http_peer.delivered_ids()) == sorted(http_peer.requests[0].ids())
    assert pipeline.stats.sent == 8


# ---------------------------------------------------------------- auth and secrets

TOKEN = "tok-9f8e7d6c5b4a-secret"
PASSWORD = "pw-Zq81!x-secret"
API_KEY = "key-0a1b2c3d4e-secret"


def test_bearer_token_and_headers_from_the_environment_arrive(
    http_peer: HttpPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_APP_TOKEN", TOKEN)
    monkeypatch.setenv("MY_APP_KEY", API_KEY)
    monkeypatch.setenv("EVENTLOG_TRANSPORT", "http")
    monkeypatch.setenv("EVENTLOG_HTTP_URL", http_peer.url)
    monkeypatch.setenv("EVENTLOG_HTTP_TOKEN", "${MY_APP_TOKEN}")
    monkeypatch.setenv("EVENTLOG_HTTP_HEADERS", "X-Api-Key: ${MY_APP_KEY}; X-Tenant: acme")
    pipeline = eventlog.configure(enrichers=())
    send(pipeline, ["p0"])
    headers = http_peer.requests[0].headers
    assert headers["Authorization"] == f"Bearer {TOKEN}"
    assert headers["X-Api-Key"] == API_KEY
    assert headers["X-Tenant"] == "acme"


def test_basic_auth_arrives(http_peer: HttpPeer) -> None:
    pipeline = configure(http_peer.url, http_user="ingest", http_password=PASSWORD)
    send(pipeline, ["q0"])
    import base64

    expected = base64.b64encode(f"ingest:{PASSWORD}".encode()).decode()
    assert http_peer.requests[0].headers["Authorization"] == f"Basic {expected}"


def test_secrets_appear_in_no_log_error_or_metric(
    http_peer: HttpPeer,
    log_lines: LogLines,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MY_APP_KEY", API_KEY)
    # The server echoes the credentials back in its error body, as some do.
    echo = f"denied: Authorization=Bearer {TOKEN} X-Api-Key={API_KEY}".encode()
    http_peer.answer(Answer(401, body=echo), Answer(503, body=echo), Answer(503, body=echo))
    pipeline = configure(
        http_peer.url + "?user=ingest",
        http_token=TOKEN,
        http_headers={"X-Api-Key": "${MY_APP_KEY}"},
        http_retries=0,
    )
    send(pipeline, ["r0"])  # 401: set aside
    send(pipeline, ["r1"])  # 503, engine retry 503, then 200
    assert http_peer.requests[0].headers["X-Api-Key"] == API_KEY
    assert pipeline.stats.dropped_by_reason() == {"rejected": 1}
    assert pipeline.stats.sent == 1
    # Wrong settings fail at configure time without showing the value either.
    for bad in ({"http_token": ""}, {"http_headers": f"X-Api-Key {API_KEY}"}, {"http_password": PASSWORD}):
        with pytest.raises(ConfigurationError) as caught:
            configure(http_peer.url, **bad)
        log_lines.records.append(logging.makeLogRecord({"msg": str(caught.value)}))
    text = log_lines.text()
    assert "got 401" in text and "got 503" in text and "denied" in text  # the reasons are there
    out, err = capfd.readouterr()
    transport = pipeline._sender.factory()
    for where in (text, out, err, prometheus.render(), repr(transport.config)):  # type: ignore[attr-defined]
        for secret in (TOKEN, PASSWORD, API_KEY):
            assert secret not in where


# Secrets as short as these are ordinary words and letters: they are hidden where they sit
# (URL user info, the Authorization header), never as substrings of other words.
SHORT_SECRETS = ("on", "p", "a")


def as_word(secret: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w]){re.escape(secret)}(?![\w])")


def test_a_short_password_leaves_a_refused_connection_readable(log_lines: LogLines) -> None:
    port = closed_port()
    pipeline = configure(f"http://127.0.0.1:{port}/", http_user="u", http_password="on", http_retries=0)
    pipeline.submit_event(Event("test.http", "m0", "test"))
    assert not pipeline.flush(1.0)
    assert own_warnings(log_lines) == [
        f"sending failed, will retry: ConnectError: POST to http://127.0.0.1:{port}/ failed: "
        "Connection refused"
    ]
    assert not any(as_word("on").search(r.getMessage()) for r in log_lines.records)
    pipeline.shutdown(0.1)  # nothing will take the event: not the fixture's 2 s to find that out


class ClosesWithoutAnswer:
    """A real TCP peer that reads each request and closes without a response."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.server.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    conn.recv(65536)
                except OSError:
                    pass

    def close(self) -> None:
        self.server.close()
        self.thread.join(5)


def test_credentials_in_the_url_leave_a_closed_connection_readable(log_lines: LogLines) -> None:
    peer = ClosesWithoutAnswer()
    try:
        pipeline = configure(f"http://u:p@127.0.0.1:{peer.port}/", http_retries=0)
        pipeline.submit_event(Event("test.http", "m1", "test"))
        assert not pipeline.flush(1.0)
        warnings = own_warnings(log_lines)
    finally:
        peer.close()
    # The close races the request: the peer's end shows as a closed connection or a reset.
    ways = ("Remote end closed connection without response", "Connection reset by peer")
    assert warnings in [
        [f"sending failed, will retry: ConnectError: POST to http://127.0.0.1:{peer.port}/ failed: {way}"]
        for way in ways
    ]
    pipeline.shutdown(0.1)  # nothing will take the event: not the fixture's 2 s to find that out


@pytest.mark.parametrize("password", SHORT_SECRETS)
def test_short_secrets_echoed_by_the_server_are_hidden_where_they_sit(
    http_peer: HttpPeer, log_lines: LogLines, password: str
) -> None:
    import base64

    basic = base64.b64encode(f"u:{password}".encode()).decode()
    echo = f"denied http://u:{password}@h/ Authorization: Basic {basic} password={password}"
    http_peer.answer(Answer(401, body=echo.encode()), Answer(401, body=echo.encode()))
    settings = {
        "transport": "http",
        "http_url": http_peer.url,
        "http_user": "u",
        "http_password": password,
        "http_retries": 0,
    }
    transport, formatter = make_transport(settings)
    with pytest.raises(RejectedError) as caught:
        transport.send(make_records(1, formatter))
    transport.close()
    expected = (
        f"POST to {http_peer.url} got 401 Unauthorized (check EVENTLOG_HTTP_TOKEN, "
        "_USER/_PASSWORD or _HEADERS): denied http://u:<hidden>@h/ Authorization: Basic "
        "<hidden> password=<hidden>"
    )
    assert str(caught.value) == f"1 events refused: http 401: {expected}"
    pipeline = configure(http_peer.url, http_user="u", http_password=password, http_retries=0)
    send(pipeline, ["m2"])
    assert pipeline.stats.dropped_by_reason() == {"rejected": 1}
    [warning] = own_warnings(log_lines)
    assert warning.endswith(f"refused: http 401: {expected}")
    own = [r.getMessage() for r in log_lines.records if r.name.startswith("eventlog")]
    for text in (*own, str(caught.value), prometheus.render()):
        assert basic not in text
        assert f":{password}@" not in text and f"={password}" not in text
        assert "<hidden>n" not in text and "n<hidden>" not in text  # no word cut apart


# ---------------------------------------------------------------- configuration


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({}, "EVENTLOG_HTTP_URL"),
        ({"http_url": "ftp://127.0.0.1/"}, "http:// or https://"),
        ({"http_url": "http:///path"}, "no host"),
        ({"http_url": "http://h/", "http_read_timeout": 0}, "http_read_timeout.*more than 0"),
        ({"http_url": "http://h/", "http_retries": -1}, "0 or more"),
        ({"http_url": "http://h/", "http_max_body_bytes": "lots"}, "http_max_body_bytes"),
        ({"http_url": "http://h/", "http_token": "t", "http_user": "u"}, "bearer or basic"),
        ({"http_url": "http://h/", "http_password": "p"}, "without EVENTLOG_HTTP_USER"),
        ({"http_url": "http://h/", "http_tls_ca": "/nonexistent/ca.pem"}, "cannot load TLS"),
        ({"http_url": "http://h/", "http_token": "${EVENTLOG_TEST_UNSET}"}, "EVENTLOG_TEST_UNSET is not set"),
        ({"http_url": "http://h/", "http_urll": "x"}, "did you mean http_url"),
    ],
)
def test_bad_settings_fail_at_configure_time(settings: dict[str, object], says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        eventlog.configure(transport="http", **settings)


def test_credentials_in_the_url_become_basic_auth_and_leave_the_url(
    http_peer: HttpPeer, log_lines: LogLines
) -> None:
    url = http_peer.url.replace("http://", f"http://ingest:{PASSWORD}@") + "db?x=1"
    http_peer.answer(Answer(400, body=b"no"))
    pipeline = configure(url)
    send(pipeline, ["s0"])
    [request] = http_peer.requests
    assert request.path == "/db?x=1"
    assert request.headers["Authorization"].startswith("Basic ")
    assert f"{http_peer.url}db got 400" in log_lines.text()
    assert PASSWORD not in log_lines.text()
    with pytest.raises(ConfigurationError, match="invalid port") as caught:
        configure(f"http://ingest:{PASSWORD}@127.0.0.1:99999/?password={PASSWORD}")
    assert PASSWORD not in str(caught.value)


# ---------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def local_ca(tmp_path_factory: pytest.TempPathFactory) -> LocalCA:
    """A CA made for this module, and a server certificate it signed for 127.0.0.1."""
    return make_local_ca(tmp_path_factory.mktemp("tls"))


def https_peer(ca: LocalCA, *, client_ca: Path | None = None) -> HttpPeer:
    """An HttpPeer behind TLS; with ``client_ca`` it also demands a client certificate."""
    peer = HttpPeer()
    context = ca.server_context()
    if client_ca is not None:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(client_ca)
    peer.server.socket = context.wrap_socket(peer.server.socket, server_side=True)
    peer.url = peer.url.replace("http://", "https://")
    return peer


def test_tls_is_verified_by_default_and_trusts_the_given_ca(local_ca: LocalCA, log_lines: LogLines) -> None:
    with https_peer(local_ca) as peer:
        pipeline = configure(peer.url, http_retries=0)
        pipeline.submit_event(Event("test.http", "t0", "test"))
        assert not pipeline.flush(1.0)  # a certificate from an unknown CA is refused
        assert peer.requests == []
        assert own_warnings(log_lines) == [
            f"sending failed, will retry: ConnectError: TLS with {peer.url} failed: the "
            "server's certificate is not signed by a CA we trust (CERTIFICATE_VERIFY_FAILED: "
            "unable to get local issuer certificate); set EVENTLOG_HTTP_TLS_CA to the CA "
            "certificate that signed it"
        ]
        eventlog.shutdown(timeout=1)
        pipeline = configure(peer.url, http_tls_ca=str(local_ca.ca_cert))
        send(pipeline, ["t1"])
        assert [e["target"] for e in peer.requests[0].events()] == ["t1"]


def test_a_certificate_for_another_name_says_so_and_shows_both(tmp_path: Path, log_lines: LogLines) -> None:
    ca = make_local_ca(tmp_path, ["localhost"])
    with https_peer(ca) as peer:
        pipeline = configure(peer.url, http_retries=0, http_tls_ca=str(ca.ca_cert))
        pipeline.submit_event(Event("test.http", "t0", "test"))
        assert not pipeline.flush(1.0)
        assert peer.requests == []
    assert own_warnings(log_lines) == [
        f"sending failed, will retry: ConnectError: TLS with {peer.url} failed: host name "
        "mismatch: the server's certificate names localhost, not 127.0.0.1; connect to a name "
        "it lists, or give the server a certificate for 127.0.0.1"
    ]
    pipeline.shutdown(0.1)  # nothing will take the event: not the fixture's 2 s to find that out


def test_a_client_certificate_is_presented_for_mutual_tls(local_ca: LocalCA) -> None:
    ca, cert, key = local_ca.ca_cert, local_ca.server_cert, local_ca.server_key
    with https_peer(local_ca, client_ca=ca) as peer:
        pipeline = configure(peer.url, http_tls_ca=str(ca), http_retries=0)
        pipeline.submit_event(Event("test.http", "u0", "test"))
        assert not pipeline.flush(1.0)  # no client certificate: the server refuses
        eventlog.shutdown(timeout=1)
        pipeline = configure(peer.url, http_tls_ca=str(ca), http_tls_cert=str(cert), http_tls_key=str(key))
        send(pipeline, ["u1"])
        assert [e["target"] for r in peer.requests for e in r.events()] == ["u1"]


# ---------------------------------------------------------------- ClickHouse

CH_COLUMNS = (
    "id String, tstamp UInt64, action String, target String, tgType String, "
    "message String, tags Array(String), thread String"
)


def clickhouse_events(prefix: str, count: int) -> tuple[list[Event], list[dict[str, object]]]:
    """Events with their ids set now, and the rows they must become."""
    events, rows = [], []
    for i in range(count):
        event = Event(
            "ch.insert",
            f"{prefix}{i}",
            "test",
            message=f'h\u00e9llo \u2713 "quoted" back\\slash\ttab {i}',
            tags=["http", f"n{i}"],
        )
        event.id = make_id(event.time_ns)
        events.append(event)
        rows.append(
            {
                "id": event.id,
                "tstamp": event.time_ns // 1_000_000,
                "action": "ch.insert",
                "target": f"{prefix}{i}",
                "tgType": "test",
                "message": event.message,
                "tags": ["http", f"n{i}"],
                "thread": threading.current_thread().name,
            }
        )
    return events, rows


def clickhouse_rows(clickhouse: ClickHouse, table: str) -> list[dict[str, object]]:
    text = clickhouse.query(
        f"SELECT * FROM {table} ORDER BY id FORMAT JSONEachRow",
        output_format_json_quote_64bit_integers="0",
    )
    return [json.loads(line) for line in text.splitlines()]


def insert_url(clickhouse: ClickHouse, table: str) -> str:
    query = urllib.parse.urlencode({"query": f"INSERT INTO {table} FORMAT JSONEachRow"})
    return f"{clickhouse.url}?{query}"


@pytest.mark.peer("clickhouse")
@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_clickhouse_stores_json_rows_equal_to_the_events(clickhouse: ClickHouse, compress: bool) -> None:
    table = f"default.http_events_{'gzip' if compress else 'plain'}"
    clickhouse.query(f"CREATE TABLE {table} ({CH_COLUMNS}) ENGINE = MergeTree ORDER BY id")
    # Basic auth as ClickHouse's own user "default" (no password in the Debian config).
    pipeline = configure(insert_url(clickhouse, table), http_gzip=compress, http_user="default")
    events, rows = clickhouse_events("row", 40)
    for event in events:
        pipeline.submit_event(event)
    assert pipeline.flush(30)
    assert pipeline.stats.sent == 40
    assert clickhouse_rows(clickhouse, table) == sorted(rows, key=lambda r: str(r["id"]))


@pytest.mark.peer("clickhouse")
def test_clickhouse_refusing_a_batch_sets_it_aside_and_later_batches_land(
    clickhouse: ClickHouse, log_lines: LogLines
) -> None:
    table = "default.http_events_refused"
    clickhouse.query(f"CREATE TABLE {table} ({CH_COLUMNS}) ENGINE = Memory")
    pipeline = configure(insert_url(clickhouse, table))
    # A "fields" map has no column: ClickHouse 18.16 answers 500 with code 117.
    bad = [Event("ch.insert", f"bad{i}", "test", fields={"n": i}) for i in range(3)]
    for event in bad:
        pipeline.submit_event(event)
    assert pipeline.flush(30)
    good, rows = clickhouse_events("good", 5)
    for event in good:
        pipeline.submit_event(event)
    assert pipeline.flush(30)
    assert clickhouse_rows(clickhouse, table) == sorted(rows, key=lambda r: str(r["id"]))
    assert pipeline.stats.dropped_by_reason() == {"rejected": 3}
    assert pipeline.stats.retries == 0  # no retry storm against a server that said no
    assert "Code: 117" in log_lines.text()


def test_query_string_passwords_stay_out_of_eventlogs_own_messages(
    http_peer: HttpPeer, log_lines: LogLines
) -> None:
    http_peer.answer(Answer(401, body=f"wrong password {PASSWORD}".encode()))  # echoed back
    pipeline = configure(http_peer.url + f"?user=ingest&password={PASSWORD}", http_retries=0)
    send(pipeline, ["q0"])
    assert pipeline.stats.dropped_by_reason() == {"rejected": 1}
    own = "\n".join(r.getMessage() for r in log_lines.records if r.name.startswith("eventlog"))
    assert "got 401" in own
    assert PASSWORD not in own
