"""The one place that owns the plugin manager.

Built-in plugins are registered exactly like third-party ones; entry points in
the group ``eventlog`` bring the rest.  The registry is built once; the engine
then calls plain bound methods, never hooks, per event.
"""

from __future__ import annotations

import argparse
import importlib.metadata
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

import pluggy

from eventlog import hookspecs
from eventlog.interfaces import EnricherSpec, FormatterSpec, PluginError, TransportSpec

ENTRY_POINT_GROUP = "eventlog"

#: Built-in plugin modules, registered in this order.
BUILTIN_MODULES = (
    "eventlog.builtin.formats",
    "eventlog.builtin.transports",
    "eventlog.builtin.enrichers",
    "eventlog.builtin.spool_commands",
)

#: Names our optional distributions provide, so an unknown name can say what to install.
EXTRAS: dict[str, str] = {
    "msgpack": "fluent",
    "fluent": "fluent",
    "capnp": "capnp",
    "capnp-packed": "capnp",
    "http": "http",
    "nats": "nats",
}

Kind = Literal["formatter", "transport", "enricher"]
S = TypeVar("S", FormatterSpec, TransportSpec, EnricherSpec)


@dataclass(frozen=True)
class Registered(Generic[S]):
    """A spec with where it came from."""

    spec: S
    plugin: str
    distribution: str
    version: str


def _core_version() -> str:
    try:
        return importlib.metadata.version("eventlog")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


class Registry:
    """Every installed formatter, transport and enricher, by name."""

    def __init__(self, *, load_entry_points: bool = True, extra_plugins: tuple[Any, ...] = ()):
        import importlib

        self.pm = pluggy.PluginManager("eventlog")
        self.pm.add_hookspecs(hookspecs)
        for module_name in BUILTIN_MODULES:
            self.pm.register(importlib.import_module(module_name), name=module_name)
        if load_entry_points:
            self.pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        for plugin in extra_plugins:
            self.pm.register(plugin)
        self._dists: dict[str, tuple[str, str]] = {}
        for plugin, dist in self.pm.list_plugin_distinfo():
            name = self.pm.get_name(plugin)
            if name is not None:
                self._dists[name] = (dist.metadata["name"], dist.version)
        self.formatters: dict[str, Registered[FormatterSpec]] = self._collect(
            "formatter", self.pm.hook.eventlog_formatters
        )
        self.transports: dict[str, Registered[TransportSpec]] = self._collect(
            "transport", self.pm.hook.eventlog_transports
        )
        self.enrichers: dict[str, Registered[EnricherSpec]] = self._collect(
            "enricher", self.pm.hook.eventlog_enrichers
        )

    def _collect(self, kind: Kind, hook: Any) -> dict[str, Registered[Any]]:
        found: dict[str, Registered[Any]] = {}
        # Call each implementation on its own so every spec knows its plugin.
        for impl in hook.get_hookimpls():  # registration order: built-ins first
            plugin_name = impl.plugin_name
            dist, version = self._dists.get(plugin_name, ("eventlog", _core_version()))
            for spec in impl.function() or ():
                if spec.name in found:
                    other = found[spec.name]
                    raise PluginError(
                        f"{kind} {spec.name!r} is registered twice: by {other.distribution} "
                        f"({other.plugin}) and by {dist} ({plugin_name}); "
                        "uninstall one of the two distributions"
                    )
                found[spec.name] = Registered(spec, plugin_name, dist, version)
        return found

    def _get(self, kind: Kind, table: dict[str, Registered[S]], name: str) -> Registered[S]:
        try:
            return table[name]
        except KeyError:
            pass
        installed = ", ".join(sorted(table)) or "none"
        hint = f"; pip install eventlog[{EXTRAS[name]}]" if name in EXTRAS else ""
        raise PluginError(
            f"{kind} {name!r} is not installed{hint} (installed {kind}s: {installed})"
        )

    def formatter(self, name: str) -> Registered[FormatterSpec]:
        """The formatter called ``name``, or a :class:`PluginError` saying what to install."""
        return self._get("formatter", self.formatters, name)

    def transport(self, name: str) -> Registered[TransportSpec]:
        """The transport called ``name``, or a :class:`PluginError` saying what to install."""
        return self._get("transport", self.transports, name)

    def enricher(self, name: str) -> Registered[EnricherSpec]:
        """The enricher called ``name``, or a :class:`PluginError` saying what to install."""
        return self._get("enricher", self.enrichers, name)

    def rows(self) -> list[tuple[str, str, str, str, str]]:
        """(kind, name, distribution, version, description) for every plugin, sorted."""
        rows: list[tuple[str, str, str, str, str]] = []
        for kind, table in (
            ("formatter", self.formatters),
            ("transport", self.transports),
            ("enricher", self.enrichers),
        ):
            for name, reg in table.items():
                rows.append((kind, name, reg.distribution, reg.version, reg.spec.description))
        return sorted(rows, key=lambda r: (r[2] != "eventlog", r[2], r[0], r[1]))

    def add_commands(self, subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
        """Let plugins add their sub-commands to the ``eventlog`` command."""
        self.pm.hook.eventlog_add_commands(subparsers=subparsers)


_default: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, built on first use."""
    global _default
    if _default is None:
        _default = Registry()
    return _default


def reset_registry() -> None:
    """Forget the process-wide registry (after installing a plugin at run time, or in tests)."""
    global _default
    _default = None
