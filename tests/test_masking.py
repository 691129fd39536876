"""eventlog._core.masking: secrets are hidden where they sit, never as pieces of other words."""

from __future__ import annotations

import socket
import threading

import pytest

from eventlog._core.errors import AuthError, ConnectError, RejectedError
from eventlog._core.masking import MIN_TOKEN_CHARS, SecretMask, mask_structure
from eventlog._core.options import Option
from eventlog.plugin.testing import make_transport

TOKEN = "tok-9f8e7d6c5b4a"


@pytest.mark.parametrize(
    "text",
    [
        "POST to http://127.0.0.1:8080/ failed: Connection refused",
        "POST to http://127.0.0.1:8080/ failed: Remote end closed connection without response",
        "connection to 127.0.0.1:24224 was closed by the peer",
    ],
)
def test_short_secrets_leave_ordinary_messages_untouched(text: str) -> None:
    assert SecretMask(["on", "p", "a", "pass", "refused"])(text) == text


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("GET http://u:p@host/x", "GET http://u:<hidden>@host/x"),
        ("see https://TOKEN@host:1/", "see https://<hidden>@host:1/"),
        ("http://u:p@ss@host/", "http://u:<hidden>@host/"),  # to the last @ of the authority
        ("mail bob@example.com", "mail bob@example.com"),  # not a URL: left alone
        ("Authorization: Basic dTpw", "Authorization: Basic <hidden>"),
        ('"authorization": "Bearer x"', '"authorization": "Bearer <hidden>"'),
        ("Proxy-Authorization=abc, next", "Proxy-Authorization=<hidden>, next"),
        ("?user=u&password=p&x=1", "?user=u&password=<hidden>&x=1"),
        ('{"shared_key": "k", "n": 1}', '{"shared_key": "<hidden>", "n": 1}'),
        ("X-Api-Key=abc", "X-Api-Key=<hidden>"),
        # Headers echoed by a server, whatever the value's length.
        (
            "400 Bad Request: X-Api-Key: k3y!\nX-Auth-Token: s3cr3t\nX-Team: blue",
            "400 Bad Request: X-Api-Key: <hidden>\nX-Auth-Token: <hidden>\nX-Team: blue",
        ),
        (
            "headers X-Api-Key: k, x-auth-token:s; Accept: */*",
            "headers X-Api-Key: <hidden>, x-auth-token:<hidden>; Accept: */*",
        ),
        ("Cookie: sessionid=abc; Host: h", "Cookie: <hidden>; Host: h"),
        ("Password: hunter2\nok", "Password: <hidden>\nok"),  # at the start of a line
        # The transports' own hints name secret settings in prose: left alone.
        ("asks for a user name and password: set EVENTLOG_FLUENT_USERNAME",) * 2,
        ("(check EVENTLOG_HTTP_TOKEN, _USER/_PASSWORD or _HEADERS): denied",) * 2,
    ],
)
def test_credentials_are_hidden_in_their_places(text: str, masked: str) -> None:
    assert mask_structure(text) == masked
    assert mask_structure(masked) == masked  # masking twice changes nothing


def test_long_secrets_are_hidden_as_whole_tokens_and_url_encoded() -> None:
    mask = SecretMask([TOKEN, "p@ss word!", None, {"X-Key": "k" * 12}])
    assert mask(f"server said: {TOKEN} is unknown") == "server said: <hidden> is unknown"
    assert mask(f"x{TOKEN}") == f"x{TOKEN}"  # part of another token: not this secret
    assert mask("body: p%40ss%20word%21 and p%40ss+word%21") == "body: <hidden> and <hidden>"
    assert mask("kkkkkkkkkkkk") == "<hidden>"


def test_for_options_takes_only_the_secret_options() -> None:
    options = [Option("token", str, secret=True), Option("tag", str)]
    mask = SecretMask.for_options(options, {"token": TOKEN, "tag": "app-12345678"})
    assert mask(f"{TOKEN} app-12345678") == "<hidden> app-12345678"


def test_scrub_keeps_the_error_type_and_its_retry_facts() -> None:
    mask = SecretMask([TOKEN])
    error = mask.scrub(ConnectError(f"denied {TOKEN}", retry_after=3.0))
    assert (type(error), str(error), error.retryable, error.retry_after) == (
        ConnectError,
        "denied <hidden>",
        True,
        3.0,
    )
    rejected = mask.scrub(RejectedError(f"Authorization: Bearer {TOKEN}"))
    assert str(rejected) == "Authorization: Bearer <hidden>" and not rejected.retryable


def test_secrets_shorter_than_the_minimum_are_not_matched_as_tokens() -> None:
    at, below = "x" * MIN_TOKEN_CHARS, "y" * (MIN_TOKEN_CHARS - 1)
    assert SecretMask([at, below])(f"{at} {below}") == f"<hidden> {below}"


# ---------------------------------------------------------------- a transport, a real peer


