"""Option, the declaration of one setting, and the parsers every plugin's options use.

A leaf module (it imports nothing of eventlog), so the settings (:mod:`eventlog._config.config`),
the plugin contracts (:mod:`eventlog._config.contracts`) and the web integrations' options can
all use it without importing each other.
"""

from __future__ import annotations

import functools
import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

T = TypeVar("T")

#: What a value given in code (a keyword, a Django setting) may be.  The environment
#: always gives text; code may give the value itself:
#: ``text`` text or a path; ``number`` a number or text; ``bool`` true/false, 0/1 or text;
#: ``many`` also a list, tuple, set or mapping; ``any`` text, a number, true/false or a path.
Takes = Literal["text", "number", "bool", "many", "any"]

_SCALARS: tuple[type, ...] = (str, int, float, bool, os.PathLike)
TAKES: dict[str, tuple[type, ...]] = {
    "text": (str, os.PathLike),
    "number": (int, float, str),
    "bool": (bool, int, str),
    "many": (*_SCALARS, list, tuple, set, frozenset, Mapping),
    "any": _SCALARS,
}


class Parser(Generic[T]):
    """A setting's parser with what it declares (made by :func:`parser`).

    ``takes`` says which values code may give (see :data:`Takes`), ``allowed``
    is what an error and the configuration reference show after "allowed:",
    and ``empty`` says whether an empty value is a value (an empty list: none)
    rather than "unset": only then does ``EVENTLOG_X=`` (set, but empty) reach
    the parser instead of leaving the default.
    """

    def __init__(self, parse: Callable[[Any], T], *, takes: Takes, allowed: str, empty: bool = False) -> None:
        if takes not in TAKES:
            raise TypeError(f"takes must be one of {', '.join(TAKES)}, not {takes!r}")
        self.parse = parse
        self.takes: Takes = takes
        self.allowed = allowed
        self.empty = empty
        functools.update_wrapper(self, parse)

    def __call__(self, value: Any) -> T:
        return self.parse(value)

    def __repr__(self) -> str:
        return f"<parser {getattr(self, '__name__', self.parse)!r} takes={self.takes!r}>"


def parser(*, takes: Takes, allowed: str, empty: bool = False) -> Callable[[Callable[[Any], T]], Parser[T]]:
    """Declare what a parse function accepts (a decorator)::

        @parser(takes="text", allowed="a Fluent tag such as app.events")
        def parse_tag(value: Any) -> str: ...

    The function raises ValueError with a short reason when it cannot parse;
    the error then reads ``... is invalid: <reason>; allowed: <allowed>``.
    """

    def declare(parse: Callable[[Any], T]) -> Parser[T]:
        return Parser(parse, takes=takes, allowed=allowed, empty=empty)

    return declare


#: What a plain type used as a parser (``Option("token", str)``) declares.
_TYPE_DECLARATIONS: dict[Any, tuple[Takes, str]] = {
    str: ("text", "text"),
    int: ("number", "a whole number"),
    float: ("number", "a number"),
    bool: ("bool", "true or false"),
}


@dataclass(frozen=True)
class Option:
    """One setting of a plugin.

    A transport named ``fluent`` with ``Option("tag", parse_str, "app")`` reads the
    environment variable ``EVENTLOG_FLUENT_TAG``, the Django setting of the same
    name, or ``configure(fluent_tag=...)``.  ``parse`` turns the text from the
    environment (or the value given in code) into the value, raising ValueError
    with a short reason when it cannot.

    What the setting accepts is declared, never guessed: by the parser (made with
    :func:`parser`, as every ``parse_*`` here is; a plain ``str``/``int``/``float``
    declares itself), or here with ``takes=``, ``allowed=`` and ``empty=``, which
    win over the parser's.  A plain function declares nothing: it takes any
    single value and an error shows ``help`` as what is allowed.
    """

    name: str
    parse: Callable[[Any], Any]
    default: Any = None
    help: str = ""
    #: Secrets are never printed (errors, ``eventlog plugins``, logs).
    secret: bool = False
    choices: tuple[str, ...] | None = None
    #: Which values code may give (see :data:`Takes`); None: as the parser declares.
    takes: Takes | None = None
    #: What errors and the reference show after "allowed:"; None: as the parser declares.
    allowed: str | None = None
    #: Whether an empty value is a value (``EVENTLOG_X=`` means none, not unset); None: the parser's.
    empty: bool | None = None

    def __post_init__(self) -> None:
        parse = self.parse
        if isinstance(parse, Parser):
            takes, allowed, empty = parse.takes, parse.allowed, parse.empty
        elif isinstance(parse, type) and parse in _TYPE_DECLARATIONS:
            (takes, allowed), empty = _TYPE_DECLARATIONS[parse], False
        else:
            takes, allowed, empty = "any", self.help or "see 'eventlog plugins --settings'", False
        if self.choices is not None:
            allowed = "one of: " + ", ".join(self.choices)
        object.__setattr__(self, "takes", self.takes or takes)
        object.__setattr__(self, "allowed", self.allowed or allowed)
        object.__setattr__(self, "empty", empty if self.empty is None else self.empty)
        if self.takes not in TAKES:
            raise TypeError(
                f"Option {self.name!r}: takes must be one of {', '.join(TAKES)}, not {self.takes!r}"
            )


