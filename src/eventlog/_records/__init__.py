"""What an event is and how a record becomes a wire dict.

The schema, safe values, request context, the Event, the LogRecord mapping, redaction, and the
Record and Batch a transport is handed. Imports only :mod:`eventlog._core`.
"""
