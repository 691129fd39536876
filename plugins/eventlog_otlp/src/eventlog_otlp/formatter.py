"""Formatter ``otlp``: one event as an OpenTelemetry LogRecord (protobuf or OTLP/JSON).

The payload is the envelope of :mod:`eventlog_otlp.encoding`: the LogRecord
without its time fields, the event's instrumentation scope and its process
attributes; the ``otlp`` transport groups a batch of them into one
``ExportLogsServiceRequest``.  Spooled payloads keep their encoding: a row
written for ``http/json`` is refused, with the reason, by a transport now
sending ``http/protobuf``.
"""

from __future__ import annotations

import functools
from typing import Any, Self

from eventlog.plugin import Formatter, PluginContext
from eventlog_otlp import encoding
from eventlog_otlp.config import PROTOCOLS, resolve_protocol

# Module globals, not attribute lookups, in format(): it runs once per event.
_log_record = encoding.fast_log_record  # compiled with eventlog-speedups, else encoding.log_record
_head = encoding.HEAD.pack  # encoding.envelope_head

#: Scopes and resource keys kept encoded; past this many, new ones are encoded each time.
_CACHE_LIMIT = 1024


class OtlpFormatter(Formatter):
    """One OTLP LogRecord per event, in the envelope the ``otlp`` transport reads.

    >>> payload = OtlpFormatter().format({"id": "1", "tstamp": 0, "action": "signup"})
    >>> encoding.open_envelope(payload)[3]
    b'b\\x06signup2\\x15\\n\\x0elog.record.uid\\x12\\x03\\n\\x011'
    """

    content_type = "application/x-protobuf"

    def __init__(self, kind: int = encoding.PROTOBUF) -> None:
        self.kind = kind
        if kind == encoding.JSON:
            self.content_type = "application/json"  # type: ignore[misc]  # per instance
        self._scopes: dict[str, bytes] = {}
        self._resources: dict[tuple[Any, ...], bytes] = {}
        #: The last process identity format() saw and its resource key: [host, pid, site,
        #: cluster, key] (the compiled path reuses the key while the same objects come).
        self._last: list[Any] = [object()] * 4 + [b""]
        # Not under a subclass that overrides format(): the instance attribute would hide it.
        self._compiled = (
            kind == encoding.PROTOBUF
            and encoding.compiled is not None
            and type(self).format is OtlpFormatter.format
        )
        if self._compiled:
            # eventlog-speedups' payload(): the same bytes as format() below (a cached scope
            # and the last identity in C; anything else through format()).  An instance
            # attribute, no method: the engine calls it once per event, and a Python frame
            # around the C call would cost more than the record's encoding.
            self.format = functools.partial(  # type: ignore[method-assign]
                encoding.compiled.payload, self._scopes, self._last, self._format
            )
            # And a whole batch straight from the queued items (eventlog-speedups' envelopes():
            # the core's walk over each record or Event, no wire dict, no format() call): the
            # payloads back to back with their sizes; a scope or identity the caches do not
            # hold yet goes through format() of its wire dict, in C (Formatter.encode_items;
            # tests/test_otlp_items.py holds the bytes equal to the wire-dict path's).
            envelopes = getattr(encoding.compiled, "envelopes", None)
            if envelopes is not None:
                self.encode_items = functools.partial(envelopes, self._scopes, self._last, self.format)

    @classmethod
    def from_context(cls, context: PluginContext) -> Self:
        return cls(PROTOCOLS[resolve_protocol(context.options, context.settings.environ)])

    def format(self, wire: dict[str, Any]) -> bytes:
        kind = self.kind
        get = wire.get
        action = wire["action"]
        if get("tgType") == "logger" and type(action) is str and action.startswith("log."):
            name = get("target") or "root"  # the logger's name (encoding.scope_name)
        else:
            name = encoding.EVENT_SCOPE
        scope = self._scopes.get(name)
        if scope is None:
            scope = encoding.scope_bytes(kind, name)
            if len(self._scopes) < _CACHE_LIMIT:
                self._scopes[name] = scope
        identity = (get("host"), get("pid"), get("site"), get("cluster"))
        resource = self._resources.get(identity)
        if resource is None:
            resource = encoding.resource_key(wire)
            if len(self._resources) < _CACHE_LIMIT:
                self._resources[identity] = resource
        if self._compiled:  # the compiled payload() came here: let it take this identity next
            self._last[:] = [*identity, resource]
        if kind == encoding.PROTOBUF:
            record = _log_record(wire)
        else:
            record = encoding.json_text(encoding.json_log_record(wire))
        return b"".join((_head(kind, len(resource), len(scope)), resource, scope, record))

    #: The Python format(), also when the compiled payload() stands in the instance's ``format``.
    _format = format
