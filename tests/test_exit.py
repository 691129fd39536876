"""What each way of ending a process costs, per mode: real child processes, a real TCP receiver.

Each child logs numbered events with a long linger (so they are still in
memory when it ends), says ``ready``, and is then ended: SIGTERM, ``kill -9``,
``os._exit``, or a normal exit.  docs/delivery.md ("What ending a process
costs") cites these tests by name.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from eventlog._builtin.receiver import LineReceiver
from eventlog.plugin.testing import closed_port

pytestmark = pytest.mark.timeout(120)

CHILD = r"""
import json, os, sys, time
import eventlog
from eventlog import Event

opts = json.loads(sys.argv[1])


def open_files():
    # Files (not sockets, pipes or devices) this process has open now.
    out = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith("/") and not target.startswith("/dev/"):
            out.add(target)
    return out


before = open_files()
settings = dict(
    transport="tcp", host="127.0.0.1", port=opts["port"], batch_size=100_000,
    linger_ms=opts.get("linger_ms", 60_000), shutdown_timeout=opts.get("shutdown_timeout", 3),
    retry_backoff_max=0.05,
)
if opts.get("db"):
    settings["db"] = opts["db"]
eventlog.configure(**settings)
if opts.get("handlers"):
    eventlog.install_signal_handlers()
for i in range(opts["count"]):
    eventlog.log_event(Event("exit.test", str(i)))
if opts.get("flush"):
    assert eventlog.flush(20)
if opts.get("spooled"):  # the peer is down: wait until the worker moved every event to the spool
    end = time.monotonic() + 30
    while eventlog.get_pipeline().spool_depth() < opts["count"] and time.monotonic() < end:
        time.sleep(0.01)
if opts.get("files"):  # what eventlog opened and still holds, after every event was sent
    print(json.dumps(sorted(open_files() - before)), flush=True)
print("ready", flush=True)
way = opts["way"]
if way == "os._exit":
    os._exit(0)
if way == "wait":
    time.sleep(60)  # ended by the test
