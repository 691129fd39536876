"""The Flask extension under a real werkzeug server (threaded), over real HTTP.

Events travel the real pipeline (tcp transport, json format) to a real
LineReceiver; assertions are on what arrived, down to the raw bytes for secrets.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest

import eventlog
from eventlog._builtin.receiver import LineReceiver
from eventlog._core.errors import ConfigurationError
from eventlog._web.request import session_digest
from tests.peers import missing

try:
    import flask
    import requests
    from werkzeug.serving import make_server
except ImportError:  # pragma: no cover - the nox session installs them
    flask = None

PASSWORD = "correct-horse-battery-staple"
SESSION = "raw-session-key-9f8e7d"
CONCURRENT = 20

log = logging.getLogger("flaskapp")


class BoomError(RuntimeError):
    """What /boom raises; the test checks it in exc_info."""


def basic(user: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


# ---------------------------------------------------------------- the application


def build_app(config: dict[str, Any] | None = None, **settings: Any) -> Any:
    """A Flask app whose user is the Basic-auth name and whose session is the sid cookie."""
    from flask import Blueprint, Flask, request

    from eventlog.flask import Eventlog

    app = Flask("flaskapp")
    app.config.update(config or {})

    @app.get("/orders/<int:order_id>")
    def order(order_id: int) -> Any:
        eventlog.log_event(eventlog.Event("order.view", str(order_id), "order"))
        log.info("viewed order %d", order_id)
        return {"order": order_id}

    @app.post("/echo")
    def echo() -> str:
        return f"{len(request.get_data())} bytes"

    @app.get("/boom")
    def boom() -> str:
        raise BoomError("the view failed")

    everyone_in = threading.Barrier(CONCURRENT, timeout=30)

    @app.get("/together/<int:number>")
    def together(number: int) -> str:
        # All CONCURRENT requests are inside the view at once (one thread each)
        # before any goes on, so their contexts live side by side.
        eventlog.log_event(eventlog.Event("together.in", str(number), "n"))
        everyone_in.wait()
        log.info("out %d", number)
        return str(number)

    api = Blueprint("api", __name__, url_prefix="/api")

    @api.get("/items/<item_id>")
    def item(item_id: str) -> str:
        return "item"

    app.register_blueprint(api)

    def get_user() -> str | None:
        auth = request.authorization
        return auth.username if auth is not None else None

    Eventlog(app, get_user=get_user, get_session=lambda: request.cookies.get("sid"), **settings)
    return app


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """``app`` under werkzeug's threaded server on a free loopback port; yields the base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="werkzeug-under-test", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(30)
        server.server_close()


@pytest.fixture(scope="module", autouse=True)
def _peers() -> Iterator[None]:
    if flask is None:
        missing("flask", "pip install flask requests")
    handler = eventlog.EventHandler()
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False
    yield
    log.removeHandler(handler)


@pytest.fixture
def events(receiver: LineReceiver) -> LineReceiver:
    eventlog.configure(transport="tcp", host="127.0.0.1", port=receiver.port, linger_ms=0)
    return receiver


@pytest.fixture
def base(events: LineReceiver) -> Iterator[str]:
    with serve(build_app()) as url:
        yield url


def received(receiver: LineReceiver, count: int) -> list[dict[str, Any]]:
    """Flush, then exactly ``count`` events as the receiver parsed them."""
    assert eventlog.flush(10)
    assert receiver.wait_for(count, 10), f"only {len(receiver.lines)} of {count} events arrived"
    got = receiver.events()
    assert len(got) == count, [e["action"] for e in got]
    return got


# ---------------------------------------------------------------- the request event


