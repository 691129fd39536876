"""The three web integrations make the same request event from the same request.

Django (its WSGI handler under werkzeug), Flask (werkzeug) and a Starlette app
(uvicorn) serve the same routes over real HTTP; each is sent the same requests,
and the events that reach a real LineReceiver must be equal field by field but
for what only the framework knows: the route's spelling, the view's name, the
size of its own error pages, the stack of an exception, and time and thread.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import eventlog
from eventlog._builtin.receiver import LineReceiver
from tests.peers import missing

try:
    import django
    import flask
    import requests
    import starlette
    import uvicorn
    from werkzeug.serving import make_server
except ImportError:  # pragma: no cover - the nox session installs them
    django = flask = starlette = uvicorn = None  # type: ignore[assignment]

PASSWORD = "correct-horse-battery-staple"
FRAMEWORKS = ("django", "flask", "asgi")
#: Trusted as by tests/djangoproject/settings.py, so all three read X-Forwarded-For alike.
TRUSTED = ["127.0.0.1", "::1"]


# ---------------------------------------------------------------- the same routes three ways


def flask_app() -> Any:
    from flask import Flask, request

    from eventlog.flask import Eventlog
    from tests.djangoproject.views import BoomError

    app = Flask("same_request")

    @app.get("/users/<int:user_id>/")
    def user_detail(user_id: int) -> str:
        eventlog.log_event(eventlog.Event("user.view", str(user_id), "user"))
        return f"user {user_id}"

    @app.post("/echo/")
    def echo() -> str:
        return json.dumps({"received": len(request.get_data())})

    @app.get("/boom/")
    def boom() -> str:
        raise BoomError("the view failed")

    Eventlog(app, trusted_proxies=TRUSTED)
    return app


def asgi_app() -> Any:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    from eventlog.asgi import EventlogMiddleware
    from tests.djangoproject.views import BoomError

    async def user_detail(request: Request) -> Response:
        user_id = request.path_params["user_id"]
        eventlog.log_event(eventlog.Event("user.view", str(user_id), "user"))
        return PlainTextResponse(f"user {user_id}")

    async def echo(request: Request) -> Response:
        return PlainTextResponse(json.dumps({"received": len(await request.body())}))

    async def boom(request: Request) -> Response:
        raise BoomError("the view failed")

    return Starlette(
        routes=[
            Route("/users/{user_id:int}/", user_detail),
            Route("/echo/", echo, methods=["POST"]),
            Route("/boom/", boom),
        ],
        middleware=[Middleware(EventlogMiddleware, trusted_proxies=TRUSTED)],
    )


def django_app(db: Path) -> Any:
    """The test project's WSGI handler (its MIDDLEWARE has eventlog's, trusting loopback)."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.djangoproject.settings"
    os.environ.setdefault("DJANGOPROJECT_DB", str(db))
    django.setup()
    from django.core.handlers.wsgi import WSGIHandler

    return WSGIHandler()  # anonymous requests only: no table is read


@contextmanager
def serve_wsgi(app: Any) -> Iterator[str]:
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="werkzeug-same-request", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(30)
        server.server_close()


@contextmanager
def serve_asgi(app: Any) -> Iterator[str]:
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="critical", proxy_headers=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-same-request", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(30)
        assert not thread.is_alive(), "uvicorn did not stop"


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    if None in (django, flask, starlette, uvicorn):
        missing("django/flask/starlette/uvicorn", "pip install django flask starlette uvicorn requests")
    for name in [k for k in os.environ if k.startswith("EVENTLOG_DJANGO_")]:
        pytest.fail(f"{name} is set: the Django side would not trust what the others trust")
    db = tmp_path_factory.mktemp("same_request") / "db.sqlite3"
    # Quiet: the 500s are logged by each framework, which is not what this test reads.
    quiet = [logging.getLogger(name) for name in ("django.request", "same_request", "uvicorn.error")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.CRITICAL)
    with (
        serve_wsgi(django_app(db)) as on_django,
        serve_wsgi(flask_app()) as on_flask,
        serve_asgi(asgi_app()) as on_asgi,
    ):
        yield {"django": on_django, "flask": on_flask, "asgi": on_asgi}
    for logger, level in zip(quiet, levels, strict=True):
        logger.setLevel(level)


