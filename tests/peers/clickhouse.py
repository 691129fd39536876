"""A real ClickHouse server (Debian's clickhouse-server) on loopback, for the tests.

The server runs from a copy of ``/etc/clickhouse-server/config.xml`` whose
ports (http, tcp, interserver) are free loopback ports and whose data, tmp,
log and format-schema folders live in the test's own folder.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.peers import free_port, missing, stop_process

SERVER = "/usr/sbin/clickhouse-server"
CONFIG = Path("/etc/clickhouse-server/config.xml")
USERS = Path("/etc/clickhouse-server/users.xml")


class ClickHouse:
    """A running server: its HTTP port, its format-schema folder, and a query helper."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.http_port = free_port()
        self.tcp_port = free_port()
        self.interserver_port = free_port()
        self.format_schema_dir = root / "format_schemas"
        self.format_schema_dir.mkdir(parents=True, exist_ok=True)
        self.config = root / "config.xml"
        self._write_config()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the HTTP interface."""
        return f"http://127.0.0.1:{self.http_port}/"

    def _write_config(self) -> None:
        tree = ET.parse(CONFIG)
        top = tree.getroot()

        def put(tag: str, value: str, parent: ET.Element = top) -> None:
            node = parent.find(tag)
            if node is None:
                node = ET.SubElement(parent, tag)
            node.text = value

        logger = top.find("logger")
        assert logger is not None
        put("log", str(self.root / "server.log"), logger)
        put("errorlog", str(self.root / "server.err.log"), logger)
        put("console", "0", logger)
        put("http_port", str(self.http_port))
        put("tcp_port", str(self.tcp_port))
        put("interserver_http_port", str(self.interserver_port))
        for node in top.findall("listen_host"):
            top.remove(node)
        put("listen_host", "127.0.0.1")
        put("path", f"{self.root / 'data'}/")
        put("tmp_path", f"{self.root / 'tmp'}/")
        put("user_files_path", f"{self.root / 'user_files'}/")
        put("format_schema_path", f"{self.format_schema_dir}/")
        put("users_config", str(USERS))
        for tag in ("remote_servers", "zookeeper", "macros", "graphite", "include_from"):
            for node in top.findall(tag):
                top.remove(node)
        tree.write(self.config)

    def start(self, timeout: float = 60.0) -> None:
        """Start the server and wait until it answers /ping."""
        with open(self.root / "stdout.log", "wb") as log:
            self.process = subprocess.Popen(
                [SERVER, f"--config-file={self.config}"],
                cwd=self.root,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"clickhouse-server exited with {self.process.returncode}: "
                    + (self.root / "stdout.log").read_text(errors="replace")[-2000:]
                )
            try:
                with urllib.request.urlopen(self.url + "ping", timeout=1) as response:
                    if response.read().strip() == b"Ok.":
                        return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"clickhouse-server did not answer on port {self.http_port} in {timeout}s")

    def query(self, sql: str, data: bytes | None = None, **settings: str) -> str:
        """Run ``sql`` over HTTP (``data`` is the POST body, e.g. rows to insert)."""
        params = urllib.parse.urlencode({"query": sql, **settings})
        request = urllib.request.Request(self.url + "?" + params, data=data, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.read().decode("utf-8")
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"ClickHouse refused {sql[:200]!r}: {exc.read().decode()[:2000]}") from None

    def rows(self, sql: str) -> list[dict[str, Any]]:
        """The rows of a SELECT, one dict each (64-bit integers as numbers)."""
        text = self.query(sql + " FORMAT JSONEachRow", output_format_json_quote_64bit_integers="0")
        return [json.loads(line) for line in text.splitlines()]

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL)."""
        stop_process(self.process, 20)
        self.process = None


@pytest.fixture(scope="session")
def clickhouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClickHouse]:
    """One ClickHouse server for the whole test session."""
    if not Path(SERVER).exists() or not CONFIG.exists():
        missing("clickhouse-server", f"{SERVER} or {CONFIG} not found")
    server = ClickHouse(tmp_path_factory.mktemp("clickhouse"))
    try:
        server.start()
    except RuntimeError as exc:
        missing("clickhouse-server", str(exc))
    yield server
    server.stop()
    shutil.rmtree(server.root / "data", ignore_errors=True)