def test_request_event_carries_every_field(events: LineReceiver, base: str) -> None:
    response = requests.get(
        f"{base}/orders/42",
        params={"page": "2", "token": "query-secret-77"},
        cookies={"sid": SESSION},
        headers={
            **basic("alice"),
            "User-Agent": "eventlog-test/1.0",
            "Referer": "https://shop.example/from?x=1&api_key=ref-secret-88",
            "X-Forwarded-For": "198.51.100.7",  # no trusted proxy: ignored
            "X-Request-ID": "req-42",
        },
        timeout=10,
    )
    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == "req-42"
    got = {e["action"]: e for e in received(events, 3)}
    assert sorted(got) == ["http.get", "log.info", "order.view"]
    request = got["http.get"]
    fields = request.pop("fields")
    duration = fields.pop("durationMs")
    assert isinstance(duration, float) and duration >= 0
    assert fields == {
        "path": "/orders/42",
        "status": 200,
        "responseBytes": len(response.content),
        "view": "tests.test_flask.build_app.<locals>.order",
        "remoteAddr": "127.0.0.1",
        "userAgent": "eventlog-test/1.0",
        "referer": "https://shop.example/from?x=1&api_key=[redacted]",
        "query.page": "2",
        "query.token": "[redacted]",
    }
    assert isinstance(request.pop("id"), str)
    assert abs(request.pop("tstamp") - time.time() * 1000) < 60_000
    thread = request.pop("thread")
    assert thread != threading.current_thread().name  # served in werkzeug's request thread
    assert request == {
        "action": "http.get",
        "target": "/orders/<int:order_id>",
        "tgType": "route",
        "level": 20,
        "levelName": "INFO",
        "user": "alice",
        "session": session_digest(SESSION),
        "reqId": "req-42",
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }
    for action in ("order.view", "log.info"):
        event = got[action]
        assert (event["user"], event["session"], event["reqId"], event["thread"]) == (
            "alice",
            session_digest(SESSION),
            "req-42",
            thread,
        ), action
    assert got["order.view"]["target"] == "42"
    assert got["log.info"]["message"] == "viewed order 42"


def test_request_id_is_made_and_unmatched_paths_have_no_target(events: LineReceiver, base: str) -> None:
    response = requests.get(f"{base}/no/such/page", headers={"X-Request-ID": "bad id!"})
    assert response.status_code == 404
    made = response.headers["X-Request-ID"]
    assert len(made) == 32 and made != "bad id!"
    assert requests.get(f"{base}/api/items/7", timeout=10).text == "item"
    missed, blueprint = received(events, 2)
    assert missed["reqId"] == made
    assert "target" not in missed and "user" not in missed and "session" not in missed
    assert (missed["fields"]["path"], missed["fields"]["status"], missed["level"]) == (
        "/no/such/page",
        404,
        30,
    )
    assert blueprint["target"] == "/api/items/<item_id>"
    assert blueprint["fields"]["view"] == "tests.test_flask.build_app.<locals>.item"


# ---------------------------------------------------------------- secrets


def test_secrets_never_reach_the_receiver(events: LineReceiver, base: str) -> None:
    document = {
        "user": "alice",
        "password": PASSWORD,
        "nested": {"api_key": "json-secret-11", "items": [{"token": "json-secret-22"}]},
    }
    http = requests.Session()
    http.cookies.set("sid", SESSION)
    first = http.post(
        f"{base}/echo?token=query-secret-33&page=1",
        data=json.dumps(document),
        headers={**basic("alice"), "Content-Type": "application/json"},
        timeout=10,
    )
    assert first.text == f"{len(json.dumps(document))} bytes"
    http.post(f"{base}/echo", data={"password": PASSWORD, "comment": "hi"}, timeout=10)
    http.post(
        f"{base}/echo",
        data="password=text-secret-44&comment=hi",
        headers={"Content-Type": "text/plain"},
        timeout=10,
    )
    http.post(
        f"{base}/echo",
        data=b"\x00\x01\x02",
        headers={"Content-Type": "application/octet-stream"},
        timeout=10,
    )
    http.post(
        f"{base}/echo",
        data={"token": "form-secret-55"},
        files={"upload": ("notes.txt", b"0123456789")},
        timeout=10,
    )
    got = received(events, 5)
    raw = b"\n".join(events.lines)
    for secret in (
        PASSWORD,
        SESSION,
        "query-secret-33",
        "json-secret-11",
        "json-secret-22",
        "text-secret-44",
        "form-secret-55",
        base64.b64encode(f"alice:{PASSWORD}".encode()).decode(),
    ):
        assert secret.encode() not in raw, secret
    assert b"Authorization" not in raw and b"Basic" not in raw
    assert [e["message"] for e in got] == [
        '{"user":"alice","password":"[redacted]","nested":{"api_key":"[redacted]",'
        '"items":[{"token":"[redacted]"}]}}',
        "password=[redacted]&comment=hi",
        "password=[redacted]&comment=hi",
        "[3 bytes of application/octet-stream]",
        "token=[redacted]&upload=[file notes.txt, 10 bytes]",
    ]
    assert got[0]["fields"]["query.token"] == "[redacted]"
    assert got[0]["fields"]["query.page"] == "1"
    assert got[0]["session"] == session_digest(SESSION)


