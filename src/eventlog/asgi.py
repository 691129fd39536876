"""ASGI middleware: one event per request and the request context, for any ASGI 3 application.

Starlette, FastAPI, Quart, Django's ASGI handler, or a bare ASGI callable::

    from eventlog.asgi import EventlogMiddleware

    app = FastAPI()
    app.add_middleware(EventlogMiddleware)           # add it before AuthenticationMiddleware
    app.add_middleware(AuthenticationMiddleware, backend=...)

Each HTTP request gives one ``http.<method>`` event with the same fields,
levels, request id handling and redaction as the Django middleware
(:mod:`eventlog._web.request`), and every Event and log record made while it is served
carries its user, session digest and request id.  Lifespan and websocket
scopes pass through untouched.  Nothing here imports Starlette or any other
framework, and a failure of the middleware itself is logged once on the
``eventlog`` logger and never reaches the application.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from eventlog._web.request import (
    MAX_BODY_READ,
    RequestBody,
    RequestFacts,
    RequestLogger,
    RequestSettings,
    bind_request,
    context_user,
    group_params,
    identify,
    keeps_text,
    session_digest,
    unbind_request,
)

__all__ = ["EventlogMiddleware", "session_digest"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
#: ``get_user(scope)`` and ``get_session(scope)``: a name (or user object), sync or async.
ScopeHook = Callable[[Scope], Any]


class _Request:
    """One request's state: clocks, request id, the body seen so far and the response."""

    __slots__ = (
        "body",
        "body_size",
        "content_type",
        "done_ns",
        "perf_ns",
        "request_id",
        "response_bytes",
        "root_path",
        "status",
        "wall_ns",
    )

    def __init__(self, request_id: str, content_type: str, root_path: str) -> None:
        self.wall_ns = time.time_ns()
        self.perf_ns = time.perf_counter_ns()
        self.done_ns: int | None = None
        self.request_id = request_id
        self.content_type = content_type
        self.root_path = root_path
        self.body: list[bytes] | None = []  # None once more than MAX_BODY_READ came
        self.body_size = 0
        self.status: int | None = None
        self.response_bytes = 0


