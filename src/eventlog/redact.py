"""Redaction: secret-looking keys lose their values before anything leaves the process.

A key is secret-looking when, lower-cased and without ``-``, ``_``, ``.`` and
spaces, it contains one of the configured words (``new_password1`` and
``X-Api-Key`` both match).  The words are the ``redact_keys`` setting of
the web integrations (``EVENTLOG_DJANGO_REDACT_KEYS``, ``EVENTLOG_ASGI_REDACT_KEYS``,
``EVENTLOG_FLASK_REDACT_KEYS``); :data:`DEFAULT_REDACT_KEYS` is the default.

Nothing here depends on a web framework: Django, ASGI and Flask share it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

#: What a secret value becomes.
REDACTED = "[redacted]"

#: Words that make a key secret-looking.  Kept to distinctive words: a short one
#: such as "auth" or "pin" would also hide ordinary keys ("author", "shipping").
DEFAULT_REDACT_KEYS: tuple[str, ...] = (
    "password",
    "passwd",
    "pwd",
    "passphrase",
    "secret",
    "token",
    "apikey",
    "authorization",
    "credential",
    "privatekey",
    "accesskey",
    "signature",
    "session",
    "cookie",
    "csrf",
    "creditcard",
    "cardnumber",
    "cvv",
)

# key = value, key: value, "key": "value" in text that is neither a form nor JSON.
_PAIR = re.compile(
    r"""(?P<key>[A-Za-z0-9_.\-]+)(?P<quote>["']?)(?P<sep>\s*[:=]\s*)"""
    r"""(?P<value>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|[^\s&,;}\]]+)"""
)

#: Characters urlencode() leaves alone, so the marker stays readable in forms and URLs.
SAFE = "[]"

#: Nesting depth beyond which JSON values are replaced rather than walked.
MAX_DEPTH = 32


def _normalize(key: str) -> str:
    return key.lower().replace("-", "").replace("_", "").replace(".", "").replace(" ", "")


class Redactor:
    """Decides which keys are secret and hides their values in pairs, JSON, text and URLs.

    >>> Redactor(["password"]).pairs([("user", "al"), ("password", "x")])
    [('user', 'al'), ('password', '[redacted]')]
    """

    def __init__(self, words: Iterable[str] = DEFAULT_REDACT_KEYS) -> None:
        self.words = tuple(w for w in (_normalize(word) for word in words) if w)

    def is_secret(self, key: str) -> bool:
        """True when ``key`` contains one of the words."""
        normalized = _normalize(key)
        return any(word in normalized for word in self.words)

    def value(self, key: str, value: str) -> str:
        """``value``, or the redaction marker when ``key`` is secret-looking."""
        return REDACTED if self.is_secret(key) else value

    def pairs(self, pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
        """Form or query pairs with secret values hidden."""
        return [(key, self.value(key, value)) for key, value in pairs]

    def json_value(self, value: Any, depth: int = 0) -> Any:
        """A copy of decoded JSON with the values of secret-looking keys hidden, at any depth."""
        if depth > MAX_DEPTH:
            return REDACTED  # cannot look inside: hide rather than risk it
        if isinstance(value, dict):
            return {
                key: REDACTED if self.is_secret(str(key)) else self.json_value(item, depth + 1)
                for key, item in value.items()
            }
        if isinstance(value, list):
            return [self.json_value(item, depth + 1) for item in value]
        return value

    def json_text(self, text: str) -> str:
        """JSON text with secrets hidden; text that is not JSON goes through :meth:`text`."""
        try:
            decoded = json.loads(text)
        except (ValueError, RecursionError):
            return self.text(text)
        return json.dumps(self.json_value(decoded), ensure_ascii=False, separators=(",", ":"))

    def text(self, text: str) -> str:
        """Free text with ``key=value`` and ``"key": "value"`` secrets hidden (best effort)."""

        def replace(match: re.Match[str]) -> str:
            if not self.is_secret(match["key"]):
                return match[0]
            return f"{match['key']}{match['quote']}{match['sep']}{REDACTED}"

        return _PAIR.sub(replace, text)

    def url(self, url: str) -> str:
        """A URL whose query string has its secret values hidden."""
        try:
            parts = urlsplit(url)
        except ValueError:
            return self.text(url)
        if not parts.query:
            return url
        pairs = self.pairs(parse_qsl(parts.query, keep_blank_values=True))
        query = urlencode(pairs, safe=SAFE)
        return urlunsplit(parts._replace(query=query))