# ---------------------------------------------------------------- parsers
#
# Each parser declares what it accepts (@parser): an error shows ``allowed`` as
# "allowed: ...".  A parser raises ValueError with a short reason when it cannot parse.

#: The largest whole number a setting may have: SQLite and the C library take 64 bits.
INT_LIMIT = 2**63 - 1
#: The longest duration a setting may have, in seconds (about 31 years): thread waits and
#: socket timeouts refuse more than about 9.2e9 seconds, and inf would wait for ever.
SECONDS_LIMIT = 1e9
#: A value shown in an error is cut to this many characters.
SHOWN_LIMIT = 80


def shown(value: Any) -> str:
    """``repr(value)``, cut to :data:`SHOWN_LIMIT` characters."""
    text = repr(value)
    return text if len(text) <= SHOWN_LIMIT else text[: SHOWN_LIMIT - 3] + "..."


@parser(takes="text", allowed="text, not empty")
def parse_str(value: Any) -> str:
    """Text, not empty."""
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {type(value).__name__}")
    if not value.strip():
        raise ValueError("must not be empty")
    return value


@parser(
    takes="text",
    allowed=(
        "a host name or IP address, optionally with :port ([::1]:5959 for IPv6), or a Unix socket "
        "path (/path or unix:///path)"
    ),
)
def parse_host(value: Any) -> str:
    """A host name or IP address, optionally with :port ([::1]:5959 for IPv6), or a Unix
    socket path (/path or unix:///path).

    The port, when given, is split
    off by the settings (:func:`split_host_port`) and must agree with the port setting.
    """
    text = parse_str(value).strip()
    if any(ch.isspace() or not ch.isprintable() for ch in text):
        raise ValueError("must not contain spaces or control characters")
    if text.startswith(("/", "unix://")):
        if len(text.removeprefix("unix://").encode()) > 107:
            raise ValueError("a Unix socket path is at most 107 bytes")
        return text
    host, _ = split_host_port(text)
    if len(host) > 253:
        raise ValueError("a host name is at most 253 characters")
    return text


def split_host_port(text: str) -> tuple[str, int | None]:
    """``'localhost:5959'`` -> ``('localhost', 5959)``; ``'[::1]:5959'`` -> ``('::1', 5959)``.

    A bare IPv6 address (``'::1'``, more than one colon) and a Unix socket path
    have no port.  Raises ValueError for a port part that is not a port number.
    """
    if text.startswith(("/", "unix://")):
        return text, None
    if text.startswith("["):
        inside, bracket, rest = text[1:].partition("]")
        if not bracket or not inside:
            raise ValueError("an IPv6 address in brackets needs its closing ]: [::1] or [::1]:5959")
        if not rest:
            return inside, None
        if not rest.startswith(":"):
            raise ValueError(f"after [{inside}] expected :port, got {rest!r}")
        return inside, _port_part(rest[1:], text)
    if text.count(":") > 1:  # a bare IPv6 address: it cannot carry a port without brackets
        try:
            ipaddress.IPv6Address(text)
        except ValueError:
            raise ValueError(
                f"{shown(text)} is neither host:port nor an IPv6 address (with a port: [::1]:5959)"
            ) from None
        return text, None
    if ":" not in text:
        return text, None
    host, _, port = text.partition(":")
    if not host:
        raise ValueError("the host name before :port is missing")
    return host, _port_part(port, text)


