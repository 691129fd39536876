"""eventlog's own logger (``log``), warnings once per key, and the worker threads not to feed back.

A leaf module, so every part of the library can report without importing the pipeline.
"""

from __future__ import annotations

import logging

#: eventlog's own diagnostics.  It does not propagate, so an EventHandler on the
#: root logger never feeds eventlog's complaints about a dead peer back into it.
log = logging.getLogger("eventlog")
log.propagate = False
if not log.handlers:
    _stderr = logging.StreamHandler()
    _stderr.setFormatter(logging.Formatter("eventlog: %(levelname)s: %(message)s"))
    log.addHandler(_stderr)
    log.setLevel(logging.INFO)

#: Idents of worker threads.  Records that libraries log from a worker (urllib3's retry
#: warnings ...) are not fed back into a pipeline: that would loop and could leak URLs.
WORKER_THREADS: set[int] = set()


class Warnings:
    """Warnings logged once per key, named after the pipeline (it and its parts share one).

    A dead peer or a poison event would otherwise repeat the same warning for
    every batch; :meth:`again` re-arms a key once its condition has ended.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._warned: set[str] = set()

    def once(self, key: str, message: str, exc_info: bool | BaseException = False) -> None:
        """Log ``message`` unless a warning with ``key`` was logged already (``exc_info`` as logging's)."""
        if key in self._warned:
            return
        self._warned.add(key)
        log.warning("[%s] %s", self.name, message, exc_info=exc_info)

    def again(self, key: str) -> None:
        """The condition of ``key`` ended: the next occurrence is logged again."""
        self._warned.discard(key)
