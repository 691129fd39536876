"""The Django middleware, driven by Django's test clients and by a real runserver process.

Events travel the real pipeline (tcp transport, json format) to a real
LineReceiver; assertions are on what arrived, down to the raw bytes for secrets.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import eventlog
from eventlog._builtin.receiver import LineReceiver
from eventlog._core.errors import ConfigurationError
from tests.peers import free_port, missing

try:
    import django
except ImportError:  # pragma: no cover - the nox session installs it
    django = None

TESTS = Path(__file__).parent
PASSWORD = "correct-horse-battery-staple"
BEARER = "Bearer sekrit-bearer-token-123"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Django set up with tests/djangoproject, a migrated SQLite file and the user alice."""
    if django is None:
        missing("django", "pip install django")
    db = tmp_path_factory.mktemp("djangoproject") / "db.sqlite3"
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.djangoproject.settings"
    os.environ["DJANGOPROJECT_DB"] = str(db)
    django.setup()
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.core.management import call_command

    settings.DATABASES["default"]["NAME"] = str(db)  # in case settings were read before
    call_command("migrate", verbosity=0)
    User.objects.create_user("alice", password=PASSWORD)
    # What the LOGGING setting does in the runserver test (see settings.py).
    handler = eventlog.EventHandler()
    views_log = logging.getLogger("djangoproject")
    views_log.addHandler(handler)
    views_log.setLevel(logging.INFO)
    views_log.propagate = False
    yield db
    views_log.removeHandler(handler)


@pytest.fixture
def events(project: Path, receiver: LineReceiver) -> LineReceiver:
    """The default pipeline sends to the receiver, at once."""
    eventlog.configure(transport="tcp", host="127.0.0.1", port=receiver.port, linger_ms=0)
    return receiver


def received(receiver: LineReceiver, count: int) -> list[dict[str, Any]]:
    """Flush, then exactly ``count`` events as the receiver parsed them."""
    assert eventlog.flush(10)
    assert receiver.wait_for(count, 10), f"only {len(receiver.lines)} of {count} events arrived"
    got = receiver.events()
    assert len(got) == count, [e["action"] for e in got]
    return got


