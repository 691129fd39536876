"""Transport ``nats``: publish each event to a NATS JetStream stream and wait for its ack.

Every event is one JetStream message whose ``Nats-Msg-Id`` header is the
event's ``id``.  A batch is published pipelined (all messages written, then
all acks awaited together), and :meth:`NatsTransport.send` returns only when
JetStream has acknowledged every message: the stream has stored it (on a
quorum of replicas, for a replicated stream).  When an ack is missing the
engine sends the whole batch again, and JetStream drops each message it
already stored within the stream's duplicate window (its ack then says
``duplicate``): at-least-once sending becomes exactly-once into the stream.

nats-py is asyncio.  The transport owns one event loop, running in a thread
of its own for as long as the connection is open, and the engine's worker
hands it coroutines with bounded waits (``run_coroutine_threadsafe``).  A
loop run only inside ``send`` (``run_until_complete`` from the worker) would
leave the client's reader and PING/PONG tasks stopped between batches, and an
idle producer would be dropped by the server as a stale connection.  Nothing
async leaves this module.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import re
import ssl
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import PubAck

from eventlog.plugin import (
    AuthError,
    Batch,
    ConfigurationError,
    ConnectError,
    PluginContext,
    Record,
    SendTimeout,
    Transport,
    TransportError,
    parse_list,
    parser,
)
from eventlog.plugin.aio import EventLoopThread
from eventlog.plugin.net import tls_context

#: The NATS client port.
NATS_PORT = 4222

#: JetStream error codes (nats-server's errors.json) that say something about our messages.
MESSAGE_TOO_LARGE = 10054  # JSStreamMessageExceedsMaximumErr: larger than the stream's max_msg_size
STORE_FAILED = 10077  # JSStreamStoreFailedF: "maximum messages/bytes exceeded" (discard: new)
WRONG_STREAM = 10060  # JSStreamNotMatchErr: Nats-Expected-Stream differs from the stream found
INSUFFICIENT_RESOURCES = 10023  # JSInsufficientResourcesErr: the server is out of storage

#: Bytes of the message headers besides the values (NATS/1.0 line, names, separators), rounded
#: up: the server closes a connection that sends more than its max_payload, headers included.
HEADER_BYTES = 80
#: Seconds close() gives the client to say goodbye, and the loop's thread to end.
CLOSE_TIMEOUT = 2.0
#: Most subjects remembered for ``subject_mode=action`` (actions are few; a bug must not grow it).
SUBJECT_CACHE = 4096

_SUBJECT_UNSAFE = re.compile(r"[\s*>]")
_DUPLICATE = re.compile(rb'"duplicate":\s*true')


@dataclass
class NatsCounts:
    """Publish acks of every ``nats`` transport in this process (plain integers).

    ``duplicates`` are the messages JetStream acknowledged as already stored
    (same ``Nats-Msg-Id`` within the stream's duplicate window) and did not
    store again: the resends that made at-least-once exactly-once.
    """

    acked: int = 0
    duplicates: int = 0


#: The process's totals; a fork child starts again from zero.
counts = NatsCounts()


@parser(takes="many", allowed="server URLs, comma-separated (or a list in code): nats://host:4222, tls://")
def parse_servers(value: Any) -> tuple[str, ...]:
    """Server URLs, comma-separated (or a list in code): ``nats://host:4222``, ``tls://...``.

    A bare ``host`` or ``host:port`` means ``nats://host:port`` (port 4222 by default).
    """
    servers = []
    for number, item in enumerate(parse_list(value), 1):  # the core's list rules and errors
        text = item if "://" in item else f"nats://{item}"
        parts = urllib.parse.urlsplit(text)
        if parts.scheme not in ("nats", "tls"):
            raise ValueError(f"server {number} must start with nats:// or tls://")
        if not parts.hostname:
            raise ValueError(f"server {number} has no host name")
        try:
            port = parts.port or NATS_PORT
        except ValueError:
            raise ValueError(f"server {number} has an invalid port") from None
        if parts.username or parts.password:
            raise ValueError(
                f"server {number} carries credentials: set EVENTLOG_NATS_USER / _PASSWORD "
                "or _TOKEN instead (kept out of logs)"
            )
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        servers.append(f"{parts.scheme}://{host}:{port}")
    if not servers:
        raise ValueError("lists no server")
    return tuple(servers)


def _read_secret_file(path: str, setting: str) -> str:
    try:
        with open(path, encoding="utf-8") as file:
            return file.read().strip()
    except OSError as exc:
        raise ConfigurationError(f"{setting} = {path!r}: cannot read it: {exc.strerror}") from None


def _require_nkeys(setting: str) -> None:
    if importlib.util.find_spec("nkeys") is None:  # nats-py signs the server's nonce with it
        raise ConfigurationError(
            # The package itself (the nkeys extra adds only it): an unpinned eventlog-nats[...]
            # is the kind of line that can pull in another project's distribution.
            f"{setting} needs the nkeys package: pip install 'nkeys>=0.2'"
        )


@dataclass(frozen=True)
class NatsConfig:
    """Validated settings of one ``nats`` transport (see :mod:`eventlog_nats.plugin`)."""

    servers: tuple[str, ...]
    subject: str
    subject_by_action: bool = False
    stream: str | None = None
    user: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    nkey_seed: str | None = field(default=None, repr=False)
    creds: str | None = None
    tls: ssl.SSLContext | None = None
    connect_timeout: float = 5.0
    ack_timeout: float = 10.0
    name: str = "eventlog"

    @classmethod
    def from_context(cls, context: PluginContext) -> NatsConfig:
        """Check the ``nats`` options together and turn them into a config (no I/O but files)."""
        options, host, port = context.options, context.settings.host, context.settings.port
        servers = options["servers"]
        if servers is None:
            if not host:
                raise ConfigurationError(
                    "transport 'nats' needs a server: set EVENTLOG_NATS_SERVERS (e.g. "
                    "nats://127.0.0.1:4222, several for a cluster) or EVENTLOG_HOST and EVENTLOG_PORT"
                )
            servers = parse_servers(f"{host}:{port or NATS_PORT}")
        given = [name for name in ("user", "token", "nkey_seed", "creds") if options[name] is not None]
        if len(given) > 1:
            names = " and ".join(f"EVENTLOG_NATS_{name.upper()}" for name in given)
            raise ConfigurationError(f"{names} are both set: choose one way to authenticate")
        if options["password"] is not None and options["user"] is None:
            raise ConfigurationError("EVENTLOG_NATS_PASSWORD is set without EVENTLOG_NATS_USER")
        seed = None
        if options["nkey_seed"] is not None:
            _require_nkeys("EVENTLOG_NATS_NKEY_SEED")
            seed = _read_secret_file(options["nkey_seed"], "EVENTLOG_NATS_NKEY_SEED")
            if not seed.startswith("SU"):
                raise ConfigurationError(
                    f"EVENTLOG_NATS_NKEY_SEED = {options['nkey_seed']!r} does not hold a user seed "
                    "(a line starting with SU, as 'nk -gen user' writes)"
                )
        if options["creds"] is not None:
            _require_nkeys("EVENTLOG_NATS_CREDS")
            text = _read_secret_file(options["creds"], "EVENTLOG_NATS_CREDS")
            if "BEGIN NATS USER JWT" not in text or "BEGIN USER NKEY SEED" not in text:
                raise ConfigurationError(
                    f"EVENTLOG_NATS_CREDS = {options['creds']!r} is not a credentials file "
                    "(a user JWT and NKey seed, as 'nsc generate creds' writes)"
                )
        tls_wanted = options["tls"] or any(s.startswith("tls://") for s in servers)
        tls = tls_context(options, setting="EVENTLOG_NATS_TLS_*", enabled=tls_wanted)
        return cls(
            servers=servers,
            subject=options["subject"],
            subject_by_action=options["subject_mode"] == "action",
            stream=options["stream"],
            user=options["user"],
            password=options["password"],
            token=options["token"],
            nkey_seed=seed,
            creds=options["creds"],
            tls=tls,
            connect_timeout=options["connect_timeout"],
            ack_timeout=options["ack_timeout"],
        )


def subject_matches(subject: str, pattern: str) -> bool:
    """Whether a stream subject (``*`` one token, ``>`` the rest) captures ``subject``."""
    tokens, wanted = subject.split("."), pattern.split(".")
    for index, part in enumerate(wanted):
        if part == ">":
            return len(tokens) > index
        if index >= len(tokens) or (part != "*" and part != tokens[index]):
            return False
    return len(tokens) == len(wanted)


def action_subject(prefix: str, action: str) -> str:
    """``<prefix>.<action>`` with what a subject cannot hold (spaces, wildcards, empty tokens) as ``_``."""
    clean = _SUBJECT_UNSAFE.sub("_", action)
    tokens = [token or "_" for token in clean.split(".")]
    return ".".join([prefix, *tokens]) if prefix else ".".join(tokens)


#: What an ack said, when it was not an error.
ACKED, DUPLICATE = object(), object()


class _Acks:
    """The acks of one batch: a result per published record, and a future set when all arrived."""

    __slots__ = ("done", "missing", "records", "results", "sealed")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.records: list[Record] = []
        self.results: list[object] = []  # None (waiting), ACKED, DUPLICATE or the exception
        self.missing = 0
        self.sealed = False  # every message of the batch is published: 'done' may be set
        self.done: asyncio.Future[None] = loop.create_future()

    def add(self, record: Record) -> int:
        self.records.append(record)
        self.results.append(None)
        self.missing += 1
        return len(self.records) - 1

    def arrived(self, index: int, result: object) -> None:
        if self.results[index] is None:
            self.results[index] = result
            self.missing -= 1
            self._check()

    def seal(self) -> None:
        self.sealed = True
        self._check()

    def _check(self) -> None:
        if self.sealed and self.missing == 0 and not self.done.done():
            self.done.set_result(None)


async def find_stream(
    js: JetStreamContext, config: NatsConfig, where: str
) -> tuple[str | None, tuple[str, ...]]:
    """The stream that captures the configured subject at ``where``: its name and subject filters."""
    # In action mode any stream capturing some '<subject>.<...>' will do (the server
    # matches overlapping filters); each event's subject is checked against it at send.
    probe = f"{config.subject}.>" if config.subject_by_action else config.subject
    try:
        name = config.stream or await js.find_stream_name_by_subject(probe)
        info = await js.stream_info(name)
    except nats.js.errors.NotFoundError:
        if config.stream:
            raise TransportError(
                f"NATS JetStream at {where} has no stream {config.stream!r} "
                "(EVENTLOG_NATS_STREAM): create it (nats stream add) or fix the name; "
                "events wait in the meantime"
            ) from None
        raise TransportError(
            f"no JetStream stream at {where} captures the subject {probe!r} "
            "(EVENTLOG_NATS_SUBJECT): create one (nats stream add --subjects ...) or set "
            "EVENTLOG_NATS_SUBJECT to a subject a stream captures; events wait in the meantime"
        ) from None
    except (
        nats.errors.NoRespondersError,
        nats.js.errors.NoStreamResponseError,
        nats.js.errors.ServiceUnavailableError,
    ) as exc:
        description = getattr(exc, "description", None)
        if description:  # an answer from JetStream itself, e.g. while a cluster elects
            raise TransportError(f"JetStream at {where} is unavailable ({description}); retrying") from None
        # No one answers the JetStream API (a bare 503 status): it is not enabled.
        raise TransportError(
            f"the NATS server at {where} has no JetStream "
            "(start it with -js, or jetstream {} in its configuration)"
        ) from None
    except nats.errors.TimeoutError:
        raise SendTimeout(
            f"JetStream at {where} did not answer within {config.ack_timeout}s (EVENTLOG_NATS_ACK_TIMEOUT)"
        ) from None
    return info.config.name, tuple(info.config.subjects or ())


class StreamSubjects:
    """A stream's subject filters, and which subjects they capture (remembered, bounded)."""

    def __init__(self, filters: tuple[str, ...] = ()) -> None:
        self.filters = filters
        self._known: dict[str, str | None] = {}

    def capture(self, subject: str) -> str | None:
        """``subject`` if the stream captures it, else None (remembered)."""
        known = self._known.get(subject, "")
        if known != "":
            return known
        if len(self._known) >= SUBJECT_CACHE:
            self._known.clear()
        found = subject if any(subject_matches(subject, f) for f in self.filters) else None
        self._known[subject] = found
        return found


class NatsTransport(Transport):
    """A connection to a NATS server (or cluster) publishing into one JetStream stream."""

    def __init__(self, config: NatsConfig) -> None:
        self.config = config
        self.where = ", ".join(config.servers)
        self._runner: EventLoopThread | None = None
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._lost: asyncio.Event | None = None
        self._inbox = ""
        #: Publishes waiting for their ack, by the last token of their reply subject.
        self._acks: dict[str, tuple[_Acks, int]] = {}
        self._sequence = 0
        self._errors: list[BaseException] = []
        #: The stream's name and subject filters, read at open().
        self.stream: str | None = None
        self._subjects = StreamSubjects()
        self._max_payload = 1 << 20
        self.connected_url = ""

    @classmethod
    def from_context(cls, context: PluginContext) -> NatsTransport:
        """The spec's factory: :meth:`NatsConfig.from_context`, then the transport."""
        return cls(NatsConfig.from_context(context))

    # ------------------------------------------------------------ connection

    def open(self) -> None:
        """Connect (trying each server once, in random order) and find the stream."""
        self.close()
        _live.add(self)
        self._runner = EventLoopThread(f"eventlog-nats-{id(self):x}")
        budget = self.config.connect_timeout * (2 * len(self.config.servers) + 2)
        try:
            self._runner.run(self._connect(), budget)
        except TimeoutError:
            self.close()
            raise ConnectError(
                f"cannot connect to NATS at {self.where} within {budget:g}s (EVENTLOG_NATS_CONNECT_TIMEOUT)"
            ) from None
        except TransportError:
            self.close()
            raise
        except Exception as exc:  # nats-py's and asyncio's own: say which server, retry
            self.close()
            raise self._connect_failure(exc) from None

    async def _connect(self) -> None:
        config = self.config
        self._lost = asyncio.Event()
        self._errors = []
        nc = Client()
        options: dict[str, Any] = {}
        if config.tls is not None:
            options["tls"] = config.tls
        if config.user is not None:
            options["user"], options["password"] = config.user, config.password or ""
        if config.token is not None:
            options["token"] = config.token
        if config.nkey_seed is not None:
            options["nkeys_seed_str"] = config.nkey_seed
        if config.creds is not None:
            options["user_credentials"] = config.creds
        await nc.connect(
            servers=list(config.servers),
            name=f"{config.name} {os.uname().nodename} pid {os.getpid()}",
            # One connection per transport: a lost one fails the batch at once, and the
            # engine reconnects (to any listed server) and resends.  nats-py's own
            # reconnect would wait out the ack timeout for the acks lost with the server.
            allow_reconnect=False,
            max_reconnect_attempts=1,
            reconnect_time_wait=0.05,  # type: ignore[arg-type]
            connect_timeout=config.connect_timeout,  # type: ignore[arg-type]
            error_cb=self._on_error,
            disconnected_cb=self._on_lost,
            closed_cb=self._on_lost,
            **options,
        )
        self._nc = nc
        self.connected_url = _shown(nc.connected_url)
        # nats-py upgrades to TLS only when the server asks for it: refuse a plain server.
        if config.tls is not None and not getattr(nc, "_server_info", {}).get("tls_required"):
            raise ConnectError(
                f"{self.connected_url} does not offer TLS, and EVENTLOG_NATS_TLS is on: "
                "configure tls {} on the server, or turn EVENTLOG_NATS_TLS off"
            )
        self._max_payload = nc.max_payload
        self._js = nc.jetstream(timeout=config.ack_timeout)
        await self._find_stream(self._js)
        # Acks come to one wildcard inbox, matched to their message by the last token.
        self._inbox = nc.new_inbox()
        self._acks = {}
        await nc.subscribe(f"{self._inbox}.*", cb=self._on_ack, pending_msgs_limit=1 << 20)

    async def _find_stream(self, js: JetStreamContext) -> None:
        config = self.config
        self.stream, filters = await find_stream(js, config, self.connected_url)
        self._subjects = StreamSubjects(filters)
        if not config.subject_by_action and self._subjects.capture(config.subject) is None:
            raise TransportError(
                f"the stream {self.stream!r} (EVENTLOG_NATS_STREAM) does not capture the subject "
                f"{config.subject!r} (EVENTLOG_NATS_SUBJECT); its subjects are "
                f"{list(filters)}: change one of the two; events wait in the meantime"
            )

    async def _on_error(self, error: Exception) -> None:
        self._errors.append(error)  # reported by open() or send(); nats-py would log them

    async def _on_lost(self) -> None:
        if self._lost is not None:
            self._lost.set()

    def close(self) -> None:
        runner, self._runner = self._runner, None
        nc, self._nc, self._js = self._nc, None, None
        _live.discard(self)
        if runner is None:
            return
        if nc is not None and not nc.is_closed:
            with contextlib.suppress(Exception):  # close() must not raise
                runner.run(nc.close(), CLOSE_TIMEOUT)
        runner.stop(CLOSE_TIMEOUT)

    # ------------------------------------------------------------ sending

    def send(self, batch: Batch) -> Sequence[tuple[Record, str]] | None:
        if self._runner is None or self._nc is None or self._nc.is_closed:
            self.open()
        assert self._runner is not None
        # The publish itself may wait for room in the client's buffers: give it connect_timeout too.
        budget = self.config.ack_timeout + self.config.connect_timeout
        try:
            return self._runner.run(self._publish(batch), budget)
        except TimeoutError:
            raise SendTimeout(
                f"publishing {len(batch)} events to {self.connected_url} took more than {budget:g}s "
                "(EVENTLOG_NATS_ACK_TIMEOUT); they are sent again"
            ) from None
        except TransportError:
            raise
        except (nats.errors.Error, OSError) as exc:
            # Closed or stale connection, full client buffer: the batch goes again.
            raise ConnectError(
                f"the connection to {self.connected_url} failed while publishing: "
                f"{_describe(exc)}; the batch is sent again"
            ) from None

    async def _publish(self, batch: Batch) -> list[tuple[Record, str]]:
        """Write every message, then wait for all their acks (pipelined: one wait per batch)."""
        nc, lost = self._nc, self._lost
        assert nc is not None and lost is not None
        refused: list[tuple[Record, str]] = []
        config = self.config
        expected = {"Nats-Expected-Stream": config.stream} if config.stream else {}
        header_bytes = HEADER_BYTES + len(config.stream or "")
        acks = _Acks(asyncio.get_running_loop())
        inbox, waiting = self._inbox, self._acks
        try:
            for record in batch:
                subject = config.subject
                if config.subject_by_action:
                    subject = action_subject(config.subject, record.action)
                    if self._subjects.capture(subject) is None:
                        refused.append((record, self._not_captured(subject)))
                        continue
                size = len(record.payload) + len(record.id) + header_bytes
                if size > self._max_payload:
                    refused.append(
                        (
                            record,
                            (
                                f"too_large: the event is {size} bytes with its headers, more than the "
                                f"server's max_payload of {self._max_payload}"
                            ),
                        )
                    )
                    continue
                if lost.is_set():
                    break
                self._sequence += 1
                token = str(self._sequence)
                waiting[token] = (acks, acks.add(record))
                await nc.publish(
                    subject,
                    record.payload,
                    reply=f"{inbox}.{token}",
                    headers={"Nats-Msg-Id": record.id, **expected},
                )
            acks.seal()
            await self._await_acks(acks, len(batch))
        finally:
            waiting.clear()  # an ack of this batch that comes later is ignored
        failure: BaseException | None = None
        for record, result in zip(acks.records, acks.results):
            if result is ACKED or result is DUPLICATE:
                counts.acked += 1
                if result is DUPLICATE:
                    counts.duplicates += 1  # stored before (a resend): the store dropped it
                continue
            assert isinstance(result, BaseException)
            reason = self._refusal(result)
            if reason is not None:
                refused.append((record, reason))
            elif failure is None:
                failure = result
        if failure is not None:
            raise self._send_failure(failure, len(batch))
        return refused

    async def _on_ack(self, msg: Msg) -> None:
        """JetStream's answer to one publish: an ack, an API error, or 'no responders'."""
        found = self._acks.pop(msg.subject.rpartition(".")[2], None)
        if found is None:
            return
        acks, index = found
        data = msg.data
        result: object
        if msg.headers and msg.headers.get("Status") == "503":
            result = nats.js.errors.NoStreamResponseError()
        elif data.startswith(b'{"stream":') and b'"error"' not in data:
            # The common answer, read without a JSON decode: {"stream":"S", "seq":N} with
            # ,"duplicate": true for a message stored before (spacing differs between versions).
            result = DUPLICATE if _DUPLICATE.search(data) else ACKED
        else:
            try:
                answer = json.loads(data)
                error = answer.get("error")
                if error is None:
                    result = DUPLICATE if PubAck.from_response(answer).duplicate else ACKED
                else:
                    # Built here: nats-py's APIError.from_error raises instead of returning
                    # (nats-io/nats.py#985), which is why publish_async is not used.
                    result = nats.js.errors.APIError(
                        code=error.get("code"),
                        description=error.get("description"),
                        err_code=error.get("err_code"),
                    )
            except (ValueError, TypeError, AttributeError) as exc:
                result = exc
        acks.arrived(index, result)

    async def _await_acks(self, acks: _Acks, total: int) -> None:
        """Return once every ack of ``acks`` arrived; raise when the connection went or time ran out."""
        lost = self._lost
        assert lost is not None
        if lost.is_set():
            raise self._lost_error(0, total)
        if acks.missing == 0:
            return
        lost_wait = asyncio.ensure_future(lost.wait())
        waits: set[asyncio.Future[Any]] = {acks.done, lost_wait}
        try:
            await asyncio.wait(waits, timeout=self.config.ack_timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost_wait.cancel()
        if acks.missing == 0:
            return
        arrived = len(acks.results) - acks.missing
        if lost.is_set():
            raise self._lost_error(arrived, total)
        raise SendTimeout(
            f"JetStream at {self.connected_url} acknowledged {arrived} of {total} events within "
            f"{self.config.ack_timeout}s (EVENTLOG_NATS_ACK_TIMEOUT); the batch is sent again "
            "(the stream drops what it already stored)"
        )

    # ------------------------------------------------------------ errors

    def _not_captured(self, subject: str) -> str:
        filters = list(self._subjects.filters)
        return (
            f"not_captured: the stream {self.stream!r} does not capture the subject {subject!r} "
            f"(EVENTLOG_NATS_SUBJECT with subject_mode action); its subjects are {filters}"
        )

    def _refusal(self, error: BaseException) -> str | None:
        """The reason to refuse one event for good, or None when a resend may help."""
        if isinstance(error, nats.js.errors.APIError) and error.err_code == MESSAGE_TOO_LARGE:
            return f"too_large: the stream {self.stream!r} refused it: {error.description}"
        if isinstance(error, nats.errors.MaxPayloadError):
            return f"too_large: {error}"
        return None

    def _lost_error(self, arrived: int, total: int) -> ConnectError:
        last = f": {_describe(self._errors[-1])}" if self._errors else ""
        return ConnectError(
            f"the connection to {self.connected_url} was lost{last}; {arrived} of {total} events "
            "were acknowledged, the batch is sent again (the stream drops what it already stored)"
        )

    def _send_failure(self, error: BaseException, total: int) -> TransportError:
        """A retryable error for a publish JetStream did not accept (nothing is lost: resent)."""
        stream = self.stream
        if isinstance(error, nats.js.errors.APIError) and not isinstance(
            error, nats.js.errors.ServiceUnavailableError
        ):
            text = f"{error.description} (code {error.code}, error {error.err_code})"
            if error.err_code == STORE_FAILED:
                return TransportError(
                    f"the stream {stream!r} is full: {error.description}; raise its limits "
                    "(max_msgs, max_bytes) or let it discard old messages; events wait meanwhile"
                )
            if error.err_code == WRONG_STREAM:
                return TransportError(
                    f"the subject is stored in another stream than EVENTLOG_NATS_STREAM = "
                    f"{self.config.stream!r}: {text}; fix EVENTLOG_NATS_STREAM or the subjects"
                )
            if error.err_code == INSUFFICIENT_RESOURCES:
                return TransportError(f"JetStream at {self.connected_url} is out of storage: {text}")
            return TransportError(f"JetStream refused a publish to {stream!r}: {text}; resending")
        return TransportError(
            f"no JetStream stream answered at {self.connected_url} for {stream!r} "
            f"({_describe(error)}): the stream is unavailable (a leader election in a cluster, "
            "or it was deleted); the batch is sent again"
        )

    def _connect_failure(self, exc: BaseException) -> TransportError:
        errors = [*self._errors, exc]
        if any(isinstance(e, nats.errors.AuthorizationError) for e in errors) or any(
            "authorization" in str(e).lower() for e in errors
        ):
            return AuthError(
                f"NATS at {self.where} refused our credentials: check EVENTLOG_NATS_USER / "
                "_PASSWORD, _TOKEN, _NKEY_SEED or _CREDS"
            )
        tls_errors = [e for e in errors if isinstance(e, ssl.SSLError)]
        if tls_errors:
            return ConnectError(
                f"TLS with NATS at {self.where} failed: {_describe(tls_errors[-1])} (set "
                "EVENTLOG_NATS_TLS_CA to the CA bundle that signed the server's certificate)"
            )
        reasons = [_describe(e) for e in errors if not isinstance(e, nats.errors.NoServersError)]
        detail = reasons[-1] if reasons else _describe(exc)
        return ConnectError(f"cannot connect to NATS at {self.where}: {detail}")


def _describe(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    text = str(error).strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _shown(url: Any) -> str:
    """A server URL without user info (it may hold a password or token)."""
    if url is None:
        return "?"
    host = url.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{url.scheme}://{host}:{url.port}" if url.port else f"{url.scheme}://{host}"


# ---------------------------------------------------------------- fork

#: Transports with an open connection in this process.
_live: set[NatsTransport] = set()
#: The parent's loops and clients in a fork child: kept, never run, never finalised here.
_parked: list[Any] = []


def _after_fork_in_child() -> None:
    # The loop's thread did not survive the fork and the socket is the parent's: the child
    # forgets both without closing them (a close from here could write to the parent's
    # connection), keeps them referenced so no finaliser touches them, and starts afresh.
    for transport in list(_live):
        _parked.append((transport._runner, transport._nc))
        transport._runner, transport._nc, transport._js = None, None, None
    _live.clear()
    counts.acked = counts.duplicates = 0


os.register_at_fork(after_in_child=_after_fork_in_child)
