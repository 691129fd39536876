"""A test plugin whose dependency is missing: importing it fails, as a half-installed plugin does."""

from __future__ import annotations

import eventlog_missing_dependency  # noqa: F401  (never installed: the point of this plugin)

from eventlog._builtin.transports import ConsoleTransport
from eventlog.plugin import TransportSpec, hookimpl


@hookimpl
def eventlog_transports() -> list[TransportSpec]:
    return [TransportSpec("broken", lambda context: ConsoleTransport(), "never loads")]
