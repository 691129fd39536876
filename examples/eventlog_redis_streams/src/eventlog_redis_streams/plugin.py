"""The ``redis_streams`` transport: each batch is one MULTI/EXEC of XADDs to a Redis stream.

Every event becomes one stream entry with three fields: ``id`` (eventlog's
event id, for dropping duplicates), ``action`` (for consumers that route
without parsing) and ``payload`` (the formatter's bytes, ``json`` by default).

Settings (``configure(redis_streams_url=...)`` or the environment)::

    EVENTLOG_TRANSPORT=redis_streams
    EVENTLOG_REDIS_STREAMS_URL=redis://127.0.0.1:6379/0
    EVENTLOG_REDIS_STREAMS_STREAM=events
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import redis
from redis.backoff import NoBackoff
from redis.exceptions import (
    AuthenticationError,
    ConnectionError,
    RedisError,
    ResponseError,
    TimeoutError,
)
from redis.retry import Retry

import eventlog.plugin
from eventlog.plugin import ALL_FRAMINGS, Batch, PluginContext, parse_int, parse_str, parser
from eventlog.plugin.net import timeout_options

NAME = "redis_streams"

#: Redis error codes that a later retry of the same batch can get past
#: (a failover, a full memory, a key an operator must fix).
RETRYABLE_CODES = frozenset(
    {"OOM", "READONLY", "LOADING", "BUSY", "MASTERDOWN", "TRYAGAIN", "CLUSTERDOWN", "WRONGTYPE", "MISCONF"}
)
#: Redis error codes that mean "your credentials": events wait until they are fixed.
AUTH_CODES = frozenset({"NOAUTH", "NOPERM", "WRONGPASS"})


@parser(takes="text", allowed="a Redis URL: redis://, rediss:// (TLS) or unix://")
def parse_url(value: Any) -> str:
    """A Redis URL: ``redis://``, ``rediss://`` (TLS) or ``unix://``."""
    text = str(value).strip()
    if urlsplit(text).scheme not in ("redis", "rediss", "unix"):
        raise ValueError("expected a URL like redis://127.0.0.1:6379/0 (or rediss://, unix://)")
    return text


@parser(takes="number", allowed="0 (keep every entry) or the approximate length to trim the stream to")
def parse_maxlen(value: Any) -> int:
    """0 (keep every entry) or the approximate length to trim the stream to."""
    number = parse_int(value)
    if number < 0:
        raise ValueError("must be 0 (no trimming) or more")
    return number


def _shown(url: str) -> str:
    """The URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=f"{parts.username or ''}:***@{netloc}").geturl()


def _reason(exc: RedisError) -> str:
    """Redis's own error text, without redis-py's note quoting the command (it holds payloads)."""
    text = str(exc.args[0]) if exc.args else type(exc).__name__
    return text.split("caused error: ", 1)[-1]


@dataclass(frozen=True)
class RedisStreamsConfig:
    """The settings of one ``redis_streams`` transport, checked when the pipeline is configured."""

    # Kept out of repr(): the URL may hold a password, like the password itself.
    url: str = field(repr=False)
    stream: str = "eventlog"
    maxlen: int = 0
    password: str | None = field(default=None, repr=False)
    connect_timeout: float = 5.0
    send_timeout: float = 10.0

    @classmethod
    def from_context(cls, context: PluginContext) -> RedisStreamsConfig:
        """The options of the TransportSpec below, parsed already: nothing to check together."""
        options = context.options
        return cls(
            options["url"],
            options["stream"],
            maxlen=options["maxlen"],
            password=options["password"],
            connect_timeout=options["connect_timeout"],
            send_timeout=options["send_timeout"],
        )


class RedisStreamsTransport(eventlog.plugin.Transport):
    """XADD every record of a batch to one stream, inside one MULTI/EXEC."""

    def __init__(self, config: RedisStreamsConfig) -> None:
        self.config = config
        self.stream = config.stream
        self.where = f"Redis at {_shown(config.url)}"
        self.client: redis.Redis | None = None

    @classmethod
    def from_context(cls, context: PluginContext) -> RedisStreamsTransport:
        """The spec's factory: the transport from :meth:`RedisStreamsConfig.from_context`."""
        return cls(RedisStreamsConfig.from_context(context))

    def open(self) -> None:
        self.close()
        config = self.config
        client = redis.Redis.from_url(
            config.url,
            password=config.password,
            socket_connect_timeout=config.connect_timeout,
            socket_timeout=config.send_timeout,
            # The engine owns retries (with backoff and jitter); redis-py must not add its own.
            retry=Retry(NoBackoff(), 0),
        )
        try:
            client.ping()
        except RedisError as exc:
            client.close()
            raise self._error(exc) from None
        self.client = client

    def send(self, batch: Batch) -> None:
        if self.client is None:
            self.open()
        assert self.client is not None
        # transaction=True: MULTI ... EXEC, so a batch lands whole or not at all,
        # in one round trip.
        pipe = self.client.pipeline(transaction=True)
        maxlen = self.config.maxlen or None
        for record in batch:
            pipe.xadd(
                self.stream,
                {"id": record.id, "action": record.action, "payload": record.payload},
                maxlen=maxlen,
                approximate=True,
            )
        try:
            pipe.execute()
        except RedisError as exc:
            # The connection may be mid-reply; start clean on the next send.
            self.close()
            raise self._error(exc) from None
        finally:
            pipe.reset()

    def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            with contextlib.suppress(Exception):  # close() must not raise
                client.close()

    def _error(self, exc: RedisError) -> eventlog.plugin.TransportError:
        """The TransportError that tells the engine what to do about ``exc``."""
        reason = _reason(exc)
        code = reason.split(" ", 1)[0]
        if isinstance(exc, AuthenticationError) or code in AUTH_CODES:
            return eventlog.plugin.AuthError(
                f"{self.where} refused our credentials: {reason} "
                "(set EVENTLOG_REDIS_STREAMS_PASSWORD or the URL's user)"
            )
        if isinstance(exc, TimeoutError):
            return eventlog.plugin.SendTimeout(f"{self.where} did not answer in time: {reason}")
        if isinstance(exc, ConnectionError):
            return eventlog.plugin.ConnectError(f"cannot reach {self.where}: {reason}")
        if isinstance(exc, ResponseError) and code not in RETRYABLE_CODES:
            return eventlog.plugin.RejectedError(
                f"{self.where} refused XADD to stream {self.stream!r}: {reason}"
            )
        return eventlog.plugin.TransportError(
            f"{self.where} could not add to stream {self.stream!r}: {reason}"
        )


@eventlog.plugin.hookimpl
def eventlog_transports() -> list[eventlog.plugin.TransportSpec]:
    return [
        eventlog.plugin.TransportSpec(
            NAME,
            RedisStreamsTransport.from_context,
            "XADD each batch to a Redis stream (MULTI/EXEC)",
            options=(
                eventlog.plugin.Option("url", parse_url, "redis://127.0.0.1:6379/0", "Redis server URL"),
                eventlog.plugin.Option("stream", parse_str, "eventlog", "stream key to add events to"),
                eventlog.plugin.Option(
                    "maxlen", parse_maxlen, 0, "trim the stream to about so many entries (0: never)"
                ),
                eventlog.plugin.Option("password", parse_str, None, "Redis password", secret=True),
                *timeout_options(),
            ),
            # Each payload is a stream entry's field of its own: any format is framed.
            carries=ALL_FRAMINGS,
        )
    ]
