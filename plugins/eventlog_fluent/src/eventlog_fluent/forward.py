"""The pieces of Fluentd's Forward Protocol Specification v1 that a client sends and checks.

Pure functions over bytes: entries (``[EventTime, record]``), the messages of the
three batch modes (Forward, PackedForward, Compressed PackedForward) with their
options, and the shared-key handshake (HELO from the server, PING from us, PONG
back).  The socket work
is in :mod:`eventlog_fluent.transport`.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgpack

#: fixarray of 2 (the entry), then fixext 8 of type 0 (EventTime).
_ENTRY_PREFIX = b"\x92\xd7\x00"
#: Bytes an entry adds to its msgpack record: array header and EventTime.
ENTRY_HEAD_BYTES = 11
_seconds_nanos = struct.Struct(">II").pack
_UINT32_MAX = 2**32 - 1

_packer = msgpack.Packer(use_bin_type=True, autoreset=True)
_pack = _packer.pack
_array_header = _packer.pack_array_header
#: fixarray of 3: tag, entries, option.
_ARRAY_OF_3 = b"\x93"


def entry_head(time_ns: int) -> bytes:
    """The 11 bytes that make a msgpack record into the entry ``[EventTime(time_ns), record]``.

    EventTime is seconds and nanoseconds as two big-endian uint32 (until 2106);
    times outside that range are clamped rather than failing the batch.
    """
    seconds, nanos = divmod(time_ns, 1_000_000_000)
    if not 0 <= seconds <= _UINT32_MAX:
        seconds, nanos = (0, 0) if seconds < 0 else (_UINT32_MAX, 999_999_999)
    return _ENTRY_PREFIX + _seconds_nanos(seconds, nanos)


def event_stream(entries: Iterable[tuple[int, bytes]]) -> bytes:
    """A MessagePackEventStream: the entries for (time_ns, msgpack record) pairs, concatenated."""
    parts: list[bytes] = []
    append = parts.append
    for time_ns, record in entries:
        append(entry_head(time_ns))
        append(record)
    return b"".join(parts)


#: Length of a chunk id: base64 of 16 bytes.
CHUNK_ID_CHARS = 24
#: gzip level of Compressed PackedForward: most of level 9's ratio at a fraction of its cost.
GZIP_LEVEL = 6


def new_chunk_id() -> str:
    """Base64 of 128 random bits: the ``chunk`` option the server echoes in its ack."""
    return base64.b64encode(os.urandom(16)).decode("ascii")


#: The batch modes of the spec a client may send (Message mode carries one event: not for batches).
MODES = ("packed", "compressed", "forward")


def message(
    mode: str, tag: str, stream: bytes, size: int, *, chunk: str | None, gzip_level: int = GZIP_LEVEL
) -> bytes:
    """One message of ``mode`` carrying ``stream`` (``size`` entries) as msgpack.

    - ``packed``: PackedForward, ``[tag, bin(entries), {"size": n, "chunk"?: id}]``; the
      entries go as msgpack ``bin``, as the spec asks of new clients.
    - ``compressed``: Compressed PackedForward, the same with gzipped entries and
      ``"compressed": "gzip"`` in the option.
    - ``forward``: Forward, ``[tag, [entry, ...], {"size": n, "chunk"?: id}]``.  The
      entries are msgpack values one after the other, so an array header for ``size``
      elements in front of the stream makes the array without decoding a record.
    """
    option: dict[str, Any] = {"size": size}
    if chunk is not None:
        option["chunk"] = chunk
    if mode == "forward":
        return b"".join((_ARRAY_OF_3, _pack(tag), _array_header(size), stream, _pack(option)))
    if mode == "compressed":
        stream = gzip.compress(stream, compresslevel=gzip_level, mtime=0)
        option["compressed"] = "gzip"
    elif mode != "packed":
        raise ValueError(f"unknown mode {mode!r}: choose one of {', '.join(MODES)}")
    packed: bytes = _pack([tag, stream, option])
    return packed


def message_overhead(mode: str, tag: str, *, chunk: bool) -> int:
    """The most bytes a message of ``mode`` and ``tag`` adds to its entries.

    Counted for the largest option (a uint32 ``size``, a ``chunk`` id) and the
    largest header of the entries (an array 32 or a bin 32: 5 bytes), so that
    entries plus this never undercount a message.  For ``compressed`` the
    entries are counted before gzip.
    """
    option: dict[str, Any] = {"size": _UINT32_MAX}
    if chunk:
        option["chunk"] = "x" * CHUNK_ID_CHARS
    if mode == "compressed":
        option["compressed"] = "gzip"
    return len(_ARRAY_OF_3) + len(_pack(tag)) + 5 + len(_pack(option))


# ---------------------------------------------------------------- handshake


def _as_bytes(value: Any) -> bytes:
    """A str or bin field of a server message as the bytes the server hashed."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    return b""


