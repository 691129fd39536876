"""A real rsyslogd (Debian's ``rsyslog`` and ``rsyslog-openssl``) on loopback, for the tests.

One daemon listens with imtcp (octet-counted framing), imudp and imtcp over
the ``ossl`` stream driver (TLS, RFC 5425) on free loopback ports; each input
has its own ruleset, which parses the structured data (mmpstrucdata) and
writes every message as one JSON line, raw and parsed, to its own file.  No
system socket (imuxsock) and no system configuration are loaded; the work
directory and every file live in the test's folder.
"""

from __future__ import annotations

import glob
import json
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from eventlog.plugin.testing import LocalCA as TestCA
from eventlog.plugin.testing import make_local_ca as make_ca
from tests.peers import free_port, missing, stop_process

RSYSLOGD = "/usr/sbin/rsyslogd"
PROTOCOLS = ("tcp", "udp", "tls")

#: Every property the tests check, as rsyslog's RFC 5424 parser saw it.
_PROPERTIES = {
    "raw": "rawmsg",
    "pri": "pri",
    "facility": "syslogfacility",
    "severity": "syslogseverity",
    "hostname": "hostname",
    "app_name": "app-name",
    "procid": "procid",
    "msgid": "msgid",
    "structured_data": "structured-data",
    "msg": "msg",
    "protocol_version": "protocol-version",
    "sd": "$!rfc5424-sd",
}


def _config(root: Path, ports: dict[str, int], ca: TestCA, max_message_size: int | None) -> str:
    properties = "\n".join(
        f'  property(outname="{out}" name="{name}" format="jsonf")' for out, name in _PROPERTIES.items()
    )
    rulesets = "\n".join(
        f'ruleset(name="{proto}") {{\n'
        '  action(type="mmpstrucdata" sd_name.lowercase="off")\n'
        f'  action(type="omfile" file="{root / (proto + ".jsonl")}" template="dump")\n'
        "}"
        for proto in PROTOCOLS
    )
    # None: rsyslog's defaults (maxMessageSize 8k, imtcp maxFrameSize 200000).
    size = f'global(maxMessageSize="{max_message_size}")\n' if max_message_size else ""
    frame = f' maxFrameSize="{max_message_size}"' if max_message_size else ""
    return f"""\
{size}global(
  workDirectory="{root}"
  parser.escapeControlCharactersOnReceive="off"
  defaultNetstreamDriverCAFile="{ca.ca_cert}"
  defaultNetstreamDriverCertFile="{ca.server_cert}"
  defaultNetstreamDriverKeyFile="{ca.server_key}"
)
main_queue(queue.workerThreads="1")
module(load="imtcp" maxSessions="50"{frame})
module(load="imudp")
module(load="mmpstrucdata")
template(name="dump" type="list" option.jsonf="on") {{
{properties}
}}
{rulesets}
input(type="imtcp" address="127.0.0.1" port="{ports["tcp"]}" ruleset="tcp")
input(type="imudp" address="127.0.0.1" port="{ports["udp"]}" ruleset="udp" rcvBufSize="4m")
input(type="imtcp" address="127.0.0.1" port="{ports["tls"]}" ruleset="tls" name="tls"
      streamDriver.name="ossl" streamDriver.mode="1" streamDriver.authMode="anon")
"""


