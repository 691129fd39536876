"""The author SDK, eventlog.plugin: its pytest fixtures, tls_context, and what plugins import."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import pytest

import eventlog
from eventlog.plugin import ConfigurationError
from eventlog.plugin.net import tls_context
from eventlog.plugin.testing import DatagramReceiver, LineReceiver, LocalCA

pytestmark = pytest.mark.timeout(60)


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