def sha512_hex(*parts: bytes) -> str:
    """sha512 over the concatenated parts, as lowercase hex."""
    digest = hashlib.sha512()
    for part in parts:
        digest.update(part)
    return digest.hexdigest()


@dataclass(frozen=True)
class Helo:
    """What the server's HELO asked for."""

    nonce: bytes
    #: Salt for user authentication; empty when the server wants no user name.
    auth_salt: bytes
    keepalive: bool


def is_helo(message: Any) -> bool:
    """True for ``["HELO", {...}]``."""
    return (
        isinstance(message, list)
        and len(message) == 2
        and message[0] == "HELO"
        and isinstance(message[1], dict)
    )


def parse_helo(message: Any) -> Helo:
    """The HELO's options; raise ValueError for anything else."""
    if not is_helo(message):
        raise ValueError(f"expected HELO, got {describe(message)}")
    options = message[1]
    return Helo(
        nonce=_as_bytes(options.get("nonce")),
        auth_salt=_as_bytes(options.get("auth")),
        keepalive=options.get("keepalive") is not False,
    )


@dataclass(frozen=True)
class Credentials:
    """What the client knows: the shared key, its host name, and maybe a user."""

    shared_key: str
    hostname: str
    username: str | None = None
    password: str | None = None


def ping(helo: Helo, credentials: Credentials, salt: bytes) -> bytes:
    """The PING answering ``helo``, as msgpack.

    ``["PING", hostname, salt, sha512_hex(salt + hostname + nonce + key),
    username, sha512_hex(auth_salt + username + password)]``; the user fields
    are empty strings when the server did not ask for a user.
    """
    key = credentials.shared_key.encode("utf-8")
    host = credentials.hostname.encode("utf-8")
    username, password_digest = "", ""
    if helo.auth_salt:
        if credentials.username is None:
            raise ValueError("the server asks for a user name and password")
        username = credentials.username
        password_digest = sha512_hex(
            helo.auth_salt,
            username.encode("utf-8"),
            (credentials.password or "").encode("utf-8"),
        )
    message: bytes = _pack(
        [
            "PING",
            credentials.hostname,
            salt.decode("ascii"),
            sha512_hex(salt, host, helo.nonce, key),
            username,
            password_digest,
        ]
    )
    return message


def new_salt() -> bytes:
    """A shared-key salt: 32 hex digits, sent as str as Fluentd's out_forward does."""
    return os.urandom(16).hex().encode("ascii")


def check_pong(message: Any, helo: Helo, credentials: Credentials, salt: bytes) -> None:
    """Accept a PONG that says yes and proves the server knows the key; else ValueError.

    ``["PONG", ok, reason, server_hostname, sha512_hex(salt + server_hostname + nonce + key)]``
    """
    if not (isinstance(message, list) and len(message) == 5 and message[0] == "PONG"):
        raise ValueError(f"expected PONG, got {describe(message)}")
    _, ok, reason, server_hostname, digest = message
    if ok is not True:
        raise PermissionError(str(reason) or "no reason given")
    expected = sha512_hex(
        salt, _as_bytes(server_hostname), helo.nonce, credentials.shared_key.encode("utf-8")
    )
    if digest != expected:
        raise PermissionError(f"the server {server_hostname!r} accepted us but does not know our shared key")


def describe(message: Any) -> str:
    """A short repr of a server message, for error messages."""
    text = repr(message)
    return text if len(text) <= 80 else text[:77] + "..."
