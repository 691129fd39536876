"""The ``http`` transport: one POST per batch through a pooled ``requests.Session``.

Retries happen in two layers that do not wait twice:

* urllib3's :class:`~urllib3.util.Retry` on the session's adapter makes a few
  quick retries inside one send (connection errors, timeouts, 408, 429, 502,
  503, 504), keeping the pooled connection, and honours a short Retry-After.
* When those are used up, on a 500, or when the server asks for a longer pause
  than ``retry_after_max``, the send raises a retryable :class:`TransportError`
  carrying the Retry-After; the engine then backs off (exponentially, with
  jitter, at least as long as the server asked) and sends the batch again.
  That wait is the engine's, so shutdown can cut it short.

A 4xx that a retry cannot fix (and ClickHouse's 500 for data it cannot parse)
sets the batch aside (``RejectedError``) with the status and the start of the
response body, instead of a retry storm.  A 413 first splits the batch.

What the server sends is input, bounded and checked: the answer (status line,
interim ``1xx`` answers, headers and the body we read) must come within
``read_timeout`` of the request, however slowly it drips; ``1xx`` answers
(``100 Continue``, ``103 Early Hints``) are skipped, never taken as final; at
most :data:`MAX_ANSWER_BYTES` of a body are read, the rest discarded with the
connection; an unreadable ``Retry-After`` is ignored.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import http.client
import importlib.metadata
import io
import re
import socket
import ssl
import time
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    InvalidHeader,
    MaxRetryError,
    NewConnectionError,
    ReadTimeoutError,
    ResponseError,
)
from urllib3.util.retry import Retry

from eventlog.plugin import (
    Batch,
    ConfigurationError,
    ConnectError,
    Formatter,
    PluginContext,
    Record,
    RejectedError,
    SecretMask,
    SendTimeout,
    Transport,
    TransportError,
)
from eventlog.plugin.net import certificate_names, describe_tls_error, reading_peer, tls_context

#: Statuses urllib3 retries at once inside a send: the server or a proxy in front of it
#: is busy or restarting.  A 500 is left to the engine's slower backoff: it is often
#: the same answer every time.
QUICK_RETRY_STATUSES = frozenset({408, 429, 502, 503, 504})
#: ClickHouse (18.x at least) answers 500 to input it cannot take; with these codes
#: the batch itself is wrong and sending it again cannot help: 6 CANNOT_PARSE_TEXT,
#: 16 NO_SUCH_COLUMN_IN_TABLE, 27 CANNOT_PARSE_INPUT_ASSERTION_FAILED, 53 TYPE_MISMATCH,
#: 70 CANNOT_CONVERT_TYPE, 72 CANNOT_PARSE_NUMBER, 117 INCORRECT_DATA, 164 READONLY.
CLICKHOUSE_INPUT_ERRORS = frozenset({6, 16, 27, 53, 70, 72, 117, 164})
_CLICKHOUSE_CODE = re.compile(rb"^Code: (\d+)[.,]")
#: How much of an error response body goes into the log line.
BODY_EXCERPT_CHARS = 300
#: The most of an answer's body we read; the rest is discarded with the connection.
MAX_ANSWER_BYTES = 64 * 1024
#: The longest Retry-After taken from a server, in seconds (the engine waits at most
#: retry_backoff_max anyway); a bigger number is read as this.
MAX_RETRY_AFTER = 86_400.0


@dataclass(frozen=True)
class HttpConfig:
    """Validated settings of one ``http`` transport (see :mod:`eventlog_http.plugin`)."""

    # Kept out of repr(): the URL, the headers and the secrets may hold credentials.
    url: str = field(repr=False)
    headers: dict[str, str] = field(repr=False)
    #: Values that must never be shown: tokens, passwords, header values.
    secrets: tuple[str, ...] = field(default=(), repr=False)
    gzip: bool = False
    max_body_bytes: int = 5_000_000
    connect_timeout: float = 5.0
    read_timeout: float = 10.0
    retries: int = 2
    retry_after_max: float = 5.0
    backoff_factor: float = 0.25
    #: ``requests``' ``verify``: True, False, or the path of a CA bundle.
    verify: bool | str = True
    cert: tuple[str, str] | str | None = None
    shown_url: str = field(init=False, default="")

    def __post_init__(self) -> None:
        object.__setattr__(self, "shown_url", shown_url(self.url))

    @classmethod
    def from_context(cls, context: PluginContext) -> HttpConfig:
        """Check the ``http`` options together and turn them into a config (no I/O but the TLS files)."""
        options = context.options
        url = options["url"]
        if not url:
            raise ConfigurationError(
                "transport 'http' needs a URL: set EVENTLOG_HTTP_URL (or configure(http_url=...)), "
                "e.g. http://127.0.0.1:8080/"
            )
        parts = urllib.parse.urlsplit(url)
        user, password = options["user"], options["password"]
        if parts.username is not None:  # credentials in the URL move to basic auth, out of the URL
            if user is not None:
                raise ConfigurationError(
                    "EVENTLOG_HTTP_URL carries a user name and EVENTLOG_HTTP_USER is set too; "
                    "keep one of the two"
                )
            user = urllib.parse.unquote(parts.username)
            password = urllib.parse.unquote(parts.password or "")
            netloc = parts.netloc.rpartition("@")[2]
            url = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
        if password is not None and user is None:
            raise ConfigurationError("EVENTLOG_HTTP_PASSWORD is set without EVENTLOG_HTTP_USER")
        token = options["token"]
        if token is not None and user is not None:
            raise ConfigurationError(
                "EVENTLOG_HTTP_TOKEN and EVENTLOG_HTTP_USER are both set; use bearer or basic auth"
            )
        headers = dict(options["headers"])
        secrets = [value for value in headers.values() if len(value) >= 4]
        # Query values such as ClickHouse's password= are credentials too: keep them out of logs.
        secrets += [
            value
            for key, value in urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query)
            if len(value) >= 4 and any(word in key.lower() for word in ("pass", "token", "key", "secret"))
        ]
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
            secrets.append(token)
        elif user is not None:
            pair = f"{user}:{password or ''}".encode()
            basic = base64.b64encode(pair).decode("ascii")
            headers["Authorization"] = f"Basic {basic}"
            secrets += [basic] + ([password] if password else [])
        cert, key = options["tls_cert"], options["tls_key"]
        if key and not cert:
            raise ConfigurationError("EVENTLOG_HTTP_TLS_KEY is set without EVENTLOG_HTTP_TLS_CERT")
        ca = options["tls_ca"]
        # Load the files now, so that a wrong path fails configure() and not the first send.
        tls_context(options, setting="EVENTLOG_HTTP_TLS_CA/_CERT/_KEY", enabled=bool(ca or cert))
        verify: bool | str = ca if (ca and options["tls_verify"]) else bool(options["tls_verify"])
        return cls(
            url=url,
            headers=headers,
            secrets=tuple(secrets),
            gzip=options["gzip"],
            max_body_bytes=options["max_body_bytes"],
            connect_timeout=options["connect_timeout"],
            read_timeout=options["read_timeout"],
            retries=options["retries"],
            retry_after_max=options["retry_after_max"],
            verify=verify,
            cert=(cert, key) if cert and key else cert,
        )


def _user_agent() -> str:
    try:
        version = importlib.metadata.version("eventlog-http")
    except importlib.metadata.PackageNotFoundError:
        version = "0+unknown"
    return f"eventlog-http/{version}"


def shown_url(url: str) -> str:
    """The URL as it may appear in logs: no user info, no query string (either may hold a key)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path or '/'}"