@pytest.fixture
def events(receiver: LineReceiver) -> LineReceiver:
    eventlog.configure(transport="tcp", host="127.0.0.1", port=receiver.port, linger_ms=0)
    return receiver


def each_framework(
    receiver: LineReceiver, bases: dict[str, str], send: Callable[[str], requests.Response], count: int
) -> dict[str, list[dict[str, Any]]]:
    """``send`` to each framework in turn; the ``count`` events each request made, as received."""
    got: dict[str, list[dict[str, Any]]] = {}
    seen = 0
    for framework in FRAMEWORKS:
        send(bases[framework])
        seen += count
        assert eventlog.flush(10)
        assert receiver.wait_for(seen, 10), f"{framework}: only {len(receiver.lines)} of {seen} events"
        got[framework] = receiver.events()[seen - count :]
    assert len(receiver.events()) == seen
    return got


#: What only the framework knows (checked per framework where it matters), and time and thread.
SPECIFIC = {"id", "tstamp", "thread", "target"}
SPECIFIC_FIELDS = {"durationMs", "view", "responseBytes"}


def common(event: dict[str, Any]) -> dict[str, Any]:
    """The event without what differs by framework; exc_info as its type and value."""
    out = {key: value for key, value in event.items() if key not in SPECIFIC}
    if "fields" in out:
        out["fields"] = {key: value for key, value in out["fields"].items() if key not in SPECIFIC_FIELDS}
    if "exc_info" in out:
        exc = json.loads(out["exc_info"])
        out["exc_info"] = (exc["type"], exc["value"])
    return out


def same_request_event(got: dict[str, list[dict[str, Any]]], action: str) -> dict[str, Any]:
    """The one ``action`` event of each framework; they are equal but for SPECIFIC: that one."""
    found = {framework: [e for e in events if e["action"] == action] for framework, events in got.items()}
    assert {framework: len(events) for framework, events in found.items()} == dict.fromkeys(FRAMEWORKS, 1)
    shared = {framework: common(events[0]) for framework, events in found.items()}
    assert shared["flask"] == shared["django"]
    assert shared["asgi"] == shared["django"]
    return {framework: events[0] for framework, events in found.items()}  # type: ignore[return-value]


# ---------------------------------------------------------------- the same requests


def test_a_get_makes_the_same_event_and_context_in_all_three(
    events: LineReceiver, bases: dict[str, str]
) -> None:
    def send(base: str) -> requests.Response:
        response = requests.get(
            f"{base}/users/42/?page=2&token=query-secret-77&tag=a&tag=b",
            headers={
                "User-Agent": "eventlog-test/1.0",
                "Referer": "https://shop.example/from?x=1&api_key=ref-secret-88",
                "X-Forwarded-For": "203.0.113.9, 198.51.100.7",
                "X-Request-ID": "req-same-1",
            },
            timeout=10,
        )
        assert (response.status_code, response.text, response.headers["X-Request-ID"]) == (
            200,
            "user 42",
            "req-same-1",
        )
        return response

    got = each_framework(events, bases, send, 2)
    request = same_request_event(got, "http.get")
    assert common(request["django"]) == {
        "action": "http.get",
        "tgType": "route",
        "level": 20,
        "levelName": "INFO",
        "reqId": "req-same-1",
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "fields": {
            "path": "/users/42/",
            "status": 200,
            "remoteAddr": "198.51.100.7",
            "userAgent": "eventlog-test/1.0",
            "referer": "https://shop.example/from?x=1&api_key=[redacted]",
            "query.page": "2",
            "query.token": "[redacted]",
            "query.tag": "a,b",
        },
    }
    assert {f: e["fields"]["responseBytes"] for f, e in request.items()} == dict.fromkeys(FRAMEWORKS, 7)
    assert {f: e["target"] for f, e in request.items()} == {
        "django": "/users/<int:user_id>/",
        "flask": "/users/<int:user_id>/",
        "asgi": "/users/{user_id:int}/",
    }
    assert all(isinstance(e["fields"]["durationMs"], float) for e in request.values())
    # What the view logged carries the same request context.
    view = same_request_event(got, "user.view")
    assert view["django"]["reqId"] == "req-same-1" and "user" not in view["django"]


