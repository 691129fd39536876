"""Socket plumbing: a live TLS connection is not taken for a closed one."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path

from eventlog.builtin.transports import StreamTransport
from eventlog.net import make_tls_context
from eventlog.receiver import LineReceiver
from eventlog.testing import make_records
from tests.peers import missing


def _self_signed(folder: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        missing("openssl", "the openssl command makes the test certificate")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key


def test_tls_session_tickets_do_not_look_like_a_closed_peer(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    # TLS 1.3: the server sends session tickets after the handshake, unasked.
    server.minimum_version = ssl.TLSVersion.TLSv1_3
    with LineReceiver(tls=server) as receiver:
        client = make_tls_context(ca=str(cert), cert=None, key=None, verify=True, setting="test")
        transport = StreamTransport(
            "127.0.0.1", receiver.port, tls=client, connect_timeout=5, send_timeout=5
        )
        transport.open()
        for sent in (2, 4, 6):
            transport.send(make_records(2))
            assert receiver.wait_for(sent)
        transport.close()
        assert len(receiver.lines) == 6
        assert receiver.connections == 1  # no reconnect between batches
