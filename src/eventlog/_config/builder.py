"""Building a pipeline's parts from its settings, once, at configure time.

:func:`build` owns the choices made before the first event: which plugins
the settings name (:func:`eventlog._config.selection.select_plugins` checks every
setting), the formatter and its whole-batch encoder, the transport factory
and its first instance, the enrichers by stage (and whether the worker's fast
path can stand in for them), and the mask that keeps the transport's secrets
out of warnings.  A bad setting raises :class:`~eventlog._core.errors.ConfigurationError`
here, not at the first send.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from eventlog._config.classes import check_spill
from eventlog._config.config import Settings
from eventlog._config.contracts import Formatter, PluginContext, Transport, batch_encoder
from eventlog._config.registry import Registry
from eventlog._config.selection import select_plugins
from eventlog._core.masking import SecretMask
from eventlog._records.event import Event

Enricher = Callable[[Event], None]

#: The module of the built-in enrichers, whose work the fast path does itself.
_BUILTIN_ENRICHERS = "eventlog._builtin.enrichers"


@dataclass(frozen=True)
class Components:
    """What a pipeline is made of: built from settings by :func:`build`."""

    transport_name: str
    format_name: str
    formatter: Formatter
    #: Makes a new transport instance: at the first send, and after each failure.
    transport_factory: Callable[[], Transport]
    #: The first instance, built by :func:`build` so that its configuration errors surface there.
    first_transport: Transport
    #: Hides the transport's secrets in every text that leaves the process (warnings).
    mask: SecretMask
    #: Run on the caller's thread, at submit (the lists are the pipeline's: a test may add to them).
    caller_enrichers: list[Enricher]
    #: Run by the worker on each event that takes the careful path.
    worker_enrichers: list[Enricher]
    #: The built-in host and site enrichers: the fast path merges what they set once per worker.
    static_enrichers: list[Enricher]
    #: True when every enricher is a built-in one the fast path stands in for.
    fast: bool
    #: True when the built-in context enricher is configured (the fast path copies the context).
    with_context: bool
    #: The formatter's whole-batch encoder (format_many, split_many), when it agrees with format.
    format_many: Callable[[list[dict[str, Any]]], bytes] | None
    split_many: Callable[[bytes], list[bytes]] | None
    #: The transport's own settings, parsed (spool rows record where they go from them).
    transport_options: dict[str, Any]


def build(
    settings: Settings, registry: Registry, conversions: MutableMapping[str, int] | None = None
) -> Components:
    """The components ``settings`` name, found in ``registry``; raises ConfigurationError.

    ``conversions`` (the pipeline's ``stats.converted``) is where the plugins count the
    values they change (``PluginContext.count_conversion``).
    """
    conversions = {} if conversions is None else conversions
    selection = select_plugins(settings, registry)  # every setting checked, or raises
    check_spill(settings.overload_policy, settings.db)  # overload_policy spill needs the spool
    transport_name, transport_spec = selection.transport_name, selection.transport.spec
    format_name, formatter_reg = selection.format_name, selection.formatter
    formatter_options = settings.plugin_options(format_name, formatter_reg.spec.options)
    formatter: Formatter = formatter_reg.spec.factory(
        PluginContext(settings, formatter_options, conversions=conversions)
    )
    transport_options = settings.plugin_options(transport_name, transport_spec.options)
    # Every transport's error text passes this before it leaves the process (warnings),
    # so a plugin that quotes its own secret in an exception does not leak it.
    mask = SecretMask.for_options(transport_spec.options, transport_options)

    def transport_factory() -> Transport:
        return transport_spec.factory(
            PluginContext(settings, transport_options, formatter, format_name, conversions=conversions)
        )

    # Build one now so that configuration errors surface at configure time.
    first_transport = transport_factory()
    caller_enrichers: list[Enricher] = []
    worker_enrichers: list[Enricher] = []
    # The built-in host, site and context enrichers set what the fast path merges
    # itself (see eventlog._engine.encoder); any other enricher makes every event take the careful path.
    fast = True
    static_enrichers: list[Enricher] = []
    with_context = False
    for enricher_name, enricher_reg in selection.enrichers:
        spec = enricher_reg.spec
        enricher_options = settings.plugin_options(enricher_name, spec.options)
        func = spec.factory(PluginContext(settings, enricher_options, conversions=conversions))
        (caller_enrichers if spec.stage == "caller" else worker_enrichers).append(func)
        builtin = spec.factory.__module__ == _BUILTIN_ENRICHERS
        if builtin and enricher_name in ("host", "site"):
            static_enrichers.append(func)
        elif builtin and enricher_name == "context":
            with_context = True
        else:
            fast = False
    encoder = batch_encoder(formatter)
    format_many, split_many = encoder if encoder is not None else (None, None)
    return Components(
        transport_name=transport_name,
        format_name=format_name,
        formatter=formatter,
        transport_factory=transport_factory,
        first_transport=first_transport,
        mask=mask,
        caller_enrichers=caller_enrichers,
        worker_enrichers=worker_enrichers,
        static_enrichers=static_enrichers,
        fast=fast,
        with_context=with_context,
        format_many=format_many,
        split_many=split_many,
        transport_options=transport_options,
    )
