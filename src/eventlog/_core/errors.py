"""Every error eventlog raises (a leaf module: it imports nothing of eventlog)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence


class EventlogError(Exception):
    """Base of every error eventlog raises."""


class ConfigurationError(EventlogError, ValueError):
    """A setting is wrong; the message names the setting, the value and what is allowed."""


class PluginError(ConfigurationError):
    """A plugin name is unknown, registered twice, or cannot work with another."""


class TransportError(EventlogError):
    """A send failed.  ``retryable`` says whether sending the same batch again can help.

    Raise it (or a subclass) from :meth:`Transport.send`.  The engine keeps a
    batch whose error is retryable, backs off and sends it again; a batch
    whose error is not retryable is set aside, logged once and counted.
    """

    retryable: bool = True
    #: Seconds the peer asked us to wait before the next try (HTTP Retry-After).
    #: The engine then waits at least that long, up to ``retry_backoff_max``.
    retry_after: float | None = None

    def __init__(
        self, message: str, *, retryable: bool | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable
        if retry_after is not None:
            self.retry_after = retry_after


class ConnectError(TransportError):
    """The peer could not be reached or the connection broke (retryable)."""


class SendTimeout(TransportError):
    """The peer did not take or acknowledge the data in time (retryable)."""


class AuthError(TransportError):
    """The peer refused our credentials.  Retryable: events wait until the key is fixed."""


class RejectedError(TransportError):
    """The peer refused this batch for good (HTTP 400, oversized ...): not retryable."""

    retryable = False


#: One row of :func:`map_errors`: a foreign exception class (or tuple of them), and the
#: TransportError class to raise for it, or a function ``(exc, reason) -> TransportError | None``
#: that decides (None: try the next row).
ErrorRule = tuple[
    type[Exception] | tuple[type[Exception], ...],
    type[TransportError] | Callable[[Exception, str], "TransportError | None"],
]


@contextlib.contextmanager
def map_errors(
    rules: Sequence[ErrorRule], where: str, *, mask: Callable[[str], str] | None = None
) -> Iterator[None]:
    """Turn a client library's exceptions into transport errors, by one table.

    The first row whose class matches decides; a TransportError passes
    through, and an exception no row matches propagates unchanged (the engine
    counts it as a plugin bug, so map everything the peer can cause)::

        RULES = [
            (redis.AuthenticationError, AuthError),
            (redis.TimeoutError, SendTimeout),
            (redis.ConnectionError, ConnectError),
            (redis.ResponseError, lambda exc, reason: RejectedError(reason) if permanent(exc) else None),
        ]
        with map_errors(RULES, "redis://127.0.0.1:6379", mask=self.mask):
            pipe.execute()

    The message is ``"<where>: <ExceptionName>: <text>"``, passed through
    ``mask`` (a :class:`~eventlog.plugin.SecretMask`) first: a library's text
    may quote what was sent.  The original stays as ``__cause__``.
    """
    try:
        yield
    except TransportError:
        raise
    except Exception as exc:
        text = str(exc).strip()
        reason = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
        reason = f"{where}: {mask(reason) if mask is not None else reason}"
        for kinds, rule in rules:
            if not isinstance(exc, kinds):
                continue
            if isinstance(rule, type):
                raise rule(reason) from exc
            error = rule(exc, reason)
            if error is not None:
                raise error from exc
        raise
