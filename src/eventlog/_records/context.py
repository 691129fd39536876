"""Request context: who and what an event belongs to.

One :class:`contextvars.ContextVar` holds an immutable snapshot, so capturing
it on the caller's hot path is a single ``get()``.  The snapshot follows the
rules of contextvars: per thread, per asyncio task, and copied into threads
started with :func:`contextvars.copy_context`.

With ``opentelemetry-api`` installed, :data:`current` also reads the current
span's ids (the span may have ended by the time the worker runs, so they are
taken in the caller); without it nothing of OpenTelemetry is imported and
:data:`current` is the bare ``ContextVar.get``.
"""

from __future__ import annotations

import contextvars
import importlib.util
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple


class RequestContext(NamedTuple):
    """What the Django middleware (or your own code) says about the request.

    ``trace_id``, ``span_id`` and ``trace_flags`` are the current
    OpenTelemetry span's, as ints (the worker writes them as W3C hex);
    ``fields`` are the extra keys of :func:`context`.
    """

    user: str | None = None
    session: str | None = None
    request_id: str | None = None
    trace_id: int | None = None
    span_id: int | None = None
    trace_flags: int | None = None
    fields: dict[str, int | float | str] | None = None


EMPTY = RequestContext()
_current: contextvars.ContextVar[RequestContext] = contextvars.ContextVar("eventlog_context", default=EMPTY)


def _frozen(value: object) -> int | float | str:
    """A context field's value, made immutable now: it is read in the worker, later."""
    from eventlog._records.text import frozen

    return frozen(value)  # type: ignore[no-any-return]


def _text(value: object, outer: str | None) -> str | None:
    """user, session, request id: text now (a hostile ``__str__`` gives a placeholder, counted)."""
    if value is None:
        return outer
    if type(value) is str:
        return value
    from eventlog._records.text import ConvertedValue, converted, frozen, int_text

    try:
        return str(value)
    except Exception:  # a str() that raises: the value's repr or type instead, never the caller's error
        if isinstance(value, int):  # past the interpreter's digit limit: hex, which has none
            return converted(int_text(int.__index__(value)), "int_range")
        text = frozen(value)
        if isinstance(text, ConvertedValue):
            return text
        try:
            return converted(repr(text), "not_text")
        except Exception:
            return converted(f"<{type(value).__name__}>", "not_text")


def _snapshot(
    outer: RequestContext, user: object, session: object, request_id: object, fields: dict[str, Any]
) -> RequestContext:
    merged = outer.fields
    if fields:  # not on the hot path: once per block
        from eventlog._records.text import MAX_VALUE_CHARS, safe_str

        merged = dict(merged) if merged else {}
        for key, value in fields.items():
            merged[safe_str(key, MAX_VALUE_CHARS, None)] = _frozen(value)
    return RequestContext(
        user=_text(user, outer.user),
        session=_text(session, outer.session),
        request_id=_text(request_id, outer.request_id),
        fields=merged,
    )


@contextmanager
def context(
    *, user: object = None, session: object = None, request_id: object = None, **fields: object
) -> Iterator[RequestContext]:
    """Make every event created inside the block carry user, session, request id and fields.

    Values left as None are inherited from an enclosing block.  Any further
    keyword lands in the ``fields`` of each event, keeping its type (int,
    float, str; anything else is sent as text and counted as
    ``eventlog_values_converted{reason="not_text"}``); an event's own field of
    the same name wins::

        with eventlog.context(user="alice", request_id="r-1", tenant="acme", shard=3):
            log_event(Event("account.login"))
    """
    snapshot = _snapshot(_current.get(), user, session, request_id, fields)
    token = _current.set(snapshot)
    try:
        yield snapshot
    finally:
        _current.reset(token)


def bind(
    *, user: object = None, session: object = None, request_id: object = None, **fields: object
) -> contextvars.Token[RequestContext]:
    """Set the context without a block; undo with :func:`unbind` (for middleware)."""
    return _current.set(_snapshot(_current.get(), user, session, request_id, fields))


