"""What a plugin implements and declares: formatters, transports, enrichers, their options.

The engine owns the queue, the spool, batching, retries and threads; a
transport only moves bytes (as OpenTelemetry's exporters do), and a formatter
only turns one event into bytes.  Plugin authors import all of this from
:mod:`eventlog.plugin`; see ``docs/plugins.md`` for a walk-through.
"""

from __future__ import annotations

import abc
import math
import time
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self, get_args

from eventlog._core.errors import PluginError, SendTimeout
from eventlog._core.options import Option
from eventlog._records.batch import Batch, Record

if TYPE_CHECKING:
    from eventlog._config.config import Settings
    from eventlog._records.event import Event


# ---------------------------------------------------------------- formatters


class Formatter(abc.ABC):
    """Turns one event (its wire dict, see :mod:`eventlog._records.schema`) into bytes.

    Formatting runs in the worker thread.  Raise any exception to say that an
    event cannot be encoded: that event is set aside and counted, and the rest
    of its batch goes on.
    """

    #: MIME type of a batch body, for transports that post whole batches.
    content_type: ClassVar[str] = "application/octet-stream"

    @classmethod
    def from_context(cls, context: PluginContext) -> Self:
        """The spec's factory: one formatter from the settings and options (default: ``cls()``).

        A formatter without options passes it as it is,
        ``FormatterSpec("json", JsonFormatter.from_context)``; one with options
        overrides it to read ``context.options``.
        """
        return cls()

    @abc.abstractmethod
    def format(self, wire: dict[str, Any]) -> bytes:
        """Encode one event, framed as the spec declares (``FormatterSpec.framing``)."""

    def format_batch(self, payloads: Sequence[bytes]) -> bytes:
        """One body for many events (default: the payloads concatenated)."""
        return b"".join(payloads)

    #: Optional, for formats that can encode many events in one call (a per-event call
    #: costs more than the encoding of a small event): ``format_many(wires)`` returns
    #: exactly ``b"".join(map(self.format, wires))`` or raises (the engine then formats
    #: one by one to set the bad event aside), and ``split_many(body)`` gives the
    #: payloads back.  Leave both None otherwise.
    format_many: Callable[[list[dict[str, Any]]], bytes] | None = None
    split_many: Callable[[bytes], list[bytes]] | None = None

    #: Optional, for a compiled encoder that writes a batch straight from the queued items,
    #: with no wire dict and no ``format()`` call per event (eventlog-speedups' otlp
    #: envelopes): see :data:`ItemsEncoder`.  Set it only where it writes exactly what
    #: ``format()`` writes for each event's wire dict; None otherwise.
    encode_items: ItemsEncoder | None = None


#: ``encode_items(items, static, with_context, node, next_seq)`` -> ``(body, ids, actions,
#: times, holes, sizes)``, or None to decline the batch (the engine then takes the wire-dict
#: way, and nothing may have been drawn).  ``items`` are the queued log records and Events,
#: ``static`` the host/site wire fields, ``with_context`` whether the request context is
#: merged, ``node`` and ``next_seq`` the id maker's node and sequence (eventlog-speedups'
#: walk over the items takes these as they are).  ``body``: the payloads of the items it
#: wrote, back to back; ``ids``, ``actions``, ``times``: each event's Record fields (None at
#: a hole); ``holes``: the (index, offset in body) of each item it left to the wire-dict way,
#: in order, whose payload the engine formats and splices in at that offset; ``sizes``: each
#: payload's length (None at a hole), so that a format whose payloads are not self-delimiting
#: still gives each event's payload back (spool mode, a transport that sends events apart),
#: or None when ``split_many`` finds them in the body.
ItemsEncoder = Callable[
    [list[Any], dict[str, Any], bool, str, Callable[[], int]],
    tuple[bytes, list[Any], list[Any], list[Any], list[tuple[int, int]], list[Any] | None] | None,
]


