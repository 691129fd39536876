"""Hook implementations of eventlog-http (registered through the entry point group 'eventlog').

Every option is read as ``configure(http_<name>=...)``, ``EVENTLOG_HTTP_<NAME>``
or the Django setting of that name, and checked when the pipeline is built.
Secret values (token, password, headers) may name environment variables as
``${NAME}``, so they need not sit in a settings file; they are never shown.
"""

from __future__ import annotations

import json
import os
import re
import urllib.parse
from collections.abc import Mapping
from typing import Any

from eventlog.plugin import (
    Option,
    TransportSpec,
    hookimpl,
    parse_bool,
    parse_non_negative_int,
    parse_positive_int,
    parse_positive_seconds,
    parse_seconds,
    parser,
)
from eventlog.plugin.net import tls_options
from eventlog_http.transport import HttpConfig, HttpTransport

_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
#: RFC 9110 token characters: what a header name may contain.
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def expand_env(value: Any) -> str:
    """Text with each ``${NAME}`` replaced by the environment variable NAME (which must be set)."""

    def lookup(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise ValueError(f"environment variable {name} is not set")
        return os.environ[name]

    return _ENV_REFERENCE.sub(lookup, str(value))


@parser(takes="text", allowed="an http:// or https:// URL with a host; the query string is kept as given")
def parse_url(value: Any) -> str:
    """An http:// or https:// URL with a host; the query string is kept as given."""
    text = str(value).strip()
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise ValueError("must start with http:// or https://")
    if not parts.hostname:
        raise ValueError("has no host name")
    try:
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError:
        raise ValueError("has an invalid port") from None
    return text


@parser(takes="text", allowed="a secret (${NAME} reads an environment variable); never empty")
def parse_secret(value: Any) -> str:
    """A secret (``${NAME}`` reads an environment variable); never empty."""
    text = expand_env(value)
    if not text:
        raise ValueError("is empty")
    return text


@parser(
    takes="many",
    allowed=(
        "extra headers: a mapping in code, or in the environment a JSON object or Name: value; "
        "Other: value. Values may use ${NAME}"
    ),
    empty=True,
)
def parse_headers(value: Any) -> dict[str, str]:
    """Extra headers: a mapping in code, or in the environment a JSON object or
    ``Name: value; Other: value``.  Values may use ``${NAME}``.

    Errors name an entry by its position only: a malformed entry may hold a key.
    """
    if isinstance(value, Mapping):
        items = list(value.items())
    else:
        text = str(value).strip()
        if text.startswith("{"):
            try:
                loaded = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"is not a JSON object ({exc.msg})") from None
            if not isinstance(loaded, dict):
                raise ValueError("is not a JSON object")
            items = list(loaded.items())
        else:
            items = []
            entries = [e for e in re.split(r"[;\n]", text) if e.strip()]
            for number, entry in enumerate(entries, 1):
                name, colon, header_value = entry.partition(":")
                if not colon:
                    raise ValueError(f"entry {number} has no ':' (write Name: value; ...)")
                items.append((name, header_value))
    headers: dict[str, str] = {}
    for number, (name, header_value) in enumerate(items, 1):
        name = str(name).strip()
        if not _HEADER_NAME.match(name):
            raise ValueError(f"the name of entry {number} is not a valid header name")
        expanded = expand_env(header_value).strip()
        if "\r" in expanded or "\n" in expanded:
            raise ValueError(f"the value of header {name} contains a line break")
        headers[name] = expanded
    return headers


#: 0 or more quick retries.
parse_retries = parse_non_negative_int


#: A timeout: more than 0 seconds (the core's parser, shared by every plugin).
parse_timeout = parse_positive_seconds


OPTIONS: tuple[Option, ...] = (
    # Secret: a URL may carry credentials (user info, ClickHouse's password= parameter).
    # Log lines show it as scheme://host:port/path only.
    Option(
        "url", parse_url, None, "where to POST, e.g. http://127.0.0.1:8080/ (query kept as is)", secret=True
    ),
    Option("token", parse_secret, None, "bearer token (Authorization: Bearer ...)", secret=True),
    Option("user", parse_secret, None, "user name for basic auth"),
    Option("password", parse_secret, None, "password for basic auth", secret=True),
    Option("headers", parse_headers, {}, "extra headers: JSON object or 'Name: value; ...'", secret=True),
    Option("gzip", parse_bool, False, "gzip the body (Content-Encoding: gzip)"),
    Option(
        "max_body_bytes",
        parse_positive_int,
        5_000_000,
        "largest body before compression; a larger batch is split",
    ),
    Option("connect_timeout", parse_timeout, 5.0, "seconds to wait for a connection"),
    Option("read_timeout", parse_timeout, 10.0, "seconds to wait for the answer to a POST"),
    Option(
        "retries", parse_retries, 2, "quick retries inside one send before the engine's backoff takes over"
    ),
    Option(
        "retry_after_max",
        parse_seconds,
        5.0,
        "longest Retry-After waited inside a send; longer ones are the engine's to wait",
    ),
    # TLS is the URL's (https://): no "tls" switch of its own.
    *tls_options(switch=False),
)


@hookimpl
def eventlog_transports() -> list[TransportSpec]:
    return [
        TransportSpec(
            "http",
            HttpTransport.from_context,
            "HTTP POST of each batch (Logstash http, Fluentd in_http, Vector, ClickHouse)",
            OPTIONS,
            # The body is the formatter's batch body (its payloads back to back, or its own
            # format_batch): the receiver splits it by the format's framing.
            carries=frozenset({"lines", "self-delimiting"}),
        )
    ]


__all__ = ["OPTIONS", "HttpConfig", "HttpTransport", "expand_env", "parse_headers"]
