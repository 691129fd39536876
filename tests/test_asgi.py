"""The ASGI middleware under a real uvicorn serving a Starlette app, over real HTTP.

Events travel the real pipeline (tcp transport, json format) to a real
LineReceiver; assertions are on what arrived, down to the raw bytes for secrets.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest

import eventlog
from eventlog._builtin.receiver import LineReceiver
from eventlog._core.errors import ConfigurationError
from eventlog._web.request import session_digest
from tests.peers import missing

try:
    import requests
    import uvicorn
    from starlette.applications import Starlette
    from starlette.authentication import (
        AuthCredentials,
        AuthenticationBackend,
        SimpleUser,
    )
    from starlette.middleware import Middleware
    from starlette.middleware.authentication import AuthenticationMiddleware
    from starlette.requests import HTTPConnection, Request
    from starlette.responses import JSONResponse, PlainTextResponse, Response
    from starlette.routing import Mount, Route
except ImportError:  # pragma: no cover - the nox session installs them
    uvicorn = None

PASSWORD = "correct-horse-battery-staple"
SESSION = "raw-session-key-9f8e7d"
CONCURRENT = 20
SERVER_THREAD = "uvicorn-under-test"

log = logging.getLogger("asgiapp")


class BoomError(RuntimeError):
    """What /boom raises; the test checks it in exc_info."""


def basic(user: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{PASSWORD}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


# ---------------------------------------------------------------- the application


def build_app(**settings: Any) -> Any:
    """A Starlette app: Basic auth sets scope["user"], then eventlog's middleware."""
    from eventlog.asgi import EventlogMiddleware

    class BasicAuth(AuthenticationBackend):
        async def authenticate(self, conn: HTTPConnection) -> Any:
            header = conn.headers.get("Authorization", "")
            if not header.startswith("Basic "):
                return None
            user, _, _ = base64.b64decode(header[6:]).decode().partition(":")
            return AuthCredentials(["authenticated"]), SimpleUser(user)

    async def order(request: Request) -> Response:
        order_id = request.path_params["order_id"]
        eventlog.log_event(eventlog.Event("order.view", str(order_id), "order"))
        log.info("viewed order %d", order_id)
        return JSONResponse({"order": order_id})

    async def echo(request: Request) -> Response:
        body = await request.body()
        return PlainTextResponse(f"{len(body)} bytes")

    async def boom(request: Request) -> Response:
        raise BoomError("the endpoint failed")

    async def item(request: Request) -> Response:
        return PlainTextResponse("item")

    arrived = {"count": 0}
    everyone_in = asyncio.Event()

    async def together(request: Request) -> Response:
        # All CONCURRENT requests are inside the endpoint at once before any goes on,
        # so their contexts are interleaved on the one event loop.
        number = request.path_params["number"]
        eventlog.log_event(eventlog.Event("together.in", str(number), "n"))
        arrived["count"] += 1
        if arrived["count"] == CONCURRENT:
            everyone_in.set()
        await asyncio.wait_for(everyone_in.wait(), 30)
        log.info("out %d", number)
        return PlainTextResponse(str(number))

    started = {"lifespan": False}

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        started["lifespan"] = True
        yield

    def get_session(scope: Any) -> str | None:
        return HTTPConnection(scope).cookies.get("sid")

    app = Starlette(
        routes=[
            Route("/orders/{order_id:int}", order),
            Route("/echo", echo, methods=["POST"]),
            Route("/boom", boom),
            Route("/together/{number:int}", together),
            Mount("/api", routes=[Route("/items/{item_id}", item)]),
        ],
        middleware=[
            Middleware(AuthenticationMiddleware, backend=BasicAuth()),
            Middleware(EventlogMiddleware, get_session=get_session, **settings),
        ],
        lifespan=lifespan,
    )
    app.state.started = started
    return app


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """``app`` under uvicorn in a thread on a free loopback port; yields the base URL."""
    # proxy_headers=False: uvicorn would otherwise believe X-Forwarded-For from 127.0.0.1
    # itself, and these tests check what the middleware believes.
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_level="warning", lifespan="on", proxy_headers=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=SERVER_THREAD, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        assert not thread.is_alive(), "uvicorn did not stop"


