"""Text that every formatter can encode: limits, placeholders, and :func:`safe_str`.

A leaf module (it imports nothing of eventlog): the request context
(:mod:`eventlog.context`) makes its field values safe with it when a block is
entered, and the worker (:mod:`eventlog.wire`) for every value of an event.
"""

from __future__ import annotations

import json
from typing import Any

#: Longest message kept, in characters; longer ones are cut and counted.
MAX_MESSAGE_CHARS = 256 * 1024
#: Longest tag, field value or key kept, in characters.
MAX_VALUE_CHARS = 16 * 1024

Conversions = dict[str, int]


class Placeholder(str):
    """Text standing in for something that could not be rendered (a message, an exception).

    It is made where the failure happens (the caller's thread, or the worker)
    and counted once, as ``eventlog_values_converted{reason}``, when the
    worker builds the event's wire dict; the wire carries it as a plain str.
    """

    reason = "unrenderable"


class UnrenderableException(Placeholder):
    """The ``exc_info`` JSON of an exception tuple that is not one (``(ValueError, "text", None)``)."""

    reason = "bad_exc_info"


class ConvertedValue(Placeholder):
    """A :func:`eventlog.context` field value that was no int, float or str: its text, made
    when the block was entered (the value may change later); counted per event that carries it."""

    reason = "not_text"


def placeholder_text(value: Placeholder, conversions: Conversions | None) -> str:
    """The placeholder as a plain str, counted by its reason."""
    _count(conversions, value.reason)
    return str.__str__(value)


def type_name(kind: type) -> str:
    """``ValueError`` for builtins, ``module.Qualname`` for the rest (as tracebacks name them)."""
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


def _count(conversions: Conversions | None, reason: str) -> None:
    if conversions is not None:
        conversions[reason] = conversions.get(reason, 0) + 1


def safe_str(value: Any, limit: int, conversions: Conversions | None) -> str:
    """A str that UTF-8 can encode, at most ``limit`` characters long."""
    # The common case first: ASCII text (isascii() is O(1) in CPython) within the limit.
    if type(value) is str and value.isascii() and len(value) <= limit:
        return value
    if type(value) is not str:
        if isinstance(value, (bytes, bytearray, memoryview)):
            value = bytes(value).decode("utf-8", "backslashreplace")
            _count(conversions, "bytes")
        elif isinstance(value, Placeholder):
            value = placeholder_text(value, conversions)
        elif isinstance(value, str):
            value = str.__str__(value)
        else:
            value = _describe(value)
            _count(conversions, "not_text")
    if len(value) > limit:
        value = value[:limit]
        _count(conversions, "truncated")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates: keep the text, make them visible as \udXXX escapes.
        value = value.encode("utf-8", "backslashreplace").decode("utf-8")
        _count(conversions, "surrogates")
    text: str = value
    return text


def _describe(value: Any) -> str:
    """JSON text for containers, repr() for other objects; never raises."""
    if isinstance(value, (dict, list, tuple)):
        try:
            return json.dumps(value, default=_repr, ensure_ascii=False)
        except (ValueError, TypeError, RecursionError):
            pass  # recursive or hostile containers: repr() marks the cycle as {...}
    return _repr(value)


def _repr(value: Any) -> str:
    try:
        return str(repr(value))
    except Exception:  # a hostile __repr__ must not lose the event
        return f"<unrepresentable {type(value).__name__}>"