def batch_encoder(
    formatter: Formatter,
) -> tuple[Callable[[list[dict[str, Any]]], bytes], Callable[[bytes], list[bytes]]] | None:
    """The formatter's ``format_many`` and ``split_many``, if they agree with its ``format``.

    A subclass that overrides ``format`` (a plugin's JsonFormatter that refuses
    some events, adds a field ...) but not ``format_many`` would otherwise
    have its ``format`` bypassed: then the engine formats one by one.
    """
    format_many, split_many = formatter.format_many, formatter.split_many
    if format_many is None or split_many is None:
        return None

    def owner(name: str) -> type:
        return next(k for k in type(formatter).__mro__ if name in k.__dict__)

    if not issubclass(owner("format_many"), owner("format")):
        return None  # format is overridden below the class that wrote format_many
    return format_many, split_many


# ---------------------------------------------------------------- transports


class Transport(abc.ABC):
    """Moves batches of formatted events to a peer.

    The engine calls every method from its one worker thread: ``open`` before
    the first send and again after a failure, ``send`` with each batch,
    ``close`` at shutdown or after a failure.  ``send`` returns when the peer
    has the batch (as far as the protocol can tell) and raises
    :class:`TransportError` otherwise.  A transport that can refuse single
    events may return them, with a reason, instead of raising for all.

    Build it from settings in one place: a frozen dataclass of the transport's
    settings made from the :class:`PluginContext` (checked together, no I/O),
    and :meth:`from_context` constructing the transport from it, passed as the
    spec's factory: ``TransportSpec("memo", MemoTransport.from_context, ...)``.
    """

    #: When the current :meth:`open` or :meth:`send` must return by, in :func:`time.monotonic`
    #: seconds: the engine sets it before each call (a shutdown's or replay's deadline, or
    #: infinity while none runs).  Bound every blocking wait with :meth:`time_left`.
    deadline: float = math.inf
    #: Seconds between :meth:`idle` calls while the connection is open and no batch is
    #: sent; None (the default): never called.
    idle_interval: ClassVar[float | None] = None

    @classmethod
    def from_context(cls, context: PluginContext) -> Self:
        """The spec's factory: one transport from the settings and options (default: ``cls()``).

        Called by ``configure()``: check the options here and raise
        :class:`ConfigurationError`, but connect only in :meth:`open`.
        """
        return cls()

    def time_left(self, limit: float) -> float:
        """``limit`` seconds, or less if :attr:`deadline` comes first; SendTimeout if it passed.

        ``connect_stream(host, port, connect_timeout=self.time_left(self.connect_timeout))``
        keeps a connect from outliving a shutdown's deadline.
        """
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise SendTimeout("the deadline (shutdown or replay) passed before the peer answered")
        return min(limit, left)

    def idle(self) -> None:
        """Between batches, from the worker thread: the I/O a protocol needs while quiet.

        Called every :attr:`idle_interval` seconds while the transport is open
        and nothing is sent (a heartbeat, reading what the peer pushed).  Raise
        :class:`TransportError` when the connection is found broken: the engine
        closes the transport and opens a new one for the next batch.
        """
        return None  # most protocols need nothing between batches

    @abc.abstractmethod
    def open(self) -> None:
        """Connect.  Raise :class:`TransportError` if the peer cannot be reached."""

    @abc.abstractmethod
    def send(self, batch: Batch) -> Sequence[tuple[Record, str]] | None:
        """Deliver the batch; return the events refused for good, with reasons, if any."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connection.  Must not raise."""


# ---------------------------------------------------------------- registration


@dataclass(frozen=True)
class PluginContext:
    """What a factory receives: the core settings, its own options, the formatter.

    A formatter or transport that changes a value to carry it (cuts a message to the
    receiver's size, clamps a time the format cannot hold) says so with
    :meth:`count_conversion`: it shows in ``stats.converted`` and the
    ``eventlog_values_converted_total`` metric, by reason.
    """

    settings: Settings
    options: Mapping[str, Any]
    formatter: Formatter | None = None
    formatter_name: str | None = None
    #: The pipeline's conversion counts by reason (a private dict outside a pipeline).
    conversions: MutableMapping[str, int] = field(default_factory=dict)

    def count_conversion(self, reason: str, count: int = 1) -> None:
        """Count ``count`` values changed for ``reason`` (e.g. ``truncated``); runs in the worker."""
        self.conversions[reason] = self.conversions.get(reason, 0) + count