@pytest.fixture(scope="module", autouse=True)
def _peers() -> Iterator[None]:
    if uvicorn is None:
        missing("uvicorn/starlette", "pip install uvicorn starlette requests")
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
        "view": "tests.test_asgi.build_app.<locals>.order",
        "remoteAddr": "127.0.0.1",
        "userAgent": "eventlog-test/1.0",
        "referer": "https://shop.example/from?x=1&api_key=[redacted]",
        "query.page": "2",
        "query.token": "[redacted]",
    }
    assert isinstance(request.pop("id"), str)
    assert abs(request.pop("tstamp") - time.time() * 1000) < 60_000
    assert request == {
        "action": "http.get",
        "target": "/orders/{order_id:int}",
        "tgType": "route",
        "level": 20,
        "levelName": "INFO",
        "user": "alice",
        "session": session_digest(SESSION),
        "reqId": "req-42",
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "thread": SERVER_THREAD,
    }
    # Events made by the endpoint carry the same request context.
    for action in ("order.view", "log.info"):
        assert (got[action]["user"], got[action]["session"], got[action]["reqId"]) == (
            "alice",
            session_digest(SESSION),
            "req-42",
        ), action
    assert got["order.view"]["target"] == "42"
    assert got["log.info"]["message"] == "viewed order 42"


def test_request_id_is_made_and_unmatched_paths_have_no_target(events: LineReceiver, base: str) -> None:
    response = requests.get(f"{base}/no/such/page", headers={"X-Request-ID": "bad id!"})
    assert response.status_code == 404
    made = response.headers["X-Request-ID"]
    assert len(made) == 32 and made != "bad id!"
    assert requests.get(f"{base}/api/items/7", timeout=10).text == "item"
    missed, mounted = received(events, 2)
    assert missed["reqId"] == made
    assert "target" not in missed and "user" not in missed and "session" not in missed
    assert (missed["fields"]["path"], missed["fields"]["status"], missed["level"]) == (
        "/no/such/page",
        404,
        30,
    )
    assert mounted["target"] == "/api/items/{item_id}"
    assert mounted["fields"]["path"] == "/api/items/7"


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
    got = received(events, 4)
    raw = b"\n".join(events.lines)
    for secret in (
        PASSWORD,
        SESSION,
        "query-secret-33",
        "json-secret-11",
        "json-secret-22",
        "text-secret-44",
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
    ]
    assert got[0]["fields"]["query.token"] == "[redacted]"
    assert got[0]["fields"]["query.page"] == "1"
    assert got[0]["session"] == session_digest(SESSION)


def test_settings_cap_the_body_skip_paths_and_trust_proxies(events: LineReceiver) -> None:
    app = build_app(max_body=20, skip_paths=["/orders/"], trusted_proxies="127.0.0.1,10.0.0.0/8")
    with serve(app) as url:
        requests.post(
            f"{url}/echo",
            data={"comment": "x" * 100},
            headers={"X-Forwarded-For": "203.0.113.9, 198.51.100.7, 10.1.2.3"},
            timeout=10,
        )
        assert requests.get(f"{url}/orders/1", timeout=10).status_code == 200
    got = received(events, 3)  # the echo request; the endpoint's two events of /orders/1
    request = next(e for e in got if e["action"] == "http.post")
    assert request["message"] == "comment=xxxxxxxxxxxx...[88 more characters]"
    assert request["fields"]["remoteAddr"] == "198.51.100.7"  # right to left, past 10/8
    assert sorted(e["action"] for e in got) == ["http.post", "log.info", "order.view"]


# ---------------------------------------------------------------- errors


def test_a_raising_endpoint_gives_a_500_event(
    events: LineReceiver, base: str, caplog: pytest.LogCaptureFixture
) -> None:
    response = requests.get(f"{base}/boom", headers={"X-Request-ID": "boom-1"}, timeout=10)
    assert response.status_code == 500  # Starlette's ServerErrorMiddleware still answers
    (request,) = received(events, 1)
    assert (request["action"], request["target"], request["reqId"]) == (
        "http.get",
        "/boom",
        "boom-1",
    )
    assert request["fields"]["status"] == 500
    assert request["level"] == 40
    exc = json.loads(request["exc_info"])
    assert exc["type"] == "tests.test_asgi.BoomError"
    assert exc["value"] == "the endpoint failed"
    assert 'raise BoomError("the endpoint failed")' in exc["stack"]