def by_action(got: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {}
    for event in got:
        assert event["action"] not in table, f"two {event['action']} events"
        table[event["action"]] = event
    return table


def logged_in_client() -> Any:
    from django.test import Client

    client = Client(HTTP_USER_AGENT="eventlog-test/1.0")
    response = client.post("/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 200
    return client


def session_digest_of(client: Any) -> str:
    from eventlog.django import session_digest

    key = client.cookies["sessionid"].value
    assert key
    return session_digest(key)


# ---------------------------------------------------------------- the request event


def test_request_event_carries_every_field(events: LineReceiver) -> None:
    client = logged_in_client()
    response = client.get(
        "/users/42/",
        {"page": "2", "token": "query-secret-77"},
        headers={
            "Referer": "https://shop.example/from?x=1&api_key=ref-secret-88",
            "X-Forwarded-For": "198.51.100.7",
            "X-Request-ID": "req-42",
            "Authorization": BEARER,
        },
    )
    assert response.status_code == 200
    assert response["X-Request-ID"] == "req-42"
    got = by_action(received(events, 4))  # login request; view event, view log, request
    request = got["http.get"]
    fields = request.pop("fields")
    duration = fields.pop("durationMs")
    assert isinstance(duration, float) and duration >= 0
    assert fields == {
        "path": "/users/42/",
        "status": 200,
        "responseBytes": len(b"user 42"),
        "view": "tests.djangoproject.views.user_detail",
        "remoteAddr": "198.51.100.7",
        "userAgent": "eventlog-test/1.0",
        "referer": "https://shop.example/from?x=1&api_key=[redacted]",
        "query.page": "2",
        "query.token": "[redacted]",
    }
    assert isinstance(request.pop("id"), str)
    tstamp = request.pop("tstamp")
    assert abs(tstamp - time.time() * 1000) < 60_000
    assert request == {
        "action": "http.get",
        "target": "/users/<int:user_id>/",
        "tgType": "route",
        "level": 20,
        "levelName": "INFO",
        "user": "alice",
        "session": session_digest_of(client),
        "reqId": "req-42",
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "thread": threading.current_thread().name,  # the test client serves in this thread
    }
    # The login request before it: the form body, with the password redacted.
    login = got["http.post"]
    assert login["target"] == "/login/"
    assert login["message"] == "username=alice&password=[redacted]"
    assert login["fields"]["status"] == 200
    # Nobody was logged in when it arrived; the event names who logged in.
    assert (login["user"], login["session"]) == ("alice", session_digest_of(client))


def test_request_id_is_made_when_none_comes_in(events: LineReceiver) -> None:
    from django.test import Client

    response = Client().get("/users/1/", headers={"X-Request-ID": "forged\n"})
    made = response["X-Request-ID"]
    assert len(made) == 32 and made != "forged\n"
    got = by_action(received(events, 3))
    assert {e["reqId"] for e in got.values()} == {made}
    assert "user" not in got["http.get"] and "session" not in got["http.get"]
    assert got["http.get"]["fields"]["remoteAddr"] == "127.0.0.1"


def test_unresolved_path_has_no_route_target(events: LineReceiver) -> None:
    from django.test import Client

    assert Client().get("/no/such/page/").status_code == 404
    (request,) = received(events, 1)
    assert request["action"] == "http.get"
    assert "target" not in request
    assert request["fields"]["path"] == "/no/such/page/"
    assert request["fields"]["status"] == 404
    assert request["level"] == 30


# ---------------------------------------------------------------- association


def test_events_in_a_sync_view_carry_user_session_and_request_id(events: LineReceiver) -> None:
    client = logged_in_client()
    client.get("/users/7/", headers={"X-Request-ID": "sync-7"})
    got = by_action(received(events, 4))
    expected = {"user": "alice", "session": session_digest_of(client), "reqId": "sync-7"}
    for action in ("user.view", "log.info", "http.get"):
        assert {k: got[action].get(k) for k in expected} == expected, action
    assert got["user.view"]["target"] == "7"
    assert got["log.info"]["message"] == "viewed user 7"


def test_events_in_a_thread_with_copied_context_carry_it(events: LineReceiver) -> None:
    client = logged_in_client()
    client.get("/thread/", headers={"X-Request-ID": "thread-1"})
    got = by_action(received(events, 4))
    expected = {"user": "alice", "session": session_digest_of(client), "reqId": "thread-1"}
    for action in ("thread.work", "log.info", "http.get"):
        assert {k: got[action].get(k) for k in expected} == expected, action
    assert got["log.info"]["thread"] != "MainThread"


def test_async_client_async_and_sync_views_carry_the_context(events: LineReceiver) -> None:
    from django.test import AsyncClient

    sync_client = logged_in_client()
    client = AsyncClient()
    client.cookies = sync_client.cookies

    async def visit() -> None:
        response = await client.get(
            "/async/widget/", headers={"X-Request-ID": "async-1", "User-Agent": "async-test/2.0"}
        )
        assert response.status_code == 200
        response = await client.get("/users/9/", headers={"X-Request-ID": "async-2"})
        assert response.status_code == 200

    asyncio.run(visit())
    got = received(events, 7)
    digest = session_digest_of(sync_client)
    async_view = [e for e in got if e.get("reqId") == "async-1"]
    sync_view = [e for e in got if e.get("reqId") == "async-2"]
    assert sorted(e["action"] for e in async_view) == ["async.view", "http.get", "log.info"]
    assert sorted(e["action"] for e in sync_view) == ["http.get", "log.info", "user.view"]
    for event in async_view + sync_view:
        assert (event["user"], event["session"]) == ("alice", digest), event["action"]
    request = next(e for e in async_view if e["action"] == "http.get")
    assert request["target"] == "/async/<slug:name>/"
    assert request["fields"]["userAgent"] == "async-test/2.0"
    assert request["fields"]["status"] == 200
    assert request["fields"]["responseBytes"] == len(b"async widget")


# ---------------------------------------------------------------- secrets


def test_secrets_never_reach_the_receiver(events: LineReceiver) -> None:
    client = logged_in_client()
    session_key = client.cookies["sessionid"].value
    document = {
        "user": "alice",
        "nested": {"api_key": "json-secret-11", "items": [{"token": "json-secret-22"}]},
        "note": "hello",
    }
    client.post(
        "/echo/",
        json.dumps(document),
        content_type="application/json",
        headers={"Authorization": BEARER},
    )
    client.post(
        "/echo/",
        "password=text-secret-33&comment=hi",
        content_type="text/plain",
        headers={"Authorization": BEARER},
    )
    got = received(events, 3)
    raw = b"\n".join(events.lines)
    for secret in (
        PASSWORD,
        "sekrit-bearer-token",
        session_key,
        "json-secret-11",
        "json-secret-22",
        "text-secret-33",
    ):
        assert secret.encode() not in raw, secret
    assert b"Authorization" not in raw and b"Cookie" not in raw
    posts = [e for e in got if e["action"] == "http.post" and e["target"] == "/echo/"]
    assert [e["message"] for e in posts] == [
        '{"user":"alice","nested":{"api_key":"[redacted]","items":[{"token":"[redacted]"}]},"note":"hello"}',
        "password=[redacted]&comment=hi",
    ]


def test_short_keys_named_pairs_oauth_codes_path_tokens_and_referer_users_are_redacted(
    events: LineReceiver,
) -> None:
    from django.test import Client

    client = Client()
    document = {
        "pass": "pass-secret-1",
        "otp": "otp-secret-2",
        "pin": "pin-secret-3",
        "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.jwt-secret-4",
        "shipping": "express",
        "fields": [{"name": "password", "value": "named-secret-5"}, {"name": "note", "value": "visible"}],
    }
    client.post("/echo/", json.dumps(document), content_type="application/json")
    client.post("/echo/", {"pass": "form-secret-6", "pin": "form-secret-7", "zip_code": "12345"})
    client.get(
        "/oauth/callback/?code=oauth-secret-8&state=st-1&sig=sig-secret-9",
        headers={"Referer": "https://bob:referer-secret-10@shop.example/from?x=1"},
    )
    reset_token = "c4k2xs-8f2c1b6a9d0e1f2a3b4c5d6e"  # Django's password reset token shape
    client.get(f"/reset/MQ/{reset_token}/")
    got = received(events, 4)
    raw = b"\n".join(events.lines)
    for n in range(1, 11):
        assert f"secret-{n}".encode() not in raw, n
    assert reset_token.encode() not in raw
    json_post, form_post, callback, reset = got
    assert json.loads(json_post["message"]) == {
        "pass": "[redacted]",
        "otp": "[redacted]",
        "pin": "[redacted]",
        "jwt": "[redacted]",
        "shipping": "express",
        "fields": [{"name": "password", "value": "[redacted]"}, {"name": "note", "value": "visible"}],
    }
    assert form_post["message"] == "pass=[redacted]&pin=[redacted]&zip_code=12345"
    fields = callback["fields"]
    assert (fields["query.code"], fields["query.sig"], fields["query.state"]) == (
        "[redacted]",
        "[redacted]",
        "st-1",
    )
    assert fields["referer"] == "https://[redacted]@shop.example/from?x=1"
    assert fields["path"] == "/oauth/callback/"
    assert reset["fields"]["path"] == "/reset/MQ/[redacted]/"


def test_users_extend_the_redaction_rules(events: LineReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    from django.test import Client

    monkeypatch.setenv("EVENTLOG_DJANGO_REDACT_EXTRA_KEYS", "iban,=ssn")
    Client().post("/echo/", {"iban": "DE00-secret-1", "ssn": "ssn-secret-2", "ssn_kind": "us", "pass": "p-3"})
    (post,) = received(events, 1)
    assert post["message"] == "iban=[redacted]&ssn=[redacted]&ssn_kind=us&pass=[redacted]"  # defaults stay


def test_body_is_capped(events: LineReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    from django.test import Client

    monkeypatch.setenv("EVENTLOG_DJANGO_MAX_BODY", "20")
    Client().post("/echo/", {"comment": "x" * 100})
    (request,) = received(events, 1)
    assert request["message"] == "comment=xxxxxxxxxxxx...[88 more characters]"


def test_skip_paths_no_body_and_no_user(events: LineReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    from django.test import override_settings

    monkeypatch.setenv("EVENTLOG_DJANGO_SKIP_PATHS", "/count/, /thread/")
    monkeypatch.setenv("EVENTLOG_DJANGO_LOG_BODY", "false")
    monkeypatch.setenv("EVENTLOG_DJANGO_USER_FIELD", "none")
    with override_settings(EVENTLOG_DJANGO_LOG_BODY=True):  # the environment wins
        client = logged_in_client()
        client.get("/count/")
        client.post("/echo/", {"comment": "not logged"})
    got = received(events, 3)  # login, echo, and the skipped request's counter at flush
    assert sorted(e["action"] for e in got) == ["djangoproject.hit", "http.post", "http.post"]
    for event in got:
        assert "message" not in event and "user" not in event
    assert all("session" in e for e in got if e["action"] == "http.post" and e["target"] == "/echo/")


# ---------------------------------------------------------------- a view that raises


def test_a_raising_view_gives_a_500_event_and_the_exception_propagates(
    events: LineReceiver,
) -> None:
    from django.test import Client

    from tests.djangoproject.views import BoomError

    with pytest.raises(BoomError) as raised:
        Client().get("/boom/", headers={"X-Request-ID": "boom-1"})
    assert str(raised.value) == "the view failed"
    assert raised.traceback[-1].name == "boom"  # raised in the view, not re-made by us
    # Without the test client's re-raise, Django answers 500 as usual.
    assert Client(raise_request_exception=False).get("/boom/").status_code == 500
    first, second = received(events, 2)
    for request in (first, second):
        assert request["action"] == "http.get"
        assert request["target"] == "/boom/"
        assert request["fields"]["status"] == 500
        assert request["level"] == 40
        exc = json.loads(request["exc_info"])
        assert exc["type"] == "tests.djangoproject.views.BoomError"
        assert exc["value"] == "the view failed"
        assert 'raise BoomError("the view failed")' in exc["stack"]
    assert first["reqId"] == "boom-1"


def test_a_raising_async_request_gives_a_500_event(events: LineReceiver) -> None:
    from django.test import AsyncClient

    from tests.djangoproject.views import BoomError

    async def visit() -> None:
        with pytest.raises(BoomError):
            await AsyncClient().get("/boom/")

    asyncio.run(visit())
    (request,) = received(events, 1)
    assert request["fields"]["status"] == 500
    assert json.loads(request["exc_info"])["type"] == "tests.djangoproject.views.BoomError"


# ---------------------------------------------------------------- settings


def test_settings_come_from_django_and_the_environment_wins(
    project: Path, receiver: LineReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.contrib.auth.models import User
    from django.test import override_settings

    with override_settings(
        EVENTLOG_TRANSPORT="tcp",
        EVENTLOG_HOST="127.0.0.1",
        EVENTLOG_PORT=receiver.port,
        EVENTLOG_LINGER_MS=0,
        EVENTLOG_SITE="site-from-django",
        EVENTLOG_CLUSTER="cluster-from-django",
        EVENTLOG_DJANGO_USER_FIELD="pk",
        EVENTLOG_DJANGO_TRUSTED_PROXIES=[],
        EVENTLOG_DJANGO_REDACT_KEYS=["comment"],
    ):
        monkeypatch.setenv("EVENTLOG_CLUSTER", "cluster-from-env")
        eventlog.configure()
        client = logged_in_client()
        client.get("/users/3/", headers={"X-Forwarded-For": "203.0.113.5"})
        client.post("/echo/", {"comment": "hidden", "password": "shown-now"})
        got = received(receiver, 5)
    request = next(e for e in got if e["action"] == "http.get")
    assert request["site"] == "site-from-django"
    assert request["cluster"] == "cluster-from-env"
    assert request["user"] == str(User.objects.get(username="alice").pk)
    assert request["fields"]["remoteAddr"] == "127.0.0.1"  # no trusted proxy: XFF ignored
    echo = next(e for e in got if e["action"] == "http.post" and e["target"] == "/echo/")
    assert echo["message"] == "comment=[redacted]&password=shown-now"


def test_a_bad_middleware_setting_names_itself(project: Path) -> None:
    from django.test import Client, override_settings

    with (
        override_settings(EVENTLOG_DJANGO_TRUSTED_PROXIES=["10.0.0.0/8", "not-an-ip"]),
        pytest.raises(ConfigurationError) as raised,
    ):
        Client().get("/users/1/")
    message = str(raised.value)
    assert "Django setting EVENTLOG_DJANGO_TRUSTED_PROXIES" in message
    assert "'not-an-ip' is not an IP address or network" in message


def test_forwarded_for_is_read_right_to_left_through_trusted_proxies(project: Path) -> None:
    from django.test import override_settings

    from eventlog.django import EventlogMiddleware

    with override_settings(EVENTLOG_DJANGO_TRUSTED_PROXIES=["127.0.0.1", "10.0.0.0/8"]):
        middleware = EventlogMiddleware(lambda request: None)
    remote = middleware._remote_addr
    xff = "HTTP_X_FORWARDED_FOR"
    assert remote({"REMOTE_ADDR": "127.0.0.1", xff: "1.1.1.1, 2.2.2.2, 10.0.0.9"}) == "2.2.2.2"
    assert remote({"REMOTE_ADDR": "127.0.0.1", xff: "10.1.1.1, 10.0.0.9"}) == "10.1.1.1"
    assert remote({"REMOTE_ADDR": "127.0.0.1", xff: "junk, 10.0.0.9"}) == "10.0.0.9"
    assert remote({"REMOTE_ADDR": "127.0.0.1"}) == "127.0.0.1"
    assert remote({"REMOTE_ADDR": "203.0.113.1", xff: "1.1.1.1"}) == "203.0.113.1"


# ---------------------------------------------------------------- a real server


@pytest.fixture
def runserver(project: Path, tmp_path: Path) -> Iterator[tuple[str, LineReceiver, Any]]:
    """``manage.py runserver`` of the test project as a subprocess, sending to a receiver."""
    try:
        import requests  # noqa: F401
    except ImportError:
        missing("requests", "pip install requests")
    receiver = LineReceiver()
    port = free_port()
    env = dict(os.environ)
    for key in [k for k in env if k.startswith("EVENTLOG_")]:
        del env[key]
    env.update(
        DJANGO_SETTINGS_MODULE="tests.djangoproject.settings",
        DJANGOPROJECT_DB=str(project),
        DJANGOPROJECT_EVENTLOG_PORT=str(receiver.port),
        PYTHONPATH=os.pathsep.join([str(TESTS.parent), env.get("PYTHONPATH", "")]),
    )
    output = (tmp_path / "runserver.log").open("wb")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "django",
            "runserver",
            f"127.0.0.1:{port}",
            "--noreload",
            "--skip-checks",
        ],
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
        # Ctrl-C must stop it even when this run was started in the background, where
        # SIGINT is ignored and a child would inherit that.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    log = (tmp_path / "runserver.log").read_text()
                    pytest.fail(f"runserver did not start:\n{log}")
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}", receiver, server
    finally:
        if server.poll() is None:
            server.kill()
        server.wait(10)
        output.close()
        receiver.stop()


def test_runserver_over_http(runserver: tuple[str, LineReceiver, Any]) -> None:
    import requests

    base, receiver, server = runserver
    http = requests.Session()
    assert http.post(f"{base}/login/", data={"username": "alice", "password": PASSWORD}).ok
    session_key = http.cookies["sessionid"]
    response = http.get(
        f"{base}/users/7/?q=shoes",
        headers={"Authorization": BEARER, "X-Request-ID": "http-7", "User-Agent": "requests-test"},
    )
    assert response.text == "user 7" and response.headers["X-Request-ID"] == "http-7"
    for _ in range(3):
        assert http.get(f"{base}/count/").text == "counted"
    assert http.get(f"{base}/boom/").status_code == 500
    http.close()
    # Stop it as Ctrl-C does: the counter is sent at exit, and the queue drains.
    server.send_signal(signal.SIGINT)
    assert server.wait(15) == 0
    # login; view event, view log, request; 3 x count; boom; the counter at exit
    assert receiver.wait_for(9, 10), [json.loads(line)["action"] for line in receiver.lines]
    got = receiver.events()
    assert len(got) == 9
    raw = b"\n".join(receiver.lines)
    for secret in (PASSWORD, "sekrit-bearer-token", session_key):
        assert secret.encode() not in raw, secret
    request = next(e for e in got if e.get("reqId") == "http-7" and e["action"] == "http.get")
    assert request["target"] == "/users/<int:user_id>/"
    assert request["user"] == "alice"
    assert request["site"] == "runserver-site"  # EVENTLOG_SITE from settings.py
    assert request["pid"] == server.pid
    assert request["fields"]["query.q"] == "shoes"
    assert request["fields"]["userAgent"] == "requests-test"
    assert request["fields"]["remoteAddr"] == "127.0.0.1"
    in_view = [e for e in got if e.get("reqId") == "http-7" and e["action"] != "http.get"]
    assert sorted(e["action"] for e in in_view) == ["log.info", "user.view"]
    assert all(e["user"] == "alice" and e["session"] == request["session"] for e in in_view)
    assert [e["fields"]["status"] for e in got if e.get("target") == "/count/"] == [200] * 3
    boom = next(e for e in got if e.get("target") == "/boom/")
    assert boom["fields"]["status"] == 500
    assert json.loads(boom["exc_info"])["type"] == "tests.djangoproject.views.BoomError"
    (counter,) = [e for e in got if e["action"] == "djangoproject.hit"]
    assert counter["metrics"]["count"] == 3
    assert counter["fields"] == {"metric": "counter"}
    assert "user" not in counter
