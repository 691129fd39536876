"""Choosing the plugins a pipeline's settings name, and checking every setting against them.

:func:`select_plugins` finds the transport, formatter and enrichers in the
registry and checks that each setting given belongs to one of them (or to the
core): a keyword for another transport names that transport, a misspelt
``EVENTLOG_*`` variable gets the nearest names.  :mod:`eventlog._config.config` holds
the settings themselves; this module is what joins them to the registry.
"""

from __future__ import annotations

import difflib
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypeVar

from eventlog._config.config import (
    ADDRESS,
    CORE_OPTIONS,
    ENV_PREFIX,
    NOT_SETTINGS,
    Settings,
    _django_settings,
    env_name,
    option_key,
)
from eventlog._config.registry import EXTRAS, install_command
from eventlog._config.web_options import OPTIONS as WEB_OPTIONS
from eventlog._core.diagnostics import Warnings
from eventlog._core.errors import ConfigurationError, PluginError
from eventlog._core.options import Option, shown

if TYPE_CHECKING:
    from eventlog._config.contracts import EnricherSpec, FormatterSpec, TransportSpec
    from eventlog._config.registry import Registered, Registry

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- choosing the plugins


class Selection(NamedTuple):
    """The plugins a pipeline's settings name, found in the registry."""

    transport_name: str
    transport: Registered[TransportSpec]
    format_name: str
    formatter: Registered[FormatterSpec]
    enrichers: tuple[tuple[str, Registered[EnricherSpec]], ...]


class Owner(NamedTuple):
    """Who reads a setting: the core, one plugin, or the Django middleware."""

    kind: Literal["core", "formatter", "transport", "enricher", "django"]
    plugin: str
    option: Option

    def describe(self) -> str:
        if self.kind == "core":
            return "a core setting"
        if self.kind == "django":
            return "a setting of the Django middleware (eventlog.django)"
        return f"a setting of {_KIND_WORDS[self.kind][0]} {self.plugin!r}"


#: kind -> (what the user calls it, the setting that selects it)
_KIND_WORDS = {
    "formatter": ("format", "format"),
    "transport": ("transport", "transport"),
    "enricher": ("enricher", "enrichers"),
}


def select_plugins(settings: Settings, registry: Registry) -> Selection:
    """The transport, formatter and enrichers ``settings`` name, with every setting checked.

    Raises :class:`ConfigurationError` for a name that is not installed, a
    format the transport cannot carry, and a keyword setting that nothing in
    this pipeline reads; warns once per process about ``EVENTLOG_*``
    environment variables and Django settings that nothing reads.
    """
    transport_name = settings.transport or ("logstash" if settings.host else "console")
    transport = _find(settings, "transport", transport_name, registry.transport)
    format_name = settings.format or transport.spec.default_format
    formatter = _find(settings, "format", format_name, registry.formatter)
    # Framing and named formats: a line reader fed binary would fail no send.
    registry.check_carries(transport_name, format_name)
    enrichers = tuple(
        (name, _find(settings, "enrichers", name, registry.enricher)) for name in settings.enrichers
    )
    selection = Selection(transport_name, transport, format_name, formatter, enrichers)
    check_settings(settings, registry, selection)
    return selection


T = TypeVar("T")


def _find(settings: Settings, key: str, name: str, find: Callable[[str], T]) -> T:
    try:
        return find(name)
    except PluginError as exc:
        found = settings.raw(key)
        if found is None:  # a default name: the registry's message says it all
            raise
        message = str(exc).replace(repr(name), shown(name))  # a name may be 100 KB long
        raise PluginError(f"{message}; it comes from {found[1]}") from None


def setting_owners(registry: Registry, *, django: bool = False) -> dict[str, list[Owner]]:
    """Every setting key (``host``, ``fluent_tag`` ...) and who reads it.

    Built from the core's options and every installed plugin's declared options
    (and with ``django=True`` the middleware's), so a new plugin's settings are
    known without a list kept by hand.
    """
    owners: dict[str, list[Owner]] = {}
    for option in CORE_OPTIONS:
        owners.setdefault(option.name, []).append(Owner("core", "", option))
    tables: tuple[tuple[Literal["formatter", "transport", "enricher"], Mapping[str, Any]], ...] = (
        ("formatter", registry.formatters),
        ("transport", registry.transports),
        ("enricher", registry.enrichers),
    )
    for kind, table in tables:
        for name, reg in table.items():
            for option in reg.spec.options:
                owners.setdefault(option_key(name, option), []).append(Owner(kind, name, option))
    if django:
        for option in WEB_OPTIONS:
            owners.setdefault(f"django_{option.name}", []).append(Owner("django", "", option))
    return owners


def _selected(selection: Selection) -> dict[str, set[str]]:
    return {
        "transport": {selection.transport_name},
        "formatter": {selection.format_name},
        "enricher": {name for name, _ in selection.enrichers},
    }


