"""Test helpers for plugin authors, and a pytest plugin: the conformance suites and real peers.

Enable it in your plugin's top-level ``conftest.py``::

    pytest_plugins = ["eventlog.plugin.testing"]

It gives the fixtures :func:`line_receiver` (a TCP listener collecting
lines), :func:`datagram_receiver` (a UDP listener) and :func:`local_ca` (a
throw-away CA and a server certificate in ``tmp_path``).  The rest is imported
from here:

- the suites :class:`TransportConformance` and :class:`FormatterConformance`:
  subclass one in a test module, name your plugin, say how to reach and read
  your peer (``docs/plugins.md`` walks through both);
- building blocks: :func:`make_transport` (a transport and its formatter from
  ``configure()``-style settings, as a pipeline builds them),
  :func:`make_records`, :func:`sample_events`, :func:`closed_port`;
- peers on loopback: :class:`LineReceiver` (TCP, or TLS with ``tls=``),
  :class:`DatagramReceiver` (UDP), and :func:`make_local_ca` /
  :class:`LocalCA` (needs the ``cryptography`` package)::

    ca = make_local_ca(tmp_path)
    with LineReceiver(tls=ca.server_context()) as receiver:
        configure(transport="tcp", host="127.0.0.1", port=receiver.port,
                  tcp_tls=True, tcp_tls_ca=str(ca.ca_cert))

The building blocks import without pytest (and without cryptography until
:func:`make_local_ca` is called); the fixtures and the suites need pytest.
"""

from __future__ import annotations

import copy
import datetime
import ipaddress
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from eventlog._builtin.receiver import DatagramReceiver, LineReceiver
from eventlog._config.config import Settings
from eventlog._config.contracts import ALL_FRAMINGS, Formatter, PluginContext, Transport, TransportSpec
from eventlog._config.registry import Registered, Registry
from eventlog._core.errors import TransportError
from eventlog._engine.pipeline import Pipeline
from eventlog._records.batch import Record
from eventlog._records.event import Event
from eventlog._records.wire import to_wire
from eventlog.testing import CapturingTransport

try:
    import pytest
except ImportError:  # the building blocks serve without pytest; the fixtures need it
    _PYTEST = False
else:
    _PYTEST = True

__all__ = [
    "DatagramReceiver",
    "FormatterConformance",
    "LineReceiver",
    "LocalCA",
    "TransportConformance",
    "closed_port",
    "make_local_ca",
    "make_pipeline",
    "make_records",
    "make_transport",
    "sample_events",
]

# ---------------------------------------------------------------- building blocks


def sample_events() -> list[Event]:
    """Events that cover the schema: minimal, every field set, unicode, extremes."""
    full = Event(
        "account.admin.create",
        "alice",
        "user",
        message="created by bob",
        level=20,
        tags=["admin", "audit"],
        fields={"count": 3, "ratio": 0.25, "role": "owner"},
        metrics={"durationMs": 34.2, "rows": 7},
        log_code=True,
        user="bob",
        session="s-1",
        request_id="r-1",
    )
    full.exc_info = json.dumps({"type": "ValueError", "value": "bad", "stack": "Traceback ..."})
    full.thread = "MainThread"
    full.site, full.cluster, full.host, full.pid = "acme", "eu-1", "web-1", 4242
    return [
        Event("minimal"),
        full,
        Event(
            "unicode.text",
            "ünïcødé ✓ 日本語",
            "emoji 🎉",
            message='quotes " \\ and\nnew\tlines\x00, bidi \u202e',
            tags=["", "ß"],
            fields={"ключ": "значение"},
        ),
        Event(
            "numbers.extreme",
            level=5,
            fields={"big": 2**63 - 1, "small": -(2**63), "zero": 0, "tiny": 5e-324, "e": 1e300},
            metrics={"neg": -1.5, "int": 2**53},
        ),
        Event("text.long", message="x" * 100_000, tags=[f"t{i}" for i in range(100)]),
        Event("empty.strings", "", "", message="", fields={"": ""}),
    ]


