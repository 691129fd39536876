"""Enrichers ``host``, ``site``, ``context`` (worker stage) and ``code``, ``exception`` (caller)."""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Callable

from eventlog._config.contracts import EnricherSpec, PluginContext
from eventlog._config.hookspecs import hookimpl
from eventlog._records.event import Event, caller_location
from eventlog._records.wire import with_context_fields

EnrichFn = Callable[[Event], None]


#: This process's id; a forked child updates it (os.getpid() per event is a system call).
_pid = [os.getpid()]
os.register_at_fork(after_in_child=lambda: _pid.__setitem__(0, os.getpid()))


def _host(_: PluginContext) -> EnrichFn:
    host = socket.gethostname()

    def enrich(event: Event) -> None:
        event.host = event.host or host
        event.pid = event.pid or _pid[0]

    return enrich


def _site(context: PluginContext) -> EnrichFn:
    site, cluster = context.settings.site, context.settings.cluster

    def enrich(event: Event) -> None:
        if event.site is None:
            event.site = site
        if event.cluster is None:
            event.cluster = cluster

    return enrich


def _context(_: PluginContext) -> EnrichFn:
    def enrich(event: Event) -> None:
        ctx = event.context
        if event.user is None:
            event.user = ctx.user
        if event.session is None:
            event.session = ctx.session
        if event.request_id is None:
            event.request_id = ctx.request_id
        if ctx.fields:
            event.fields = with_context_fields(event.fields, ctx.fields)

    return enrich


def _code(_: PluginContext) -> EnrichFn:
    def enrich(event: Event) -> None:
        if event.code_file is None:
            event.code_file, event.code_line, event.code_func = caller_location(2)

    return enrich


def _exception(_: PluginContext) -> EnrichFn:
    from eventlog._records.logrecords import exception_json

    def enrich(event: Event) -> None:
        # Events made inside an ``except`` block carry the exception being handled.
        if event.exc_info is None:
            exc = sys.exc_info()
            if exc[0] is not None:
                event.exc_info = exception_json(exc)

    return enrich


@hookimpl
def eventlog_enrichers() -> list[EnricherSpec]:
    return [
        EnricherSpec("host", _host, "worker", "host name and process id"),
        EnricherSpec("site", _site, "worker", "EVENTLOG_SITE and EVENTLOG_CLUSTER"),
        EnricherSpec("context", _context, "worker", "user, session, request id and fields of the context"),
        EnricherSpec("code", _code, "caller", "file, line, function of every event (costly)"),
        EnricherSpec("exception", _exception, "caller", "the exception being handled, if any"),
    ]