def _port_part(port: str, text: str) -> int:
    if not port.isdigit() or not 0 < int(port) <= 65535:
        raise ValueError(
            f"the port in {shown(text)} must be a number from 1 to 65535 "
            "(write an IPv6 address with a port as [::1]:5959)"
        )
    return int(port)


@parser(takes="number", allowed="a whole number (text such as '5001' is accepted)")
def parse_int(value: Any) -> int:
    """A whole number (text such as '5001' is accepted)."""
    if isinstance(value, bool):
        raise ValueError("expected an integer, not a boolean")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    else:
        try:
            number = int(str(value).strip())
        except ValueError:
            raise ValueError(f"expected a whole number, got {shown(value)}") from None
    if not -INT_LIMIT - 1 <= number <= INT_LIMIT:
        raise ValueError(f"must be at most {INT_LIMIT}")
    return number


@parser(takes="number", allowed="a whole number, 1 or more")
def parse_positive_int(value: Any) -> int:
    """A whole number, 1 or more."""
    number = parse_int(value)
    if number < 1:
        raise ValueError("must be 1 or more")
    return number


@parser(takes="number", allowed="a whole number, 0 or more")
def parse_non_negative_int(value: Any) -> int:
    """A whole number, 0 or more."""
    number = parse_int(value)
    if number < 0:
        raise ValueError("must be 0 or more")
    return number


@parser(takes="number", allowed="a port number, 0 to 65535")
def parse_port(value: Any) -> int:
    """A port number, 0 to 65535."""
    number = parse_int(value)
    if not 0 <= number <= 65535:
        raise ValueError("a port is 0 to 65535")
    return number


def _duration(value: Any, unit: str, limit: float) -> float:
    if isinstance(value, bool):
        raise ValueError(f"expected a number of {unit}, not a boolean")
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"expected a number of {unit}, got {shown(value)}") from None
    if not number >= 0:  # also refuses NaN
        raise ValueError(f"must be 0 or more {unit}")
    if number > limit:
        raise ValueError(f"must be at most {limit:g} {unit}")
    return number


@parser(takes="number", allowed="a number of seconds, 0 to 1e9")
def parse_seconds(value: Any) -> float:
    """A number of seconds, 0 to 1e9."""
    return _duration(value, "seconds", SECONDS_LIMIT)


@parser(takes="number", allowed="more than 0 seconds, up to 1e9 (a timeout: 0 would mean not waiting at all)")
def parse_positive_seconds(value: Any) -> float:
    """More than 0 seconds, up to 1e9 (a timeout: 0 would mean not waiting at all)."""
    seconds = parse_seconds(value)
    if seconds <= 0:
        raise ValueError("must be more than 0 seconds")
    return seconds


@parser(takes="number", allowed="a number of milliseconds, 0 to 1e12")
def parse_millis(value: Any) -> float:
    """A number of milliseconds, 0 to 1e12."""
    return _duration(value, "milliseconds", SECONDS_LIMIT * 1000)


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@parser(takes="bool", allowed="true or false (also yes/no, on/off, 1/0)")
def parse_bool(value: Any) -> bool:
    """true or false (also yes/no, on/off, 1/0)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("expected true or false")


@parser(takes="many", allowed="a comma-separated list (in code also a list or tuple of text)", empty=True)
def parse_list(value: Any) -> tuple[str, ...]:
    """A comma-separated list (in code also a list or tuple of text)."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"expected a comma-separated list, got {type(value).__name__}")
    for number, item in enumerate(value, 1):
        if not isinstance(item, str) or not item.strip():
            raise ValueError(f"item {number} is {shown(item)}, expected text")
    return tuple(item.strip() for item in value)


@parser(takes="text", allowed="a file system path (~ is expanded)")
def parse_path(value: Any) -> str:
    """A file system path (~ is expanded)."""
    if not isinstance(value, (str, os.PathLike)):
        raise ValueError(f"expected a path, got {type(value).__name__}")
    text = os.fspath(value)
    if not isinstance(text, str):
        raise ValueError("expected a path as text, not bytes")
    if not text.strip():
        raise ValueError("must not be empty")
    if "\0" in text:
        raise ValueError("must not contain a NUL character")
    return os.path.expanduser(text)