def clickhouse_input_error(response: requests.Response) -> bool:
    """True when a 5xx is ClickHouse refusing the data itself (see CLICKHOUSE_INPUT_ERRORS)."""
    code = response.headers.get("X-ClickHouse-Exception-Code")
    if code is None:
        found = _CLICKHOUSE_CODE.match(response.content)
        code = found.group(1).decode() if found else None
    return code is not None and code.isdigit() and int(code) in CLICKHOUSE_INPUT_ERRORS


class ServerPacedRetry(Retry):
    """urllib3's Retry, except that a Retry-After longer than ``wait_max`` ends the retries.

    Sleeping inside a send holds the worker, and shutdown cannot interrupt
    it; a long pause is better left to the engine's backoff, which can.
    """

    wait_max: float = 5.0

    def parse_retry_after(self, retry_after: str) -> float:
        """The header's seconds, at most MAX_RETRY_AFTER; 0 (no hint) when it cannot be read.

        A server's header is input: a date in the wrong form, a word, or a
        5,000-digit number must not end the send with a ValueError.
        """
        try:
            seconds = super().parse_retry_after(retry_after)
        except (InvalidHeader, ValueError, OverflowError):
            return 0.0
        return float(min(seconds, MAX_RETRY_AFTER))

    def new(self, **kw: Any) -> ServerPacedRetry:
        retry = super().new(**kw)
        retry.wait_max = self.wait_max
        return retry

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: Any = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> ServerPacedRetry:
        if response is not None and self.respect_retry_after_header:
            try:
                wait = self.get_retry_after(response)
            except InvalidHeader:
                wait = None
            if wait is not None and wait > self.wait_max:
                # Treated as "retries used up": urllib3 hands the response back to us.
                raise MaxRetryError(_pool, url or "", ResponseError(f"Retry-After {wait:g}s"))
        return super().increment(method, url, response, error, _pool, _stacktrace)