def test_settings_from_config_and_keywords(events: LineReceiver) -> None:
    config = {"EVENTLOG_FLASK_MAX_BODY": 20, "EVENTLOG_FLASK_SKIP_PATHS": "/nothing/"}
    app = build_app(config, skip_paths=["/orders/"], trusted_proxies=["127.0.0.1", "10.0.0.0/8"])
    with serve(app) as url:
        requests.post(
            f"{url}/echo",
            data={"comment": "x" * 100},
            headers={"X-Forwarded-For": "203.0.113.9, 198.51.100.7, 10.1.2.3"},
            timeout=10,
        )
        assert requests.get(f"{url}/orders/1", timeout=10).status_code == 200
    got = received(events, 3)  # the echo request; the view's two events of /orders/1 (skipped)
    request = next(e for e in got if e["action"] == "http.post")
    assert request["message"] == "comment=xxxxxxxxxxxx...[88 more characters]"
    assert request["fields"]["remoteAddr"] == "198.51.100.7"  # right to left, past 10/8
    assert sorted(e["action"] for e in got) == ["http.post", "log.info", "order.view"]


def test_bad_settings_name_themselves() -> None:
    with pytest.raises(ConfigurationError) as raised:
        build_app({"EVENTLOG_FLASK_MAX_BODY": "lots"})
    assert str(raised.value).startswith("Eventlog(max_body='lots') is invalid:")
    with pytest.raises(ConfigurationError) as raised:
        build_app(request_id_heder="X-Id")
    assert "Eventlog: unknown setting request_id_heder" in str(raised.value)


# ---------------------------------------------------------------- errors


def test_a_raising_view_gives_a_500_event(events: LineReceiver, base: str) -> None:
    response = requests.get(f"{base}/boom", headers={**basic("alice"), "X-Request-ID": "boom-1"}, timeout=10)
    assert response.status_code == 500
    assert response.headers["X-Request-ID"] == "boom-1"
    # Flask logs the exception on app.logger ("flaskapp", which has our handler) too.
    logged, request = received(events, 2)
    assert (logged["action"], logged["reqId"], logged["user"]) == ("log.error", "boom-1", "alice")
    assert json.loads(logged["exc_info"])["type"] == "tests.test_flask.BoomError"
    assert (request["action"], request["target"], request["reqId"]) == (
        "http.get",
        "/boom",
        "boom-1",
    )
    assert request["fields"]["status"] == 500
    assert request["level"] == 40
    exc = json.loads(request["exc_info"])
    assert exc["type"] == "tests.test_flask.BoomError"
    assert exc["value"] == "the view failed"
    assert 'raise BoomError("the view failed")' in exc["stack"]


