"""Values every formatter can encode: limits, placeholders, and the one conversion of values.

A leaf module (it imports nothing of eventlog).  A value is converted in two
steps, both here, whatever door it came in by (``Event()``, ``extra=``,
``context()``, structlog and loguru, counters):

- in the caller, :func:`frozen` turns what the worker must not touch (objects
  whose ``__str__``/``__repr__`` is application code, containers the caller may
  still change) into text now, and :func:`checked_time_ns` / :func:`checked_int`
  put typed slots (the event time, the level) into the range every format and
  the spool can hold, keeping an original that did not fit as text in
  ``fields["<wire name>_original"]``;
- in the worker, :func:`safe_str` and the wire module make the plain values
  that are left encodable (limits, lone surrogates, NaN, ints beyond 64 bits),
  running no application code.

Every conversion is counted once, as ``eventlog_values_converted{reason}``,
when the worker builds the event's wire dict: a caller-side conversion rides
on the value as a :class:`Placeholder`, whose reason the worker counts.
"""

from __future__ import annotations

import json
import math
from typing import Any

#: Longest message kept, in characters; longer ones are cut and counted.
MAX_MESSAGE_CHARS = 256 * 1024
#: Longest tag, field value or key kept, in characters.
MAX_VALUE_CHARS = 16 * 1024
#: Most tags, and most fields (or metrics), one event keeps; the rest are left out, counted.
MAX_ITEMS = 1024
#: Most bytes of text one event holds (message, tags, field and metric keys and values, by
#: their lengths); beyond it the last tags, fields and metrics are left out.
MAX_EVENT_BYTES = 1024 * 1024

Conversions = dict[str, int]

#: The ints every format carries in a typed slot (int64: msgpack, Cap'n Proto, ClickHouse,
#: orjson); an int beyond it is sent as text (a field) or clamped (a typed slot), counted.
INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
#: Event times, in ns since the epoch: int64, 1677-09-21 to 2262-04-11.  The spool indexes
#: them as SQLite integers, and each is a four-digit year: every timestamp is RFC 3339.
TIME_MIN_NS = INT_MIN
TIME_MAX_NS = INT_MAX
#: The same bounds in seconds, for a log record's ``created`` (a float, as logging makes it).
TIME_MIN_S = -9_223_372_036.0
TIME_MAX_S = 9_223_372_036.0


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
    """A value that was no int, float, str, bool, bytes or None: its text, made in the caller
    (by :func:`frozen`: the value may change later, and the worker runs no application
    code); counted per event that carries it."""

    reason = "not_text"


def converted(text: str, reason: str) -> ConvertedValue:
    """``text`` standing in for a value, counted as ``reason`` on each event that carries it."""
    value = ConvertedValue(text)
    value.reason = reason  # type: ignore[misc]  # per value: one class for every reason
    return value


#: Types the worker may read later as they are: immutable, and no application code in them.
KEPT = frozenset({str, int, float, bool, bytes, type(None)})


def frozen(value: Any) -> Any:
    """``value`` as the worker may read it later (call it in the caller's thread).

    str, int, float, bool, bytes and None are kept as they are (the worker
    cleans them); anything else is converted now: str, int and float
    subclasses to the plain type, bytearray and memoryview to bytes, other
    objects and containers to their text (JSON for dicts, lists and tuples,
    else ``repr()``), as a :class:`ConvertedValue` counted ``not_text``.
    Never raises.
    """
    if type(value) in KEPT:
        return value
    if isinstance(value, Placeholder):
        return value  # made by eventlog: text already
    try:
        if isinstance(value, str):
            return str.__str__(value)
        if isinstance(value, int):  # IntEnum, HTTPStatus ...
            return int(value)
        if isinstance(value, float):
            return float(value)
        if isinstance(value, (bytearray, memoryview)):
            return bytes(value)
    except Exception:
        pass  # a subclass whose conversion raises: its text, below
    return ConvertedValue(_describe(value))


def int_text(value: int) -> str:
    """An int as decimal text, or as ``0x`` hex past the interpreter's digit limit (no error)."""
    try:
        return str(value)
    except ValueError:  # sys.get_int_max_str_digits(): hex has no limit and is linear
        return hex(value)


def checked_int(value: int) -> tuple[int, ConvertedValue | None]:
    """An int for a typed slot: clamped into int64, with the original as text if it was not."""
    if INT_MIN <= value <= INT_MAX:
        return value, None
    return (INT_MIN if value < 0 else INT_MAX), converted(int_text(value), "int_range")


def checked_time_ns(value: Any, observed_ns: int) -> tuple[int, ConvertedValue | None]:
    """An event time in ns for the caller to store: ``value`` if it is one, else converted.

    An int within :data:`TIME_MIN_NS`..:data:`TIME_MAX_NS` is kept; a finite
    number in range is truncated to an int (``time_not_int``); anything else
    (out of range, NaN, not a number) is replaced by ``observed_ns``, the time
    of the call (``time_out_of_range``, ``time_not_number``).  The second item
    is the original as text (to keep in ``fields["tstamp_original"]``), or
    None when ``value`` was kept.
    """
    kind = type(value)
    if kind is int and TIME_MIN_NS <= value <= TIME_MAX_NS:
        return value, None
    if kind is int or kind is float or (isinstance(value, (int, float)) and kind is not bool):
        try:
            number = float(value) if kind is not int else value
            if kind is not int and not math.isfinite(number):
                return observed_ns, converted(repr(float(number)), "time_not_number")
            whole = int(number)
        except Exception:
            return observed_ns, converted(f"<{type_name(kind)}>", "time_not_number")
        original = int_text(value) if kind is int else repr(float(number))
        if TIME_MIN_NS <= whole <= TIME_MAX_NS:
            return whole, converted(original, "time_not_int")
        return observed_ns, converted(original, "time_out_of_range")
    return observed_ns, converted(_safe_text(value), "time_not_number")


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
    """A str that UTF-8 can encode, at most ``limit`` characters long.

    Runs no application code (the worker calls it): a value that is no str,
    bytes, int, float, bool or None, which :func:`frozen` would have turned
    into text in the caller, is sent as ``<TypeName>``, counted ``not_text``.
    """
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
            value = _safe_text(value)
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


def without_surrogates(text: str) -> str:
    """``text`` with each lone surrogate (which UTF-8 cannot encode) as a ``\\udXXX`` escape.

    Every wire string passes through this or :func:`safe_str`: a surrogate in a
    thread name, path or exception text must not make the whole event unencodable.
    """
    if text.isascii():  # O(1) in CPython: the common case costs one check
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def encodable(text: str, conversions: Conversions | None) -> str:
    """A str slot with no length limit (paths, thread names): lone surrogates escaped, counted."""
    clean = without_surrogates(text)
    if clean is not text:
        _count(conversions, "surrogates")
    return clean


def _safe_text(value: Any) -> str:
    """Text of a value without running application code: plain values' repr, else the type."""
    kind = type(value)
    if kind is int:
        return int_text(value)
    if kind is float or kind is bool or value is None:
        return repr(value)
    if kind is str:
        return value  # type: ignore[no-any-return]
    return f"<{type_name(kind)}>"


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
