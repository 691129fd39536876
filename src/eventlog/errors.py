"""Every error eventlog raises (a leaf module: it imports nothing of eventlog)."""

from __future__ import annotations


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
