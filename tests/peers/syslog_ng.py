"""A real syslog-ng 3.38 (Debian's ``syslog-ng-core``, unpacked) on loopback, for the tests.

Debian installs one system logger at a time and rsyslog is the installed one,
so ``scripts/provision-peers`` unpacks syslog-ng and the libraries it needs
with ``dpkg -x`` into ``tests/peers/.syslog-ng`` (git-ignored); it runs from
there with ``LD_LIBRARY_PATH`` and its module path, in the foreground, with a
private configuration, persist file and control socket in the test's folder.

Its ``syslog()`` sources (RFC 5424 with octet counting over TCP, one message
per datagram over UDP) keep syslog-ng's defaults, ``log_msg_size`` 65536
included: the tests check what a default syslog-ng takes.  Each message is
written as one JSON line: what syslog-ng parsed (PRI, HOST, PROGRAM, PID,
MSGID, MESSAGE, and the structured data as ``SDATA``: SD-ID -> param -> value)
and the raw message.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.peers import free_port, missing, stop_process

ROOT = Path(__file__).resolve().parent / ".syslog-ng" / "root"
SYSLOG_NG = ROOT / "usr" / "sbin" / "syslog-ng"
PROTOCOLS = ("tcp", "udp")

#: What each message's line holds: name -> syslog-ng macro.
_MACROS = {
    "pri": "$PRI",
    "facility": "$FACILITY_NUM",
    "severity": "$LEVEL_NUM",
    "hostname": "$HOST",
    "app_name": "$PROGRAM",
    "procid": "$PID",
    "msgid": "$MSGID",
    "msg": "$MESSAGE",
    "raw": "$RAWMSG",
}


def _config(root: Path, ports: dict[str, int]) -> str:
    pairs = " ".join(f"{name}={macro}" for name, macro in _MACROS.items())
    blocks = []
    for proto in PROTOCOLS:
        # A burst of datagrams must not overflow the socket's default buffer (as rsyslog's
        # rcvBufSize in tests/peers/rsyslog.py); the message size limit stays the default.
        buffer = " so-rcvbuf(4194304)" if proto == "udp" else ""
        blocks.append(
            f'source s_{proto} {{ syslog(ip("127.0.0.1") port({ports[proto]}) transport("{proto}") '
            f"flags(store-raw-message){buffer}); }};\n"
            f'destination d_{proto} {{ file("{root / (proto + ".jsonl")}" '
            f'template("$(format-json {pairs} --key .SDATA.*)\\n")); }};\n'
            f"log {{ source(s_{proto}); destination(d_{proto}); }};"
        )
    return "@version: 3.38\noptions { stats_freq(0); keep-hostname(yes); };\n" + "\n".join(blocks) + "\n"


class SyslogNg:
    """A running syslog-ng: its ports and what it wrote per protocol."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.ports = {proto: free_port() for proto in PROTOCOLS}
        self.config = root / "syslog-ng.conf"
        self.config.write_text(_config(root, self.ports))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        """Start syslog-ng and wait until both sources take messages."""
        env = {
            **os.environ,
            "LD_LIBRARY_PATH": f"{ROOT / 'usr/lib/x86_64-linux-gnu'}:{ROOT / 'usr/lib/syslog-ng'}",
        }
        with open(self.root / "syslog-ng.log", "wb") as log:
            self.process = subprocess.Popen(
                [
                    str(SYSLOG_NG),
                    "-F",
                    "-f",
                    str(self.config),
                    f"--module-path={ROOT / 'usr/lib/syslog-ng/3.38'}",
                    "-R",
                    str(self.root / "syslog-ng.persist"),
                    "-p",
                    str(self.root / "syslog-ng.pid"),
                    "-c",
                    str(self.root / "syslog-ng.ctl"),
                ],
                cwd=self.root,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while not self._accepts(self.ports["tcp"]):
            self._check_alive(deadline)
            time.sleep(0.05)
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
                "syslog-ng did not start: "
                + (self.root / "syslog-ng.log").read_text(errors="replace")[-2000:]
            )

    def read(self, proto: str) -> list[dict[str, Any]]:
        """Every message written for ``proto`` so far (``sd``: SD-ID -> param -> value)."""
        try:
            data = (self.root / f"{proto}.jsonl").read_bytes()
            # Only whole lines: syslog-ng may be mid-way through a line (and a UTF-8 sequence).
            text = data[: data.rfind(b"\n") + 1].decode("utf-8")
        except FileNotFoundError:
            return []
        rows = []
        # "\n" only: str.splitlines() also splits at U+0085, U+2028 and \x1c-\x1e, which
        # the receivers write as they are inside JSON strings.
        for line in text.split("\n")[:-1]:  # the last part is being written (or empty)
            row = json.loads(line)
            row["sd"] = _unflattened(row.pop("_SDATA", {}))
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

    def log(self) -> str:
        """What syslog-ng said about itself (errors, closed connections)."""
        return (self.root / "syslog-ng.log").read_text(errors="replace")

    def stop(self) -> None:
        """Stop syslog-ng (SIGTERM, then SIGKILL)."""
        stop_process(self.process, 10)
        self.process = None


def _unflattened(sd: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """SD-ID -> param -> value from format-json's nesting.

    format-json nests ``.SDATA.<sd-id>.<name>`` at each dot, but writes a name that
    starts with a digit (``[fields@32473 5="x"]``) flat, as ``"fields@32473.5"``, in
    the element or beside it: syslog-ng read it right, this puts it back.
    """
    out: dict[str, dict[str, Any]] = {}
    for key, value in sd.items():
        if isinstance(value, dict):
            params = out.setdefault(key, {})
            for name, item in value.items():
                params[name.removeprefix(f"{key}.")] = item
        else:
            sd_id, _, name = key.rpartition(".")
            out.setdefault(sd_id, {})[name] = value
    return out


def event_id(row: dict[str, Any]) -> str | None:
    """The eventlog id in a written message's structured data, if any."""
    for sd_id, params in row["sd"].items():
        if sd_id.startswith("eventlog@") and isinstance(params, dict) and "id" in params:
            return str(params["id"])
    return None


def syslog_ng_peer(root: Path) -> Iterator[SyslogNg]:
    """A started syslog-ng in ``root``, stopped after use; skips (or fails) when it cannot run."""
    if not SYSLOG_NG.exists():
        missing(
            "syslog-ng", f"{SYSLOG_NG} not found (scripts/provision-peers unpacks Debian's syslog-ng-core)"
        )
    server = SyslogNg(root)
    try:
        server.start()
    except RuntimeError as exc:
        missing("syslog-ng", str(exc))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module", name="syslog_ng")
def syslog_ng_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SyslogNg]:
    """One syslog-ng per test module, with tcp and udp sources at syslog-ng's defaults."""
    yield from syslog_ng_peer(tmp_path_factory.mktemp("syslog-ng"))
