"""The middleware's settings: ``EVENTLOG_DJANGO_*`` from the environment, then Django settings.

Like every eventlog setting, the environment wins over ``settings.py``.  Values
are checked when Django loads the middleware, and an error names the setting,
the value and what is allowed.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from typing import Any

from eventlog.config import Settings, parse_bool, parse_int, parse_list, parse_str
from eventlog.django.redact import DEFAULT_REDACT_KEYS
from eventlog.interfaces import Option

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_HEADER = re.compile(r"^[A-Za-z0-9-]+$")


def parse_networks(value: Any) -> tuple[IPNetwork, ...]:
    """Addresses or networks: ``10.0.0.1, 10.1.0.0/16, ::1``."""
    networks = []
    for entry in parse_list(value):
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(
                f"{entry!r} is not an IP address or network (write e.g. 10.0.0.1 or 10.0.0.0/8)"
            ) from None
    return tuple(networks)


def parse_header(value: Any) -> str:
    """An HTTP header name such as ``X-Request-ID``."""
    text = str(value).strip()
    if not _HEADER.match(text):
        raise ValueError("an HTTP header name has only letters, digits and '-'")
    return text


def parse_size(value: Any) -> int:
    """A size in characters, 0 or more."""
    number = parse_int(value)
    if number < 0:
        raise ValueError("must be 0 or more")
    return number


OPTIONS: tuple[Option, ...] = (
    Option(
        "user_field",
        parse_str,
        "username",
        "what identifies the user: username (get_username()), or an attribute such as pk or "
        "email; 'none' keeps users out of events",
    ),
    Option(
        "trusted_proxies",
        parse_networks,
        (),
        "addresses/networks of your reverse proxies; only their X-Forwarded-For is believed",
    ),
    Option("log_body", parse_bool, True, "put the POST/PUT/PATCH body into message"),
    Option("max_body", parse_size, 4096, "longest body kept in message, in characters"),
    Option(
        "redact_keys",
        parse_list,
        DEFAULT_REDACT_KEYS,
        "words that make a form, JSON or query key secret-looking (its value is redacted)",
    ),
    Option(
        "request_id_header",
        parse_header,
        "X-Request-ID",
        "header that carries a request id in (and is set on the response)",
    ),
    Option("skip_paths", parse_list, (), "path prefixes not logged, e.g. /static/,/healthz"),
)


@dataclass(frozen=True)
class MiddlewareSettings:
    """The middleware's resolved settings (see :data:`OPTIONS` for each one's meaning)."""

    user_field: str
    trusted_proxies: tuple[IPNetwork, ...]
    log_body: bool
    max_body: int
    redact_keys: tuple[str, ...]
    request_id_header: str
    skip_paths: tuple[str, ...]

    @classmethod
    def load(cls, environ: dict[str, str] | None = None) -> MiddlewareSettings:
        """Resolve ``EVENTLOG_DJANGO_<NAME>`` from the environment, then Django settings.

        Raises :class:`~eventlog.ConfigurationError` naming a bad setting.
        """
        environ = dict(os.environ if environ is None else environ)
        source = Settings(values={}, given={}, environ=environ)
        values = {opt.name: source.resolve(f"django_{opt.name}", opt) for opt in OPTIONS}
        return cls(**values)
