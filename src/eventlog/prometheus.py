"""Prometheus metrics of every live pipeline, for an application that serves its own scrape.

``EVENTLOG_METRICS_PORT`` starts an endpoint for you; use these when the application already
has one (prometheus_client's default registry) or wants the text itself:

- :func:`register_collector`: add eventlog's collector to the default registry (once per process).
- :func:`serve`: serve the default registry over HTTP on an address and port; returns the port.
- :func:`render`: the metrics in Prometheus text format, what a scrape returns.

The metric names and labels are listed in docs/operations.md.
"""

from __future__ import annotations

from eventlog._engine.prometheus import register_collector, render, serve

__all__ = ["register_collector", "render", "serve"]