def make_records(
    count: int, formatter: Formatter | None = None, *, prefix: str = "conformance"
) -> list[Record]:
    """``count`` formatted records with unique ids (actions ``<prefix>.<n>``)."""
    if formatter is None:
        from eventlog._builtin.formats import JsonFormatter

        formatter = JsonFormatter()
    records = []
    for n in range(count):
        event = Event(f"{prefix}.{n}", "target", "test", message=f"event {n}", fields={"n": n})
        wire = to_wire(event, None)
        records.append(Record(wire["id"], wire["action"], event.time_ns, formatter.format(wire)))
    return records


def make_transport(
    settings: Mapping[str, Any], registry: Registry | None = None, *, plugins: Sequence[object] = ()
) -> tuple[Transport, Formatter]:
    """Build a transport and its formatter from ``configure()``-style settings, as a pipeline does.

    ``plugins`` (modules or objects with hook implementations) are registered as if installed.
    The environment is not read.  Raises what configure() would raise.
    """
    registry = registry or Registry(extra_plugins=tuple(plugins))
    resolved = Settings.load(settings, environ={})
    name = resolved.transport or "console"
    spec = registry.transport(name).spec
    format_name = resolved.format or spec.default_format
    registry.check_carries(name, format_name)  # as configure() does
    formatter_spec = registry.formatter(format_name).spec
    formatter = formatter_spec.factory(
        PluginContext(resolved, resolved.plugin_options(format_name, formatter_spec.options))
    )
    transport = spec.factory(
        PluginContext(resolved, resolved.plugin_options(name, spec.options), formatter, format_name)
    )
    return transport, formatter


def make_pipeline(settings: Mapping[str, Any], *, plugins: Sequence[object] = ()) -> Pipeline:
    """A running pipeline from ``configure()``-style settings, ``plugins`` registered as if installed.

    The environment is not read.  It is not the default pipeline (``eventlog.log_event`` does not
    reach it): feed it with ``pipeline.submit_event(event)`` or ``EventHandler(pipeline=...)``,
    then ``flush()`` and ``shutdown()`` it.  Raises what configure() would raise.
    """
    return Pipeline(Settings.load(settings, environ={}), Registry(extra_plugins=tuple(plugins)))


#: The sockets that hold closed_port()'s ports for the life of the process.
_held_ports: list[socket.socket] = []


def closed_port() -> int:
    """A TCP port on 127.0.0.1 where nothing listens: an unreachable peer (connections are refused).

    The port stays held by a bound socket that never listens, so no other process (another
    test worker, say) gets it from the system meanwhile and answers in its place.  A peer
    started on it later (``LineReceiver(port=port)``, or any server that sets SO_REUSEADDR,
    as most do) takes it over: "the peer comes back where it was".
    """
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    _held_ports.append(sock)
    return int(sock.getsockname()[1])


# ---------------------------------------------------------------- loopback peers


@dataclass(frozen=True)
class LocalCA:
    """Files of a throw-away CA and of a server certificate and key it signed (PEM)."""

    ca_cert: Path
    server_cert: Path
    server_key: Path

    def server_context(self) -> ssl.SSLContext:
        """A server-side TLS context presenting the signed certificate."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.server_cert, self.server_key)
        return context


def make_local_ca(
    folder: Path,
    names: Sequence[str] = ("127.0.0.1", "localhost"),
    *,
    expired: bool = False,
) -> LocalCA:
    """Make a CA and a server certificate it signed for ``names`` (IP addresses or DNS names).

    Written to ``folder`` as ``ca.pem``, ``server.pem`` and ``server.key``.
    ``expired=True`` makes a server certificate that ended yesterday.  Each
    call makes new keys: never reuse them outside a test.  Needs the
    ``cryptography`` package (``pip install cryptography``).
    """
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        raise ImportError(
            "eventlog.plugin.testing.make_local_ca() needs the cryptography package: pip install cryptography"
        ) from None
    if not names:
        raise ValueError("make_local_ca() needs at least one name for the server certificate")

    def name(common_name: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])

    now = datetime.datetime.now(datetime.UTC)
    day = datetime.timedelta(days=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(name("eventlog test CA"))
        .issuer_name(name("eventlog test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - 2 * day)
        .not_valid_after(now + day)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    alt_names: list[x509.GeneralName] = []
    for host in names:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            alt_names.append(x509.DNSName(host))
    not_after = now - day if expired else now + day
    cert = (
        x509.CertificateBuilder()
        .subject_name(name(names[0]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - 2 * day)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    paths = LocalCA(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    paths.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths.server_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths.server_key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


def _threads() -> set[threading.Thread]:
    return set(threading.enumerate())


def _leaked(before: set[threading.Thread], wait: float = 5.0) -> list[str]:
    """Threads started since ``before`` that are still alive after ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while True:
        alive = [t for t in _threads() - before if t.is_alive()]
        if not alive or time.monotonic() > deadline:
            return sorted(t.name for t in alive)
        time.sleep(0.02)