class QuotingForwardServer:
    """A real Forward peer on loopback that refuses the handshake, quoting ``reason``."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.server.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        msgpack = pytest.importorskip("msgpack")
        conn, _ = self.server.accept()
        with conn:
            conn.settimeout(10)
            conn.sendall(msgpack.packb(["HELO", {"nonce": b"n" * 16, "auth": b"", "keepalive": True}]))
            unpacker = msgpack.Unpacker()
            while not list(unpacker):  # the PING
                unpacker.feed(conn.recv(65536))
            conn.sendall(msgpack.packb(["PONG", False, self.reason, "server", ""]))
            conn.recv(1)

    def close(self) -> None:
        self.server.close()
        self.thread.join(10)


@pytest.mark.parametrize(
    ("key", "quoted"),
    [
        # Short keys: where a server puts them structurally.
        ("k", 'shared_key=k, {"shared_key": "k"}'),
        ("on", 'shared_key=on, {"shared_key": "on"}'),
        # A real key: anywhere, as a whole token.
        ("fluent-shared-key-0123", "shared_key=fluent-shared-key-0123, fluent-shared-key-0123"),
    ],
)
def test_fluent_refusal_quoting_the_key_does_not_show_it(key: str, quoted: str) -> None:
    pytest.importorskip("eventlog_fluent")
    peer = QuotingForwardServer(f"wrong key: {quoted}")
    try:
        transport, _ = make_transport(
            {"transport": "fluent", "host": "127.0.0.1", "port": peer.port, "fluent_shared_key": key}
        )
        with pytest.raises(AuthError) as caught:
            transport.open()
        transport.close()
    finally:
        peer.close()
    shown = (
        'shared_key=<hidden>, {"shared_key": "<hidden>"}'
        if len(key) < 8
        else ("shared_key=<hidden>, <hidden>")
    )
    assert str(caught.value) == (
        f"127.0.0.1:{peer.port} refused authentication: wrong key: {shown}; check EVENTLOG_FLUENT_SHARED_KEY"
    )


def test_the_engine_hides_a_plugin_transports_secret_in_every_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A third-party transport quoting its own secret: the engine masks what it logs."""
    import eventlog
    import eventlog.plugin
    from eventlog._config.config import Settings
    from eventlog._config.contracts import Transport, TransportSpec
    from eventlog._config.registry import Registry
    from eventlog._engine.pipeline import MAX_UNEXPECTED_FAILURES, Pipeline
    from eventlog._records.batch import Batch, Record
    from eventlog._records.event import Event

    token = "tok-5e4d3c2b1a09"

    class Leaky(Transport):
        def __init__(self) -> None:
            self.calls = 0

        def open(self) -> None:
            pass

        def send(self, batch: Batch) -> list[tuple[Record, str]] | None:
            self.calls += 1
            if self.calls == 1:
                raise ConnectError(f"POST https://u:{token}@127.0.0.1/ refused token {token}")
            if self.calls <= 1 + MAX_UNEXPECTED_FAILURES:
                raise RuntimeError(f"bug with token={token}")
            return [(record, f"refused: token {token} expired") for record in batch]

        def close(self) -> None:
            pass

    leaky = Leaky()

    class Plugin:
        @staticmethod
        @eventlog.plugin.hookimpl
        def eventlog_transports() -> list[TransportSpec]:
            return [
                TransportSpec(
                    "leaky",
                    lambda context: leaky,
                    options=(Option("token", str, secret=True),),
                    carries=frozenset({"lines"}),
                )
            ]

    registry = Registry(load_entry_points=False, extra_plugins=(Plugin,))
    settings = Settings.load({"transport": "leaky", "leaky_token": token}, environ={})
    pipeline = Pipeline(settings, registry)
    try:
        with caplog.at_level("WARNING", logger="eventlog"):
            pipeline.submit_event(Event("first"))
            assert pipeline.flush(20)
            pipeline.submit_event(Event("second"))
            assert pipeline.flush(20)
    finally:
        pipeline.shutdown(5)
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert token not in text
    assert (
        "sending failed, will retry: ConnectError: POST https://u:<hidden>@127.0.0.1/ "
        "refused token <hidden>" in text
    )
    assert "(not a TransportError) 5 times: bug with token=<hidden>" in text
    assert "refused: refused: token <hidden> expired" in text
    assert pipeline.stats.dropped_by_reason() == {"transport_bug": 1, "rejected": 1}


def test_a_secret_url_setting_hides_its_credentials_not_where_it_points() -> None:
    mask = SecretMask(["https://ops:hunter2hunter2@logs.example:8443/in?password=s3cr3t-s3cr3t&fmt=JSON"])
    assert mask("POST to https://logs.example:8443/in failed: refused") == (
        "POST to https://logs.example:8443/in failed: refused"
    )
    assert mask("server said hunter2hunter2 and s3cr3t-s3cr3t") == "server said <hidden> and <hidden>"