def unbind(token: contextvars.Token[RequestContext]) -> None:
    """Restore the context that was current before :func:`bind`."""
    _current.reset(token)


def _tracing_current() -> tuple[Callable[[], RequestContext], contextvars.ContextVar[Any] | None] | None:
    """``current`` that also takes the OpenTelemetry span's ids, and OpenTelemetry's ContextVar
    where it reads it (see :data:`CONTEXT_VARS`); None without opentelemetry-api.

    ``find_spec`` looks for the package without importing it: an application
    without OpenTelemetry imports nothing of it and keeps the bare ``get``.
    """
    try:
        if importlib.util.find_spec("opentelemetry") is None:
            return None
        from opentelemetry import context as otel_context
        from opentelemetry import trace
    except Exception:  # broken or partial installs: no trace ids, never a failed import
        return None
    get = _current.get
    # The fast way reads OpenTelemetry's own ContextVar and span key, two C calls when no
    # span is current; a runtime context of another kind goes through the public API.
    otel_get: Callable[[], Any] | None = None
    otel_var: contextvars.ContextVar[Any] | None = None
    span_key: str | None = None
    try:
        from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
        from opentelemetry.trace.propagation import _SPAN_KEY

        runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
        if type(runtime) is ContextVarsRuntimeContext:
            otel_var = runtime._current_context
            otel_get, span_key = otel_var.get, _SPAN_KEY
    except Exception:
        pass
    get_current_span = trace.get_current_span
    # The last (context, span, snapshot): logging many times inside one span makes no new
    # tuple and reads no span context (a span's ids never change).  One list item, swapped
    # whole, so threads never see half of it.
    last: list[tuple[RequestContext, object, RequestContext]] = [(EMPTY, None, EMPTY)]

    def traced(ctx: RequestContext, span: Any) -> RequestContext:
        """``ctx`` with the span's ids, if its span context is valid."""
        cached = last[0]
        if cached[1] is span and cached[0] is ctx:
            return cached[2]
        span_context = span.get_span_context()
        snapshot = ctx
        if span_context.is_valid:
            snapshot = ctx._replace(
                trace_id=span_context.trace_id,
                span_id=span_context.span_id,
                # TraceFlags is an int subclass: a plain int formats the same everywhere.
                trace_flags=int(span_context.trace_flags),
            )
        last[0] = (ctx, span, snapshot)
        return snapshot

    if otel_get is not None:

        def current_with_trace() -> RequestContext:
            ctx = get()
            otel_ctx = otel_get()
            if not otel_ctx:  # nothing set in OpenTelemetry's context: the cheapest way out
                return ctx
            span = otel_ctx.get(span_key)
            if span is None:
                return ctx
            cached = last[0]  # the common case inside a span, without a call
            if cached[1] is span and cached[0] is ctx:
                return cached[2]
            try:
                return traced(ctx, span)
            except Exception:  # a span of a foreign kind must not cost the event
                return ctx

    else:

        def current_with_trace() -> RequestContext:
            ctx = get()
            try:
                return traced(ctx, get_current_span())
            except Exception:
                return ctx

    return current_with_trace, otel_var


_traced = _tracing_current()
#: The hot path reads the context through this: the bound ``ContextVar.get``, or with
#: opentelemetry-api installed a function that adds the current span's ids.
current: Callable[[], RequestContext] = _traced[0] if _traced is not None else _current.get
#: For a compiled caller that reads the context variables itself (eventlog-speedups'
#: EventHandler.handle): eventlog's ContextVar, and OpenTelemetry's, while which is empty
#: :data:`current` returns eventlog's snapshot as it is; None when only calling it will do.
CONTEXT_VARS: tuple[contextvars.ContextVar[RequestContext], contextvars.ContextVar[Any] | None] | None = (
    (_current, None) if _traced is None else (_current, _traced[1]) if _traced[1] is not None else None
)
