"""The hooks a plugin implements.

A plugin is a module (or object) with functions named like the stubs below and
decorated with :data:`eventlog.plugin.hookimpl`.  It is found through the entry-point
group ``eventlog`` in its distribution's ``pyproject.toml``::

    [project.entry-points.eventlog]
    redis_streams = "eventlog_redis_streams.plugin"

The core's own formatters, transports and enrichers are registered through
these very hooks (``eventlog/_builtin/``), so a third-party plugin has exactly
the powers of a built-in one.  Hooks are called once, when the registry is
built (at the first ``configure()`` or first event); never per event.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import pluggy

from eventlog._config.contracts import EnricherSpec, FormatterSpec, TransportSpec

hookspec = pluggy.HookspecMarker("eventlog")
hookimpl = pluggy.HookimplMarker("eventlog")


@hookspec
def eventlog_formatters() -> Sequence[FormatterSpec]:
    """Return the formatters this plugin provides.

    Called once when the registry is built.  Each :class:`FormatterSpec` has a
    ``name`` (what ``EVENTLOG_FORMAT`` selects), a ``factory`` that receives a
    :class:`~eventlog._config.contracts.PluginContext` and returns a
    :class:`~eventlog._config.contracts.Formatter`, the ``options`` it reads, and
    its ``framing`` (``"lines"``, ``"self-delimiting"`` or ``"unframed"``,
    the default), which decides the transports that can carry it.  A name
    another distribution registers too cannot be selected: ``eventlog
    plugins`` and a warning name both.  An exception raised here leaves this
    plugin out (reported the same way), not the others.
    """
    raise NotImplementedError


@hookspec
def eventlog_transports() -> Sequence[TransportSpec]:
    """Return the transports this plugin provides.

    Called once when the registry is built.  Each :class:`TransportSpec` has
    a ``name`` (what ``EVENTLOG_TRANSPORT`` selects), a ``factory`` that
    receives a :class:`~eventlog._config.contracts.PluginContext` (core settings,
    the transport's own validated options, the chosen formatter) and returns
    a :class:`~eventlog._config.contracts.Transport`, the framings it ``carries``
    (``{"lines"}`` unless declared; :data:`~eventlog._config.contracts.ALL_FRAMINGS`
    for a transport that frames each payload itself) or instead the exact
    ``formats`` it carries, by name, and the ``default_format`` used when none
    is configured.  A format it cannot carry is refused at configure time.
    """
    raise NotImplementedError


@hookspec
def eventlog_enrichers() -> Sequence[EnricherSpec]:
    """Return the enrichers this plugin provides.

    Called once when the registry is built.  ``EVENTLOG_ENRICHERS`` names the
    ones to run, in order.  Each :class:`EnricherSpec` has a ``factory``
    returning ``func(event)``, which edits the :class:`~eventlog.Event` in
    place, and a ``stage``: ``"worker"`` (default, off the hot path) or
    ``"caller"`` (runs in the logging thread; keep it to a few attribute
    reads).  An exception from an enricher is counted, and the event goes on.
    """
    raise NotImplementedError


@hookspec
def eventlog_add_commands(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add sub-commands to the ``eventlog`` command line.

    Receives the ``argparse`` sub-parsers object.  Add a parser and set its
    ``func`` default to a callable taking the parsed ``argparse.Namespace``
    and returning the exit status::

        p = subparsers.add_parser("capnp", help="print the Cap'n Proto schema")
        p.set_defaults(func=run)
    """
