"""eventlog's own logger (``log``) and the worker threads it must not feed back into a pipeline.

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
