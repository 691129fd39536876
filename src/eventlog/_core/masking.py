"""Hiding secrets in text that leaves the process: warnings, exception messages, refusals.

A transport's error text is made of its own words, an OS or library reason
("Connection refused") and sometimes what the server said.  Replacing every
occurrence of a secret as a substring garbles that text and gives the secret
away: with the password ``on``, "Connection refused" became
``C<hidden>necti<hidden> refused``.  :class:`SecretMask` instead hides a
secret where it structurally sits:

* the user info of a URL: ``https://user:pass@host/`` -> ``https://user:<hidden>@host/``,
  ``https://token@host/`` -> ``https://<hidden>@host/``;
* the credentials of an ``Authorization`` / ``Proxy-Authorization`` header:
  ``Authorization: Bearer <hidden>``;
* the value of a secret-looking key in a query or a JSON object: ``password=<hidden>``,
  ``"shared_key": "<hidden>"`` (``pass``, ``pwd``, ``secret``, ``token``, ``api_key``,
  ``shared_key``, ``access_key``);
* the value of a ``Name: value`` header pair whose name says it holds a secret, as a
  server echoing the request's headers writes it: ``X-Api-Key: <hidden>``,
  ``X-Auth-Token: <hidden>``, ``Cookie: <hidden>`` (whatever the value's length; the name
  must look like a header, with a ``-`` or ``_`` in it or at the start of a line, since
  "a user name and password: set ..." is a sentence);
* configured secret values (and their URL-encoded form) as whole tokens, bounded
  by non-word characters, when they are at least :data:`MIN_TOKEN_CHARS` long.

Why a minimum: a value shorter than that is usually an ordinary word or number
("on", "admin", "1234") that turns up in error texts on its own; masking it
there garbles the message and, by where ``<hidden>`` appears, shows what the
secret is.  Real API keys and tokens are far longer, and 8 characters is the
least that NIST SP 800-63B accepts for a password.  A shorter secret is still
hidden in each place above, which are the places a transport or server puts it.

>>> mask = SecretMask(["on", "tok-9f8e7d6c5b4a"])
>>> mask("POST failed: Connection refused; Authorization: Bearer tok-9f8e7d6c5b4a")
'POST failed: Connection refused; Authorization: Bearer <hidden>'
>>> mask("GET http://u:on@host/ said: token tok-9f8e7d6c5b4a is invalid")
'GET http://u:<hidden>@host/ said: token <hidden> is invalid'
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any

from eventlog._core.errors import TransportError
from eventlog._core.options import Option

__all__ = ["HIDDEN", "MIN_TOKEN_CHARS", "SecretMask", "looks_secret", "mask_structure"]

#: What a hidden value is replaced with.
HIDDEN = "<hidden>"
#: Shortest configured secret that is also hidden wherever it appears as a whole token.
MIN_TOKEN_CHARS = 8

# scheme://userinfo@ -- the user info runs to the last '@' before the path, query or fragment.
_URL_USERINFO = re.compile(r"(?<![\w+.-])([A-Za-z][A-Za-z0-9+.-]*://)([^\s/?#@]*(?:@[^\s/?#@]*)*)@")
# Authorization: Basic abc= / "Authorization": "Bearer abc" / authorization=Token abc
_AUTH_HEADER = re.compile(
    r"(?i)\b((?:proxy-)?authorization[\"']?\s*[:=]\s*[\"']?)"
    # Possessive: an already hidden value must not make the scheme itself the value.
    r"(?:(basic|bearer|digest|negotiate|token|apikey)\s+)?+"
    r"(?!<hidden>)[^\s\"',;]+"
)
# A key whose name says it holds a secret, as a query or config pair (password=abc) or a
# quoted JSON / dict key ("api_key": "abc").  Not an unquoted "password: ...": in prose
# that is a sentence ("asks for a user name and password: set ...").
_SECRET_WORD = (
    r"[\w.-]*(?:pass(?:word|wd)?|pwd|secret|token|api[_-]?key|shared[_-]?key|access[_-]?key)[\w.-]*"
)
_SECRET_NAME = re.compile(f"(?i){_SECRET_WORD}")
_SECRET_KEY_VALUE = re.compile(
    rf"(?i)(\b{_SECRET_WORD}=|[\"']{_SECRET_WORD}[\"']\s*:\s*[\"']?)(?!<hidden>)[^\s\"'&,;]+"
)

# Name: value with a secret-looking header name; _header_pair keeps prose ("and password: set").
# Possessive spaces: a value already hidden must not match again from its leading space.
_HEADER_PAIR = re.compile(
    rf"(?im)(?<![\w.-])({_SECRET_WORD}|[\w.-]*cookie[\w.-]*)(\s*:[ \t]*+)"
    r"(?!<hidden>)([^\r\n,;\"']*[^\s,;\"'])"
)


def looks_secret(name: str) -> bool:
    """Whether a key's name says it holds a secret (``http_token``, ``X-Api-Key``, ``pwd``)."""
    return _SECRET_NAME.fullmatch(name) is not None