class _DeadlineReader(io.RawIOBase):
    """A socket's bytes, each read bounded by what is left of one deadline.

    A socket timeout bounds one ``recv``; a server that drips a byte or a
    header line at a time would reset it forever.  Here every ``recv`` waits
    at most until the deadline, so the whole answer does.
    """

    def __init__(self, sock: socket.socket, deadline: float, step: float | None) -> None:
        super().__init__()
        self._sock = sock
        self._deadline = deadline
        self._step = step

    def readable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._sock.fileno()

    def readinto(self, buffer: Any) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the answer did not come within the read timeout")
        self._sock.settimeout(left if self._step is None else min(self._step, left))
        return self._sock.recv_into(buffer)


class _DeadlineResponse(http.client.HTTPResponse):
    """http.client's response, read within ``read_timeout`` in all, skipping every 1xx answer.

    urllib3 sets the socket's timeout to the read timeout just before making
    the response: that is also the answer's whole budget from here.
    """

    def __init__(self, sock: socket.socket, *args: Any, **kwargs: Any) -> None:
        super().__init__(sock, *args, **kwargs)
        step = sock.gettimeout()
        deadline = time.monotonic() + (step if step is not None else MAX_RETRY_AFTER)
        self.fp.close()
        self.fp = io.BufferedReader(_DeadlineReader(sock, deadline, step))

    def _read_status(self) -> tuple[str, int, str]:
        # http.client skips 100 Continue only; a 103 Early Hints (or any 1xx) is not the answer.
        while True:
            version, status, reason = super()._read_status()  # type: ignore[misc]
            if not 100 <= status < 200 or status == 101:
                return version, status, reason
            http.client.parse_headers(self.fp)  # the interim answer's headers, dropped


class _Connection(HTTPConnection):
    response_class = _DeadlineResponse


class _TLSConnection(HTTPSConnection):
    response_class = _DeadlineResponse


class _Pool(HTTPConnectionPool):
    ConnectionCls = _Connection


class _TLSPool(HTTPSConnectionPool):
    ConnectionCls = _TLSConnection


class _Adapter(HTTPAdapter):
    """requests' adapter, with connections whose answers are bounded (see _DeadlineResponse)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _Pool, "https": _TLSPool}


def make_retry(config: HttpConfig) -> ServerPacedRetry:
    """The retry policy declared on the session's adapter."""
    retry = ServerPacedRetry(
        total=config.retries,
        connect=config.retries,
        read=config.retries,
        status=config.retries,
        other=0,  # TLS failures and the like: a quick retry will not help
        redirect=0,
        allowed_methods=frozenset({"POST"}),  # safe: events carry ids, receivers can drop repeats
        status_forcelist=QUICK_RETRY_STATUSES,
        backoff_factor=config.backoff_factor,
        backoff_jitter=config.backoff_factor,
        raise_on_status=False,  # we read the final answer's status, body and Retry-After
        respect_retry_after_header=True,
    )
    retry.wait_max = config.retry_after_max
    return retry


