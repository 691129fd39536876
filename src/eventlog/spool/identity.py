"""Which process owns a spool row (``"<pid>:<start time>"``), and whether it still runs.

Many processes may share one spool path (gunicorn workers): a row belongs to the
process that added or claimed it, and the rows of a process that died are
reclaimed by any live one.
"""

from __future__ import annotations

import os


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
    """Whether the process named by an ``owner`` value still runs."""
    try:
        pid = int(owner.split(":", 1)[0])
    except ValueError:
        return False
    return process_identity(pid) == owner