def _skip(reason: str) -> None:
    import pytest  # here, not at import: the building blocks serve without it

    pytest.skip(reason)


# ---------------------------------------------------------------- transport conformance


class TransportConformance:
    """The transport contract, as tests your plugin runs against itself.

    Subclass it in a test module (the name must start with ``Test``), set
    :attr:`transport`, give a ``peer`` fixture that starts your real peer,
    and implement :meth:`settings` and :meth:`delivered`::

        class TestRedisStreams(TransportConformance):
            transport = "redis_streams"

            @pytest.fixture
            def peer(self, redis_server): ...

            def settings(self, peer): return {"transport": "redis_streams", ...}
            def delivered(self, peer): return [...ids the peer holds, in order...]
            def unreachable_settings(self): return {... a closed port ...}
            def stop_peer(self, peer): ...

    A transport that cannot notice a missing peer (UDP, console) sets
    :attr:`detects_unreachable_peer` / :attr:`detects_peer_loss` to False.
    """

    #: The registered transport name (the plugin must be installed: it is found by entry point).
    transport: ClassVar[str]
    #: Batch sizes sent one after another in the "delivered whole" test.
    batch_sizes: ClassVar[tuple[int, ...]] = (1, 7, 500)
    #: False if open()/send() cannot tell that nothing listens (UDP, console).
    detects_unreachable_peer: ClassVar[bool] = True
    #: False if the transport cannot tell that a peer went away (needs :meth:`stop_peer`).
    detects_peer_loss: ClassVar[bool] = True
    #: How long the peer may take to show what was sent, in seconds.
    delivery_timeout: ClassVar[float] = 10.0
    #: How long threads started by the transport (or peer connections) may take to end.
    thread_timeout: ClassVar[float] = 5.0

    # ------------------------------------------------------------ what a plugin implements

    def settings(self, peer: Any) -> dict[str, Any]:
        """``configure()`` keywords that send to ``peer`` (include ``transport``)."""
        raise NotImplementedError

    def delivered(self, peer: Any) -> list[str]:
        """The ids of the events ``peer`` has received so far, in arrival order."""
        raise NotImplementedError

    def unreachable_settings(self) -> dict[str, Any]:
        """Settings pointing at a peer that does not exist (e.g. :func:`closed_port`)."""
        raise NotImplementedError

    def stop_peer(self, peer: Any) -> None:
        """Stop ``peer`` (closing its connections) so that the next send must fail."""
        raise NotImplementedError

    def refuse_batches(self, peer: Any) -> None:
        """Optional: make ``peer`` refuse every batch from now on, for good.

        Drive the peer into the state in which it answers every send with a
        permanent refusal, the one your transport turns into
        :class:`~eventlog._core.errors.RejectedError` or returns as refused records:
        an HTTP peer answering 400, a Redis stream whose last id is the largest
        possible, a JetStream stream whose size limit no event fits.  Without
        it the refused-batch test is skipped.
        """
        raise NotImplementedError

    def restart_peer(self, peer: Any) -> None:
        """Optional: bring back a peer stopped by :meth:`stop_peer`, at the same address.

        What it received before stays readable through :meth:`delivered`.
        Without it the re-delivery test is skipped.
        """
        raise NotImplementedError

    #: Plugins registered as if installed (modules or objects with hook implementations), for a
    #: plugin under test that is not installed; installed entry points are found as well.
    plugins: tuple[object, ...] = ()

    def registry(self) -> Registry:
        """The registry plugins are found in: every installed entry point, plus :attr:`plugins`."""
        return Registry(extra_plugins=tuple(self.plugins))

    # ------------------------------------------------------------ helpers

    def build(self, settings: Mapping[str, Any]) -> tuple[Transport, Formatter]:
        """The transport and formatter for ``settings``, as the engine builds them."""
        return make_transport(settings, self.registry())

    def wait_delivered(self, peer: Any, count: int) -> list[str]:
        """Poll :meth:`delivered` until it holds ``count`` ids or the delivery timeout passes."""
        deadline = time.monotonic() + self.delivery_timeout
        while True:
            ids = list(self.delivered(peer))
            if len(ids) >= count or time.monotonic() > deadline:
                return ids
            time.sleep(0.02)

    def _send(self, transport: Transport, batch: list[Record]) -> None:
        refused = transport.send(batch)
        assert refused is None or isinstance(refused, Sequence), (
            f"send() must return None or a sequence of (record, reason), got {refused!r}"
        )
        assert not refused, f"send() refused ordinary events: {list(refused)[:3]}"

    def _pipeline(self, settings: Mapping[str, Any]) -> Pipeline:
        given = {"batch_size": 50, "linger_ms": 0, "enrichers": (), **settings}
        return Pipeline(Settings.load(given, environ={}), self.registry())

    # ------------------------------------------------------------ the tests

    def test_is_registered_and_its_factory_does_no_io(self) -> None:
        registry = self.registry()
        assert self.transport in registry.transports, (
            f"transport {self.transport!r} is not registered; is the plugin installed "
            f"(pip install -e .) with an entry point in the group 'eventlog'? "
            f"installed: {sorted(registry.transports)}"
        )
        spec = registry.transport(self.transport).spec
        assert spec.formats is None or spec.default_format in spec.formats, (
            f"default_format {spec.default_format!r} is not among formats {spec.formats}"
        )
        if spec.default_format in registry.formatters:
            registry.check_carries(self.transport, spec.default_format)  # framing too
        if self.detects_unreachable_peer:
            settings = self.unreachable_settings()
            assert settings.get("transport") == self.transport
            # Connecting is open()'s job: configure() must not wait on the network,
            # so building against a dead peer succeeds.
            transport, _ = self.build(settings)
            transport.close()

    def test_open_send_close_delivers_the_batch(self, peer: Any) -> None:
        transport, formatter = self.build(self.settings(peer))
        batch = make_records(3, formatter)
        transport.open()
        try:
            self._send(transport, batch)
        finally:
            transport.close()
        assert self.wait_delivered(peer, 3) == [r.id for r in batch]

    def test_batches_are_delivered_whole_in_order_and_once(self, peer: Any) -> None:
        transport, formatter = self.build(self.settings(peer))
        sent: list[str] = []
        transport.open()
        try:
            for size in self.batch_sizes:
                batch = make_records(size, formatter, prefix=f"size{size}")
                self._send(transport, batch)
                sent += [r.id for r in batch]
        finally:
            transport.close()
        got = self.wait_delivered(peer, len(sent))
        assert len(got) == len(sent), f"sent {len(sent)} events, the peer has {len(got)}"
        assert got == sent, "the peer's events differ from what was sent (order or ids)"

    def test_close_is_safe_twice_and_without_open(self, peer: Any) -> None:
        transport, formatter = self.build(self.settings(peer))
        transport.close()  # never opened
        transport.close()
        transport, _ = self.build(self.settings(peer))
        transport.open()
        self._send(transport, make_records(1, formatter))
        transport.close()
        transport.close()

    def test_unreachable_peer_is_a_retryable_transport_error(self) -> None:
        if not self.detects_unreachable_peer:
            _skip(f"transport {self.transport!r} cannot detect an unreachable peer")
        transport, formatter = self.build(self.unreachable_settings())
        error: TransportError | None = None
        try:
            transport.open()
            transport.send(make_records(2, formatter))
        except TransportError as exc:
            error = exc
        except Exception as exc:
            raise AssertionError(
                f"open()/send() raised {type(exc).__name__}: {exc}; wrap it in a "
                "TransportError subclass (ConnectError) so the engine knows to retry"
            ) from exc
        finally:
            transport.close()
        assert error is not None, "open()/send() to an unreachable peer did not raise"
        assert error.retryable, f"{type(error).__name__} for an unreachable peer must be retryable"
        assert str(error), "a TransportError needs a message that names the peer"

    def test_peer_loss_is_a_retryable_transport_error(self, peer: Any) -> None:
        if not self.detects_peer_loss:
            _skip(f"transport {self.transport!r} cannot detect that its peer went away")
        transport, formatter = self.build(self.settings(peer))
        transport.open()
        try:
            self._send(transport, make_records(1, formatter))
            self.wait_delivered(peer, 1)
            self.stop_peer(peer)
            try:
                transport.send(make_records(1, formatter))
            except TransportError as exc:
                name = type(exc).__name__
                assert exc.retryable, f"{name} after losing the peer must be retryable"
            except Exception as exc:
                raise AssertionError(
                    f"send() raised {type(exc).__name__}: {exc} after the peer went away; "
                    "raise a TransportError subclass (ConnectError)"
                ) from exc
            else:
                raise AssertionError("send() returned success although the peer was gone")
        finally:
            transport.close()

    def test_a_refused_batch_is_not_retryable_and_is_set_aside(self, peer: Any) -> None:
        if type(self).refuse_batches is TransportConformance.refuse_batches:
            _skip(f"{type(self).__name__} does not implement refuse_batches()")
        self.refuse_batches(peer)
        transport, formatter = self.build(self.settings(peer))
        batch = make_records(3, formatter)
        refused: Sequence[tuple[Record, str]] | None = None
        try:
            transport.open()
            refused = transport.send(batch)
        except TransportError as exc:
            name = type(exc).__name__
            assert not exc.retryable, f"{name} for a batch the peer refused must not be retryable"
        except Exception as exc:
            raise AssertionError(f"send() raised {type(exc).__name__}: {exc}; raise RejectedError") from exc
        else:
            # Refusing every event by returning them is the other correct answer.
            assert refused is not None and [r.id for r, _ in refused] == [r.id for r in batch], (
                "send() returned success for a batch the peer refused"
            )
        finally:
            transport.close()
        pipeline = self._pipeline(self.settings(peer))
        for n in range(5):
            pipeline.submit_event(Event(f"refused.{n}"))
        assert pipeline.shutdown(timeout=self.delivery_timeout)
        assert pipeline.stats.dropped_by_reason() == {"rejected": 5}
        assert pipeline.stats.retries == 0, "a refused batch was retried"
        assert pipeline.stats.sent == 0

    def test_what_waited_for_a_stopped_peer_arrives_once_it_is_back(self, peer: Any) -> None:
        for method in ("stop_peer", "restart_peer"):
            if getattr(type(self), method) is getattr(TransportConformance, method):
                _skip(f"{type(self).__name__} does not implement {method}()")
        if not self.detects_unreachable_peer:
            _skip(f"transport {self.transport!r} cannot detect an unreachable peer")
        self.stop_peer(peer)
        # Short retry waits: the test waits for the peer, not for the back-off.
        pipeline = self._pipeline({**self.settings(peer), "retry_backoff_max": 0.2})
        try:
            events = [Event(f"waited.{n}", "target", "test") for n in range(20)]
            for event in events:
                pipeline.submit_event(event)
            deadline = time.monotonic() + self.delivery_timeout
            while pipeline.stats.retries == 0:
                assert time.monotonic() < deadline, "no retry while the peer was down"
                time.sleep(0.02)
            self.restart_peer(peer)
            assert pipeline.flush(self.delivery_timeout * 2), "flush() timed out after the peer came back"
        finally:
            pipeline.shutdown(timeout=self.delivery_timeout)
        ids = [e.id for e in events if e.id is not None]  # the worker gave each its id
        assert len(ids) == len(events), "events were not taken by the worker"
        got = self.wait_delivered(peer, len(ids))
        # At least once: a batch whose answer was lost may come twice, with the same ids.
        assert set(got) == set(ids), f"missing after the peer came back: {sorted(set(ids) - set(got))}"
        assert [i for i in dict.fromkeys(got)] == ids, "events arrived out of order"
        assert pipeline.stats.sent == len(ids)
        assert pipeline.stats.dropped_by_reason() == {}

    def test_leaves_no_threads_behind(self, peer: Any) -> None:
        before = _threads()
        transport, formatter = self.build(self.settings(peer))
        transport.open()
        self._send(transport, make_records(5, formatter))
        transport.close()
        self.wait_delivered(peer, 5)
        assert _leaked(before, self.thread_timeout) == [], "threads still alive after close()"

    def test_pipeline_delivers_every_event_then_shutdown_closes(self, peer: Any) -> None:
        before = _threads()
        pipeline = self._pipeline(self.settings(peer))
        events = [Event(f"pipeline.{n}", "target", "test") for n in range(120)]
        for event in events:
            pipeline.submit_event(event)
        assert pipeline.shutdown(timeout=self.delivery_timeout), "shutdown did not deliver all"
        got = self.wait_delivered(peer, len(events))
        assert got == [e.id for e in events]
        assert pipeline.stats.sent == len(events)
        assert pipeline.stats.dropped_by_reason() == {}
        assert _leaked(before, self.thread_timeout) == [], "threads still alive after shutdown()"

    def test_shutdown_keeps_its_deadline_when_the_peer_is_unreachable(self) -> None:
        if not self.detects_unreachable_peer:
            _skip(f"transport {self.transport!r} cannot detect an unreachable peer")
        pipeline = self._pipeline(self.unreachable_settings())
        for n in range(10):
            pipeline.submit_event(Event(f"lost.{n}"))
        result: list[bool] = []
        stopper = threading.Thread(target=lambda: result.append(pipeline.shutdown(timeout=1.0)))
        stopper.start()
        # Generous: this catches a hang, not slowness.
        stopper.join(30)
        assert result, "shutdown(timeout=1.0) did not return within 30 s"
        assert result == [False], "shutdown said everything was delivered to a dead peer"
        assert pipeline.stats.sent == 0


