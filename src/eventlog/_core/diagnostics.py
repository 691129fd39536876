"""eventlog's own loggers, warnings once per key, and the worker threads not to feed back.

Every module logs through ``logging.getLogger(__name__)``: all of them sit under the
``eventlog`` logger configured here, so a handler or level set on ``eventlog`` applies
to each, and :func:`is_own` tells their records from the application's.  A leaf
module, so every part of the library can report without importing the pipeline.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

#: The parent of eventlog's loggers.  It does not propagate, so an EventHandler on the
#: root logger never feeds eventlog's complaints about a dead peer back into it.
ROOT = logging.getLogger("eventlog")
ROOT.propagate = False
if not ROOT.handlers:
    _stderr = logging.StreamHandler()
    _stderr.setFormatter(logging.Formatter("eventlog: %(levelname)s: %(message)s"))
    ROOT.addHandler(_stderr)
    ROOT.setLevel(logging.INFO)
    # A fork while a worker thread writes a warning left the child a stream whose lock
    # stays held for ever (logging renews its own locks in the child, not a buffered
    # stream's): the child's first write hung.  The fork waits for that write to end.
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(before=_stderr.acquire, after_in_parent=_stderr.release)

log = logging.getLogger(__name__)

#: Idents of worker threads.  Records that libraries log from a worker (urllib3's retry
#: warnings ...) are not fed back into a pipeline: that would loop and could leak URLs.
WORKER_THREADS: set[int] = set()

#: Keys one :class:`Warnings` remembers; past it the oldest is forgotten (and may be logged
#: again), so a stream of distinct keys (a name per bad variable ...) cannot grow memory.
MAX_KEYS = 1024


def is_own(name: str) -> bool:
    """Whether a record of logger ``name`` is eventlog's own (``eventlog`` or under it)."""
    return name == "eventlog" or name.startswith("eventlog.")


def _module_names() -> frozenset[str]:
    package = Path(__file__).resolve().parent.parent
    names = {"eventlog"}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        names.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return frozenset(names)


#: The names of eventlog's loggers: one per module (``getLogger(__name__)``), and ``eventlog``.
#: The handler's feedback guard looks a record's name up here: a set lookup costs about
#: what the one string comparison it replaces did, where ``is_own``'s startswith costs 5x.
OWN_LOGGERS = _module_names()


class Warnings:
    """Warnings logged once per key: eventlog's one warn-once mechanism.

    A dead peer or a poison event would otherwise repeat the same warning for
    every batch; :meth:`again` re-arms a key once its condition has ended.
    ``name`` (a pipeline's, a middleware's) prefixes each message as ``[name]``;
    ``logger`` is the module's own (``logging.getLogger(__name__)``).  At most
    :data:`MAX_KEYS` keys are remembered.
    """

    def __init__(
        self, name: str = "", logger: logging.Logger | None = None, *, limit: int = MAX_KEYS
    ) -> None:
        self.name = name
        self.logger = logger if logger is not None else log
        self.limit = limit
        self._warned: dict[object, None] = {}  # insertion-ordered: the oldest is forgotten first

    def once(
        self,
        key: object,
        message: str,
        *args: object,
        exc_info: bool | BaseException = False,
        level: int = logging.WARNING,
    ) -> bool:
        """Log ``message % args`` unless ``key`` was logged already (``exc_info`` as logging's).

        Returns whether it was logged.
        """
        if key in self._warned:
            return False
        if len(self._warned) >= self.limit:
            del self._warned[next(iter(self._warned))]
        self._warned[key] = None
        text = message % args if args else message
        if self.name:
            self.logger.log(level, "[%s] %s", self.name, text, exc_info=exc_info)
        else:
            self.logger.log(level, "%s", text, exc_info=exc_info)
        return True

    def again(self, key: object) -> None:
        """The condition of ``key`` ended: the next occurrence is logged again."""
        self._warned.pop(key, None)

    def clear(self) -> None:
        """Forget every key (tests; a fresh start)."""
        self._warned.clear()

    def __contains__(self, key: object) -> bool:
        return key in self._warned
