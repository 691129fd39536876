"""Prometheus metrics, read from plain counters at scrape time.

The engine counts in ordinary integers (the worker owns most of them); this
collector turns them into metric families only when Prometheus scrapes, so no
metric lock is taken per event.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator
from typing import Any, Protocol

from eventlog._engine.stats import LATENCY_BUCKETS, Stats


class Measured(Protocol):
    """What the collector reads of a pipeline at scrape time (:class:`eventlog.Pipeline` is one)."""

    name: str
    stats: Stats

    def queue_depth(self) -> int: ...
    def spool_depth(self) -> int: ...
    def shed_counts(self) -> dict[tuple[str, str], int]: ...
    def spilled_count(self) -> int: ...


_pipelines: weakref.WeakSet[Measured] = weakref.WeakSet()


def track(pipeline: Measured) -> None:
    """Make a pipeline visible to the collector (until :func:`untrack`)."""
    _pipelines.add(pipeline)


def untrack(pipeline: Measured) -> None:
    """Stop exporting a pipeline (at its shutdown): only live pipelines are scraped.

    The weak set alone is not enough: a pipeline replaced by ``configure()`` would be
    exported beside its successor, under the same name, until it is freed.
    """
    _pipelines.discard(pipeline)


class EventlogCollector:
    """A prometheus_client collector over every live pipeline."""

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        accepted = CounterMetricFamily(
            "eventlog_events_accepted", "Events accepted into the queue", labels=["pipeline"]
        )
        sent = CounterMetricFamily(
            "eventlog_events_sent", "Events the transport delivered", labels=["pipeline"]
        )
        dropped = CounterMetricFamily(
            "eventlog_events_dropped", "Events given up, by reason", labels=["pipeline", "reason"]
        )
        converted = CounterMetricFamily(
            "eventlog_values_converted",
            "Values changed to be encodable (truncated, not text, ...), by reason",
            labels=["pipeline", "reason"],
        )
        retries = CounterMetricFamily("eventlog_send_retries", "Batch sends retried", labels=["pipeline"])
        errors = CounterMetricFamily(
            "eventlog_send_errors",
            "Failed batch sends, by error (ConnectError, SendTimeout, AuthError ...)",
            labels=["pipeline", "error"],
        )
        depth = GaugeMetricFamily("eventlog_queue_depth", "Events waiting in memory", labels=["pipeline"])
        spooled = GaugeMetricFamily(
            "eventlog_spool_depth",
            "Events waiting in the spool, or in the worker's memory for it (spool mode)",
            labels=["pipeline"],
        )
        up = GaugeMetricFamily("eventlog_transport_up", "1 when the last send succeeded", labels=["pipeline"])
        fallback = CounterMetricFamily(
            "eventlog_spool_fallback",
            "Events sent from memory because the spool could not be written, by reason",
            labels=["pipeline", "reason"],
        )
        quarantined = CounterMetricFamily(
            "eventlog_spool_quarantined_rows",
            "Spool rows that could not be read, moved to the quarantine table, by reason",
            labels=["pipeline", "reason"],
        )
        reopened = CounterMetricFamily(
            "eventlog_spool_reopened",
            "Times the spool file was deleted or replaced while in use and a fresh one opened",
            labels=["pipeline", "reason"],
        )
        restarts = CounterMetricFamily(
            "eventlog_worker_restarts",
            "Worker threads started again after one died of an error no batch contained",
            labels=["pipeline"],
        )
        shed = CounterMetricFamily(
            "eventlog_events_shed",
            "Events dropped under pressure (queue full, spool limits), by class of service and reason",
            labels=["pipeline", "class", "reason"],
        )
        spilled = CounterMetricFamily(
            "eventlog_events_spilled",
            "Events queued past a full queue into the spill reserve, for the spool (overload_policy spill)",
            labels=["pipeline"],
        )
        latency = HistogramMetricFamily(
            "eventlog_send_seconds", "Time one batch send took", labels=["pipeline"]
        )
        for pipeline in list(_pipelines):
            stats, name = pipeline.stats, pipeline.name
            queued = pipeline.queue_depth()
            accepted.add_metric([name], stats.taken + queued)
            sent.add_metric([name], stats.sent)
            for reason, count in sorted(stats.dropped_by_reason().items()):
                dropped.add_metric([name, reason], count)
            for reason, count in sorted(stats.converted.items()):
                converted.add_metric([name, reason], count)
            retries.add_metric([name], stats.retries)
            for error, count in sorted(stats.send_errors.items()):
                errors.add_metric([name, error], count)
            depth.add_metric([name], queued)
            spooled.add_metric([name], pipeline.spool_depth())
            up.add_metric([name], stats.transport_up)
            for reason, count in sorted(stats.spool_fallback.items()):
                fallback.add_metric([name, reason], count)
            for reason, count in sorted(stats.spool_quarantined.items()):
                quarantined.add_metric([name, reason], count)
            for reason, count in sorted(stats.spool_reopened.items()):
                reopened.add_metric([name, reason], count)
            restarts.add_metric([name], stats.worker_restarts)
            for (klass, reason), count in sorted(pipeline.shed_counts().items()):
                shed.add_metric([name, klass, reason], count)
            spilled.add_metric([name], pipeline.spilled_count())
            cumulative, buckets = 0, []
            for bound, count in zip((*LATENCY_BUCKETS, float("inf")), stats.latency_counts):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else str(bound), cumulative))
            latency.add_metric([name], buckets, stats.latency_sum)
        yield from (accepted, sent, dropped, converted, retries, errors)
        yield from (depth, spooled, up, fallback, quarantined, reopened, restarts, shed, spilled, latency)


_registered = False
_servers: dict[tuple[str, int], Any] = {}
_lock = threading.Lock()


def register_collector() -> None:
    """Add the collector to prometheus_client's default registry (once per process)."""
    global _registered
    with _lock:
        if _registered:
            return
        from prometheus_client import REGISTRY

        REGISTRY.register(EventlogCollector())  # type: ignore[arg-type]
        _registered = True


def serve(addr: str, port: int) -> int:
    """Serve the default registry over HTTP on ``addr:port`` (once per address); return the port."""
    register_collector()
    with _lock:
        if (addr, port) in _servers and port != 0:
            return port
        from prometheus_client import start_http_server

        server, _thread = start_http_server(port, addr=addr)
        bound = server.server_address[1]
        _servers[(addr, bound)] = server
        return int(bound)


def render() -> str:
    """The metrics in Prometheus text format (what a scrape returns)."""
    register_collector()
    from prometheus_client import REGISTRY, generate_latest

    return generate_latest(REGISTRY).decode("utf-8")
