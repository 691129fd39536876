"""Every error eventlog raises (a leaf module: it imports nothing of eventlog).

The tree.  A mixin after the class name is there because callers catch it
(a setting's error is a ``ValueError``, a spool that cannot be written an
``OSError``); ``retryable`` is said by the class, never by a flag::

    EventlogError
    ├── ConfigurationError (ValueError)    a setting or a plugin's declaration is wrong
    │   └── PluginError                    a plugin is unknown, registered twice, or cannot
    │                                      work with another
    ├── TransportError                     a send failed; retryable
    │   ├── ConnectError                   the peer could not be reached / the connection broke
    │   ├── SendTimeout                    the peer did not take or acknowledge in time
    │   ├── AuthError                      the peer refused our credentials (events wait)
    │   └── RejectedError                  the peer refused this batch for good; not retryable
    └── SpoolError                         the SQLite spool
        ├── SpoolUnavailable (OSError)     cannot be written now (disk full, read-only, locked)
        ├── SpoolCorrupt                   the file is not a readable spool
        └── DamagedRow                     one stored row does not match its index

A plugin's own exception classes derive from one of these, so that
``except eventlog.EventlogError`` catches everything eventlog raises on purpose
(a ``TypeError`` for an argument of the wrong type stays Python's own).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import ClassVar


class EventlogError(Exception):
    """Base of every error eventlog raises."""


class ConfigurationError(EventlogError, ValueError):
    """A setting is wrong; the message names the setting, the value and what is allowed."""


class PluginError(ConfigurationError):
    """A plugin name is unknown, registered twice, or cannot work with another."""


class TransportError(EventlogError):
    """A send failed; the class's ``retryable`` says whether sending the batch again can help.

    Raise it (or a subclass) from :meth:`Transport.send`.  The engine keeps a
    batch whose error is retryable, backs off and sends it again; a batch
    whose error is not retryable (:class:`RejectedError`) is set aside, logged
    once and counted.
    """

    #: Whether the same batch may succeed later.  Said by the class: raise
    #: :class:`RejectedError` (or a subclass of yours with ``retryable = False``) for
    #: a batch the peer refused for good.
    retryable: ClassVar[bool] = True
    #: Seconds the peer asked us to wait before the next try (HTTP Retry-After).
    #: The engine then waits at least that long, up to ``retry_backoff_max``.
    retry_after: float | None = None

    def __init__(
        self, message: str, *, retry_after: float | None = None, retryable: bool | None = None
    ) -> None:
        super().__init__(message)
        if retry_after is not None:
            self.retry_after = retry_after
        if retryable is not None:
            # eventlog 0.1's spelling, kept so a plugin written for it still means what it said.
            import warnings

            warnings.warn(
                "TransportError(retryable=...) is deprecated: raise RejectedError (or a subclass "
                "with retryable = False) for a batch refused for good",
                DeprecationWarning,
                stacklevel=2,
            )
            object.__setattr__(self, "retryable", retryable)


class ConnectError(TransportError):
    """The peer could not be reached or the connection broke (retryable)."""


class SendTimeout(TransportError):
    """The peer did not take or acknowledge the data in time (retryable)."""


class AuthError(TransportError):
    """The peer refused our credentials.  Retryable: events wait until the key is fixed."""


class RejectedError(TransportError):
    """The peer refused this batch for good (HTTP 400, oversized ...): not retryable."""

    retryable: ClassVar[bool] = False


class SpoolError(EventlogError):
    """The SQLite spool failed; ``reason`` is a short label for counting."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class SpoolUnavailable(SpoolError, OSError):  # reads as a state, like FileNotFoundError
    """The spool cannot be written now (disk full, read-only, locked ...).

    ``reason`` is a short label for counting: ``disk_full``, ``read_only``,
    ``io_error``, ``locked``, ``unopenable``, ``unsafe_path`` (another user
    could read, change or redirect the spool: see ``check_path``).
    """


class SpoolCorrupt(SpoolError):
    """The file at the spool path is not a readable SQLite spool."""

    def __init__(self, message: str, reason: str = "corrupt") -> None:
        super().__init__(reason, message)


class DamagedRow(SpoolError):
    """A stored row whose index does not describe its payloads (it is quarantined)."""


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
