"""The web integrations' settings (Django, ASGI, Flask): their options and parsers.

Data only, with no import of the pipeline or the settings machinery, so that
:mod:`eventlog._config.config` can list these options (for misspelt-setting warnings)
without an import cycle; :mod:`eventlog._web.request` resolves them.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from eventlog._core.options import Option, parse_bool, parse_list, parse_non_negative_int, parse_str, parser
from eventlog._records.redact import DEFAULT_REDACT_KEYS

_HEADER = re.compile(r"^[A-Za-z0-9-]+$")

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@parser(takes="many", allowed="addresses or networks: 10.0.0.1, 10.1.0.0/16, ::1", empty=True)
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


@parser(takes="text", allowed="an HTTP header name such as X-Request-ID")
def parse_header(value: Any) -> str:
    """An HTTP header name such as ``X-Request-ID``."""
    text = str(value).strip()
    if not _HEADER.match(text):
        raise ValueError("an HTTP header name has only letters, digits and '-'")
    return text


OPTIONS: tuple[Option, ...] = (
    Option(
        "user_field",
        parse_str,
        "username",
        "what identifies the user: username (get_username(), .username, .display_name or "
        "get_id()), or an attribute such as pk or email; 'none' keeps users out of events",
    ),
    Option(
        "trusted_proxies",
        parse_networks,
        (),
        "addresses/networks of your reverse proxies; only their X-Forwarded-For is believed",
    ),
    Option("log_body", parse_bool, True, "put the POST/PUT/PATCH body into message"),
    Option("max_body", parse_non_negative_int, 4096, "longest body kept in message, in characters"),
    Option(
        "redact_keys",
        parse_list,
        DEFAULT_REDACT_KEYS,
        "words that make a form, JSON or query key secret-looking (its value is redacted); "
        "=word matches the whole key only",
    ),
    Option(
        "redact_extra_keys",
        parse_list,
        (),
        "words added to redact_keys (its default list stays), e.g. iban,=ssn",
    ),
    Option(
        "request_id_header",
        parse_header,
        "X-Request-ID",
        "header that carries a request id in (and is set on the response)",
    ),
    Option("skip_paths", parse_list, (), "path prefixes not logged, e.g. /static/,/healthz"),
)
OPTION_NAMES = frozenset(opt.name for opt in OPTIONS)