def test_a_failing_hook_never_reaches_the_application(
    events: LineReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    from flask import Flask

    from eventlog.flask import Eventlog

    def broken() -> str:
        raise LookupError("user store is down")

    app = Flask("broken")
    app.add_url_rule("/", "hello", lambda: "hello")
    Eventlog(app, get_user=broken)
    with caplog.at_level(logging.WARNING, logger="eventlog"), serve(app) as url:
        assert [requests.get(url, timeout=10).text for _ in range(2)] == ["hello"] * 2
    got = received(events, 2)
    assert [(e["target"], e["fields"]["status"], "user" in e) for e in got] == [("/", 200, False)] * 2
    warnings = [r.getMessage() for r in caplog.records if "could not be read" in r.getMessage()]
    assert warnings == ["flask extension: the user of a request could not be read"]


# ---------------------------------------------------------------- concurrency


def test_concurrent_requests_keep_their_contexts_apart(events: LineReceiver, base: str) -> None:
    def visit(number: int) -> str:
        response = requests.get(
            f"{base}/together/{number}",
            headers={**basic(f"user{number}"), "X-Request-ID": f"r-{number}"},
            cookies={"sid": f"session-{number}"},
            timeout=60,
        )
        return response.text

    with ThreadPoolExecutor(CONCURRENT) as pool:
        answers = list(pool.map(visit, range(CONCURRENT)))
    assert answers == [str(n) for n in range(CONCURRENT)]
    got = received(events, 3 * CONCURRENT)
    for number in range(CONCURRENT):
        mine = [e for e in got if e.get("reqId") == f"r-{number}"]
        assert sorted(e["action"] for e in mine) == ["http.get", "log.info", "together.in"]
        for event in mine:
            assert event["user"] == f"user{number}", event
            assert event["session"] == session_digest(f"session-{number}"), event
        assert next(e for e in mine if e["action"] == "log.info")["message"] == f"out {number}"


# ---------------------------------------------------------------- Flask-Login


def test_flask_login_user_and_a_login_names_who_logged_in(events: LineReceiver) -> None:
    try:
        from flask_login import LoginManager, UserMixin, current_user, login_user
    except ImportError:
        missing("flask-login", "pip install flask-login")
    from flask import Flask, request

    from eventlog.flask import Eventlog

    class User(UserMixin):  # type: ignore[misc]
        def __init__(self, user_id: str) -> None:
            self.id = user_id

    app = Flask("loginapp")
    app.secret_key = "test-only-secret-key"
    Eventlog(app)
    manager = LoginManager(app)
    manager.user_loader(User)

    @app.post("/login")
    def login() -> str:
        login_user(User(request.form["username"]))
        return "ok"

    @app.get("/me")
    def me() -> str:
        eventlog.log_event(eventlog.Event("me.view"))
        return str(current_user.get_id() or "anonymous")

    with serve(app) as url:
        http = requests.Session()
        assert http.post(f"{url}/login", data={"username": "carol", "password": PASSWORD}).ok
        assert http.get(f"{url}/me", headers={"X-Request-ID": "me-1"}, timeout=10).text == "carol"
        assert requests.get(f"{url}/me", headers={"X-Request-ID": "me-2"}, timeout=10).text == "anonymous"
    got = received(events, 5)
    assert b"test-only-secret-key" not in b"".join(events.lines)
    assert PASSWORD.encode() not in b"".join(events.lines)
    login_event = got[0]
    assert (login_event["action"], login_event["target"], login_event["user"]) == (
        "http.post",
        "/login",
        "carol",
    )
    assert login_event["message"] == "username=carol&password=[redacted]"
    assert "session" not in login_event  # Flask's cookie session has no id
    assert [(e["action"], e.get("user")) for e in got if e.get("reqId") == "me-1"] == [
        ("me.view", "carol"),
        ("http.get", "carol"),
    ]
    assert [(e["action"], e.get("user")) for e in got if e.get("reqId") == "me-2"] == [
        ("me.view", None),
        ("http.get", None),
    ]


# ---------------------------------------------------------------- the docs' get_user=lambda: g.user.name


def test_get_user_from_g_set_by_the_apps_own_before_request(
    events: LineReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    """The flask page's steps as written: the extension first, the app's before_request sets g.user.

    The view's own event and the request event carry the user, and nothing is warned
    (issue 29, item 3: every request logged a traceback and the view's event had no user).
    """
    from flask import Flask, g

    from eventlog.flask import Eventlog

    class User:
        def __init__(self, name: str) -> None:
            self.name = name

    app = Flask("docs_flask")
    Eventlog(app, get_user=lambda: g.user.name)

    @app.before_request
    def load_user() -> Any:
        if flask.request.path == "/private":
            return "who are you?", 401  # answers early: the user is never set up
        g.user = User("alice")
        return None

    @app.get("/orders/<int:order_id>")
    def read_order(order_id: int) -> dict[str, int]:
        eventlog.log_event(eventlog.Event("order.view", str(order_id), "order"))
        return {"order": order_id}

    app.add_url_rule("/private", "private", lambda: "secret")
    client = app.test_client()
    with caplog.at_level(logging.WARNING, logger="eventlog"):
        assert client.get("/orders/5").json == {"order": 5}
        assert client.get("/private").status_code == 401
    got = received(events, 3)
    assert [(e["action"], e["target"], e.get("user")) for e in got] == [
        ("order.view", "5", "alice"),
        ("http.get", "/orders/<int:order_id>", "alice"),
        ("http.get", "/private", None),
    ]
    assert got[0]["reqId"] == got[1]["reqId"]
    assert got[2]["fields"]["status"] == 401
    assert [r.getMessage() for r in caplog.records if r.name.startswith("eventlog")] == []
