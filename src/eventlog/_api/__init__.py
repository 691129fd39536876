"""The application's doors.

The module-level calls (``configure``, ``log_event``, ``flush``, ``shutdown``), the ``logging``
handler, counters and gauges, and the bridge that structlog and loguru use. Built on
:mod:`eventlog._engine`.
"""
