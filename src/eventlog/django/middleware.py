"""EventlogMiddleware: one event per request, and the request context for everything else.

Each request gives one event ``http.<method>`` whose target is the resolved
route pattern (``/users/<int:id>/``), with the raw path, query parameters,
user agent, client address, referer, status, response size and duration in
``fields`` and the redacted, size-capped body of a POST/PUT/PATCH in
``message``.  While the request is served, the user, a digest of the session
key and the request id are bound into the request context, so every Event
and log record made by the view (sync, async, or in a thread started with
``contextvars.copy_context()``) carries them.

The middleware never reads the Authorization or Cookie header, never sends a
raw session key, and never raises into Django: a failure of its own is logged
once on the ``eventlog`` logger and the request goes on.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.core.signals import got_request_exception
from django.http import HttpRequest, HttpResponseBase
from django.utils.functional import SimpleLazyObject, empty

from eventlog._web.request import (
    BODY_METHODS,
    FORM_TYPES,
    MAX_BODY_READ,
    MAX_QUERY_PARAMS,
    MAX_VALUE_CHARS,
    Query,
    RequestBody,
    RequestFacts,
    RequestLogger,
    bind_request,
    context_user,
    identify,
    session_digest,
    unbind_request,
)
from eventlog.django.conf import MiddlewareSettings

log = logging.getLogger(__name__)

__all__ = [
    "BODY_METHODS",
    "MAX_BODY_READ",
    "MAX_QUERY_PARAMS",
    "MAX_VALUE_CHARS",
    "EventlogMiddleware",
    "session_digest",
]

_STATE_ATTR = "_eventlog_request"
_SESSION_MIDDLEWARE = "django.contrib.sessions.middleware.SessionMiddleware"
_AUTH_MIDDLEWARE = "django.contrib.auth.middleware.AuthenticationMiddleware"

Response = HttpResponseBase
GetResponse = Callable[[HttpRequest], Any]


class _RequestState:
    """What the middleware leaves on the request for the exception signal to fill in."""

    __slots__ = ("exception",)

    def __init__(self) -> None:
        self.exception: BaseException | None = None


def _remember_exception(sender: object, request: object = None, **kwargs: object) -> None:
    # Django converts a view's exception into a 500 response before it reaches
    # the middleware; this signal is sent while the exception is being handled.
    state = getattr(request, _STATE_ATTR, None)
    if isinstance(state, _RequestState) and state.exception is None:
        state.exception = sys.exception()


got_request_exception.connect(_remember_exception, dispatch_uid="eventlog.django.middleware")


class EventlogMiddleware:
    """Django middleware (sync and async): the request event and the request context.

    Put it right after ``AuthenticationMiddleware`` in ``MIDDLEWARE``, so the
    user and session are known when the view runs::

        MIDDLEWARE = [
            ...,
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "eventlog.django.EventlogMiddleware",
            ...,
        ]
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: GetResponse) -> None:
        self.get_response = get_response
        self.settings = MiddlewareSettings.load()
        self.requests = RequestLogger(self.settings, "django middleware")
        self.redactor = self.requests.redactor
        header = self.settings.request_id_header
        self._request_id_meta = "HTTP_" + header.upper().replace("-", "_")
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)
        _check_order()

    # ------------------------------------------------------------ serving

    def __call__(self, request: HttpRequest) -> Any:
        if self._async:
            return self.__acall__(request)
        if self._skipped(request):
            return self.get_response(request)
        started = self._begin(request)
        token = self._bind(request, self._user_sync(request), started[2])
        try:
            response = self.get_response(request)
        except Exception as exc:
            self._finish(request, None, started, exc)
            raise
        else:
            self._finish(request, response, started, None)
            return response
        finally:
            unbind_request(token)

    async def __acall__(self, request: HttpRequest) -> Any:
        get_response: Callable[[HttpRequest], Awaitable[Any]] = self.get_response
        if self._skipped(request):
            return await get_response(request)
        started = self._begin(request)
        token = self._bind(request, await self._user_async(request), started[2])
        try:
            response = await get_response(request)
        except Exception as exc:
            self._finish(request, None, started, exc)
            raise
        else:
            self._finish(request, response, started, None)
            return response
        finally:
            unbind_request(token)

    def _skipped(self, request: HttpRequest) -> bool:
        return self.requests.skipped(request.path)

    def _begin(self, request: HttpRequest) -> tuple[int, int, str]:
        """Wall clock, monotonic clock and request id at the start of the request."""
        request_id = self.requests.request_id(request.META.get(self._request_id_meta))
        setattr(request, _STATE_ATTR, _RequestState())
        return time.time_ns(), time.perf_counter_ns(), request_id

    def _bind(self, request: HttpRequest, user: str | None, request_id: str) -> Any:
        return bind_request(user=user, session=self._session(request), request_id=request_id)

    # ------------------------------------------------------------ who is asking

    def _user_sync(self, request: HttpRequest) -> str | None:
        if self.settings.user_field == "none" or not hasattr(request, "user"):
            return None
        try:
            # Evaluating the lazy request.user loads the session and the user.
            return self._identify(request.user)
        except Exception:
            self._warn_once("user", "the user of a request could not be read", exc_info=True)
            return None

    async def _user_async(self, request: HttpRequest) -> str | None:
        if self.settings.user_field == "none" or not hasattr(request, "user"):
            return None
        try:
            auser = getattr(request, "auser", None)
            if auser is None:  # Django before 5.0
                return await sync_to_async(self._user_sync)(request)
            return self._identify(await auser())
        except Exception:
            self._warn_once("user", "the user of a request could not be read", exc_info=True)
            return None

    def _identify(self, user: Any) -> str | None:
        return identify(user, self.settings.user_field)

    def _late_user(self, request: HttpRequest) -> str | None:
        """The user set on the request while it was served, if it needs no database query."""
        user = request.__dict__.get("user")
        if self.settings.user_field == "none" or user is None:
            return None
        if isinstance(user, SimpleLazyObject) and user._wrapped is empty:
            return None  # nobody asked for it, so it is still who it was at the start
        try:
            return self._identify(user)
        except Exception:
            return None

    def _session(self, request: HttpRequest) -> str | None:
        # After the user was loaded, session_key is None unless the key was valid.
        key = getattr(getattr(request, "session", None), "session_key", None)
        return self.requests.session(key)

    # ------------------------------------------------------------ the request event

    def _finish(
        self,
        request: HttpRequest,
        response: Response | None,
        started: tuple[int, int, str],
        exception: BaseException | None,
    ) -> None:
        """Log the request event; never raises."""
        wall_ns, perf_ns, request_id = started
        try:
            ended_ns = time.perf_counter_ns()
            # Taken off the request: an exception kept there would tie the request to its frames.
            state = vars(request).pop(_STATE_ATTR, None)
            if exception is None and isinstance(state, _RequestState):
                exception = state.exception
            match = getattr(request, "resolver_match", None)
            route = getattr(match, "route", None)
            view = getattr(match, "_func_path", None)
            meta = request.META
            user_agent = meta.get("HTTP_USER_AGENT")
            referer = meta.get("HTTP_REFERER")
            # Someone who logged in (or was authenticated by the view, as Django
            # REST framework does) is the user of this request's event.
            user = self._late_user(request) if context_user() is None else None
            self.requests.log_request(
                RequestFacts(
                    method=str(request.method or "unknown"),
                    path=request.path,
                    route="/" + route.removeprefix("^") if isinstance(route, str) else None,
                    status=response.status_code if response is not None else None,
                    request_id=request_id,
                    started_ns=wall_ns,
                    started_perf_ns=perf_ns,
                    ended_perf_ns=ended_ns,
                    client=str(meta.get("REMOTE_ADDR") or ""),
                    forwarded_for=str(meta.get("HTTP_X_FORWARDED_FOR") or ""),
                    user_agent=str(user_agent) if user_agent else None,
                    referer=str(referer) if referer else None,
                    query=_query(request),
                    response_bytes=_response_size(response),
                    view=str(view) if view else None,
                    body=self._body(request),
                    exception=exception,
                    user=user,
                    session=self._session(request) if user is not None else None,
                )
            )
            header = self.settings.request_id_header
            if response is not None and header not in response:
                response[header] = request_id
        except Exception:
            self._warn_once("finish", "a request event could not be made", exc_info=True)

    def _remote_addr(self, meta: dict[str, Any]) -> str:
        """REMOTE_ADDR, or the client a trusted proxy forwarded for (see RequestLogger)."""
        return self.requests.remote_addr(
            str(meta.get("REMOTE_ADDR") or ""), str(meta.get("HTTP_X_FORWARDED_FOR") or "")
        )

    def _body(self, request: HttpRequest) -> RequestBody | None:
        """The body of a POST/PUT/PATCH as Django has it, or None."""
        if not self.requests.wants_body(str(request.method)):
            return None
        content_type = (request.content_type or "").lower()
        try:
            if content_type in FORM_TYPES:
                return RequestBody(
                    content_type,
                    form=tuple((key, value) for key, values in request.POST.lists() for value in values),
                    files=tuple(
                        (name, str(upload.name), upload.size)
                        for name, uploads in request.FILES.lists()
                        for upload in uploads
                    ),
                )
            declared = request.META.get("CONTENT_LENGTH") or ""
            if (
                not hasattr(request, "_body")  # the view did not read it: reading costs memory
                and declared.isdigit()
                and int(declared) > MAX_BODY_READ
            ):
                return RequestBody(content_type, int(declared), too_large=True)
            return RequestBody(content_type, data=request.body)
        except Exception as exc:  # e.g. the view read the body as a stream
            return RequestBody(content_type, error=type(exc).__name__)

    def _warn_once(self, key: str, message: str, exc_info: bool = False) -> None:
        self.requests.warn_once(key, message, exc_info=exc_info)


def _query(request: HttpRequest) -> Query:
    try:
        return tuple((key, tuple(values)) for key, values in request.GET.lists())
    except Exception:  # e.g. too many fields: the event goes on without them
        return ()


def _response_size(response: Response | None) -> int | None:
    if response is None:
        return None
    if response.streaming:
        # Counting would consume the stream; trust the header if there is one.
        length = response.get("Content-Length") or ""
        return int(length) if length.isdigit() else None
    content = getattr(response, "content", None)
    return len(content) if isinstance(content, bytes) else None


def _check_order() -> None:
    """Warn when the middleware runs before the session and user are known."""
    from django.conf import settings

    names = [str(name) for name in getattr(settings, "MIDDLEWARE", ())]
    ours = next((i for i, name in enumerate(names) if name.startswith("eventlog.django")), None)
    if ours is None:
        return
    for needed in (_SESSION_MIDDLEWARE, _AUTH_MIDDLEWARE):
        if needed in names and names.index(needed) > ours:
            log.warning(
                "%s comes after eventlog's middleware in MIDDLEWARE, so events will not carry "
                "the user and session; move %s below it",
                needed,
                names[ours],
            )
