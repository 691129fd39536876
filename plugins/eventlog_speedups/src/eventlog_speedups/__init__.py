"""A compiled fast path for eventlog's worker: log records to wire dicts.

eventlog uses it when it is installed (``pip install --find-links dist/ 'eventlog[speedups]==0.1.0'``)
and ``EVENTLOG_SPEEDUPS`` is not ``0``.  It takes only the plain case (ASCII
text, numbers, no exception) and hands everything else back to the Python
path, so the wire dicts, and every format's bytes, are the same either way.
``_otlp`` does the same for eventlog-otlp's protobuf encoder (its Python one is
the reference).
"""
