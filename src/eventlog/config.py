"""Settings: from ``configure(...)``, the environment, then Django settings.

Every setting has one name in three spellings: ``configure(fluent_tag=...)``,
``EVENTLOG_FLUENT_TAG`` in the environment, ``EVENTLOG_FLUENT_TAG`` in Django's
settings.  Code wins over the environment, which wins over Django.  Values are
parsed and checked when the pipeline is configured, and an error names the
setting in the spelling of where it came from, the value (never a secret's)
and what is allowed.

The settings that exist are the core's :data:`CORE_OPTIONS` and the options
every installed plugin declares (and the Django middleware's): a keyword that
none of the pipeline's plugins reads is an error naming the plugin it belongs
to, and an ``EVENTLOG_*`` variable that nothing reads is reported once per
process, with the nearest setting names.
"""

from __future__ import annotations

import difflib
import functools
import inspect
import logging
import os
import sys
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypeVar

from eventlog.contracts import Option
from eventlog.errors import ConfigurationError, PluginError

if TYPE_CHECKING:
    from eventlog.contracts import EnricherSpec, FormatterSpec, TransportSpec
    from eventlog.registry import Registered, Registry

ENV_PREFIX = "EVENTLOG_"


# ---------------------------------------------------------------- parsers
#
# Each parser's docstring says what it accepts: an error shows its first paragraph as
# "allowed: ...".  A parser raises ValueError with a short reason when it cannot parse.

#: The largest whole number a setting may have: SQLite and the C library take 64 bits.
INT_LIMIT = 2**63 - 1
#: The longest duration a setting may have, in seconds (about 31 years): thread waits and
#: socket timeouts refuse more than about 9.2e9 seconds, and inf would wait for ever.
SECONDS_LIMIT = 1e9
#: A value shown in an error is cut to this many characters.
SHOWN_LIMIT = 80


def shown(value: Any) -> str:
    """``repr(value)``, cut to :data:`SHOWN_LIMIT` characters."""
    text = repr(value)
    return text if len(text) <= SHOWN_LIMIT else text[: SHOWN_LIMIT - 3] + "..."


def parse_str(value: Any) -> str:
    """Text, not empty."""
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {type(value).__name__}")
    if not value.strip():
        raise ValueError("must not be empty")
    return value


def parse_host(value: Any) -> str:
    """A host name, an IP address, or a Unix socket path (/path or unix:///path)."""
    text = parse_str(value).strip()
    if any(ch.isspace() or not ch.isprintable() for ch in text):
        raise ValueError("must not contain spaces or control characters")
    if text.startswith(("/", "unix://")):
        if len(text.removeprefix("unix://").encode()) > 107:
            raise ValueError("a Unix socket path is at most 107 bytes")
    elif len(text) > 253:
        raise ValueError("a host name is at most 253 characters")
    return text


def parse_int(value: Any) -> int:
    """A whole number (text such as '5001' is accepted)."""
    if isinstance(value, bool):
        raise ValueError("expected an integer, not a boolean")
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and value.is_integer():
        number = int(value)
    else:
        try:
            number = int(str(value).strip())
        except ValueError:
            raise ValueError(f"expected a whole number, got {shown(value)}") from None
    if not -INT_LIMIT - 1 <= number <= INT_LIMIT:
        raise ValueError(f"must be at most {INT_LIMIT}")
    return number


def parse_positive_int(value: Any) -> int:
    """A whole number, 1 or more."""
    number = parse_int(value)
    if number < 1:
        raise ValueError("must be 1 or more")
    return number


def parse_non_negative_int(value: Any) -> int:
    """A whole number, 0 or more."""
    number = parse_int(value)
    if number < 0:
        raise ValueError("must be 0 or more")
    return number


def parse_port(value: Any) -> int:
    """A port number, 0 to 65535."""
    number = parse_int(value)
    if not 0 <= number <= 65535:
        raise ValueError("a port is 0 to 65535")
    return number


def _duration(value: Any, unit: str, limit: float) -> float:
    if isinstance(value, bool):
        raise ValueError(f"expected a number of {unit}, not a boolean")
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"expected a number of {unit}, got {shown(value)}") from None
    if not number >= 0:  # also refuses NaN
        raise ValueError(f"must be 0 or more {unit}")
    if number > limit:
        raise ValueError(f"must be at most {limit:g} {unit}")
    return number


def parse_seconds(value: Any) -> float:
    """A number of seconds, 0 to 1e9."""
    return _duration(value, "seconds", SECONDS_LIMIT)


