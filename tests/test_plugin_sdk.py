"""The author SDK, eventlog.plugin: its pytest fixtures, tls_context, and what plugins import."""

from __future__ import annotations

import ast
import inspect
import json
import ssl
from pathlib import Path

import pytest

import eventlog
import eventlog.plugin
import eventlog.plugin.aio
import eventlog.plugin.net
import eventlog.plugin.testing
from eventlog.plugin import ConfigurationError
from eventlog.plugin.net import tls_context
from eventlog.plugin.testing import DatagramReceiver, LineReceiver, LocalCA

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).parent.parent
#: What a plugin may import of eventlog: the SDK, and the application API for its own events.
SDK_MODULES = frozenset(
    {"eventlog.plugin", "eventlog.plugin.net", "eventlog.plugin.aio", "eventlog.plugin.testing"}
)


# ---------------------------------------------------------------- the pytest plugin's fixtures


def test_line_receiver_fixture_collects_what_a_tcp_pipeline_sends(line_receiver: LineReceiver) -> None:
    eventlog.configure(transport="tcp", host="127.0.0.1", port=line_receiver.port)
    for n in range(3):
        eventlog.log_event(eventlog.Event(f"sdk.line.{n}"))
    assert eventlog.flush(10)
    assert line_receiver.wait_for(3)
    assert [e["action"] for e in line_receiver.events()] == ["sdk.line.0", "sdk.line.1", "sdk.line.2"]


def test_datagram_receiver_fixture_collects_one_datagram_per_event(
    datagram_receiver: DatagramReceiver,
) -> None:
    eventlog.configure(transport="udp", host="127.0.0.1", port=datagram_receiver.port)
    for n in range(2):
        eventlog.log_event(eventlog.Event(f"sdk.udp.{n}"))
    assert eventlog.flush(10)
    assert datagram_receiver.wait_for(2)
    actions = [json.loads(d)["action"] for d in datagram_receiver.datagrams]
    assert actions == ["sdk.udp.0", "sdk.udp.1"]


def test_local_ca_fixture_serves_tls_that_the_tcp_transport_verifies(local_ca: LocalCA) -> None:
    assert sorted(p.name for p in local_ca.ca_cert.parent.iterdir()) == ["ca.pem", "server.key", "server.pem"]
    with LineReceiver(tls=local_ca.server_context()) as receiver:
        eventlog.configure(
            transport="tcp",
            host="127.0.0.1",
            port=receiver.port,
            tcp_tls=True,
            tcp_tls_ca=str(local_ca.ca_cert),
        )
        eventlog.log_event(eventlog.Event("sdk.tls"))
        assert eventlog.flush(10)
        assert receiver.wait_for(1)
        assert [e["action"] for e in receiver.events()] == ["sdk.tls"]


# ---------------------------------------------------------------- tls_context


def _options(**given: object) -> dict[str, object]:
    return {"tls": False, "tls_ca": None, "tls_cert": None, "tls_key": None, "tls_verify": True, **given}


def test_tls_context_is_none_while_tls_is_off() -> None:
    assert tls_context(_options(), setting="EVENTLOG_X_TLS_*") is None
    assert tls_context(_options(tls=True), setting="EVENTLOG_X_TLS_*", enabled=False) is None


def test_tls_context_verifies_unless_told_not_to(local_ca: LocalCA) -> None:
    context = tls_context(_options(tls=True, tls_ca=str(local_ca.ca_cert)), setting="EVENTLOG_X_TLS_*")
    assert context is not None
    assert (context.verify_mode, context.check_hostname) == (ssl.CERT_REQUIRED, True)
    # enabled= stands in for a transport without the tls switch (syslog's protocol=tls).
    options = {key: value for key, value in _options(tls_verify=False).items() if key != "tls"}
    context = tls_context(options, setting="EVENTLOG_X_TLS_*", enabled=True)
    assert context is not None
    assert (context.verify_mode, context.check_hostname) == (ssl.CERT_NONE, False)


def test_tls_context_names_the_setting_of_a_file_it_cannot_load(tmp_path: Path) -> None:
    missing = str(tmp_path / "nowhere.pem")
    with pytest.raises(ConfigurationError) as caught:
        tls_context(_options(tls=True, tls_ca=missing), setting="EVENTLOG_X_TLS_*")
    assert str(caught.value).startswith(f"EVENTLOG_X_TLS_*: cannot load TLS files (ca={missing!r}")


# ---------------------------------------------------------------- what plugins import


def _eventlog_imports(path: Path) -> list[str]:
    """Each import of eventlog in ``path`` that is not the SDK or a name of eventlog's __all__."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "eventlog":
                found += [
                    f"{path.relative_to(ROOT)}:{node.lineno}: eventlog.{alias.name}"
                    for alias in node.names
                    if alias.name not in eventlog.__all__
                ]
                continue
            modules = [node.module]
        else:
            continue
        found += [
            f"{path.relative_to(ROOT)}:{node.lineno}: {module}"
            for module in modules
            if module.startswith("eventlog.") and module not in SDK_MODULES
        ]
    return found


def test_plugins_and_the_example_import_only_the_sdk() -> None:
    sources = sorted((ROOT / "plugins").glob("*/src/**/*.py")) + sorted(
        (ROOT / "examples").glob("*/src/**/*.py")
    )
    assert len({p.parts[len(ROOT.parts) + 1] for p in sources}) == 7, "every plugin and the example"
    assert [line for path in sources for line in _eventlog_imports(path)] == []


# ---------------------------------------------------------------- the SDK documents itself


def test_every_public_name_of_the_sdk_is_indexed_and_documented() -> None:
    index = eventlog.plugin.__doc__ or ""
    for module in (eventlog.plugin, eventlog.plugin.net, eventlog.plugin.aio, eventlog.plugin.testing):
        for name in module.__all__:
            assert name in index, f"{module.__name__}.{name} is not in eventlog.plugin's index"
            value = getattr(module, name)
            if inspect.isclass(value) or inspect.isfunction(value):
                assert (value.__doc__ or "").strip(), f"{module.__name__}.{name} has no docstring"
