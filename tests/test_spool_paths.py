"""A spool path another user could read, change or redirect is refused (issue 13, item 9).

The situations are real: symlinks, files and folders handed to another user
with ``os.chown`` (uid 65534, nobody; those cases need root and skip without
it), modes set with ``chmod``.  A refused spool falls back as a read-only one
does: events go from memory to a real TCP listener, counted as
``unsafe_path``, with one warning that names the path, what is wrong and what
to do.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import eventlog
import eventlog._spool.sqlite as spool_module
from eventlog._builtin.receiver import LineReceiver
from tests.spool_support import EventlogWarnings, capture_warnings

pytestmark = pytest.mark.timeout(60)

NOBODY = 65534  # another user: no file of the test belongs to it


@pytest.fixture
def eventlog_warnings() -> Iterator[EventlogWarnings]:
    yield from capture_warnings()


@pytest.fixture(autouse=True)
def _quick_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spool_module, "RETRY_SECONDS", 0.05)


def _give_away(path: Path) -> None:
    """Make ``path`` (not what a link points to) another user's."""
    if os.geteuid() != 0:
        pytest.skip("handing a file to another user (chown) needs root")
    os.lchown(path, NOBODY, NOBODY)


def _deliver(db: Path, receiver: LineReceiver, prefix: str, count: int) -> eventlog.Pipeline:
    """Log ``count`` events through a spool pipeline at ``db``; every one must arrive once."""
    before = len(receiver.lines)
    pipeline = eventlog.configure(
        transport="tcp",
        host="127.0.0.1",
        port=receiver.port,
        db=str(db),
        enrichers=(),
        retry_backoff_max=0.2,
    )
    want = set()
    for number in range(count):
        event = eventlog.Event("test.path", prefix, "test")
        event.id = f"{prefix}-{number:06d}"
        eventlog.log_event(event)
        want.add(event.id)
    assert eventlog.flush(10)
    assert receiver.wait_for(before + len(want), timeout=20)
    got = Counter(e["id"] for e in receiver.events() if e["id"].startswith(prefix + "-"))
    assert set(got) == want
    assert max(got.values()) == 1
    return pipeline


# Each case builds a situation under a fresh folder and returns the spool path, the
# words the warning must hold, and a check that nothing was created or written there.
Case = Callable[[Path], tuple[Path, str, Callable[[], None]]]


def planted_symlink(base: Path) -> tuple[Path, str, Callable[[], None]]:
    # `EVENTLOG_DB=/tmp/x.db` where another user put a link to a missing file.
    target = base / "elsewhere" / "victim.db"
    target.parent.mkdir()
    db = base / "x.db"
    db.symlink_to(target)
    _give_away(db)

    def nothing_created() -> None:
        assert sorted(p.name for p in target.parent.iterdir()) == []  # no victim.db, -wal, -shm

    return db, f"{db} is a symlink to {target}; name the file itself", nothing_created


def own_symlink(base: Path) -> tuple[Path, str, Callable[[], None]]:
    target = base / "real.db"
    db = base / "x.db"
    db.symlink_to(target)

    def nothing_created() -> None:
        assert not target.exists()

    return db, f"{db} is a symlink to {target}", nothing_created


def others_open_file(base: Path) -> tuple[Path, str, Callable[[], None]]:
    # A 0666 file of another user: used as it was, that user would read every event.
    db = base / "x.db"
    db.write_bytes(b"")
    db.chmod(0o666)
    _give_away(db)

    def untouched() -> None:
        info = db.stat()
        assert (info.st_size, info.st_uid, stat.S_IMODE(info.st_mode)) == (0, NOBODY, 0o666)
        assert not Path(f"{db}-wal").exists()

    return db, f"{db} is owned by uid {NOBODY}, not 0 (the user this process runs as)", untouched


def world_readable_file(base: Path) -> tuple[Path, str, Callable[[], None]]:
    db = base / "x.db"
    db.write_bytes(b"")
    db.chmod(0o644)

    def untouched() -> None:
        assert db.stat().st_size == 0

    return db, f"{db} has mode 0644: every user may read the events; chmod 600 {db}", untouched


def open_folder(base: Path) -> tuple[Path, str, Callable[[], None]]:
    # Writable by everyone and not sticky: anyone may swap the spool for a link later.
    folder = base / "shared"
    folder.mkdir()
    folder.chmod(0o777)
    db = folder / "x.db"

    def nothing_created() -> None:
        assert list(folder.iterdir()) == []

    return db, f"the spool folder {folder} has mode 0777: other users may replace", nothing_created


def others_folder(base: Path) -> tuple[Path, str, Callable[[], None]]:
    folder = base / "theirs"
    folder.mkdir(mode=0o700)
    _give_away(folder)
    db = folder / "x.db"

    def nothing_created() -> None:
        assert list(folder.iterdir()) == []

    return db, f"the spool folder {folder} is owned by uid {NOBODY}, not by root", nothing_created


