"""Option, the declaration of one setting, and the parsers every plugin's options use.

A leaf module (it imports nothing of eventlog), so the settings (:mod:`eventlog._config.config`),
the plugin contracts (:mod:`eventlog._config.contracts`) and the web integrations' options can
all use it without importing each other.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Option:
    """One setting of a plugin.

    A transport named ``fluent`` with ``Option("tag", str, "app")`` reads the
    environment variable ``EVENTLOG_FLUENT_TAG``, the Django setting of the same
    name, or ``configure(fluent_tag=...)``.  ``parse`` turns the text from the
    environment (or the value given in code) into the value, raising ValueError
    with a short reason when it cannot.
    """

    name: str
    parse: Callable[[Any], Any]
    default: Any = None
    help: str = ""
    #: Secrets are never printed (errors, ``eventlog plugins``, logs).
    secret: bool = False
    choices: tuple[str, ...] | None = None


# ---------------------------------------------------------------- parsers
#
# Each parser's docstring says what it accepts: an error shows its first paragraph as
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


def parse_str(value: Any) -> str:
    """Text, not empty."""
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {type(value).__name__}")
    if not value.strip():
        raise ValueError("must not be empty")
    return value


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


def parse_positive_int(value: Any) -> int:
    """A whole number, 1 or more."""
    number = parse_int(value)
    if number < 1:
        raise ValueError("must be 1 or more")
    return number


def parse_non_negative_int(value: Any) -> int:
    """A whole number, 0 or more."""
    number = parse_int(value)
    if number < 0:
        raise ValueError("must be 0 or more")
    return number


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


def parse_seconds(value: Any) -> float:
    """A number of seconds, 0 to 1e9."""
    return _duration(value, "seconds", SECONDS_LIMIT)


def parse_positive_seconds(value: Any) -> float:
    """More than 0 seconds, up to 1e9 (a timeout: 0 would mean not waiting at all)."""
    seconds = parse_seconds(value)
    if seconds <= 0:
        raise ValueError("must be more than 0 seconds")
    return seconds


def parse_millis(value: Any) -> float:
    """A number of milliseconds, 0 to 1e12."""
    return _duration(value, "milliseconds", SECONDS_LIMIT * 1000)


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


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