class HttpTransport(Transport):
    """POSTs each batch (split to fit ``max_body_bytes``) to one URL."""

    def __init__(self, config: HttpConfig, formatter: Formatter, user_agent: str) -> None:
        self.config = config
        self.formatter = formatter
        self.retry = make_retry(config)
        self.headers = {
            "User-Agent": user_agent,
            "Content-Type": formatter.content_type,
            **config.headers,
        }
        if config.gzip:
            self.headers["Content-Encoding"] = "gzip"
        self._empty_body = len(formatter.format_batch([]))
        self.session: requests.Session | None = None
        #: Every message this transport lets out (errors, refusals) passes through it.
        self.mask = SecretMask(config.secrets)

    @classmethod
    def from_context(cls, context: PluginContext) -> HttpTransport:
        """The spec's factory: :meth:`HttpConfig.from_context`, then the transport."""
        formatter = context.formatter
        if formatter is None:
            raise ConfigurationError("transport 'http' needs a formatter (EVENTLOG_FORMAT)")
        return cls(HttpConfig.from_context(context), formatter, _user_agent())

    # ------------------------------------------------------------ Transport

    def open(self) -> None:
        self.close()
        session = requests.Session()
        adapter = _Adapter(max_retries=self.retry, pool_connections=1, pool_maxsize=2)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        session.headers.update(self.headers)
        self.session = session

    def send(self, batch: Batch) -> Sequence[tuple[Record, str]] | None:
        if self.session is None:
            self.open()
        refused: list[tuple[Record, str]] = []
        try:
            for piece in self._pieces(batch):
                refused += self._post(piece)
            if refused and len(refused) == len(batch):
                raise RejectedError(f"{len(batch)} events refused: {refused[0][1]}")
        except TransportError as exc:
            self.mask.scrub(exc)
            raise
        return [(record, self.mask(reason)) for record, reason in refused]

    def close(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            with contextlib.suppress(Exception):  # close() must not raise
                session.close()

    # ------------------------------------------------------------ bodies

    def _pieces(self, batch: Batch) -> list[Batch]:
        """Split a batch where its body would pass max_body_bytes (estimated; _post checks)."""
        limit = self.config.max_body_bytes
        pieces: list[Batch] = []
        start, size = 0, self._empty_body
        for index, record in enumerate(batch):
            grown = size + len(record.payload) + 1  # +1: a separator some formats add
            if grown > limit and index > start:
                pieces.append(batch[start:index])
                start, grown = index, self._empty_body + len(record.payload) + 1
            size = grown
        if start < len(batch):
            pieces.append(batch[start:])
        return pieces

    def _post(self, piece: Batch) -> list[tuple[Record, str]]:
        """POST one piece; return what was refused for good, raise when a retry may help."""
        body = self.formatter.format_batch([r.payload for r in piece])
        if len(body) > self.config.max_body_bytes:
            if len(piece) > 1:
                return self._halves(piece)
            return [
                (
                    piece[0],
                    f"too_large: the event's body is {len(body)} bytes, more than "
                    f"EVENTLOG_HTTP_MAX_BODY_BYTES={self.config.max_body_bytes}",
                )
            ]
        data = gzip.compress(body, compresslevel=6, mtime=0) if self.config.gzip else body
        assert self.session is not None
        try:
            response = self.session.post(
                self.config.url,
                data=data,
                timeout=(self.config.connect_timeout, self.config.read_timeout),
                # Passed per request: a session-level verify loses to REQUESTS_CA_BUNDLE.
                verify=self.config.verify,
                cert=self.config.cert,
                allow_redirects=False,  # a redirected POST turns into a GET and loses the body
                stream=True,  # the body is read by _read_answer, bounded
            )
        except requests.RequestException as exc:
            raise self._failure(exc) from None
        try:
            with reading_peer(self.config.shown_url, "an answer"):
                return self._answered(piece, response)
        finally:
            response.close()

    def _answered(self, piece: Batch, response: requests.Response) -> list[tuple[Record, str]]:
        """What the answer to one POST means: [] (taken), refusals, or a retryable error."""
        status = response.status_code
        _read_answer(response)
        if 200 <= status < 300:
            return []
        if status == 413 and len(piece) > 1:
            return self._halves(piece)
        where = f"POST to {self.config.shown_url} got {status} {response.reason or ''}".rstrip()
        excerpt = self._excerpt(response)
        if status in (408, 429) or (500 <= status < 600 and not clickhouse_input_error(response)):
            raise TransportError(f"{where}: {excerpt}", retry_after=self._retry_after(response))
        hint = ""
        if 300 <= status < 400:
            hint = f" (redirected to {shown_url(response.headers.get('Location', ''))}; "
            hint += "set EVENTLOG_HTTP_URL to the final URL)"
        elif status in (401, 403):
            hint = " (check EVENTLOG_HTTP_TOKEN, _USER/_PASSWORD or _HEADERS)"
        reason = f"http {status}: {where}{hint}: {excerpt}"
        return [(record, reason) for record in piece]

    def _halves(self, piece: Batch) -> list[tuple[Record, str]]:
        middle = len(piece) // 2
        return self._post(piece[:middle]) + self._post(piece[middle:])

    # ------------------------------------------------------------ errors

    def _retry_after(self, response: requests.Response) -> float | None:
        value = response.headers.get("Retry-After")
        if value is None:
            return None
        return self.retry.parse_retry_after(value) or None

    def _excerpt(self, response: requests.Response) -> str:
        text = response.content[: BODY_EXCERPT_CHARS * 4].decode("utf-8", "replace")
        # Masked before the cut, so that a secret cut in half is still recognised.
        return self.mask(" ".join(text.split()))[:BODY_EXCERPT_CHARS] or "(empty body)"

    def _failure(self, exc: requests.RequestException) -> TransportError:
        """Our own message for a failed request: no URL query, no secrets, what to do."""
        where = self.config.shown_url
        config = self.config
        chain = _chain(exc)
        tries = f" (tried {config.retries + 1} times)" if config.retries else ""
        tls = [e for e in chain if isinstance(e, ssl.SSLError)]
        if tls:
            return ConnectError(f"TLS with {where} failed: {self._tls_reason(tls[0])}")
        if any(isinstance(e, requests.exceptions.SSLError) for e in chain):
            return ConnectError(f"TLS with {where} failed: {_reason(chain)}")
        if any(isinstance(e, ReadTimeoutError) for e in chain):
            return SendTimeout(
                f"POST to {where}: no answer within {config.read_timeout}s{tries} "
                "(EVENTLOG_HTTP_READ_TIMEOUT)"
            )
        if any(isinstance(e, ConnectTimeoutError) and not isinstance(e, NewConnectionError) for e in chain):
            return ConnectError(
                f"cannot connect to {where} within {config.connect_timeout}s{tries} "
                "(EVENTLOG_HTTP_CONNECT_TIMEOUT)"
            )
        return ConnectError(f"POST to {where} failed{tries}: {_reason(chain)}")

    def _tls_reason(self, error: ssl.SSLError) -> str:
        """The shared explanation of :func:`eventlog.plugin.net.describe_tls_error`."""
        parts = urllib.parse.urlsplit(self.config.url)
        host = parts.hostname or ""
        port = parts.port or 443
        verify = self.config.verify
        # requests trusts its own CA bundle unless given one: read the names the same way.
        cafile = verify if isinstance(verify, str) else requests.utils.DEFAULT_CA_BUNDLE_PATH

        def names() -> list[str] | None:
            return certificate_names(host, port, cafile=cafile, timeout=self.config.connect_timeout)

        return describe_tls_error(error, host, ca_setting="EVENTLOG_HTTP_TLS_CA", names=names)


def _read_answer(response: requests.Response) -> None:
    """Read at most MAX_ANSWER_BYTES of the body into ``response.content``.

    A complete body leaves the connection to be used again; a longer one (or
    one that cannot be read in time) is cut, and ``close()`` then drops the
    connection with the rest unread.  The status was already read: a 2xx
    stays a 2xx even if its body cannot be read.
    """
    try:
        data = response.raw.read(MAX_ANSWER_BYTES + 1, decode_content=True) or b""
    except (HTTPError, OSError, requests.RequestException, http.client.HTTPException):
        response._content = b""
        return
    response._content = data[:MAX_ANSWER_BYTES]
    # Complete: requests' close() releases the connection to the pool instead of closing it.
    response._content_consumed = len(data) <= MAX_ANSWER_BYTES  # type: ignore[attr-defined]


_OBJECT_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-f]+>:?\s*")


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and every exception nested in it (urllib3's ``reason``, causes, args)."""
    found: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop(0)
        if any(current is seen for seen in found):
            continue
        found.append(current)
        nested = [getattr(current, "reason", None), current.__cause__, current.__context__]
        nested += list(current.args)
        todo += [n for n in nested if isinstance(n, BaseException)]
    return found


def _reason(chain: list[BaseException]) -> str:
    """The innermost readable reason: an OS error's text, else the last message (no URL)."""
    for error in chain:
        if isinstance(error, OSError) and error.strerror:
            return error.strerror
    text = _OBJECT_REPR.sub("", str(chain[-1])) or type(chain[-1]).__name__
    return text[:200]