def planted_wal_in_sticky_folder(base: Path) -> tuple[Path, str, Callable[[], None]]:
    # /tmp-like: the spool itself is free, but SQLite's -wal (opened by name) is a link.
    folder = base / "tmp"
    folder.mkdir()
    folder.chmod(0o1777)
    target = base / "victim"
    db = folder / "x.db"
    wal = Path(f"{db}-wal")
    wal.symlink_to(target)
    _give_away(wal)

    def nothing_created() -> None:
        assert not target.exists()

    return db, f"{wal} is a symlink to {target}", nothing_created


def planted_folder_link(base: Path) -> tuple[Path, str, Callable[[], None]]:
    # The folder named in EVENTLOG_DB is another user's link (to a folder of ours, here).
    real = base / "real"
    real.mkdir(mode=0o700)
    link = base / "spool"
    link.symlink_to(real)
    _give_away(link)

    def nothing_created() -> None:
        assert list(real.iterdir()) == []

    return (
        link / "x.db",
        f"the folder {link} in the spool path is a symlink to {real} owned by uid {NOBODY}",
        nothing_created,
    )


@pytest.mark.parametrize(
    "case",
    [
        planted_symlink,
        own_symlink,
        others_open_file,
        world_readable_file,
        open_folder,
        others_folder,
        planted_wal_in_sticky_folder,
        planted_folder_link,
    ],
)
def test_an_unsafe_spool_path_is_refused_and_events_go_from_memory(
    case: Case, tmp_path: Path, receiver: LineReceiver, eventlog_warnings: EventlogWarnings
) -> None:
    db, problem, check_nothing_there = case(tmp_path)
    pipeline = _deliver(db, receiver, "unsafe", 300)
    assert pipeline.stats.spool_fallback == {"unsafe_path": 300}
    assert pipeline.stats.sent == 300
    assert pipeline.stats.dropped_by_reason() == {}
    check_nothing_there()
    refused = [m for m in eventlog_warnings.messages if "is refused" in m]
    assert len(refused) == 1, eventlog_warnings.messages  # once, not per batch
    assert refused[0].startswith(f"the spool {db} is refused: ")
    assert problem in refused[0]
    assert "sent from memory" in refused[0]


def test_a_refused_folder_once_fixed_is_used_again(
    tmp_path: Path, receiver: LineReceiver, eventlog_warnings: EventlogWarnings
) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(0o777)
    db = folder / "x.db"
    pipeline = _deliver(db, receiver, "before", 200)
    assert pipeline.stats.spool_fallback == {"unsafe_path": 200}
    folder.chmod(0o700)
    time.sleep(0.1)  # the spool is tried again 0.05 s after a refusal here
    for number in range(200):
        event = eventlog.Event("test.path", "after", "test")
        event.id = f"after-{number:06d}"
        eventlog.log_event(event)
    assert eventlog.flush(10)
    assert receiver.wait_for(400, timeout=20)
    assert pipeline.stats.spool_fallback == {"unsafe_path": 200}  # spool mode again
    assert pipeline.stats.sent == 400
    assert db.exists()
    assert eventlog_warnings.count("can be written again; spool mode resumes") == 1


def test_a_spool_in_a_sticky_folder_is_used_and_its_files_are_0600_whatever_the_umask(
    tmp_path: Path, receiver: LineReceiver, eventlog_warnings: EventlogWarnings
) -> None:
    folder = tmp_path / "tmp"
    folder.mkdir()
    folder.chmod(0o1777)  # like /tmp: others may write here, but not remove our files
    db = folder / "x.db"
    old = os.umask(0o277)  # would make a plain open(..., 0o600) create a 0400 file
    try:
        pipeline = _deliver(db, receiver, "sticky", 500)
        for name in ("x.db", "x.db-wal", "x.db-shm", "x.db.lock"):
            info = (folder / name).stat()
            assert (name, info.st_uid, stat.S_IMODE(info.st_mode)) == (name, os.geteuid(), 0o600)
    finally:
        os.umask(old)
    assert pipeline.stats.spool_fallback == {}
    assert eventlog_warnings.messages == []
    eventlog.shutdown(5)
    # Once more with the file there: ours, 0600, so still used.
    pipeline = _deliver(db, receiver, "again", 100)
    assert pipeline.stats.spool_fallback == {}


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTLOG_")}
    return subprocess.run(
        [sys.executable, "-m", "eventlog", "spool", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


@pytest.mark.parametrize("command", ["info", "purge", "replay"])
@pytest.mark.parametrize("case", [others_open_file, own_symlink])
def test_spool_commands_refuse_an_unsafe_path(command: str, case: Case, tmp_path: Path) -> None:
    db, problem, check_nothing_there = case(tmp_path)
    done = _cli(command, "--db", str(db))
    assert (done.returncode, done.stdout) == (1, ""), done
    assert done.stderr.startswith(f"eventlog spool {command}: refused: {problem}"), done.stderr
    check_nothing_there()
