"""Which spool owns a row (``"<pid>:<start time>:<instance>"``), and whether it still runs.

Many processes may share one spool path (gunicorn workers), and one process may
have more than one pipeline on it (``configure()`` again while a backlog drains):
a row belongs to the spool instance that added or claimed it.  The rows of a
process that died, or of an instance of this process that was closed, are
reclaimed by any live one.  Owners written by 0.1.0 (``"<pid>:<start time>"``)
are alive while their process is.
"""

from __future__ import annotations

import itertools
import os

#: Instances of this process that are open, by owner value (see :func:`new_owner`).
_open_owners: set[str] = set()
_numbers = itertools.count(1)


def new_owner() -> str:
    """A fresh owner value for one spool instance of this process; alive until :func:`closed`."""
    owner = f"{process_identity(os.getpid()) or f'{os.getpid()}:0'}:{next(_numbers)}"
    _open_owners.add(owner)
    return owner


# A forked child keeps the parent's owners in this set: harmless, they name the parent's
# pid, so the child judges them by whether the parent runs, as any other process does.


def closed(owner: str) -> None:
    """The instance that held ``owner`` is closed: its rows may be reclaimed."""
    _open_owners.discard(owner)


def process_identity(pid: int) -> str | None:
    """``"<pid>:<start time>"`` of a live process, or None if it is gone (or a zombie).

    The start time tells a reused pid from the process that owned a row.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            data = stat.read()
    except FileNotFoundError:
        return None
    except OSError:  # no /proc: fall back to "does the pid exist"
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return f"{pid}:0"
    # The command name may hold spaces and parentheses: fields start after the last ')'.
    fields = data[data.rindex(b")") + 2 :].split()
    if fields[0] in (b"Z", b"X"):  # killed, not yet reaped: as dead as it gets
        return None
    return f"{pid}:{fields[19].decode()}"


def owner_alive(owner: str) -> bool:
    """Whether the spool instance named by an ``owner`` value still runs.

    Another process's instance counts as alive while that process runs: only
    this process knows which of its instances are closed.
    """
    parts = owner.split(":")
    try:
        pid = int(parts[0])
    except ValueError:
        return False
    if len(parts) > 2 and pid == os.getpid():
        return owner in _open_owners
    return process_identity(pid) == ":".join(parts[:2])
