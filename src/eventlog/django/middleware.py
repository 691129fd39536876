"""EventlogMiddleware: one event per request, and the request context for everything else.

Each request gives one event ``http.<method>`` whose target is the resolved
route pattern (``/users/<int:id>/``), with the raw path, query parameters,
user agent, client address, referer, status, response size and duration in
``fields`` and the redacted, size-capped body of a POST/PUT/PATCH in
``message``.  While the request is served, the user, a digest of the session
key and the request id are bound into :mod:`eventlog.context`, so every Event
and log record made by the view (sync, async, or in a thread started with
``contextvars.copy_context()``) carries them.

The middleware never reads the Authorization or Cookie header, never sends a
raw session key, and never raises into Django: a failure of its own is logged
once on the ``eventlog`` logger and the request goes on.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlencode

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.core.signals import got_request_exception
from django.http import HttpRequest, HttpResponseBase
from django.utils.functional import SimpleLazyObject, empty

from eventlog import api
from eventlog.context import bind, unbind
from eventlog.context import current as current_context
from eventlog.django.conf import IPNetwork, MiddlewareSettings
from eventlog.django.redact import SAFE, Redactor
from eventlog.engine import log
from eventlog.event import Event
from eventlog.records import ExcInfo, exception_json

#: Methods whose body goes into ``message``.
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
#: Query parameters kept as fields; the rest are counted in ``queryDropped``.
MAX_QUERY_PARAMS = 32
#: Longest header or query value kept, in characters.
MAX_VALUE_CHARS = 512
#: A body the view did not read is read for the log only up to this size.
MAX_BODY_READ = 256 * 1024

_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@+=/-]{1,128}")
_STATE_ATTR = "_eventlog_request"
_SESSION_MIDDLEWARE = "django.contrib.sessions.middleware.SessionMiddleware"
_AUTH_MIDDLEWARE = "django.contrib.auth.middleware.AuthenticationMiddleware"

Response = HttpResponseBase
GetResponse = Callable[[HttpRequest], Any]
Fields = dict[str, int | float | str]


def session_digest(session_key: str) -> str:
    """16 hex characters of a keyed-by-purpose BLAKE2b of the session key.

    Enough to follow one session through the logs; useless for logging in.
    """
    digest = hashlib.blake2b(session_key.encode(), digest_size=8, person=b"eventlog.session")
    return digest.hexdigest()


class _RequestState:
    """What the middleware leaves on the request for the exception signal to fill in."""

    __slots__ = ("exc_json",)

    def __init__(self) -> None:
        self.exc_json: str | None = None


def _remember_exception(sender: object, request: object = None, **kwargs: object) -> None:
    # Django converts a view's exception into a 500 response before it reaches
    # the middleware; this signal is sent while the exception is being handled.
    state = getattr(request, _STATE_ATTR, None)
    if isinstance(state, _RequestState) and state.exc_json is None:
        exc_info = sys.exc_info()
        if exc_info[0] is not None:
            state.exc_json = exception_json(exc_info)


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
        self.redactor = Redactor(self.settings.redact_keys)
        header = self.settings.request_id_header
        self._request_id_meta = "HTTP_" + header.upper().replace("-", "_")
        self._warned: set[str] = set()
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
        except Exception:
            self._finish(request, None, started, sys.exc_info())
            raise
        else:
            self._finish(request, response, started, None)
            return response
        finally:
            unbind(token)

    async def __acall__(self, request: HttpRequest) -> Any:
        get_response: Callable[[HttpRequest], Awaitable[Any]] = self.get_response
        if self._skipped(request):
            return await get_response(request)
        started = self._begin(request)
        token = self._bind(request, await self._user_async(request), started[2])
        try:
            response = await get_response(request)
        except Exception:
            self._finish(request, None, started, sys.exc_info())
            raise
        else:
            self._finish(request, response, started, None)
            return response
        finally:
            unbind(token)

    def _skipped(self, request: HttpRequest) -> bool:
        skip = self.settings.skip_paths
        return bool(skip) and request.path.startswith(skip)

    def _begin(self, request: HttpRequest) -> tuple[int, int, str]:
        """Wall clock, monotonic clock and request id at the start of the request."""
        incoming = request.META.get(self._request_id_meta)
        if isinstance(incoming, str) and _REQUEST_ID.fullmatch(incoming):
            request_id = incoming
        else:
            request_id = uuid.uuid4().hex
        setattr(request, _STATE_ATTR, _RequestState())
        return time.time_ns(), time.perf_counter_ns(), request_id

    def _bind(self, request: HttpRequest, user: str | None, request_id: str) -> Any:
        return bind(user=user, session=self._session(request), request_id=request_id)

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
        if user is None or not user.is_authenticated:
            return None
        field = self.settings.user_field
        if field == "username":
            return str(user.get_username())
        value = getattr(user, field, None)
        return None if value is None else str(value)

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
        return session_digest(key) if isinstance(key, str) and key else None

    # ------------------------------------------------------------ the request event

    def _finish(
        self,
        request: HttpRequest,
        response: Response | None,
        started: tuple[int, int, str],
        exc_info: ExcInfo | None,
    ) -> None:
        """Log the request event; never raises."""
        wall_ns, perf_ns, request_id = started
        try:
            duration_ms = round((time.perf_counter_ns() - perf_ns) / 1_000_000, 3)
            status = response.status_code if response is not None else 500
            state = getattr(request, _STATE_ATTR, None)
            if exc_info is not None:
                exc_json: str | None = exception_json(exc_info)
            else:
                exc_json = state.exc_json if isinstance(state, _RequestState) else None
            match = getattr(request, "resolver_match", None)
            route = getattr(match, "route", None)
            fields: Fields = {
                "path": request.path[:2048],
                "status": status,
                "durationMs": duration_ms,
            }
            size = _response_size(response)
            if size is not None:
                fields["responseBytes"] = size
            view = getattr(match, "_func_path", None)
            if view:
                fields["view"] = str(view)
            self._add_request_fields(request, fields)
            # Someone who logged in (or was authenticated by the view, as Django
            # REST framework does) is the user of this request's event.
            user = self._late_user(request) if current_context().user is None else None
            event = Event(
                "http." + str(request.method or "unknown").lower()[:32],
                "/" + route.removeprefix("^") if isinstance(route, str) else None,
                "route",
                message=self._body(request),
                level=40 if status >= 500 else 30 if status >= 400 else 20,
                fields=fields,
                time_ns=wall_ns,
                user=user,
                session=self._session(request) if user is not None else None,
            )
            event.exc_info = exc_json
            api.log_event(event)
            header = self.settings.request_id_header
            if response is not None and header not in response:
                response[header] = request_id
        except Exception:
            self._warn_once("finish", "a request event could not be made", exc_info=True)

    def _add_request_fields(self, request: HttpRequest, fields: Fields) -> None:
        meta = request.META
        fields["remoteAddr"] = self._remote_addr(meta)
        user_agent = meta.get("HTTP_USER_AGENT")
        if user_agent:
            fields["userAgent"] = str(user_agent)[:MAX_VALUE_CHARS]
        referer = meta.get("HTTP_REFERER")
        if referer:
            fields["referer"] = self.redactor.url(str(referer))[: MAX_VALUE_CHARS * 2]
        try:
            params = list(request.GET.lists())
        except Exception:  # e.g. too many fields: the event goes on without them
            params = []
        for key, values in params[:MAX_QUERY_PARAMS]:
            value = self.redactor.value(key, ",".join(values))
            fields["query." + key[:64]] = value[:MAX_VALUE_CHARS]
        if len(params) > MAX_QUERY_PARAMS:
            fields["queryDropped"] = len(params) - MAX_QUERY_PARAMS

    def _remote_addr(self, meta: dict[str, Any]) -> str:
        """REMOTE_ADDR, or the client a trusted proxy forwarded for.

        X-Forwarded-For is read right to left: each hop was appended by the
        proxy before it, so the first address that is not a trusted proxy is
        the client.  Without trusted proxies the header is ignored (anyone can
        send it).
        """
        remote = str(meta.get("REMOTE_ADDR") or "")
        trusted = self.settings.trusted_proxies
        if not trusted or not _within(remote, trusted):
            return remote
        client = remote
        for hop in reversed(str(meta.get("HTTP_X_FORWARDED_FOR") or "").split(",")):
            hop = hop.strip()
            if _ip(hop) is None:
                break  # garbage: keep the last address a trusted proxy vouched for
            client = hop
            if not _within(hop, trusted):
                break
        return client

    def _body(self, request: HttpRequest) -> str | None:
        """The redacted, size-capped body of a POST/PUT/PATCH, or None."""
        settings = self.settings
        if not settings.log_body or not settings.max_body or request.method not in BODY_METHODS:
            return None
        content_type = (request.content_type or "").lower()
        text: str | None
        try:
            if content_type in _FORM_TYPES:
                text = self._form_body(request)
            else:
                text = self._raw_body(request, content_type)
        except Exception as exc:  # e.g. the view read the body as a stream
            text = f"[body not logged: {type(exc).__name__}]"
        if not text:
            return None
        limit = settings.max_body
        if len(text) > limit:
            text = f"{text[:limit]}...[{len(text) - limit} more characters]"
        return text

    def _form_body(self, request: HttpRequest) -> str:
        pairs = [(key, value) for key, values in request.POST.lists() for value in values]
        text = urlencode(self.redactor.pairs(pairs), safe=SAFE)
        files = [
            f"{name}=[file {upload.name}, {upload.size} bytes]"
            for name, uploads in request.FILES.lists()
            for upload in uploads
        ]
        return "&".join([text, *files]) if files else text

    def _raw_body(self, request: HttpRequest, content_type: str) -> str | None:
        declared = request.META.get("CONTENT_LENGTH") or ""
        if (
            not hasattr(request, "_body")  # the view did not read it: reading costs memory
            and declared.isdigit()
            and int(declared) > MAX_BODY_READ
        ):
            return f"[{declared} bytes of {content_type or 'unknown type'}, not read]"
        raw = request.body
        if not raw:
            return None
        if content_type == "application/json" or content_type.endswith("+json"):
            return self.redactor.json_text(raw.decode("utf-8", "replace"))
        if content_type.startswith("text/") or content_type in ("", "application/xml"):
            return self.redactor.text(raw.decode("utf-8", "replace"))
        return f"[{len(raw)} bytes of {content_type}]"

    def _warn_once(self, key: str, message: str, exc_info: bool = False) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning("django middleware: %s", message, exc_info=exc_info)


def _response_size(response: Response | None) -> int | None:
    if response is None:
        return None
    if response.streaming:
        # Counting would consume the stream; trust the header if there is one.
        length = response.get("Content-Length") or ""
        return int(length) if length.isdigit() else None
    content = getattr(response, "content", None)
    return len(content) if isinstance(content, bytes) else None


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _within(address: str, networks: tuple[IPNetwork, ...]) -> bool:
    ip = _ip(address)
    return ip is not None and any(ip in network for network in networks)


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