#: How a format's payloads are told apart when several are written one after another.
#:
#: ``"lines"``: UTF-8 text, one line per event: each payload ends with ``\n`` and has no
#: other newline (JSON lines).  ``"self-delimiting"``: the payload's own encoding says
#: where it ends (msgpack, Cap'n Proto's stream framing), so payloads can be concatenated
#: into one stream.  ``"unframed"``: nothing in the bytes marks the end; the transport
#: must frame each payload itself (one datagram, a length prefix, syslog's octet counting).
Framing = Literal["lines", "self-delimiting", "unframed"]

#: Every framing: what a transport carries when it frames each payload itself.
ALL_FRAMINGS: frozenset[Framing] = frozenset(get_args(Framing))

#: What each framing is, for error messages.
FRAMING_TEXT: dict[Framing, str] = {
    "lines": "newline-delimited text lines",
    "self-delimiting": "self-delimiting messages",
    "unframed": "unframed payloads (each needs a frame of its own)",
}


@dataclass(frozen=True)
class FormatterSpec:
    """A formatter a plugin provides: ``factory(context) -> Formatter``.

    ``framing`` says how its payloads are told apart (see :data:`Framing`).  The
    default, ``"unframed"``, claims nothing, so an undeclared format goes only to
    transports that frame each payload themselves; declare what yours writes.
    """

    name: str
    factory: Callable[[PluginContext], Formatter]
    description: str = ""
    options: Sequence[Option] = ()
    framing: Framing = "unframed"

    def __post_init__(self) -> None:
        if self.framing not in ALL_FRAMINGS:
            raise PluginError(
                f"FormatterSpec {self.name!r}: framing {self.framing!r} is not one of "
                f"{', '.join(sorted(ALL_FRAMINGS))}"
            )


@dataclass(frozen=True)
class TransportSpec:
    """A transport a plugin provides: ``factory(context) -> Transport``.

    ``carries`` lists the framings it delivers intact (see :data:`Framing`).  The
    default, ``{"lines"}``, fits a transport that writes payloads back to back
    for a line reader.  A raw stream whose receiver speaks the format carries
    ``"self-delimiting"`` too; a transport that frames each payload itself (one
    datagram or stream entry per event, a length prefix, octet counting)
    carries :data:`ALL_FRAMINGS`.  ``formats``, when given, is instead the
    exact list of formatter names it carries (``fluent`` carries ``msgpack``
    only).  The check happens at configure time.  ``default_format`` is used
    when the user names none.
    """

    name: str
    factory: Callable[[PluginContext], Transport]
    description: str = ""
    options: Sequence[Option] = ()
    formats: frozenset[str] | None = None
    default_format: str = "json"
    carries: frozenset[Framing] = frozenset({"lines"})

    def __post_init__(self) -> None:
        carries = frozenset(self.carries)
        if not carries or not carries <= ALL_FRAMINGS:
            raise PluginError(
                f"TransportSpec {self.name!r}: carries {sorted(carries)} must name one or more "
                f"of {', '.join(sorted(ALL_FRAMINGS))}"
            )
        object.__setattr__(self, "carries", carries)  # a set or tuple given is kept frozen


@dataclass(frozen=True)
class EnricherSpec:
    """An enricher: ``factory(context)`` returns ``func(event)``, which changes the Event in place.

    ``stage="worker"`` (the default) runs in the worker thread, for static or
    costly data.  ``stage="caller"`` runs in the application's thread while it
    logs, for data that only that thread knows; keep it cheap.
    """

    name: str
    factory: Callable[[PluginContext], Callable[[Event], None]]
    stage: Literal["caller", "worker"] = "worker"
    description: str = ""
    options: Sequence[Option] = field(default_factory=tuple)