def check_settings(settings: Settings, registry: Registry, selection: Selection) -> None:
    """Refuse keyword settings this pipeline does not read; warn about such variables."""
    selected = _selected(selection)
    wants_django = any(key.startswith("django_") for key in settings.given) or any(
        name.upper().startswith(ENV_PREFIX + "DJANGO_") for name in _variables(settings)
    )
    owners = setting_owners(registry, django=wants_django)

    def read(key: str) -> bool:
        return any(o.kind == "core" or o.plugin in selected.get(o.kind, ()) for o in owners[key])

    for key in settings.given:
        if key in owners and read(key):
            continue
        raise ConfigurationError(_keyword_error(settings, key, owners, selection, registry))
    set_aside = settings.set_aside()
    for name, source in _variables(settings).items():
        if name in NOT_SETTINGS:
            continue
        if name in set_aside:
            given = ", ".join(f"{key}=..." for key in ADDRESS if settings.given.get(key) is not None)
            message = (
                f"{source} {name} is ignored: {settings.given_by}({given}) names the destination in "
                "code, and code decides transport, host and port together"
            )
            _reported.once((source, name), message)
            continue
        key = name[len(ENV_PREFIX) :].lower()
        if name == env_name(key) and key in owners:
            if read(key) or any(o.kind == "django" for o in owners[key]):
                continue
            # Set for a plugin this pipeline does not use.  When code chose the plugins, the
            # variable is likely meant for another pipeline (the default one): say nothing.
            if any(_KIND_WORDS[o.kind][1] in settings.given for o in owners[key]):
                continue
            if settings.code_sets_address() and any(o.kind == "transport" for o in owners[key]):
                continue  # code named the destination, and the report above says so
            message = f"{source} {name} is {_owned(owners[key])}, {_not_selected(owners[key], selection)}"
        elif (missing := _not_installed(key, registry)) is not None:
            message = f"{source} {name} is ignored: it {missing}"
        else:
            close = nearest(key, owners)
            hint = f"; did you mean {', '.join(map(env_name, close))}?" if close else ""
            message = (
                f"{source} {name} is not an eventlog setting and is ignored{hint} "
                "('eventlog plugins --settings' lists every setting)"
            )
        _reported.once((source, name), message)


def nearest(name: str, names: Iterable[str]) -> list[str]:
    """Up to three of ``names`` that ``name`` may be a misspelling of, nearest first."""
    names = sorted(names)
    if name.lower() in names:  # eventlog_port for EVENTLOG_PORT
        return [name.lower()]
    scored = []
    for candidate in names:
        ratio = difflib.SequenceMatcher(None, name, candidate).ratio()
        # difflib misses swapped letters in a short name ('bd' for 'db'): same letters count.
        if ratio >= 0.6 or sorted(candidate) == sorted(name):
            scored.append((max(ratio, 0.6), candidate))
    scored.sort(key=lambda pair: -pair[0])
    # Only the names about as near as the nearest: 'protocl' is 'protocol', not also 'tls'.
    return [candidate for ratio, candidate in scored if ratio >= scored[0][0] - 0.1][:3]


#: (source, name) of every variable already reported: each is reported once per process.
_reported = Warnings(logger=log)


def _variables(settings: Settings) -> dict[str, str]:
    """``EVENTLOG_*`` names in the environment and Django settings, with where they are."""
    found = {name: "environment variable" for name in settings.environ if name.upper().startswith(ENV_PREFIX)}
    django = _django_settings() if settings.use_django else None
    if django is not None:
        try:
            names = dir(django)
        except Exception:
            names = []
        for name in names:
            if name.startswith(ENV_PREFIX) and name not in found:
                found[name] = "Django setting"
    return found


def _owned(owners: list[Owner]) -> str:
    return " and ".join(dict.fromkeys(o.describe() for o in owners))


def _not_selected(owners: list[Owner], selection: Selection) -> str:
    """'but this pipeline's transport is 'tcp'; ...' for a plugin setting that is not read."""
    owner = next(o for o in owners if o.kind in _KIND_WORDS)
    word, key = _KIND_WORDS[owner.kind]
    if owner.kind == "enricher":
        current = ", ".join(name for name, _ in selection.enrichers) or "none"
        return (
            f"but {owner.plugin!r} is not among this pipeline's enrichers ({current}), "
            f"so it is ignored; add it to EVENTLOG_ENRICHERS (or configure(enrichers=[...]))"
        )
    current = selection.transport_name if owner.kind == "transport" else selection.format_name
    return (
        f"but this pipeline's {word} is {current!r}, so it is ignored; select it with "
        f"{env_name(key)}={owner.plugin} (or configure({key}={owner.plugin!r}))"
    )


def _not_installed(key: str, registry: Registry) -> str | None:
    """'looks like a setting of 'http', which is not installed; ...' when the key says so."""

    for plugin, extra in EXTRAS.items():
        installed = plugin in registry.transports or plugin in registry.formatters
        if not installed and key.startswith(plugin.replace("-", "_") + "_"):
            return f"looks like a setting of {plugin!r}, which is not installed ({install_command(extra)})"
    return None


def _keyword_error(
    settings: Settings,
    key: str,
    owners: Mapping[str, list[Owner]],
    selection: Selection,
    registry: Registry,
) -> str:
    call = f"{settings.given_by}()"
    if key in owners:
        found = owners[key]
        if all(o.kind == "django" for o in found):
            return (
                f"{call} got {key}, {_owned(found)}: the middleware reads {env_name(key)} "
                f"from settings.py or the environment, not from {call}"
            )
        return f"{call} got {key}, {_owned(found)}, {_not_selected(found, selection)}"
    missing = _not_installed(key, registry)
    if missing is not None:
        return f"{call} got {key}, which {missing}"
    close = nearest(key, owners)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return (
        f"{call} got an unknown setting {key!r}{hint} "
        "(run 'eventlog plugins --settings' to see every setting)"
    )


Parser = Callable[[Any], Any]
