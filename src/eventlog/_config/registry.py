"""The one place that owns the plugin manager.

Built-in plugins are registered exactly like third-party ones; entry points in
the group ``eventlog`` bring the rest.  The registry is built once; the engine
then calls plain bound methods, never hooks, per event.

One broken plugin must not break every process: each entry point is loaded on
its own, and a plugin that fails to load (or whose hook raises) is left out,
reported once as a warning and by ``eventlog plugins``.  A name two
distributions register is left out too.  Only selecting such a name fails,
at configure time, saying why it is unavailable.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

import pluggy

from eventlog._config import hookspecs
from eventlog._config.contracts import ALL_FRAMINGS, FRAMING_TEXT, EnricherSpec, FormatterSpec, TransportSpec
from eventlog._core.diagnostics import Warnings
from eventlog._core.errors import PluginError

ENTRY_POINT_GROUP = "eventlog"

#: Built-in plugin modules, registered in this order.
BUILTIN_MODULES = (
    "eventlog._builtin.formats",
    "eventlog._builtin.transports",
    "eventlog._builtin.syslog",
    "eventlog._builtin.ecs",
    "eventlog._builtin.enrichers",
    "eventlog._builtin.spool_commands",
    "eventlog._builtin.ledger_commands",
)

#: Names our optional distributions provide, so an unknown name can say what to install.
EXTRAS: dict[str, str] = {
    "msgpack": "fluent",
    "fluent": "fluent",
    "capnp": "capnp",
    "capnp-packed": "capnp",
    "http": "http",
    "nats": "nats",
    "otlp": "otlp",
}

#: The version this code was released as, when the installed metadata cannot say (a checkout on sys.path).
RELEASE = "0.1.0"


def core_version() -> str:
    """The installed eventlog's version (``eventlog --version`` prints it)."""
    try:
        return importlib.metadata.version("eventlog")
    except importlib.metadata.PackageNotFoundError:
        return RELEASE


def install_command(extra: str) -> str:
    """The pip command that adds ``extra`` to this eventlog, as errors and docs print it.

    The exact version pin is what keeps pip off the unrelated project called
    ``eventlog`` on the public index (0.5.2 to 0.11.0): a bare ``eventlog[http]``
    would replace this installation with it.  ``dist/`` holds the wheels
    ``nox -s package`` builds in a checkout.
    """
    return f"pip install --find-links dist/ 'eventlog[{extra}]=={core_version()}'"


Kind = Literal["formatter", "transport", "enricher"]
S = TypeVar("S", FormatterSpec, TransportSpec, EnricherSpec)
AnySpec = FormatterSpec | TransportSpec | EnricherSpec

#: The hook of each kind, and the spec class its implementations must return.
_HOOKS: tuple[tuple[Kind, str, type[AnySpec]], ...] = (
    ("formatter", "eventlog_formatters", FormatterSpec),
    ("transport", "eventlog_transports", TransportSpec),
    ("enricher", "eventlog_enrichers", EnricherSpec),
)

log = logging.getLogger(__name__)

#: Problems already warned about in this process: a registry built again (after
#: reset_registry(), or by eventlog.testing) does not repeat them.
_warned = Warnings(logger=log)


@dataclass(frozen=True)
class Registered(Generic[S]):
    """A spec with where it came from."""

    spec: S
    plugin: str
    distribution: str
    version: str


#: The "distribution" of a plugin given to ``Registry(extra_plugins=...)``: it has none.
IN_CODE = "(registered in code)"


def _from(distribution: str, version: str) -> str:
    """``from eventlog-dup 0.0.1``, or ``(registered in code)``."""
    return IN_CODE if distribution == IN_CODE else f"from {distribution} {version}"


def _remedy(distribution: str) -> str:
    if distribution == IN_CODE:
        return "fixed"
    return f"repaired or uninstalled (pip uninstall {distribution})"


@dataclass(frozen=True)
class BrokenPlugin:
    """A plugin left out: it failed to load, or a hook of it raised or returned nonsense.

    ``reason`` reads after "it": ``failed to load: ModuleNotFoundError: No module named 'x'``.
    """

    plugin: str
    distribution: str
    version: str
    reason: str

    def describe(self) -> str:
        """One line for the warning and for ``eventlog plugins``."""
        return (
            f"plugin {self.plugin!r} {_from(self.distribution, self.version)} {self.reason}; "
            "its formatters, transports and enrichers are unavailable until it is "
            f"{_remedy(self.distribution)}"
        )