# ---------------------------------------------------------------- formatter conformance


class FormatterConformance:
    """The formatter contract, as tests your plugin runs against itself.

    Subclass it in a test module, set :attr:`formatter`, and implement what
    you can of :meth:`decode`, :meth:`decode_stream`, :meth:`decode_batch`
    (each one left out skips the test that needs it)::

        class TestMsgpack(FormatterConformance):
            formatter = "msgpack"

            def decode(self, payload): return msgpack.unpackb(payload)
    """

    #: The registered formatter name.
    formatter: ClassVar[str]

    def decode(self, payload: bytes) -> dict[str, Any]:
        """One payload back to a dict holding (at least) the wire dict's keys and values."""
        raise NotImplementedError

    def decode_stream(self, data: bytes) -> list[dict[str, Any]]:
        """Payloads written one after another (a stream) back to dicts."""
        raise NotImplementedError

    def decode_batch(self, body: bytes) -> list[dict[str, Any]]:
        """A ``format_batch`` body back to dicts."""
        raise NotImplementedError

    #: Plugins registered as if installed (modules or objects with hook implementations), for a
    #: plugin under test that is not installed; installed entry points are found as well.
    plugins: tuple[object, ...] = ()

    def registry(self) -> Registry:
        """The registry plugins are found in: every installed entry point, plus :attr:`plugins`."""
        return Registry(extra_plugins=tuple(self.plugins))

    def options(self) -> dict[str, Any]:
        """``configure()`` keywords for the formatter's options, if it needs any."""
        return {}

    # ------------------------------------------------------------ helpers

    def build(self) -> Formatter:
        """The formatter, as the engine builds it."""
        registry = self.registry()
        spec = registry.formatter(self.formatter).spec
        settings = Settings.load(self.options(), environ={})
        options = settings.plugin_options(self.formatter, spec.options)
        return spec.factory(PluginContext(settings, options))

    def _implemented(self, method: str) -> None:
        if getattr(type(self), method) is getattr(FormatterConformance, method):
            _skip(f"{type(self).__name__} does not implement {method}()")

    @staticmethod
    def wires() -> list[dict[str, Any]]:
        """The wire dicts of :func:`sample_events`."""
        return [to_wire(event, {}) for event in sample_events()]

    @staticmethod
    def assert_carries(decoded: Mapping[str, Any], wire: Mapping[str, Any]) -> None:
        """Every key of ``wire`` is in ``decoded`` with an equal value."""
        for key, value in wire.items():
            assert key in decoded, f"{key!r} is missing after a round trip"
            assert decoded[key] == value, f"{key!r}: {value!r} came back as {decoded[key]!r}"

    # ------------------------------------------------------------ the tests

    def test_is_registered_with_a_content_type(self) -> None:
        registry = self.registry()
        assert self.formatter in registry.formatters, (
            f"formatter {self.formatter!r} is not registered; installed: {sorted(registry.formatters)}"
        )
        formatter = self.build()
        assert isinstance(formatter, Formatter)
        kind = type(formatter).content_type
        assert isinstance(kind, str) and "/" in kind, f"content_type {kind!r} is not a MIME type"

    def test_formats_every_sample_to_bytes_without_changing_it(self) -> None:
        formatter = self.build()
        for wire in self.wires():
            before = copy.deepcopy(wire)
            payload = formatter.format(wire)
            assert isinstance(payload, bytes) and payload, f"{wire['action']}: no bytes"
            assert wire == before, f"format() changed its input ({wire['action']})"
            assert formatter.format(wire) == payload, f"{wire['action']}: not deterministic"

    def test_payloads_keep_the_declared_framing(self) -> None:
        # Transports are chosen by the declaration (FormatterSpec.framing): it must be true.
        framing = self.registry().formatter(self.formatter).spec.framing
        if framing != "lines":
            _skip(f"framing {framing!r}: checked by test_concatenated_payloads_decode_one_by_one")
        formatter = self.build()
        for wire in self.wires():
            payload = formatter.format(wire)
            assert payload.endswith(b"\n") and payload.count(b"\n") == 1, (
                f"{wire['action']}: framing 'lines' needs one newline, at the end"
            )
            payload.decode("utf-8")  # a line reader reads text

    def test_payload_decodes_to_the_wire_dict(self) -> None:
        self._implemented("decode")
        formatter = self.build()
        for wire in self.wires():
            self.assert_carries(self.decode(formatter.format(wire)), wire)

    def test_concatenated_payloads_decode_one_by_one(self) -> None:
        self._implemented("decode_stream")
        formatter = self.build()
        wires = self.wires()
        decoded = self.decode_stream(b"".join(formatter.format(w) for w in wires))
        assert len(decoded) == len(wires), "payloads are not self-delimiting"
        for got, wire in zip(decoded, wires, strict=True):
            self.assert_carries(got, wire)

    def test_batch_body_decodes_to_every_event(self) -> None:
        self._implemented("decode_batch")
        formatter = self.build()
        wires = self.wires()
        body = formatter.format_batch([formatter.format(w) for w in wires])
        assert isinstance(body, bytes)
        decoded = self.decode_batch(body)
        assert len(decoded) == len(wires)
        for got, wire in zip(decoded, wires, strict=True):
            self.assert_carries(got, wire)

    def test_a_pipeline_carries_every_sample(self) -> None:
        transport = CapturingTransport()
        registry = self.registry()
        spec = TransportSpec("conformance-capture", lambda _context: transport, carries=ALL_FRAMINGS)
        registry.transports[spec.name] = Registered(spec, "eventlog.plugin.testing", "eventlog", "0")
        given = {
            "transport": "conformance-capture",
            "format": self.formatter,
            "linger_ms": 0,
            "enrichers": (),
            **self.options(),
        }
        pipeline = Pipeline(Settings.load(given, environ={}), registry)
        events = sample_events()
        for event in events:
            pipeline.submit_event(event)
        assert pipeline.shutdown(timeout=10)
        assert pipeline.stats.dropped_by_reason() == {}, "events were set aside"
        assert [r.id for r in transport.records] == [e.id for e in events]
        assert transport.opens >= 1 and transport.closes >= 1
        formatter = self.build()
        for record, event in zip(transport.records, events, strict=True):
            assert record.payload == formatter.format(to_wire(event, {}))


# ---------------------------------------------------------------- pytest fixtures

if _PYTEST:

    @pytest.fixture
    def line_receiver() -> Iterator[LineReceiver]:
        """A :class:`LineReceiver` on 127.0.0.1 (plain TCP), stopped after the test."""
        with LineReceiver() as receiver:
            yield receiver

    @pytest.fixture
    def datagram_receiver() -> Iterator[DatagramReceiver]:
        """A :class:`DatagramReceiver` on 127.0.0.1, stopped after the test."""
        with DatagramReceiver() as receiver:
            yield receiver

    @pytest.fixture
    def local_ca(tmp_path: Path) -> LocalCA:
        """A throw-away CA and a server certificate for 127.0.0.1 and localhost (:func:`make_local_ca`)."""
        return make_local_ca(tmp_path / "local-ca")
