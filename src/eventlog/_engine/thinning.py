"""Sampling and per-template rate limits for sheddable events (issue 24, item 4); off by default.

``sample_sheddable=N`` keeps the first of every N events of each template;
``rate_limit_sheddable=R`` lets R events of each template a second through (a
token bucket holding one second's worth, at least one event).  Sampling comes
first; the rate limit counts what sampling kept.  Kept events are never
thinned.  A log record's template is its logger, level and message template
(``"cache miss %s"``, before its arguments); an Event's is its action and
logger.  What is not sent is counted as dropped{sampled} or
dropped{rate_limited} and shed{sheddable, ...}, and never enters the queue.

The counters are deterministic (a count per template, not a random draw), so a
test, or a receiver reading the ledger, knows exactly which events went.  At most
``TEMPLATES`` templates are tracked at once; past them the table starts again
(bounded memory: a template's next event is then kept as its first).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["TEMPLATES", "Thinning", "template"]

#: Templates tracked at once by each of the sample counts and the rate buckets.
TEMPLATES = 1000


def template(item: Any) -> tuple[Any, ...]:
    """The template of a queued item: (logger, level, message template) or (action, logger).

    Never raises: what cannot be read shares one template.
    """
    try:
        if type(item) is tuple:
            record = item[0]
            msg = record.msg
            return (record.name, record.levelno, msg if type(msg) is str else type(msg).__name__)
        target = item.target if item.tg_type == "logger" else None
        return (item.action, target, item.level)
    except Exception:
        return ("?",)


class Thinning:
    """Decides, per sheddable event, whether sampling or the rate limit drops it.

    Called under the pipeline's overflow lock (one writer); ``clock`` is
    ``time.monotonic`` (a test passes its own).
    """

    def __init__(self, every: int, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.every = every
        self.rate = rate
        self.burst = max(1.0, rate)  # one second's worth, at least one event
        self.clock = clock
        self._counts: dict[tuple[Any, ...], int] = {}
        self._buckets: dict[tuple[Any, ...], list[float]] = {}  # [tokens, when last filled]

    def verdict(self, item: Any) -> str | None:
        """None: queue it; else why it is not sent (``sampled`` or ``rate_limited``)."""
        key = template(item)
        if self.every > 1:
            counts = self._counts
            seen = counts.get(key, 0)
            if not seen and len(counts) >= TEMPLATES:
                counts.clear()
            counts[key] = seen + 1
            if seen % self.every:
                return "sampled"
        rate = self.rate
        if rate:
            now = self.clock()
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= TEMPLATES:
                    self._buckets.clear()
                self._buckets[key] = [self.burst - 1.0, now]
                return None
            # Plain comparisons, not min(): a builtin call costs more than the arithmetic.
            tokens = bucket[0] + (now - bucket[1]) * rate
            if tokens > self.burst:
                tokens = self.burst
            bucket[1] = now
            if tokens < 1.0:
                bucket[0] = tokens
                return "rate_limited"
            bucket[0] = tokens - 1.0
        return None