@dataclass(frozen=True)
class Clash:
    """A name that two or more plugins register: none of them can be selected."""

    kind: Kind
    name: str
    holders: tuple[Registered[Any], ...]

    def holders_text(self) -> str:
        """``by eventlog 0.1.0 (plugin 'eventlog._builtin.transports') and by ...``."""
        return " and ".join(
            f"by plugin {h.plugin!r} {IN_CODE}"
            if h.distribution == IN_CODE
            else f"by {h.distribution} {h.version} (plugin {h.plugin!r})"
            for h in self.holders
        )

    def advice(self) -> str:
        """What to uninstall: never eventlog itself."""
        others = sorted({h.distribution for h in self.holders} - {"eventlog", IN_CODE})
        commands = " or ".join(f"pip uninstall {d}" for d in others)
        what = "uninstall one of the distributions"
        return f"{what} ({commands})" if commands else f"{what}, or register one plugin less"

    def times(self) -> str:
        """``twice``, ``3 times`` ..."""
        return "twice" if len(self.holders) == 2 else f"{len(self.holders)} times"

    def describe(self) -> str:
        """One line for the warning and for ``eventlog plugins``."""
        return (
            f"{self.kind} {self.name!r} is registered {self.times()}, {self.holders_text()}: "
            f"it cannot be selected until you {self.advice()}"
        )


def _core_version() -> str:
    try:
        return importlib.metadata.version("eventlog")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


def _distribution_of(ep: importlib.metadata.EntryPoint) -> tuple[str, str]:
    """(name, version) of the distribution declaring an entry point, as well as its metadata says."""
    dist = ep.dist
    try:
        if dist is not None and dist.metadata["Name"]:
            return dist.metadata["Name"], dist.version
    except (KeyError, OSError):  # metadata without a Name, or unreadable
        pass
    return f"the distribution of {ep.value}", "(version unknown)"


