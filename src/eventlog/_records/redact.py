"""Redaction: secrets lose their values before anything leaves the process.

The rules are a list of words (:data:`DEFAULT_REDACT_KEYS`, the ``redact_keys``
setting of the web integrations: ``EVENTLOG_DJANGO_REDACT_KEYS``,
``EVENTLOG_ASGI_REDACT_KEYS``, ``EVENTLOG_FLASK_REDACT_KEYS``; ``redact_extra_keys``
adds to it).  A key is compared lower-cased and without ``-``, ``_``, ``.`` and
spaces:

* ``word``: the key contains it (``new_password1`` and ``X-Api-Key`` both match
  ``password`` and ``apikey``);
* ``=word``: the key is it, for words too short to look for inside others
  (``=pin`` hides ``pin`` and ``PIN``, not ``shipping``).

Where a secret sits, its value is hidden: form, query and JSON keys at any depth,
``{"name": "password", "value": ...}`` pairs (also ``key``/``field`` and ``value``),
``key=value`` in text, the user info of a URL (``https://u:pw@host`` ->
``https://[redacted]@host``), and path segments that are tokens: a JWT, a run of
16 or more hex digits (hashes, reset tokens; a UUID is not one), 24 or more
characters mixing upper and lower case and digits, or the segment after a
secret-looking one (``/token/<value>``).

Nothing here depends on a web framework: Django, ASGI and Flask share it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

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
    # Whole keys only: as parts of other keys these are ordinary ("shipping", "zip_code").
    "=pass",
    "=otp",
    "=pin",
    "=jwt",
    "=code",  # OAuth's authorization code (?code=)
    "=sig",  # signed URLs (?sig=)
)

#: In ``[{"name": "password", "value": "..."}]``: the keys naming a pair and holding its value.
NAME_KEYS = ("name", "key", "field", "param")
VALUE_KEYS = ("value", "val")

_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_UUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_HEX_RUN = re.compile(r"(?=[0-9a-fA-F]*[0-9])(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{16,}")
_OPAQUE = re.compile(r"(?=.*[a-z])(?=.*[A-Z])(?=.*[0-9])[A-Za-z0-9_~+=-]{24,}")


def path_token(segment: str) -> bool:
    """Whether a path segment looks like a token (see the module docstring)."""
    if _UUID.fullmatch(segment):
        return False
    return bool(_JWT.fullmatch(segment) or _HEX_RUN.search(segment) or _OPAQUE.fullmatch(segment))


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
        words = list(words)
        self.exact = frozenset(w for w in (_normalize(word[1:]) for word in words if word[:1] == "=") if w)
        self.words = tuple(w for w in (_normalize(word) for word in words if word[:1] != "=") if w)

    def is_secret(self, key: str) -> bool:
        """True when ``key`` contains one of the words, or is one of the ``=`` words."""
        normalized = _normalize(key)
        return normalized in self.exact or any(word in normalized for word in self.words)

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
            # {"name": "password", "value": "..."}: the pair's name says the value is secret.
            named = any(isinstance(value.get(k), str) and self.is_secret(value[k]) for k in NAME_KEYS)
            return {
                key: REDACTED
                if self.is_secret(str(key)) or (named and key in VALUE_KEYS)
                else self.json_value(item, depth + 1)
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

    def path(self, path: str) -> str:
        """A URL path with token segments, and segments after secret-looking ones, hidden."""
        segments = path.split("/")
        out: list[str] = []
        after_secret = False
        for segment in segments:
            plain = unquote(segment)
            hide = bool(plain) and (after_secret or path_token(plain))
            out.append(REDACTED if hide else segment)
            after_secret = bool(plain) and not hide and self.is_secret(plain)
        return "/".join(out)

    def url(self, url: str) -> str:
        """A URL with its user info, token path segments and secret query values hidden."""
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError for a malformed authority
        except ValueError:
            return self.text(url)
        if "@" in parts.netloc:
            parts = parts._replace(netloc=f"{REDACTED}@{parts.netloc.rpartition('@')[2]}")
        parts = parts._replace(path=self.path(parts.path))
        if parts.query:
            pairs = self.pairs(parse_qsl(parts.query, keep_blank_values=True))
            parts = parts._replace(query=urlencode(pairs, safe=SAFE))
        return urlunsplit(parts)