def _userinfo(match: re.Match[str]) -> str:
    scheme, userinfo = match.group(1), match.group(2)
    user, colon, _ = userinfo.partition(":")
    # A lone user info (https://TOKEN@host) is as often a token as a user name: hide it.
    return f"{scheme}{user}:{HIDDEN}@" if colon else f"{scheme}{HIDDEN}@"


def _auth_header(match: re.Match[str]) -> str:
    scheme = f"{match.group(2)} " if match.group(2) else ""
    return f"{match.group(1)}{scheme}{HIDDEN}"


def _header_pair(match: re.Match[str]) -> str:
    name = match.group(1)
    start = match.start()
    header_like = "-" in name or "_" in name or start == 0 or match.string[start - 1] == "\n"
    return f"{name}{match.group(2)}{HIDDEN}" if header_like else match.group(0)


def mask_structure(text: str) -> str:
    """``text`` with URL user info, auth header credentials and ``secret=value`` values hidden.

    Needs no list of secrets: it hides the places where credentials sit.
    """
    if "@" in text:
        text = _URL_USERINFO.sub(_userinfo, text)
    text = _AUTH_HEADER.sub(_auth_header, text)
    text = _SECRET_KEY_VALUE.sub(lambda m: m.group(1) + HIDDEN, text)
    return _HEADER_PAIR.sub(_header_pair, text) if ":" in text else text


def _values(value: Any) -> Iterable[str]:
    """The text values inside a setting's value (a header mapping holds several)."""
    if value is None:
        return
    if isinstance(value, str):
        parts = urllib.parse.urlsplit(value)
        if parts.scheme and parts.netloc:
            # A URL setting is secret for what it may carry, not for its host and path:
            # hiding the whole URL would hide where a failing send went.
            if parts.password:
                yield parts.password
            for key, item in urllib.parse.parse_qsl(parts.query):
                if _SECRET_NAME.fullmatch(key):
                    yield item
            return
        yield value
    elif isinstance(value, bytes):
        yield value.decode("utf-8", "replace")
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _values(item)
    elif isinstance(value, Iterable):
        for item in value:
            yield from _values(item)
    else:
        yield str(value)


class SecretMask:
    """Hides credentials in text, given the configured secret values (see the module doc).

    Build one per transport from its secrets, then pass every message that
    leaves it through the mask (or :meth:`scrub` an error before raising it)::

        mask = SecretMask.for_options(OPTIONS, context.options)
        raise ConnectError(mask(f"POST failed: {reason}"))
    """

    def __init__(self, secrets: Iterable[Any] = ()) -> None:
        tokens: set[str] = set()
        for secret in _values(secrets):
            for form in (secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret)):
                if len(form) >= MIN_TOKEN_CHARS:
                    tokens.add(form)
        self._tokens: re.Pattern[str] | None = None
        if tokens:
            # Longest first, so that a secret containing another one is hidden whole.
            alternatives = "|".join(re.escape(t) for t in sorted(tokens, key=len, reverse=True))
            self._tokens = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")

    @classmethod
    def for_options(cls, options: Iterable[Option], values: Mapping[str, Any]) -> SecretMask:
        """A mask for the values of the options marked ``secret=True``."""
        return cls(values.get(option.name) for option in options if option.secret)

    def __call__(self, text: str) -> str:
        """``text`` with credentials and configured secrets replaced by ``<hidden>``."""
        text = mask_structure(text)
        if self._tokens is not None:
            text = self._tokens.sub(HIDDEN, text)
        return text

    def scrub(self, error: TransportError) -> TransportError:
        """Mask ``error``'s message in place (type, ``retryable`` and ``retry_after`` kept)."""
        if error.args:
            error.args = (self(str(error.args[0])), *error.args[1:])
        return error