def _error_text(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _canonical(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


class Registry:
    """Every installed formatter, transport and enricher, by name, and what is broken."""

    def __init__(self, *, load_entry_points: bool = True, extra_plugins: tuple[Any, ...] = ()) -> None:
        self.pm = pluggy.PluginManager("eventlog")
        self.pm.add_hookspecs(hookspecs)
        #: Plugins left out, in the order they were found.
        self.broken: list[BrokenPlugin] = []
        #: Names registered more than once, by (kind, name).
        self.clashes: dict[tuple[Kind, str], Clash] = {}
        self._dists: dict[str, tuple[str, str]] = {}
        core = ("eventlog", _core_version())
        for module_name in BUILTIN_MODULES:
            self.pm.register(importlib.import_module(module_name), name=module_name)
            self._dists[module_name] = core
        if load_entry_points:
            self._load_entry_points()
        for plugin in extra_plugins:
            self.pm.register(plugin)
        tables = self._collect()
        self.formatters: dict[str, Registered[FormatterSpec]] = tables["formatter"]
        self.transports: dict[str, Registered[TransportSpec]] = tables["transport"]
        self.enrichers: dict[str, Registered[EnricherSpec]] = tables["enricher"]
        for problem in self.problems():
            self._warn(problem)

    # ------------------------------------------------------------ building

    def _load_entry_points(self) -> None:
        """Load and register each entry point on its own; a failure leaves out that one only."""
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            where = _distribution_of(ep)
            if self.pm.is_blocked(ep.name):
                continue
            if self.pm.has_plugin(ep.name):
                first = self._origin(ep.name)
                self.broken.append(
                    BrokenPlugin(
                        ep.name,
                        *where,
                        f"was not loaded: its entry point name is taken by {first[0]} "
                        f"{first[1]} (rename one entry point)",
                    )
                )
                continue
            try:
                plugin = ep.load()
                self.pm.register(plugin, name=ep.name)
            except Exception as exc:  # any import-time failure is this plugin's alone
                self.broken.append(BrokenPlugin(ep.name, *where, f"failed to load: {_error_text(exc)}"))
                continue
            self._dists[ep.name] = where

    def _collect(self) -> dict[Kind, dict[str, Registered[Any]]]:
        """Call each plugin's hooks on their own; keep its specs only if all of them worked."""
        offered: dict[str, list[tuple[Kind, Any]]] = {}
        failed: dict[str, str] = {}
        for kind, hook_name, spec_class in _HOOKS:
            # Registration order: built-ins first, then entry points, then extra plugins.
            for impl in getattr(self.pm.hook, hook_name).get_hookimpls():
                plugin_name = impl.plugin_name
                if plugin_name in failed:
                    continue
                try:
                    specs = list(impl.function() or ())
                except Exception as exc:
                    failed[plugin_name] = f"failed in {hook_name}(): {_error_text(exc)}"
                    continue
                problem = _check_specs(specs, spec_class, hook_name)
                if problem is not None:
                    failed[plugin_name] = problem
                    continue
                offered.setdefault(plugin_name, []).extend((kind, spec) for spec in specs)
        for plugin_name, reason in failed.items():
            dist, version = self._origin(plugin_name)
            self.broken.append(BrokenPlugin(self._label(plugin_name), dist, version, reason))
            plugin = self.pm.get_plugin(plugin_name)
            if plugin is not None:  # its other hooks (commands) must not run either
                self.pm.unregister(plugin)
        tables: dict[Kind, dict[str, Registered[Any]]] = {k: {} for k, _, _ in _HOOKS}
        for plugin_name, specs in offered.items():
            if plugin_name in failed:
                continue
            dist, version = self._origin(plugin_name)
            label = self._label(plugin_name)
            for kind, spec in specs:
                registered = Registered(spec, label, dist, version)
                table = tables[kind]
                clash = self.clashes.get((kind, spec.name))
                if clash is not None:
                    self.clashes[(kind, spec.name)] = Clash(kind, spec.name, (*clash.holders, registered))
                elif spec.name in table:
                    # Neither wins: a silent choice would send events where nobody meant.
                    self.clashes[(kind, spec.name)] = Clash(
                        kind, spec.name, (table.pop(spec.name), registered)
                    )
                else:
                    table[spec.name] = registered
        return tables

    def _origin(self, plugin_name: str) -> tuple[str, str]:
        """(distribution, version) of a registered plugin; IN_CODE for extra_plugins."""
        return self._dists.get(plugin_name, (IN_CODE, ""))

    def _label(self, plugin_name: str) -> str:
        """The plugin's name for people: pluggy names an unnamed object by its id()."""
        plugin = self.pm.get_plugin(plugin_name)
        if plugin_name.isdigit() and plugin is not None:
            return getattr(plugin, "__name__", type(plugin).__name__)
        return plugin_name

    @staticmethod
    def _warn(message: str) -> None:
        _warned.once(message, message)

    # ------------------------------------------------------------ lookups

    def _get(self, kind: Kind, table: dict[str, Registered[S]], name: str) -> Registered[S]:
        try:
            return table[name]
        except KeyError:
            pass
        clash = self.clashes.get((kind, name))
        if clash is not None:
            raise PluginError(
                f"{kind} {name!r} is unavailable: it is registered {clash.times()}, "
                f"{clash.holders_text()}; {clash.advice()}"
            )
        suspects = [b for b in self.broken if _may_provide(b, name)]
        if suspects:
            broken = suspects[0]
            remedy = (
                "fix that plugin"
                if broken.distribution == IN_CODE
                else f"repair or uninstall {broken.distribution}; `eventlog plugins` lists what is broken"
            )
            raise PluginError(
                f"{kind} {name!r} {_from(broken.distribution, broken.version)} is unavailable: "
                f"it {broken.reason} ({remedy})"
            )
        installed = ", ".join(sorted(table)) or "none"
        hint = f"; install it: {install_command(EXTRAS[name])}" if name in EXTRAS else ""
        message = f"{kind} {name!r} is not installed{hint} (installed {kind}s: {installed})"
        if self.broken:
            message += "; it may come from a plugin that failed: " + "; ".join(
                f"plugin {b.plugin!r} {_from(b.distribution, b.version)} {b.reason}" for b in self.broken
            )
        raise PluginError(message)

    def formatter(self, name: str) -> Registered[FormatterSpec]:
        """The formatter called ``name``, or a :class:`PluginError` saying why there is none."""
        return self._get("formatter", self.formatters, name)

    def transport(self, name: str) -> Registered[TransportSpec]:
        """The transport called ``name``, or a :class:`PluginError` saying why there is none."""
        return self._get("transport", self.transports, name)

    def enricher(self, name: str) -> Registered[EnricherSpec]:
        """The enricher called ``name``, or a :class:`PluginError` saying why there is none."""
        return self._get("enricher", self.enrichers, name)

    def check_carries(self, transport: str, format: str) -> None:
        """Raise a :class:`PluginError` unless the transport can carry the format.

        A transport that names its ``formats`` carries those; any other carries
        the formats whose framing is in its ``carries``.  The message says what
        it carries and what to set instead: formats it carries, and transports
        that carry this format.
        """
        transport_spec = self.transport(transport).spec
        formatter_spec = self.formatter(format).spec
        if _carries(transport_spec, formatter_spec):
            return
        if transport_spec.formats is not None:
            carries = "only " + ", ".join(sorted(transport_spec.formats))
        else:
            framing = formatter_spec.framing
            declared = (
                " (FormatterSpec.framing's default, which claims nothing)" if framing == "unframed" else ""
            )
            carries = (
                " or ".join(FRAMING_TEXT[f] for f in sorted(transport_spec.carries))
                + f", and {format}'s payloads are {FRAMING_TEXT[framing]}{declared}"
            )
        formats = [n for n, reg in sorted(self.formatters.items()) if _carries(transport_spec, reg.spec)]
        transports = [n for n, reg in sorted(self.transports.items()) if _carries(reg.spec, formatter_spec)]
        raise PluginError(
            f"transport {transport!r} cannot carry format {format!r}: it carries {carries}; "
            f"set EVENTLOG_FORMAT to a format it carries ({', '.join(formats) or 'none installed'}), "
            f"or EVENTLOG_TRANSPORT to a transport that carries {format} "
            f"({', '.join(transports) or 'none installed'})"
        )

    # ------------------------------------------------------------ listing

    def rows(self) -> list[tuple[str, str, str, str, str, str]]:
        """(kind, name, distribution, version, framing, description) for every plugin, sorted.

        ``framing`` is what a formatter writes, what a transport carries, and
        ``-`` for an enricher.
        """
        rows: list[tuple[str, str, str, str, str, str]] = []
        for name, f in self.formatters.items():
            rows.append(("formatter", name, f.distribution, f.version, f.spec.framing, f.spec.description))
        for name, t in self.transports.items():
            spec = t.spec
            carries = "any" if spec.carries == ALL_FRAMINGS else ",".join(sorted(spec.carries))
            if spec.formats is not None:
                carries = ",".join(sorted(spec.formats)) + " only"
            rows.append(("transport", name, t.distribution, t.version, carries, spec.description))
        for name, e in self.enrichers.items():
            rows.append(("enricher", name, e.distribution, e.version, "-", e.spec.description))
        return sorted(rows, key=lambda r: (r[2] != "eventlog", r[2], r[0], r[1]))

    def problems(self) -> list[str]:
        """One line per broken plugin and per clashing name (empty when all is well)."""
        return [b.describe() for b in self.broken] + [c.describe() for c in self.clashes.values()]

    def add_commands(self, subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
        """Let plugins add their sub-commands to the ``eventlog`` command.

        Each plugin's hook runs on its own: one that raises (or adds a command
        another plugin added) loses its commands and is warned about, and the
        rest of the command line works.
        """
        for impl in self.pm.hook.eventlog_add_commands.get_hookimpls():
            try:
                impl.function(subparsers=subparsers)
            except Exception as exc:
                dist, version = self._origin(impl.plugin_name)
                self._warn(
                    f"plugin {self._label(impl.plugin_name)!r} {_from(dist, version)} failed in "
                    f"eventlog_add_commands(): {_error_text(exc)}; its commands are left out"
                )


def _check_specs(specs: Iterable[Any], spec_class: type[AnySpec], hook_name: str) -> str | None:
    """Why the specs a hook returned cannot be used, or None."""
    seen: set[str] = set()
    for spec in specs:
        if not isinstance(spec, spec_class):
            name = getattr(spec, "name", None)
            shown = f"{type(spec).__name__} {name!r}" if isinstance(name, str) else repr(spec)[:80]
            return f"returned {shown} from {hook_name}(), where a {spec_class.__name__} was expected"
        if spec.name in seen:
            return f"returned the name {spec.name!r} twice from {hook_name}()"
        seen.add(spec.name)
    return None


def _carries(transport: TransportSpec, formatter: FormatterSpec) -> bool:
    if transport.formats is not None:  # named formats: the author chose them knowingly
        return formatter.name in transport.formats
    return formatter.framing in transport.carries


def _may_provide(broken: BrokenPlugin, name: str) -> bool:
    """Whether a plugin that failed is likely the one providing ``name`` (we cannot ask it).

    By convention the entry point is named after the plugin's main name, and
    our own distributions are ``eventlog-<extra>``.
    """
    dist = _canonical(broken.distribution)
    wanted = _canonical(name)
    candidates = {wanted, f"eventlog-{wanted}"}
    if name in EXTRAS:
        candidates.add(f"eventlog-{EXTRAS[name]}")
    return _canonical(broken.plugin) == wanted or dist in candidates


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