def parse_positive_seconds(value: Any) -> float:
    """More than 0 seconds, up to 1e9 (a timeout: 0 would mean not waiting at all)."""
    seconds = parse_seconds(value)
    if seconds <= 0:
        raise ValueError("must be more than 0 seconds")
    return seconds


def parse_millis(value: Any) -> float:
    """A number of milliseconds, 0 to 1e12."""
    return _duration(value, "milliseconds", SECONDS_LIMIT * 1000)


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_bool(value: Any) -> bool:
    """true or false (also yes/no, on/off, 1/0)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("expected true or false")


def parse_list(value: Any) -> tuple[str, ...]:
    """A comma-separated list (in code also a list or tuple of text)."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"expected a comma-separated list, got {type(value).__name__}")
    for number, item in enumerate(value, 1):
        if not isinstance(item, str) or not item.strip():
            raise ValueError(f"item {number} is {shown(item)}, expected text")
    return tuple(item.strip() for item in value)


def parse_path(value: Any) -> str:
    """A file system path (~ is expanded)."""
    if not isinstance(value, (str, os.PathLike)):
        raise ValueError(f"expected a path, got {type(value).__name__}")
    text = os.fspath(value)
    if not isinstance(text, str):
        raise ValueError("expected a path as text, not bytes")
    if not text.strip():
        raise ValueError("must not be empty")
    if "\0" in text:
        raise ValueError("must not contain a NUL character")
    return os.path.expanduser(text)


# ---------------------------------------------------------------- the core's settings

CORE_OPTIONS: tuple[Option, ...] = (
    Option("host", parse_host, None, "host of the log server; unset means console output"),
    Option("port", parse_port, None, "port of the log server"),
    Option("db", parse_path, None, "SQLite spool path; set means spool mode (durable)"),
    Option(
        "spool_max_bytes",
        parse_positive_int,
        256 * 1024 * 1024,
        "spool size limit in bytes; the oldest events are evicted beyond it",
    ),
    Option("spool_max_age", parse_seconds, 0.0, "evict spooled events older than so many seconds (0: never)"),
    Option(
        "spool_sync", parse_str, "normal", "SQLite synchronous level of the spool", choices=("normal", "full")
    ),
    Option("format", parse_str, None, "formatter name (default: the transport's)"),
    Option("transport", parse_str, None, "transport name (default: logstash if host is set)"),
    Option("site", parse_str, None, "site (organisation) name added to every event"),
    Option("cluster", parse_str, None, "cluster name added to every event"),
    Option("enrichers", parse_list, ("host", "site", "context"), "enrichers to run, in order"),
    Option("queue_size", parse_positive_int, 100_000, "events held in memory before drops"),
    Option("batch_size", parse_positive_int, 2000, "most events per send"),
    Option("linger_ms", parse_millis, 5.0, "how long a batch waits to fill, in ms"),
    Option("shutdown_timeout", parse_seconds, 5.0, "seconds shutdown may take at exit"),
    Option("retry_backoff_max", parse_seconds, 30.0, "longest wait between retries, seconds"),
    Option("max_retry_age", parse_seconds, 0.0, "give up on a batch after so many seconds (0: never)"),
    Option("counter_interval", parse_seconds, 60.0, "seconds between counter/gauge events (0: off)"),
    Option("metrics_port", parse_port, None, "serve Prometheus metrics on this port"),
    Option("metrics_addr", parse_str, "127.0.0.1", "address the metrics server binds"),
    Option("name", parse_str, "default", "pipeline name, the 'pipeline' label of metrics"),
)

CORE_NAMES = frozenset(o.name for o in CORE_OPTIONS)


def env_name(key: str) -> str:
    """``fluent_tag`` -> ``EVENTLOG_FLUENT_TAG``."""
    return ENV_PREFIX + key.upper().replace("-", "_")


def option_key(plugin: str, option: Option) -> str:
    """The settings key of a plugin option: ``fluent`` + ``tag`` -> ``fluent_tag``."""
    return f"{plugin.replace('-', '_')}_{option.name}"


#: ``EVENTLOG_*`` environment variables that are not settings but switches read elsewhere.
#: Tools that keep their own variables under the prefix (a test suite's
#: ``EVENTLOG_REQUIRE_PEERS``) add them here so that they are not reported as misspelt.
NOT_SETTINGS: set[str] = {"EVENTLOG_SPEEDUPS"}

log = logging.getLogger("eventlog")


def _django_settings() -> Any:
    """Django's settings object when Django is installed and configured, else None."""
    if "django.conf" not in sys.modules:  # never import Django for a non-Django app
        return None
    from django.conf import settings

    try:
        return settings if settings.configured else None
    except Exception:
        return None


