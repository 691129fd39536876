"""Request context: who and what an event belongs to.

One :class:`contextvars.ContextVar` holds an immutable snapshot, so capturing
it on the caller's hot path is a single ``get()``.  The snapshot follows the
rules of contextvars: per thread, per asyncio task, and copied into threads
started with :func:`contextvars.copy_context`.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NamedTuple


class RequestContext(NamedTuple):
    """What the Django middleware (or your own code) says about the request."""

    user: str | None = None
    session: str | None = None
    request_id: str | None = None


EMPTY = RequestContext()
_current: contextvars.ContextVar[RequestContext] = contextvars.ContextVar(
    "eventlog_context", default=EMPTY
)

#: The hot path reads the context through this bound method.
current = _current.get


@contextmanager
def context(
    *, user: object = None, session: object = None, request_id: object = None
) -> Iterator[RequestContext]:
    """Make every event created inside the block carry user, session and request id.

    Values left as None are inherited from an enclosing block::

        with eventlog.context(user="alice", request_id="r-1"):
            log_event(Event("account.login"))
    """
    outer = _current.get()
    snapshot = RequestContext(
        user=str(user) if user is not None else outer.user,
        session=str(session) if session is not None else outer.session,
        request_id=str(request_id) if request_id is not None else outer.request_id,
    )
    token = _current.set(snapshot)
    try:
        yield snapshot
    finally:
        _current.reset(token)


def bind(
    *, user: object = None, session: object = None, request_id: object = None
) -> contextvars.Token[RequestContext]:
    """Set the context without a block; undo with :func:`unbind` (for middleware)."""
    outer = _current.get()
    return _current.set(
        RequestContext(
            user=str(user) if user is not None else outer.user,
            session=str(session) if session is not None else outer.session,
            request_id=str(request_id) if request_id is not None else outer.request_id,
        )
    )


def unbind(token: contextvars.Token[RequestContext]) -> None:
    """Restore the context that was current before :func:`bind`."""
    _current.reset(token)