def test_a_failing_hook_never_reaches_the_application(
    events: LineReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    from eventlog.asgi import EventlogMiddleware

    def broken(scope: Any) -> str:
        raise LookupError("user store is down")

    async def hello(request: Request) -> Response:
        return PlainTextResponse("hello")

    app = Starlette(routes=[Route("/", hello)], middleware=[Middleware(EventlogMiddleware, get_user=broken)])
    with caplog.at_level(logging.WARNING, logger="eventlog"), serve(app) as url:
        assert [requests.get(url, timeout=10).text for _ in range(2)] == ["hello"] * 2
    got = received(events, 2)
    assert [(e["target"], e["fields"]["status"], "user" in e) for e in got] == [("/", 200, False)] * 2
    warnings = [r for r in caplog.records if "could not be read" in r.getMessage()]
    assert len(warnings) == 1  # once, not per request
    assert warnings[0].getMessage() == "asgi middleware: the user of a request could not be read"


def test_bad_settings_name_themselves() -> None:
    from eventlog.asgi import EventlogMiddleware

    with pytest.raises(ConfigurationError) as raised:
        EventlogMiddleware(lambda *a: None, max_body=-1)  # type: ignore[arg-type,return-value]
    assert str(raised.value) == "EventlogMiddleware(max_body=-1) is invalid: must be 0 or more"
    with pytest.raises(ConfigurationError) as raised:
        EventlogMiddleware(lambda *a: None, max_bdy=10)  # type: ignore[arg-type,return-value]
    assert "EventlogMiddleware: unknown setting max_bdy" in str(raised.value)


# ---------------------------------------------------------------- concurrency


def test_concurrent_requests_keep_their_contexts_apart(events: LineReceiver) -> None:
    app = build_app()
    with serve(app) as url:
        assert app.state.started["lifespan"]  # lifespan went through the middleware

        def visit(number: int) -> str:
            response = requests.get(
                f"{url}/together/{number}",
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
        assert next(e for e in mine if e["action"] == "together.in")["target"] == str(number)


def test_importing_eventlog_imports_no_web_framework() -> None:
    import subprocess
    import sys

    code = (
        "import sys, eventlog, eventlog._web.request, eventlog._records.redact;"
        "print(sorted(m for m in ('starlette', 'flask', 'django', 'uvicorn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------- FastAPI


def test_fastapi_router_prefix_mount_and_a_user_from_a_dependency(events: LineReceiver) -> None:
    """FastAPI's usual shape: auth in a dependency, so the middleware learns the user late.

    (Annotations are strings here: FastAPI resolves them in this module's globals,
    so the dependency is annotated with Starlette's Request imported at the top.)
    """
    try:
        from fastapi import APIRouter, Depends, FastAPI
    except ImportError:
        missing("fastapi", "pip install fastapi")
    from eventlog.asgi import EventlogMiddleware

    async def current_user(request: Request) -> AsyncIterator[str]:
        name = request.headers.get("X-Demo-User", "anonymous")  # stands for real auth
        request.state.user = name  # for the request event (get_user below)
        with eventlog.context(user=name):  # for events made by the endpoint
            yield name

    app = FastAPI()
    app.add_middleware(EventlogMiddleware, get_user=lambda scope: scope.get("state", {}).get("user"))
    router = APIRouter(prefix="/v1")

    @router.get("/orders/{order_id}")
    async def read_order(order_id: int, user: str = Depends(current_user)) -> dict[str, int]:
        eventlog.log_event(eventlog.Event("order.view", str(order_id), "order"))
        return {"order": order_id}

    app.include_router(router)
    sub = FastAPI()

    @sub.get("/things/{thing}")
    def read_thing(thing: str) -> dict[str, str]:  # sync: FastAPI runs it in a thread
        eventlog.log_event(eventlog.Event("thing.view", thing, "thing"))
        return {"thing": thing}

    app.mount("/sub", sub)
    with serve(app) as url:
        first = requests.get(
            f"{url}/v1/orders/5", headers={"X-Demo-User": "bob", "X-Request-ID": "fa-1"}, timeout=10
        )
        second = requests.get(f"{url}/sub/things/lamp", headers={"X-Request-ID": "fa-2"}, timeout=10)
    assert (first.json(), second.json()) == ({"order": 5}, {"thing": "lamp"})
    got = {(e["reqId"], e["action"]): e for e in received(events, 4)}
    order = got["fa-1", "http.get"]
    assert (order["target"], order["user"], order["fields"]["status"]) == (
        "/v1/orders/{order_id}",
        "bob",
        200,
    )
    assert order["fields"]["view"] == (
        "tests.test_asgi.test_fastapi_router_prefix_mount_and_a_user_from_a_dependency.<locals>.read_order"
    )
    assert got["fa-1", "order.view"]["user"] == "bob"
    thing = got["fa-2", "http.get"]
    assert (thing["target"], thing["fields"]["path"]) == ("/sub/things/{thing}", "/sub/things/lamp")
    assert "user" not in thing
    assert got["fa-2", "thing.view"]["target"] == "lamp"  # the request id reached the thread