"""

COUNT = 2000


def _child(tmp_path: Path, cwd: Path | None = None, **opts: Any) -> subprocess.Popen[str]:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    proc = subprocess.Popen(
        [sys.executable, str(script), json.dumps(opts)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=cwd,
        env=None if cwd is None else {**os.environ, "TMPDIR": str(cwd), "HOME": str(cwd)},
    )
    assert proc.stdout is not None
    if opts.get("files"):
        proc.opened = json.loads(proc.stdout.readline())  # type: ignore[attr-defined]
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
    return proc


def _end(proc: subprocess.Popen[str], way: str) -> tuple[int, str]:
    if way == "sigterm":
        proc.send_signal(signal.SIGTERM)
    elif way == "kill-9":
        proc.kill()
    _, stderr = proc.communicate(timeout=60)
    return proc.returncode, stderr


def _targets(receiver: LineReceiver) -> list[str]:
    return sorted((e["target"] for e in receiver.events()), key=int)


def _all() -> list[str]:
    return [str(i) for i in range(COUNT)]


# ---------------------------------------------------------------- memory mode


def test_memory_mode_sigterm_loses_what_is_queued(tmp_path: Path, receiver: LineReceiver) -> None:
    proc = _child(tmp_path, port=receiver.port, count=COUNT, way="wait")
    returncode, _ = _end(proc, "sigterm")
    assert returncode == -signal.SIGTERM
    assert receiver.events() == []  # the worker was still lingering: nothing had been sent


def test_memory_mode_sigterm_with_signal_handlers_delivers_everything_then_dies_of_it(
    tmp_path: Path, receiver: LineReceiver
) -> None:
    proc = _child(tmp_path, port=receiver.port, count=COUNT, way="wait", handlers=True)
    returncode, _ = _end(proc, "sigterm")
    assert returncode == -signal.SIGTERM  # the default action still ends the process
    assert receiver.wait_for(COUNT) and _targets(receiver) == _all()


@pytest.mark.parametrize("way", ["kill-9", "os._exit"])
def test_memory_mode_kill_9_and_os_exit_lose_what_is_queued(
    tmp_path: Path, receiver: LineReceiver, way: str
) -> None:
    proc = _child(tmp_path, port=receiver.port, count=COUNT, way="wait" if way == "kill-9" else way)
    _end(proc, way)
    assert receiver.events() == []


@pytest.mark.parametrize("way", ["sigterm", "kill-9", "os._exit"])
def test_memory_mode_nothing_flushed_is_lost_however_the_process_ends(
    tmp_path: Path, receiver: LineReceiver, way: str
) -> None:
    proc = _child(
        tmp_path, port=receiver.port, count=COUNT, flush=True, way="wait" if way != "os._exit" else way
    )
    _end(proc, way)
    assert receiver.wait_for(COUNT) and _targets(receiver) == _all()


def test_memory_mode_dead_peer_at_exit_says_how_many_were_lost_and_why(tmp_path: Path) -> None:
    proc = _child(tmp_path, port=closed_port(), count=100, way="exit", shutdown_timeout=0.5, linger_ms=5)
    returncode, stderr = _end(proc, "exit")
    assert returncode == 0
    lines = [line for line in stderr.splitlines() if "shutdown deadline" in line]
    assert len(lines) == 1, stderr
    assert "passed: 100 events were not delivered and are lost" in lines[0]
    assert 'dropped{reason="shutdown"}' in lines[0]
    assert "the last send failed: ConnectError: cannot connect to 127.0.0.1:" in lines[0]


def test_memory_mode_writes_no_file_so_a_full_disk_costs_nothing(
    tmp_path: Path, receiver: LineReceiver
) -> None:
    home = tmp_path / "home"  # the working folder, HOME and TMPDIR of the child
    home.mkdir()
    proc = _child(tmp_path, cwd=home, port=receiver.port, count=100, flush=True, files=True, way="exit")
    assert _end(proc, "exit")[0] == 0
    assert proc.opened == []  # type: ignore[attr-defined]
    assert list(home.iterdir()) == []
    assert receiver.wait_for(100)


# ---------------------------------------------------------------- spool mode


def _replay(tmp_path: Path, db: Path, receiver: LineReceiver) -> None:
    """A later run on the same spool, with the peer up: it sends what the spool holds."""
    proc = _child(tmp_path, port=receiver.port, count=0, db=str(db), flush=True, way="exit", linger_ms=5)
    assert _end(proc, "exit")[0] == 0


def test_spool_mode_dead_peer_at_exit_keeps_every_event_in_the_spool_and_says_how_many(
    tmp_path: Path,
) -> None:
    db, port = tmp_path / "s.db", closed_port()
    proc = _child(tmp_path, port=port, count=100, db=str(db), way="exit", shutdown_timeout=0.5, linger_ms=5)
    returncode, stderr = _end(proc, "exit")
    assert returncode == 0
    lines = [line for line in stderr.splitlines() if "shutdown deadline" in line]
    assert len(lines) == 1, stderr
    assert f"passed: 100 events wait in the spool {db} for the next run" in lines[0]
    assert "are lost" not in lines[0]
    with LineReceiver(port=port) as receiver:
        _replay(tmp_path, db, receiver)
        assert receiver.wait_for(100)
        assert sorted((e["target"] for e in receiver.events()), key=int) == [str(i) for i in range(100)]


def test_spool_mode_sigterm_loses_what_is_still_in_memory(tmp_path: Path, receiver: LineReceiver) -> None:
    db = tmp_path / "s.db"
    proc = _child(tmp_path, port=receiver.port, count=COUNT, db=str(db), way="wait")
    assert _end(proc, "sigterm")[0] == -signal.SIGTERM
    _replay(tmp_path, db, receiver)
    assert receiver.events() == []


def test_spool_mode_sigterm_with_signal_handlers_and_a_dead_peer_keeps_everything_in_the_spool(
    tmp_path: Path,
) -> None:
    db, port = tmp_path / "s.db", closed_port()
    proc = _child(tmp_path, port=port, count=COUNT, db=str(db), way="wait", handlers=True, shutdown_timeout=1)
    assert _end(proc, "sigterm")[0] == -signal.SIGTERM
    # The peer comes back where it was: the spool's rows are for that destination.
    with LineReceiver(port=port) as receiver:
        _replay(tmp_path, db, receiver)
        assert receiver.wait_for(COUNT) and _targets(receiver) == _all()


@pytest.mark.parametrize("way", ["kill-9", "os._exit"])
def test_spool_mode_kill_9_and_os_exit_keep_what_was_spooled(tmp_path: Path, way: str) -> None:
    # The peer is down: the child says ready once the worker has spooled every event.
    db, port = tmp_path / "s.db", closed_port()
    proc = _child(
        tmp_path, port=port, count=COUNT, db=str(db), linger_ms=5, spooled=True,
        way="wait" if way == "kill-9" else way,
    )  # fmt: skip
    _end(proc, way)
    with LineReceiver(port=port) as receiver:  # the peer back where it was
        _replay(tmp_path, db, receiver)
        assert receiver.wait_for(COUNT) and _targets(receiver) == _all()