@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        (
            "application/json",
            json.dumps({"user": "alice", "password": PASSWORD, "nested": {"token": "json-secret-22"}}),
            '{"user":"alice","password":"[redacted]","nested":{"token":"[redacted]"}}',
        ),
        (
            "application/x-www-form-urlencoded",
            f"password={PASSWORD}&comment=hi+there",
            "password=[redacted]&comment=hi+there",
        ),
        ("text/plain", f"password={PASSWORD} and more", "password=[redacted] and more"),
        ("application/octet-stream", "\x00\x01binary\x02", "[9 bytes of application/octet-stream]"),
    ],
    ids=["json", "form", "text", "binary"],
)
def test_a_post_body_is_redacted_alike(
    events: LineReceiver, bases: dict[str, str], content_type: str, body: str, message: str
) -> None:
    def send(base: str) -> requests.Response:
        response = requests.post(
            f"{base}/echo/?password=query-secret-33",
            data=body.encode(),
            headers={"Content-Type": content_type, "X-Request-ID": "req-same-2"},
            timeout=10,
        )
        assert response.status_code == 200
        assert json.loads(response.text) == {"received": len(body.encode())}
        return response

    request = same_request_event(each_framework(events, bases, send, 1), "http.post")
    assert request["django"]["message"] == message
    assert request["django"]["fields"]["query.password"] == "[redacted]"
    assert {f: e["target"] for f, e in request.items()} == {
        "django": "/echo/",
        "flask": "/echo/",
        "asgi": "/echo/",
    }
    sizes = {f: e["fields"]["responseBytes"] for f, e in request.items()}
    assert sizes == dict.fromkeys(FRAMEWORKS, len(json.dumps({"received": len(body.encode())})))


def test_a_raising_view_and_an_unknown_path_make_the_same_events(
    events: LineReceiver, bases: dict[str, str]
) -> None:
    def send(base: str) -> requests.Response:
        assert (
            requests.get(f"{base}/boom/", headers={"X-Request-ID": "req-boom"}, timeout=10).status_code == 500
        )
        response = requests.get(
            f"{base}/no/such/page", headers={"X-Request-ID": "req-none", "User-Agent": "ua/2"}, timeout=10
        )
        assert response.status_code == 404
        return response

    got = each_framework(events, bases, send, 2)
    for framework, pair in got.items():
        assert [e["reqId"] for e in pair] == ["req-boom", "req-none"], framework
    boom = {f: pair[0] for f, pair in got.items()}
    missed = {f: pair[1] for f, pair in got.items()}
    for requests_made in (boom, missed):
        assert common(requests_made["flask"]) == common(requests_made["django"])
        assert common(requests_made["asgi"]) == common(requests_made["django"])
    assert common(boom["django"])["exc_info"] == ("tests.djangoproject.views.BoomError", "the view failed")
    assert (boom["django"]["level"], boom["django"]["fields"]["status"]) == (40, 500)
    assert {f: e["target"] for f, e in boom.items()} == dict.fromkeys(FRAMEWORKS, "/boom/")
    assert all(
        'raise BoomError("the view failed")' in json.loads(e["exc_info"])["stack"] for e in boom.values()
    )
    assert common(missed["django"]) == {
        "action": "http.get",
        "tgType": "route",
        "level": 30,
        "levelName": "WARNING",
        "reqId": "req-none",
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "fields": {"path": "/no/such/page", "status": 404, "remoteAddr": "127.0.0.1", "userAgent": "ua/2"},
    }
    assert all("target" not in e for e in missed.values())
