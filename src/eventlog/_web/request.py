"""What the web integrations share: settings, the request event, and what may leave the process.

The Django middleware (:mod:`eventlog.django`), the ASGI middleware
(:mod:`eventlog.asgi`) and the Flask extension (:mod:`eventlog.flask`) each
read a request their framework's way and hand the pieces to a
:class:`RequestLogger`, so all three make the same ``http.<method>`` event
with the same fields, levels, request ids and redaction.  Nothing here
imports a web framework.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
import re
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from eventlog._api import api
from eventlog._config.config import Settings
from eventlog._config.web_options import OPTION_NAMES, OPTIONS, IPNetwork
from eventlog._core.diagnostics import Warnings
from eventlog._core.errors import ConfigurationError
from eventlog._records.event import Event
from eventlog._records.redact import SAFE, Redactor

log = logging.getLogger(__name__)

#: Methods whose body goes into ``message``.
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
#: Query parameters kept as fields; the rest are counted in ``queryDropped``.
MAX_QUERY_PARAMS = 32
#: Longest header or query value kept, in characters.
MAX_VALUE_CHARS = 512
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
    """One integration's settings, redactor and the steps of a request event.

    The integration calls :meth:`request_id` when a request arrives, fills a
    :data:`Fields` dict with :meth:`add_request_fields` and the body with
    :meth:`body_text`, and ends with :meth:`log_request`.
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

    def add_request_fields(
        self,
        fields: Fields,
        *,
        remote: str,
        forwarded_for: str,
        user_agent: str | None,
        referer: str | None,
        params: Iterable[tuple[str, list[str]]],
    ) -> None:
        """remoteAddr, userAgent, referer (redacted) and ``query.<key>`` (redacted) into fields."""
        fields["remoteAddr"] = self.remote_addr(remote, forwarded_for)
        if user_agent:
            fields["userAgent"] = user_agent[:MAX_VALUE_CHARS]
        if referer:
            fields["referer"] = self.redactor.url(referer)[: MAX_VALUE_CHARS * 2]
        params = list(params)
        for key, values in params[:MAX_QUERY_PARAMS]:
            value = self.redactor.value(key, ",".join(values))
            fields["query." + key[:64]] = value[:MAX_VALUE_CHARS]
        if len(params) > MAX_QUERY_PARAMS:
            fields["queryDropped"] = len(params) - MAX_QUERY_PARAMS

    def form_text(self, pairs: Iterable[tuple[str, str]], files: Iterable[str] = ()) -> str:
        """A form body as ``key=value&...`` with secret values redacted; files as descriptions."""
        text = urlencode(self.redactor.pairs(pairs), safe=SAFE)
        files = list(files)
        return "&".join([text, *files]) if files else text

    def body_text(self, content_type: str, raw: bytes) -> str | None:
        """The body as it may leave the process: redacted JSON, form or text; binary as a size."""
        if not raw:
            return None
        if content_type == "application/json" or content_type.endswith("+json"):
            return self.redactor.json_text(raw.decode("utf-8", "replace"))
        if content_type == FORM_TYPES[0]:
            text = raw.decode("utf-8", "replace")
            return self.form_text(parse_qsl(text, keep_blank_values=True))
        if content_type.startswith("text/") or content_type in ("", "application/xml"):
            return self.redactor.text(raw.decode("utf-8", "replace"))
        return f"[{len(raw)} bytes of {content_type}]"

    @staticmethod
    def not_read(size: int | str, content_type: str) -> str:
        """What ``message`` says about a body too large to read for the log."""
        return f"[{size} bytes of {content_type or 'unknown type'}, not read]"

    def cap(self, text: str | None) -> str | None:
        """``text`` cut at ``max_body`` characters, saying how much was cut."""
        if not text:
            return None
        limit = self.settings.max_body
        if len(text) > limit:
            text = f"{text[:limit]}...[{len(text) - limit} more characters]"
        return text

    def session(self, key: object) -> str | None:
        """The digest of a session key, or None when there is no key."""
        return session_digest(key) if isinstance(key, str) and key else None

    def log_request(
        self,
        *,
        method: str,
        route: str | None,
        status: int,
        wall_ns: int,
        fields: Fields,
        message: str | None,
        exc_json: str | None = None,
        user: str | None = None,
        session: str | None = None,
    ) -> None:
        """Send the ``http.<method>`` event: INFO, WARNING for 4xx, ERROR for 5xx."""
        path = fields.get("path")
        if isinstance(path, str):  # a reset link's token, a signed path: never in the event
            fields["path"] = self.redactor.path(path)
        event = Event(
            "http." + (method or "unknown").lower()[:32],
            route,
            "route",
            message=message,
            level=40 if status >= 500 else 30 if status >= 400 else 20,
            fields=fields,
            time_ns=wall_ns,
            user=user,
            session=session,
        )
        event.exc_info = exc_json
        api.log_event(event)

    def warn_once(self, key: str, message: str, exc_info: bool = False) -> None:
        """Log one warning per kind of failure on the ``eventlog`` logger, never raise."""
        self._warnings.once(key, f"{self.name}: {message}", exc_info=exc_info)


def duration_ms(perf_ns: int) -> float:
    """Milliseconds since ``perf_ns`` (a ``time.perf_counter_ns()``), three decimals."""
    return round((time.perf_counter_ns() - perf_ns) / 1_000_000, 3)


def group_params(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    """Query pairs grouped by key in first-seen order, as Django's ``QueryDict.lists()``."""
    grouped: dict[str, list[str]] = {}
    for key, value in pairs:
        grouped.setdefault(key, []).append(value)
    return list(grouped.items())


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _within(address: str, networks: tuple[IPNetwork, ...]) -> bool:
    ip = _ip(address)
    return ip is not None and any(ip in network for network in networks)
