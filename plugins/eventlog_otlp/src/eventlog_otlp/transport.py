"""The ``otlp`` transport: one OTLP/HTTP export per batch, on one kept-alive connection.

What the OTLP specification asks of an exporter, and what this does:

* 2xx: the batch is delivered, except the ``partial_success.rejected_log_records``
  the answer names: the server does not say which, so that many records of the
  batch (its last ones) are returned as refused with the server's
  ``error_message``, and counted as dropped by reason ``rejected``.
* 429, 502, 503, 504: retryable; the ``Retry-After`` header (seconds or an
  HTTP date, parsed within bounds) goes to the engine, whose backoff waits at
  least that long (up to ``EVENTLOG_RETRY_BACKOFF_MAX``).  Retries are the
  engine's alone: it can cut a wait short at shutdown, and a spooled batch
  waits in the spool.
* 413: the batch is split in halves; any other status is a refusal for good
  (the spec: "all other 4xx or 5xx are not retryable").
* No answer, a broken connection, a timeout: retryable.  A kept-alive
  connection the server closed while idle is reopened at once, once.

The standard library's ``http.client`` does the HTTP: the transport needs one
connection, no pool, no redirects, and no third-party dependency.
"""

from __future__ import annotations

import contextlib
import email.utils
import gzip
import http.client
import socket
import ssl
import struct
import time
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Self

from eventlog.plugin import (
    Batch,
    ConfigurationError,
    ConnectError,
    EncodedBatch,
    PluginContext,
    Record,
    RejectedError,
    SecretMask,
    SendTimeout,
    Transport,
    TransportError,
)
from eventlog.plugin.net import certificate_names, describe_tls_error, make_tls_context
from eventlog_otlp import encoding
from eventlog_otlp.config import OtlpConfig, _sdk_version

