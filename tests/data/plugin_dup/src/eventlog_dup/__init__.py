"""A test plugin that registers 'tcp' again, which must be refused naming both distributions."""

from __future__ import annotations

from eventlog._builtin.transports import ConsoleTransport
from eventlog.plugin import TransportSpec, hookimpl


@hookimpl
def eventlog_transports() -> list[TransportSpec]:
    return [TransportSpec("tcp", lambda context: ConsoleTransport(), "a second tcp")]
