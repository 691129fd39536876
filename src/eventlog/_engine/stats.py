"""Stats: the counters of one pipeline (accepted, sent, dropped by reason, latency).

A leaf module: the pipeline and its parts count here, the Prometheus
collector (:mod:`eventlog._engine.prometheus`) and ``eventlog.testing`` read it.
"""

from __future__ import annotations

import bisect

#: Upper bounds of the send-latency histogram, in seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Stats:
    """The counters of one pipeline.  Plain ints: written by one thread each."""

    def __init__(self) -> None:
        self.taken = 0  # events out of the queue: the worker took them, or shutdown gave them up
        self.sent = 0
        self.retries = 0
        self.send_errors: dict[str, int] = {}  # failed sends by error class (AuthError ...)
        self.dropped: dict[str, int] = {}
        self.converted: dict[str, int] = {}
        self.transport_up = 0
        self.latency_counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0
        self.overflow = 0  # written by callers under the pipeline's overflow lock
        self.spool_fallback: dict[str, int] = {}  # events sent from memory: spool unwritable
        self.spool_quarantined: dict[str, int] = {}  # spool rows set aside unreadable, by reason
        self.spool_reopened: dict[str, int] = {}  # spool file deleted or replaced under us, by reason
        self.worker_restarts = 0  # worker threads started again after one died

    def drop(self, reason: str, count: int = 1) -> None:
        """Count events given up, by reason (worker thread)."""
        self.dropped[reason] = self.dropped.get(reason, 0) + count

    def observe_latency(self, seconds: float) -> None:
        """Record one send's duration (worker thread)."""
        self.latency_counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += seconds

    def dropped_by_reason(self) -> dict[str, int]:
        """Every drop, including queue overflow."""
        out = dict(self.dropped)
        if self.overflow:
            out["queue_full"] = out.get("queue_full", 0) + self.overflow
        return out