#: The statuses the OTLP specification calls retryable.
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
#: The longest Retry-After taken from a server; the engine caps it again (retry_backoff_max).
RETRY_AFTER_MAX = 3600.0
#: The most of an answer's body read: a partial_success is small, an error page is cut.
MAX_ANSWER_BYTES = 64 * 1024
BODY_EXCERPT_CHARS = 300


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` asks for (delta-seconds or an HTTP date), within
    0 .. :data:`RETRY_AFTER_MAX`; None when absent or unreadable.

    >>> parse_retry_after("3"), parse_retry_after("99999999999999999999"), parse_retry_after("soon")
    (3.0, 3600.0, None)
    """
    if value is None:
        return None
    text = value.strip()
    if not text or len(text) > 64:  # a date is 29 characters; anything longer is not one
        return None
    if text.isascii() and text.isdigit():
        return min(float(text), RETRY_AFTER_MAX)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        return None
    seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, min(seconds, RETRY_AFTER_MAX))


def shown_url(url: str) -> str:
    """The URL as it may appear in logs: no user info, no query string."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path or '/'}"


class OtlpTransport(Transport):
    """Exports each batch (split to fit ``max_body_bytes``) to an OTLP/HTTP logs endpoint."""

    def __init__(self, config: OtlpConfig) -> None:
        self.config = config
        parts = urllib.parse.urlsplit(config.url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.https else 80)
        self.path = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
        self.where = shown_url(config.url)
        self.kind = config.kind
        self.json = self.kind == encoding.JSON
        self.headers = {
            "User-Agent": f"eventlog-otlp/{_sdk_version()}",
            "Content-Type": "application/json" if self.json else "application/x-protobuf",
            **config.headers,
        }
        if config.gzip:
            self.headers["Content-Encoding"] = "gzip"
        self.tls: ssl.SSLContext | None = None
        if self.https:
            self.tls = make_tls_context(
                ca=config.tls_ca,
                cert=config.tls_cert,
                key=config.tls_key,
                verify=config.tls_verify,
                setting="EVENTLOG_OTLP_TLS_CA",
            )
        self.connection: http.client.HTTPConnection | None = None
        self._used = False
        #: Every message this transport lets out passes through it (header values are secrets).
        self.mask = SecretMask(config.secrets)
        #: Resource key -> Resource message (or JSON object), built once per process identity.
        self._resources: dict[bytes, bytes] = {}
        #: eventlog-speedups' request_body (protobuf only), else None.
        self._compiled_body: Callable[[Sequence[Record], Callable[[bytes], bytes]], bytes | None] | None = (
            encoding.compiled.request_body if encoding.compiled is not None and not self.json else None
        )
        #: eventlog-speedups' request_of: the request from an EncodedBatch's body and sizes, no
        #: Record made (the batches the formatter's encode_items wrote), else None.
        self._compiled_request_of: Callable[..., bytes | None] | None = (
            getattr(encoding.compiled, "request_of", None) if self._compiled_body is not None else None
        )

    @classmethod
    def from_context(cls, context: PluginContext) -> Self:
        """The spec's factory: :meth:`OtlpConfig.from_context`, then the transport (no I/O)."""
        if context.formatter_name != "otlp":
            raise ConfigurationError(
                f"transport 'otlp' carries the format 'otlp' only, not {context.formatter_name!r}"
            )
        return cls(OtlpConfig.from_context(context))

    # ------------------------------------------------------------ Transport

    def open(self) -> None:
        self.close()
        timeout = self.config.timeout
        if self.https:
            self.connection = http.client.HTTPSConnection(
                self.host, self.port, timeout=timeout, context=self.tls
            )
        else:
            self.connection = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            self.connection.connect()
            # http.client writes the headers and the body in two sends: without TCP_NODELAY
            # the body waits for the ACK of the headers (Nagle's algorithm against a delayed
            # ACK: up to 40 ms per export on Linux, a few hundred events/s at most).
            self.connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except Exception as exc:
            self.close()
            raise self._failure(exc, connecting=True) from None
        self._used = False

    def send(self, batch: Batch) -> Sequence[tuple[Record, str]] | None:
        refused: list[tuple[Record, str]] = []
        body = None
        if type(batch) is EncodedBatch and batch.sizes is not None and self._compiled_request_of is not None:
            # The envelopes lie back to back in the body the formatter wrote: no Record made
            # unless the export is split or partly refused.
            body = self._compiled_request_of(batch.body, batch.sizes, batch.heads()[2], self._resource)
        if body is None and self._compiled_body is not None:
            # eventlog-speedups: the request in one C call when every payload is a protobuf
            # envelope (None otherwise, and the loop below says which is not).
            body = self._compiled_body(batch, self._resource)
        if body is not None:
            compiled = body
            return self._answered(batch, lambda: self._export(batch, None, compiled))
        entries: list[tuple[int, bytes, bytes, bytes]] = []
        placed: list[Record] = []
        kind = self.kind
        # encoding.open_envelope, inlined: one call less per record.
        unpack, head = encoding.HEAD.unpack_from, encoding.HEAD_SIZE
        for record in batch:
            payload = record.payload
            try:
                payload_kind, resource_len, scope_len = unpack(payload)
            except struct.error:
                payload_kind = resource_len = scope_len = -1
            start = head + resource_len
            end = start + scope_len
            if payload_kind not in encoding.KIND_NAMES or resource_len < 0 or end > len(payload):
                try:
                    encoding.open_envelope(payload)  # for its reason
                    reason = "its header does not fit it"
                except ValueError as exc:
                    reason = str(exc)
                refused.append((record, f"not an otlp payload: {reason}"))
                continue
            if payload_kind != kind:
                refused.append(
                    (
                        record,
                        f"encoded for {encoding.KIND_NAMES[payload_kind]} (spooled before the "
                        f"protocol changed); this transport sends {self.config.protocol}",
                    )
                )
                continue
            entries.append((record.time_ns, payload[head:start], payload[start:end], payload[end:]))
            placed.append(record)
        return self._answered(batch, lambda: refused + (self._export(placed, entries) if entries else []))

    def _answered(
        self, batch: Sequence[Record], export: Callable[[], list[tuple[Record, str]]]
    ) -> list[tuple[Record, str]]:
        """``export()``'s refused records, their reasons masked; all refused is a RejectedError."""
        try:
            refused = export()
            if refused and len(refused) == len(batch):
                raise RejectedError(f"{len(batch)} events refused: {refused[0][1]}")
        except TransportError as exc:
            self.mask.scrub(exc)
            raise
        return [(record, self.mask(reason)) for record, reason in refused]

    def close(self) -> None:
        connection, self.connection = self.connection, None
        if connection is not None:
            with contextlib.suppress(Exception):  # close() must not raise
                connection.close()

    # ------------------------------------------------------------ one export

    def _resource(self, key: bytes) -> bytes:
        message = self._resources.get(key)
        if message is None:
            # Attributes configured by the user win; the event's host and pid fill the rest.
            attributes = {**encoding.resource_attributes(key), **self.config.resource}
            if self.json:
                message = encoding.resource_json(attributes)
            else:
                message = encoding.resource_message(attributes)
            if len(self._resources) < 64:
                self._resources[key] = message
        return message

    def _export(
        self,
        records: Sequence[Record],
        entries: list[tuple[int, bytes, bytes, bytes]] | None,
        body: bytes | None = None,
    ) -> list[tuple[Record, str]]:
        """Export the entries, split to fit; return the records refused for good.

        ``entries`` None: the records' payloads are all protobuf envelopes and the
        compiled ``request_body`` makes the body (``body``, when it made it already).
        """
        if body is None:
            if entries is None:
                assert self._compiled_body is not None
                body = self._compiled_body(records, self._resource)
                assert body is not None  # these records made a body before
            else:
                body = encoding.request_body(self.kind, entries, self._resource)
        if len(body) > self.config.max_body_bytes and len(records) > 1:
            return self._halves(records, entries)
        status, reason, headers, answer = self._post(body)
        if 200 <= status < 300:
            content_type = headers.get("content-type") or ""
            json_answer = "json" in content_type or (self.json and "protobuf" not in content_type)
            try:
                rejected, message = encoding.partial_success(answer, json_answer)
            except encoding.ResponseError:
                return []  # a 2xx whose body is no ExportLogsServiceResponse: all delivered
            if rejected <= 0:
                return []
            rejected = min(rejected, len(records))
            why = f"otlp partial_success: {rejected} of {len(records)} log records rejected"
            why += f": {self._cut(message)}" if message else " (no error_message)"
            # Which records were rejected is not said: the count is exact, the choice is not.
            return [(record, why) for record in records[len(records) - rejected :]]
        if status == 413 and len(records) > 1:
            return self._halves(records, entries)
        where = f"export to {self.where} got {status} {reason}".rstrip()
        excerpt = self._cut(answer.decode("utf-8", "replace")) or "(empty body)"
        if status in RETRYABLE_STATUSES:
            raise TransportError(
                f"{where}: {excerpt}",
                retry_after=parse_retry_after(headers.get("retry-after")),
            )
        hint = ""
        if status in (401, 403):
            hint = " (check EVENTLOG_OTLP_HEADERS or OTEL_EXPORTER_OTLP_HEADERS)"
        elif status == 404:
            hint = f" (is {self.config.endpoint_source} the logs URL? OTLP/HTTP serves /v1/logs)"
        return [(record, f"http {status}: {where}{hint}: {excerpt}") for record in records]

    def _halves(
        self, records: Sequence[Record], entries: list[tuple[int, bytes, bytes, bytes]] | None
    ) -> list[tuple[Record, str]]:
        records = list(records)  # the Records of an EncodedBatch, made now
        middle = len(records) // 2
        if entries is None:
            return self._export(records[:middle], None) + self._export(records[middle:], None)
        return self._export(records[:middle], entries[:middle]) + self._export(
            records[middle:], entries[middle:]
        )

    def _cut(self, text: str) -> str:
        # Masked before the cut, so that a secret cut in half is still recognised.
        return self.mask(" ".join(text.split()))[:BODY_EXCERPT_CHARS]

    def _post(self, body: bytes) -> tuple[int, str, dict[str, str], bytes]:
        """POST once (again once at once if a kept-alive connection turns out closed)."""
        data = gzip.compress(body, compresslevel=6, mtime=0) if self.config.gzip else body
        for attempt in (1, 2):
            if self.connection is None:
                self.open()
            connection = self.connection
            assert connection is not None
            reused = self._used
            try:
                connection.request("POST", self.path, body=data, headers=self.headers)
                response = connection.getresponse()
                answer = response.read(MAX_ANSWER_BYTES)
                # An answer longer than we read, or one that closes: the connection is done.
                if not response.isclosed() or response.will_close:
                    self.close()
                self._used = True
                headers = {name.lower(): value for name, value in response.getheaders()}
                return response.status, response.reason or "", headers, answer
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
                self.close()
                # The server closed a connection that sat idle: try a fresh one, once.
                if reused and attempt == 1:
                    continue
                raise self._failure(exc) from None
            except Exception as exc:
                self.close()
                raise self._failure(exc) from None
        raise ConnectError(f"export to {self.where} failed")  # not reached: the loop returns or raises

    # ------------------------------------------------------------ errors

    def _failure(self, exc: BaseException, *, connecting: bool = False) -> TransportError:
        """Our own message for a failed connection or request: what and where, no secrets."""
        where = self.where
        if isinstance(exc, ssl.SSLError):
            return ConnectError(f"TLS with {where} failed: {self._tls_reason(exc)}")
        if isinstance(exc, TimeoutError | socket.timeout):
            if connecting:
                return ConnectError(
                    f"cannot connect to {where} within {self.config.timeout:g}s (EVENTLOG_OTLP_TIMEOUT)"
                )
            return SendTimeout(
                f"export to {where}: no answer within {self.config.timeout:g}s (EVENTLOG_OTLP_TIMEOUT)"
            )
        if isinstance(exc, OSError):
            reason = exc.strerror or type(exc).__name__
            verb = "cannot connect to" if connecting else "export failed on the connection to"
            return ConnectError(f"{verb} {where}: {reason}")
        return ConnectError(f"export to {where} failed: {type(exc).__name__}: {str(exc)[:200]}")

    def _tls_reason(self, error: ssl.SSLError) -> str:
        def names() -> list[str] | None:
            return certificate_names(
                self.host, self.port, cafile=self.config.tls_ca, timeout=self.config.timeout
            )

        return describe_tls_error(error, self.host, ca_setting="EVENTLOG_OTLP_TLS_CA", names=names)