class EventlogMiddleware:
    """ASGI 3 middleware: the request event and the request context.

    Keyword settings are those of the Django middleware (``user_field``,
    ``trusted_proxies``, ``log_body``, ``max_body``, ``redact_keys``,
    ``request_id_header``, ``skip_paths``; see docs/integrations/django.md), checked here.

    The user is ``get_user(scope)`` when given (a name, a user object, or an
    awaitable of one), otherwise ``scope["user"]`` as Starlette's
    ``AuthenticationMiddleware`` sets it.  The session is ``get_session(scope)``
    when given, otherwise the ``sid`` of ``scope["session"]`` if it has one;
    only its digest leaves the process.  Put the middleware inside (after) the
    middleware that sets them, so events made by the endpoint carry them.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        get_user: ScopeHook | None = None,
        get_session: ScopeHook | None = None,
        **settings: Any,
    ) -> None:
        self.app = app
        self.get_user = get_user
        self.get_session = get_session
        self.settings = RequestSettings.load(
            "asgi", settings, environ={}, given_by="EventlogMiddleware", use_django=False
        )
        self.requests = RequestLogger(self.settings, "asgi middleware")
        self._header = self.settings.request_id_header.lower().encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        try:
            if self.requests.skipped(str(scope.get("path", ""))):
                request = None
            else:
                request = self._begin(scope)
                user = await self._user(scope)
                session = await self._session(scope)
        except Exception:
            self.requests.warn_once("begin", "a request could not be read", exc_info=True)
            request = None
        if request is None:
            await self.app(scope, receive, send)
            return
        state = request
        capture = self.requests.wants_body(str(scope.get("method", "")))

        async def receive_and_keep() -> Message:
            message = await receive()
            if capture and message.get("type") == "http.request":
                try:
                    self._keep(state, message.get("body", b""))
                except Exception:
                    self.requests.warn_once("body", "a request body could not be kept")
            return message

        async def send_and_watch(message: Message) -> None:
            try:
                message = self._watch(state, message)
            except Exception:
                self.requests.warn_once("send", "a response could not be watched", exc_info=True)
            await send(message)

        token = bind_request(user=user, session=session, request_id=state.request_id)
        try:
            await self.app(scope, receive_and_keep, send_and_watch)
        except Exception as exc:
            await self._finish(scope, state, exc)
            raise
        else:
            await self._finish(scope, state, None)
        finally:
            unbind_request(token)

    # ------------------------------------------------------------ the request

    def _begin(self, scope: Scope) -> _Request:
        headers = _headers(scope)
        request_id = self.requests.request_id(headers.get(self._header))
        content_type = headers.get(b"content-type", "").split(";", 1)[0].strip().lower()
        return _Request(request_id, content_type, str(scope.get("root_path", "")))

    def _keep(self, state: _Request, chunk: bytes) -> None:
        state.body_size += len(chunk)
        # Bodies of text types are kept (up to MAX_BODY_READ) to be redacted into message.
        if state.body is None or not keeps_text(state.content_type):
            return
        if state.body_size > MAX_BODY_READ:
            state.body = None  # too large to redact whole: only its size is told
        else:
            state.body.append(bytes(chunk))

    def _watch(self, state: _Request, message: Message) -> Message:
        kind = message.get("type")
        if kind == "http.response.start":
            state.status = int(message["status"])
            headers = list(message.get("headers", ()))
            if not any(bytes(name).lower() == self._header for name, _ in headers):
                headers.append((self._header, state.request_id.encode("latin-1")))
                message = {**message, "headers": headers}
        elif kind == "http.response.body":
            state.response_bytes += len(message.get("body", b""))
            if not message.get("more_body", False):
                state.done_ns = time.perf_counter_ns()
        return message

    async def _user(self, scope: Scope) -> str | None:
        if self.settings.user_field == "none":
            return None
        try:
            if self.get_user is not None:
                found = await _resolve(self.get_user(scope))
            else:
                found = scope.get("user")
            return identify(found, self.settings.user_field)
        except Exception:
            self.requests.warn_once("user", "the user of a request could not be read", exc_info=True)
            return None

    async def _session(self, scope: Scope) -> str | None:
        try:
            if self.get_session is not None:
                key = await _resolve(self.get_session(scope))
            else:
                key = getattr(scope.get("session"), "sid", None)
            return self.requests.session(None if key is None else str(key))
        except Exception:
            self.requests.warn_once("session", "the session could not be read", exc_info=True)
            return None

    # ------------------------------------------------------------ the request event

    async def _finish(self, scope: Scope, state: _Request, exception: BaseException | None) -> None:
        """Log the request event; never raises."""
        try:
            ended_ns = state.done_ns if state.done_ns is not None else time.perf_counter_ns()
            view = None
            endpoint = scope.get("endpoint")
            if endpoint is not None:
                name = getattr(endpoint, "__qualname__", None) or type(endpoint).__qualname__
                view = f"{getattr(endpoint, '__module__', '')}.{name}".lstrip(".")
            headers = _headers(scope)
            client = scope.get("client")
            query = bytes(scope.get("query_string", b"")).decode("utf-8", "replace")
            # Someone authenticated by a middleware inside this one, or by the endpoint.
            user = session = None
            if context_user() is None:
                user = await self._user(scope)
                session = await self._session(scope) if user is not None else None
            self.requests.log_request(
                RequestFacts(
                    method=str(scope.get("method", "unknown")),
                    path=str(scope.get("path", "")),
                    route=self._route(scope, state),
                    status=state.status,
                    request_id=state.request_id,
                    started_ns=state.wall_ns,
                    started_perf_ns=state.perf_ns,
                    ended_perf_ns=ended_ns,
                    client=str(client[0]) if client else "",
                    forwarded_for=headers.get(b"x-forwarded-for", ""),
                    user_agent=headers.get(b"user-agent"),
                    referer=headers.get(b"referer"),
                    query=group_params(parse_qsl(query, keep_blank_values=True)),
                    response_bytes=state.response_bytes,
                    view=view,
                    body=self._body(scope, state),
                    exception=exception,
                    user=user,
                    session=session,
                )
            )
        except Exception:
            self.requests.warn_once("finish", "a request event could not be made", exc_info=True)

    @staticmethod
    def _route(scope: Scope, state: _Request) -> str | None:
        """The route template the router matched (Starlette, FastAPI set ``scope["route"]``).

        Under a ``Mount`` the mount's path (as requested) comes first.  A request
        no route matched has no target, as in Django: the raw path is in fields.
        """
        route = scope.get("route")
        path = route if isinstance(route, str) else getattr(route, "path", None)
        if not isinstance(path, str):
            return None
        mounted = str(scope.get("root_path", ""))
        prefix = mounted[len(state.root_path) :] if mounted.startswith(state.root_path) else ""
        return prefix + path

    def _body(self, scope: Scope, state: _Request) -> RequestBody | None:
        if not self.requests.wants_body(str(scope.get("method", ""))) or not state.body_size:
            return None
        if state.body is None:
            return RequestBody(state.content_type, state.body_size, too_large=True)
        if not keeps_text(state.content_type):
            return RequestBody(state.content_type, state.body_size)  # told by its size
        return RequestBody(state.content_type, state.body_size, data=b"".join(state.body))


def _headers(scope: Scope) -> dict[bytes, str]:
    """Lower-cased header names to their (last) value; Authorization and Cookie are left out."""
    found: dict[bytes, str] = {}
    for name, value in scope.get("headers", ()):
        key = bytes(name).lower()
        if key in (b"authorization", b"cookie"):
            continue  # never read, so never logged
        found[key] = bytes(value).decode("latin-1")
    return found


async def _resolve(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value