class Rsyslog:
    """A running rsyslogd: its ports, the test CA, and what it wrote per protocol."""

    def __init__(self, root: Path, max_message_size: int | None = 1 << 20) -> None:
        self.root = root
        self.ca = make_ca(root / "tls")
        self.ports = {proto: free_port() for proto in PROTOCOLS}
        self.config = root / "rsyslog.conf"
        self.config.write_text(_config(root, self.ports, self.ca, max_message_size))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        """Start rsyslogd and wait until every input takes messages."""
        with open(self.root / "rsyslogd.log", "wb") as log:
            self.process = subprocess.Popen(
                [RSYSLOGD, "-n", "-f", str(self.config), "-i", str(self.root / "rsyslogd.pid")],
                cwd=self.root,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        for proto in ("tcp", "tls"):
            while not self._accepts(self.ports[proto]):
                self._check_alive(deadline)
                time.sleep(0.05)
        # UDP cannot say when it listens: send probes (messages without an event id,
        # which the tests pass over) until one is written.
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            while not self.read("udp"):
                self._check_alive(deadline)
                probe.sendto(b"<14>1 - - probe - ready - ready", ("127.0.0.1", self.ports["udp"]))
                time.sleep(0.05)

    @staticmethod
    def _accepts(port: int) -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    def _check_alive(self, deadline: float) -> None:
        assert self.process is not None
        if self.process.poll() is not None or time.monotonic() > deadline:
            self.stop()
            raise RuntimeError(
                "rsyslogd did not start: " + (self.root / "rsyslogd.log").read_text(errors="replace")[-2000:]
            )

    def read(self, proto: str) -> list[dict[str, Any]]:
        """Every message written for ``proto`` so far, each a dict of _PROPERTIES."""
        path = self.root / f"{proto}.jsonl"
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return []
        # Only whole lines: the last part is being written (or empty), and may end inside a
        # character's UTF-8 bytes (a read mid-write failed to decode: CI, 7 Dec).
        text = data[: data.rfind(b"\n") + 1].decode("utf-8")
        rows = []
        # "\n" only: str.splitlines() also splits at U+0085, U+2028 and \x1c-\x1e, which
        # the receivers write as they are inside JSON strings.
        for line in text.split("\n")[:-1]:
            row = json.loads(line)
            row["sd"] = json.loads(row["sd"]) if row["sd"] else {}
            rows.append(row)
        return rows

    def wait_for(self, proto: str, ids: set[str], timeout: float = 20.0) -> list[dict[str, Any]]:
        """What ``proto`` wrote once every event id in ``ids`` is there (or the timeout passed)."""
        return self.wait_until(proto, lambda rows: ids <= {event_id(row) for row in rows}, timeout)

    def wait_until(
        self, proto: str, done: Callable[[list[dict[str, Any]]], bool], timeout: float = 20.0
    ) -> list[dict[str, Any]]:
        """What ``proto`` wrote once ``done(rows)`` is true (or the timeout passed)."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.read(proto)
            if done(rows) or time.monotonic() > deadline:
                return rows
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop rsyslogd (SIGTERM, then SIGKILL)."""
        stop_process(self.process, 10)
        self.process = None


def event_id(row: dict[str, Any]) -> str | None:
    """The eventlog id in a written message's structured data, if any."""
    for sd_id, params in row["sd"].items():
        if sd_id.startswith("eventlog@") and "id" in params:
            return str(params["id"])
    return None


def rsyslog_peer(root: Path, max_message_size: int | None = 1 << 20) -> Iterator[Rsyslog]:
    """A started rsyslogd in ``root``, stopped after use; skips (or fails) when it cannot run."""
    if not Path(RSYSLOGD).exists():
        missing("rsyslogd", f"{RSYSLOGD} not found (Debian package rsyslog)")
    if not glob.glob("/usr/lib/*/rsyslog/lmnsd_ossl.so"):
        missing("rsyslogd", "its ossl TLS driver is not installed (Debian package rsyslog-openssl)")
    server = Rsyslog(root, max_message_size)
    try:
        server.start()
    except RuntimeError as exc:
        missing("rsyslogd", str(exc))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module", name="rsyslog")
def rsyslog_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rsyslog]:
    """One rsyslogd per test module, with tcp, udp and tls inputs."""
    yield from rsyslog_peer(tmp_path_factory.mktemp("rsyslog"))


@pytest.fixture(scope="module", name="default_rsyslog")
def default_rsyslog_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rsyslog]:
    """An rsyslogd at its default message sizes (maxMessageSize 8k), for size tests."""
    yield from rsyslog_peer(tmp_path_factory.mktemp("rsyslog-default"), None)