# ---------------------------------------------------------------- what a value may be

#: What a parser returns says what it takes from code (keywords, Django settings): one
#: that returns text takes text, one that returns a number takes a number or text, one
#: that returns a tuple, list or mapping also takes a list or a mapping.
_TAKES: dict[str, tuple[type, ...]] = {
    "str": (str, os.PathLike),
    "int": (int, float, str),
    "float": (int, float, str),
    "bool": (bool, int, str),
}
_MANY = ("tuple", "list", "dict", "set", "frozenset", "Mapping", "Sequence", "Collection")
_PLAIN: tuple[type, ...] = (str, int, float, bool, os.PathLike)
_CONTAINERS: tuple[type, ...] = (list, tuple, set, frozenset, Mapping)
_TYPE_WORDS: dict[type, str] = {str: "text", int: "a whole number", float: "a number"}


def _returns(parse: Callable[[Any], Any]) -> str:
    """The name of the type ``parse`` returns ('' when it does not say)."""
    try:
        return _returns_cached(parse)
    except TypeError:  # a callable object that cannot be hashed
        return _returns_uncached(parse)


@functools.lru_cache(maxsize=512)
def _returns_cached(parse: Callable[[Any], Any]) -> str:
    return _returns_uncached(parse)


def _returns_uncached(parse: Callable[[Any], Any]) -> str:
    if isinstance(parse, type):
        return parse.__name__
    try:
        annotation = inspect.signature(parse).return_annotation
    except (TypeError, ValueError):
        return ""
    if annotation is inspect.Signature.empty:
        return ""
    if not isinstance(annotation, str):  # a module without `from __future__ import annotations`
        annotation = getattr(typing.get_origin(annotation) or annotation, "__name__", "")
    return str(annotation).split("[", 1)[0].strip().rsplit(".", 1)[-1]


def _check_type(value: Any, option: Option) -> None:
    """Refuse a value from code whose type the option's parser cannot mean."""
    returns = _returns(option.parse)
    if returns in _MANY:
        accepted: tuple[type, ...] = (*_PLAIN, *_CONTAINERS)
    else:
        accepted = _TAKES.get(returns, _PLAIN)
    if not isinstance(value, accepted):
        raise ValueError(f"expected {_type_words(accepted)}, got {type(value).__name__}")
    if returns not in _MANY and isinstance(value, str) and not value.strip():
        raise ValueError("must not be empty")


def _type_words(types: tuple[type, ...]) -> str:
    words = {
        str: "text",
        int: "a number",
        float: "a number",
        bool: "true/false",
        list: "a list",
        Mapping: "a mapping",
    }
    named = dict.fromkeys(words[t] for t in types if t in words)
    return " or ".join(named) if named else "another type"


def allowed(option: Option) -> str:
    """What ``option`` accepts, as errors show it: its choices, else its parser's docstring.

    The first paragraph of the parser's docstring is used, so a plugin's parser
    documents its own values; without one, the option's help.
    """
    if option.choices is not None:
        return "one of: " + ", ".join(option.choices)
    parse = option.parse
    if isinstance(parse, type):
        return _TYPE_WORDS.get(parse, option.help or parse.__name__)
    doc = inspect.getdoc(parse) or ""
    text = " ".join(doc.split("\n\n", 1)[0].split()).replace("``", "").rstrip(".")
    if not text:
        return option.help or "see 'eventlog plugins --settings'"
    first = text.split(" ", 1)[0]
    if first[:1].isupper() and (first == "A" or first[1:].islower()):
        text = text[0].lower() + text[1:]  # "A port number" reads "allowed: a port number"
    return text


# ---------------------------------------------------------------- resolution


