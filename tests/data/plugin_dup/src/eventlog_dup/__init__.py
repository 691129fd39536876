"""A test plugin that registers 'tcp' again, which must be refused naming both distributions."""

from __future__ import annotations

from eventlog import TransportSpec, hookimpl
from eventlog.builtin.transports import ConsoleTransport


@hookimpl
def eventlog_transports() -> list[TransportSpec]:
    return [TransportSpec("tcp", lambda context: ConsoleTransport(), "a second tcp")]
