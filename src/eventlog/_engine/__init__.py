"""The worker and what it owns.

The pipeline (queue, thread, flush, shutdown, fork), its accounting and stats, sending with
retries, spool-mode delivery, encoding batches, and the Prometheus view of the stats.
Imports the layers below it (core, records, config, spool), never the doors or integrations.
"""