@dataclass(frozen=True)
class Settings:
    """Resolved core settings plus access to every raw value for plugin options."""

    values: Mapping[str, Any]
    given: Mapping[str, Any]
    environ: Mapping[str, str]
    #: False for the fallback pipeline, which must not fail on a bad Django setting.
    use_django: bool = True
    #: Who took the keyword settings, as errors name them: configure(host=...), EventHandler(...).
    given_by: str = "configure"

    def __getattr__(self, key: str) -> Any:
        try:
            return self.values[key]
        except KeyError:
            raise AttributeError(key) from None

    @classmethod
    def load(
        cls,
        given: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
        *,
        use_django: bool = True,
        given_by: str = "configure",
    ) -> Settings:
        """Resolve the core settings from code, the environment and Django."""
        given = dict(given or {})
        environ = dict(os.environ if environ is None else environ)
        settings = cls({}, given, environ, use_django, given_by)
        values = {opt.name: settings.resolve(opt.name, opt) for opt in CORE_OPTIONS}
        return cls(values, given, environ, use_django, given_by)

    def source(self, key: str, *, env: bool = False, django: bool = False) -> str:
        """How ``key`` is spelt where it came from: ``configure(key=...)``, ``EVENTLOG_KEY`` ..."""
        if env:
            return f"environment variable {env_name(key)}"
        if django:
            return f"Django setting {env_name(key)}"
        return f"{self.given_by}({key}=...)"

    def raw(self, key: str) -> tuple[Any, str] | None:
        """The unparsed value of ``key`` and where it came from, or None when unset.

        None in code or in Django settings, and an empty environment variable, count
        as unset.
        """
        if key in self.given and self.given[key] is not None:
            return self.given[key], self.source(key)
        name = env_name(key)
        if name in self.environ and self.environ[name] != "":
            return self.environ[name], self.source(key, env=True)
        django = _django_settings() if self.use_django else None
        if django is not None and getattr(django, name, None) is not None:
            return getattr(django, name), self.source(key, django=True)
        return None

    def _explicit_none(self, key: str) -> str | None:
        """Where ``key`` was set to None, if it was (in code or in Django settings)."""
        if key in self.given and self.given[key] is None:
            return self.source(key)
        django = _django_settings() if self.use_django else None
        name = env_name(key)
        if django is not None and hasattr(django, name) and getattr(django, name) is None:
            return self.source(key, django=True)
        return None

    def resolve(self, key: str, option: Option) -> Any:
        """Parse one setting; raise ConfigurationError naming it, its value and what is allowed."""
        found = self.raw(key)
        if found is None:
            where = self._explicit_none(key) if option.default is not None else None
            if where is not None:  # None would silently mean the default: say so instead
                raise ConfigurationError(
                    f"{where} = None is invalid: leave the setting out for its default "
                    f"({option.default!r}); allowed: {allowed(option)}"
                )
            return option.default
        value, source = found
        shown_value = "<hidden>" if option.secret else shown(value)
        if option.choices is not None and (not isinstance(value, str) or value not in option.choices):
            raise ConfigurationError(
                f"{source} = {shown_value} is not allowed; choose one of: {', '.join(option.choices)}"
            )
        try:
            _check_type(value, option)
            return option.parse(value)
        except Exception as exc:  # a plugin's parser may raise anything: say which setting
            reason = (
                str(exc) if isinstance(exc, (ValueError, TypeError)) else (f"{type(exc).__name__}: {exc}")
            )
            if option.secret:
                for text in {str(value), repr(value)}:
                    if text:
                        reason = reason.replace(text, "<hidden>")
            if len(reason) > 4 * SHOWN_LIMIT:
                reason = reason[: 4 * SHOWN_LIMIT - 3] + "..."
            accepted = allowed(option)
            hint = f" ({option.help})" if option.help and option.help != accepted else ""
            raise ConfigurationError(
                f"{source} = {shown_value} is invalid: {reason}; allowed: {accepted}{hint}"
            ) from None

    def plugin_options(self, plugin: str, options: Iterable[Option]) -> dict[str, Any]:
        """Parse the options a plugin declares, keyed by the option's own name."""
        return {opt.name: self.resolve(option_key(plugin, opt), opt) for opt in options}


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
        try:
            from eventlog.django.conf import OPTIONS
        except ImportError:  # Django is not installed: its settings stay unknown
            pass
        else:
            for option in OPTIONS:
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
    for name, source in _variables(settings).items():
        if name in NOT_SETTINGS:
            continue
        key = name[len(ENV_PREFIX) :].lower()
        if name == env_name(key) and key in owners:
            if read(key) or any(o.kind == "django" for o in owners[key]):
                continue
            # Set for a plugin this pipeline does not use.  When code chose the plugins, the
            # variable is likely meant for another pipeline (the default one): say nothing.
            if any(_KIND_WORDS[o.kind][1] in settings.given for o in owners[key]):
                continue
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
        if (source, name) not in _reported:
            _reported.add((source, name))
            log.warning("%s", message)


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
_reported: set[tuple[str, str]] = set()


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
    from eventlog.registry import EXTRAS

    for plugin, extra in EXTRAS.items():
        installed = plugin in registry.transports or plugin in registry.formatters
        if not installed and key.startswith(plugin.replace("-", "_") + "_"):
            return (
                f"looks like a setting of {plugin!r}, which is not installed (pip install eventlog[{extra}])"
            )
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
