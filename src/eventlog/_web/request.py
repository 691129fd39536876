"""What the web integrations share: settings, the request event, and what may leave the process.

The Django middleware (:mod:`eventlog.django`), the ASGI middleware
(:mod:`eventlog.asgi`) and the Flask extension (:mod:`eventlog.flask`) only
translate: each reads a request its framework's way into one
:class:`RequestFacts`, and :meth:`RequestLogger.event` makes the
``http.<method>`` event from it (every limit, redaction and the duration
applied here, once), so all three send the same fields, levels, request ids
and redaction.  The request context they bind and the exception JSON they
send come from here too.  Nothing here imports a web framework.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
import re
import uuid
from collections.abc import Iterable, Mapping
from contextvars import Token
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from eventlog._api import api
from eventlog._config.config import Settings
from eventlog._config.web_options import OPTION_NAMES, OPTIONS, IPNetwork
from eventlog._core.diagnostics import Warnings
from eventlog._core.errors import ConfigurationError
from eventlog._records.context import RequestContext, bind, unbind
from eventlog._records.context import current as current_context
from eventlog._records.event import Event
from eventlog._records.logrecords import exception_json
from eventlog._records.redact import SAFE, Redactor

log = logging.getLogger(__name__)

#: Methods whose body goes into ``message``.
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
#: Query parameters kept as fields; the rest are counted in ``queryDropped``.
MAX_QUERY_PARAMS = 32
#: Longest header or query value kept, in characters (a referer: twice this).
MAX_VALUE_CHARS = 512
#: Longest path kept, in characters.
MAX_PATH_CHARS = 2048
#: Longest query parameter name kept, in characters.
MAX_KEY_CHARS = 64
#: Longest method kept in the action, in characters.
MAX_METHOD_CHARS = 32
#: Longest body read (or kept while the application reads it) for the log, in bytes.
MAX_BODY_READ = 256 * 1024
#: Content types whose body is a form.
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:@+=/-]{1,128}")

Fields = dict[str, int | float | str]


# ---------------------------------------------------------------- settings


@dataclass(frozen=True)
class RequestSettings:
    """A web integration's resolved settings (see :data:`OPTIONS` for each one's meaning)."""

    user_field: str
    trusted_proxies: tuple[IPNetwork, ...]
    log_body: bool
    max_body: int
    redact_keys: tuple[str, ...]
    redact_extra_keys: tuple[str, ...]
    request_id_header: str
    skip_paths: tuple[str, ...]

    @classmethod
    def load(
        cls,
        prefix: str,
        given: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
        *,
        given_by: str = "",
        use_django: bool = True,
        sources: Mapping[str, str] | None = None,
    ) -> RequestSettings:
        """Resolve each setting: ``given`` (code), then ``EVENTLOG_<PREFIX>_<NAME>``, then Django.

        ``given_by`` names who took ``given`` (``EventlogMiddleware``); ``sources``
        spells where a given value came from when that was not a keyword
        argument (``app.config['EVENTLOG_FLASK_MAX_BODY']``).  Raises
        :class:`~eventlog.ConfigurationError` naming a bad or unknown setting.
        """
        given = dict(given or {})
        unknown = sorted(set(given) - OPTION_NAMES)
        if unknown:
            raise ConfigurationError(
                f"{given_by or prefix}: unknown setting {', '.join(unknown)}; "
                f"known: {', '.join(sorted(OPTION_NAMES))}"
            )
        environ = dict(os.environ if environ is None else environ)
        source = Settings(values={}, given={}, environ=environ, use_django=use_django)
        values = {}
        for opt in OPTIONS:
            if given.get(opt.name) is not None:
                try:
                    values[opt.name] = opt.parse(given[opt.name])
                except ValueError as exc:
                    value = given[opt.name]
                    where = (sources or {}).get(opt.name)
                    spelt = f"{where} = {value!r}" if where else f"{given_by}({opt.name}={value!r})"
                    raise ConfigurationError(f"{spelt} is invalid: {exc}") from None
            else:
                values[opt.name] = source.resolve(f"{prefix}_{opt.name}", opt)
        return cls(**values)


# ---------------------------------------------------------------- what an adapter reads


Query = tuple[tuple[str, tuple[str, ...]], ...]


@dataclass(frozen=True, slots=True)
class RequestBody:
    """A request body as the framework gave it; :meth:`RequestLogger.event` redacts and caps it.

    The first that applies says what ``message`` holds: ``error`` (the body
    could not be read: the exception's type name), ``form`` (a parsed form's
    pairs; ``files`` its uploads as field, file name and size), ``too_large``
    (over :data:`MAX_BODY_READ`, not read: only ``size`` is told), ``data``
    (the bytes), and otherwise ``size`` bytes of a type not kept as text.
    """

    content_type: str
    size: int = 0
    data: bytes | None = None
    form: tuple[tuple[str, str], ...] | None = None
    files: tuple[tuple[str, str, int | None], ...] = ()
    too_large: bool = False
    error: str | None = None


@dataclass(frozen=True, slots=True)
class RequestFacts:
    """One request and its response as an adapter read them from its framework's objects.

    Raw values only: :meth:`RequestLogger.event` applies every limit and
    redaction.  ``status`` is None when the application raised before
    answering (the event says 500); ``started_ns`` is the wall clock when the
    request came in (the event's time) and ``started_perf_ns``/``ended_perf_ns``
    ``time.perf_counter_ns()`` then and when the response was complete.
    ``client`` is the connection's peer address; ``body`` is None unless
    :meth:`RequestLogger.wants_body` said to read it.  ``user`` and ``session``
    (a digest) name who was authenticated while the request was served, when
    the request's context did not know it yet.
    """

    method: str
    path: str
    route: str | None
    status: int | None
    request_id: str
    started_ns: int
    started_perf_ns: int
    ended_perf_ns: int
    client: str = ""
    forwarded_for: str = ""
    user_agent: str | None = None
    referer: str | None = None
    query: Query = ()
    response_bytes: int | None = None
    view: str | None = None
    body: RequestBody | None = None
    exception: BaseException | None = None
    user: str | None = None
    session: str | None = None


# ---------------------------------------------------------------- the request context


def bind_request(
    *, user: str | None = None, session: str | None = None, request_id: str | None = None
) -> Token[RequestContext]:
    """Bind who is asking and the request id for what the request's code logs; undo with
    :func:`unbind_request`.  Returns the ``contextvars`` token."""
    return bind(user=user, session=session, request_id=request_id)


def unbind_request(token: Token[RequestContext]) -> None:
    """Restore the context that was current before :func:`bind_request`."""
    unbind(token)


def context_user() -> str | None:
    """The user the current request context names, if any."""
    return current_context().user


def exception_text(exc: BaseException) -> str:
    """The ``exc_info`` JSON (type, value, stack) of an exception a request raised; never raises."""
    return exception_json((type(exc), exc, exc.__traceback__))


# ---------------------------------------------------------------- the request event


def session_digest(session_key: str) -> str:
    """16 hex characters of a keyed-by-purpose BLAKE2b of the session key.

    Enough to follow one session through the logs; useless for logging in.
    """
    digest = hashlib.blake2b(session_key.encode(), digest_size=8, person=b"eventlog.session")
    return digest.hexdigest()


def identify(user: Any, field: str) -> str | None:
    """The name of an authenticated user object, or None.

    ``field`` ``username`` tries Django's ``get_username()``, then ``.username``,
    Starlette's ``.display_name`` and Flask-Login's ``get_id()``; any other field
    is read as an attribute.  Text is taken as the name itself.
    """
    if field == "none" or user is None:
        return None
    if isinstance(user, str):
        return user or None
    if not getattr(user, "is_authenticated", True):
        return None
    if field != "username":
        value = getattr(user, field, None)
        return None if value is None else str(value)
    for name in ("get_username", "username", "display_name", "get_id"):
        value = getattr(user, name, None)
        if callable(value):
            value = value()
        if value is not None and value != "":
            return str(value)
    return None


class RequestLogger:
    """One integration's settings and redactor, and the one place a request event is made.

    The integration calls :meth:`request_id` when a request arrives, reads the
    body only when :meth:`wants_body` says so, and ends with
    :meth:`log_request` on the :class:`RequestFacts` it read.
    """

    def __init__(self, settings: RequestSettings, name: str) -> None:
        self.settings = settings
        self.redactor = Redactor((*settings.redact_keys, *settings.redact_extra_keys))
        self.name = name
        self._warnings = Warnings(logger=log)

    def skipped(self, path: str) -> bool:
        """True for a path under one of ``skip_paths``."""
        skip = self.settings.skip_paths
        return bool(skip) and path.startswith(skip)

    @staticmethod
    def request_id(incoming: object) -> str:
        """The incoming request id when it is well-formed, otherwise a new one."""
        if isinstance(incoming, str) and _REQUEST_ID.fullmatch(incoming):
            return incoming
        return uuid.uuid4().hex

    def wants_body(self, method: str) -> bool:
        """True when a body of this method goes into ``message``."""
        settings = self.settings
        return settings.log_body and settings.max_body > 0 and method in BODY_METHODS

    def session(self, key: object) -> str | None:
        """The digest of a session key, or None when there is no key."""
        return session_digest(key) if isinstance(key, str) and key else None

    def remote_addr(self, remote: str, forwarded_for: str) -> str:
        """The connection's address, or the client a trusted proxy forwarded for.

        X-Forwarded-For is read right to left: each hop was appended by the
        proxy before it, so the first address that is not a trusted proxy is
        the client.  Without trusted proxies the header is ignored (anyone can
        send it).
        """
        trusted = self.settings.trusted_proxies
        if not trusted or not _within(remote, trusted):
            return remote
        client = remote
        for hop in reversed(forwarded_for.split(",")):
            hop = hop.strip()
            if _ip(hop) is None:
                break  # garbage: keep the last address a trusted proxy vouched for
            client = hop
            if not _within(hop, trusted):
                break
        return client

    def log_request(self, facts: RequestFacts) -> None:
        """Send the event of a request (see :meth:`event`)."""
        api.log_event(self.event(facts))

    def event(self, facts: RequestFacts) -> Event:
        """The ``http.<method>`` event of a request: INFO, WARNING for 4xx, ERROR for 5xx.

        Target the route (none when no route matched); fields the path
        (redacted: a reset link's token, a signed path), status, duration,
        response size, view, client address, user agent, referer and query
        (redacted); message the redacted, capped body; the event's time when
        the request came in.  Every limit is applied here and nowhere else.
        """
        status = 500 if facts.status is None else facts.status
        fields: Fields = {
            "path": self.redactor.path(facts.path[:MAX_PATH_CHARS]),
            "status": status,
            "durationMs": round((facts.ended_perf_ns - facts.started_perf_ns) / 1_000_000, 3),
        }
        if facts.response_bytes is not None:
            fields["responseBytes"] = facts.response_bytes
        if facts.view:
            fields["view"] = facts.view
        fields["remoteAddr"] = self.remote_addr(facts.client, facts.forwarded_for)
        if facts.user_agent:
            fields["userAgent"] = facts.user_agent[:MAX_VALUE_CHARS]
        if facts.referer:
            fields["referer"] = self.redactor.url(facts.referer)[: MAX_VALUE_CHARS * 2]
        query = facts.query
        for key, values in query[:MAX_QUERY_PARAMS]:
            value = self.redactor.value(key, ",".join(values))
            fields["query." + key[:MAX_KEY_CHARS]] = value[:MAX_VALUE_CHARS]
        if len(query) > MAX_QUERY_PARAMS:
            fields["queryDropped"] = len(query) - MAX_QUERY_PARAMS
        event = Event(
            "http." + (facts.method or "unknown").lower()[:MAX_METHOD_CHARS],
            facts.route,
            "route",
            message=self._message(facts.body),
            level=40 if status >= 500 else 30 if status >= 400 else 20,
            fields=fields,
            time_ns=facts.started_ns,
            user=facts.user,
            session=facts.session,
            request_id=facts.request_id,
        )
        if facts.exception is not None:
            event.exc_info = exception_text(facts.exception)
        return event

    # ------------------------------------------------------------ the body

    def _message(self, body: RequestBody | None) -> str | None:
        """The body as it may leave the process, cut at ``max_body`` characters."""
        if body is None:
            return None
        try:
            text = self._body_text(body)
        except Exception as exc:  # a body redaction cannot read is not logged, the event is
            text = f"[body not logged: {type(exc).__name__}]"
        if not text:
            return None
        limit = self.settings.max_body
        if len(text) > limit:
            text = f"{text[:limit]}...[{len(text) - limit} more characters]"
        return text

    def _body_text(self, body: RequestBody) -> str | None:
        content_type = body.content_type
        if body.error is not None:
            return f"[body not logged: {body.error}]"
        if body.form is not None:
            uploads = [f"{name}=[file {filename}, {size} bytes]" for name, filename, size in body.files]
            return self._form_text(body.form, uploads)
        if body.too_large:
            return f"[{body.size} bytes of {content_type or 'unknown type'}, not read]"
        raw = body.data
        if raw is None:
            return f"[{body.size} bytes of {content_type}]"
        if not raw:
            return None
        if content_type == "application/json" or content_type.endswith("+json"):
            return self.redactor.json_text(raw.decode("utf-8", "replace"))
        if content_type == FORM_TYPES[0]:
            return self._form_text(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        if keeps_text(content_type):
            return self.redactor.text(raw.decode("utf-8", "replace"))
        return f"[{len(raw)} bytes of {content_type}]"

    def _form_text(self, pairs: Iterable[tuple[str, str]], files: list[str] | None = None) -> str:
        """A form as ``key=value&...`` with secret values redacted; files as descriptions."""
        text = urlencode(self.redactor.pairs(pairs), safe=SAFE)
        return "&".join([text, *files]) if files else text

    def warn_once(self, key: str, message: str, exc_info: bool = False) -> None:
        """Log one warning per kind of failure on the ``eventlog`` logger, never raise."""
        self._warnings.once(key, f"{self.name}: {message}", exc_info=exc_info)


def keeps_text(content_type: str) -> bool:
    """True for a body type ``message`` carries as (redacted) text; others are told by size."""
    return (
        content_type in ("", "application/json", "application/xml", FORM_TYPES[0])
        or content_type.endswith("+json")
        or content_type.startswith("text/")
    )


def group_params(pairs: Iterable[tuple[str, str]]) -> Query:
    """Query pairs grouped by key in first-seen order, as Django's ``QueryDict.lists()``."""
    grouped: dict[str, list[str]] = {}
    for key, value in pairs:
        grouped.setdefault(key, []).append(value)
    return tuple((key, tuple(values)) for key, values in grouped.items())


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _within(address: str, networks: tuple[IPNetwork, ...]) -> bool:
    ip = _ip(address)
    return ip is not None and any(ip in network for network in networks)
