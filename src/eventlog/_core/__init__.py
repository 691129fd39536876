"""Leaf pieces every layer uses.

The exception tree (``errors``), eventlog's own logger and warn-once (``diagnostics``), option
declarations and their parsers (``options``), and the masking of secrets (``masking``).
Imports nothing else of eventlog.
"""
