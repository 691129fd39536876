"""Settings: from ``configure(...)``, the environment, then Django settings.

Every setting has one name in three spellings: ``configure(fluent_tag=...)``,
``EVENTLOG_FLUENT_TAG`` in the environment, ``EVENTLOG_FLUENT_TAG`` in Django's
settings.  Code wins over the environment, which wins over Django, and for where
events go as a whole: when code names ``host`` or ``port``, the environment's
and Django's transport, host and port are set aside (and reported), so a
``configure(host=..., port=...)`` never sends to an ``EVENTLOG_TRANSPORT`` meant
for another destination.  ``host`` may carry the port (``localhost:5959``,
``[::1]:5959``).  Values are
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

import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast, overload

from eventlog._config.classes import DEFAULT_POLICY, Rule, parse_classes, parse_overload_policy, parse_rate
from eventlog._core.errors import ConfigurationError
from eventlog._core.masking import HIDDEN, SecretMask, looks_secret, mask_structure
from eventlog._core.options import (
    SHOWN_LIMIT,
    TAKES,
    Option,
    parse_bool,
    parse_host,
    parse_list,
    parse_millis,
    parse_path,
    parse_port,
    parse_positive_int,
    parse_seconds,
    parse_str,
    shown,
    split_host_port,
)

#: Masks credentials by their place (URL user info, header values) in the value and reason shown.
_MASK = SecretMask()

ENV_PREFIX = "EVENTLOG_"

T = TypeVar("T")


# ---------------------------------------------------------------- the core's settings


class Core(Generic[T]):
    """One core setting, declared once: its :class:`Option` (named after the attribute) and,
    by its parser's type, the type ``settings.<name>`` has for mypy."""

    def __init__(self, parse: Callable[[Any], Any], default: Any, help: str, **declared: Any) -> None:
        self._declared = (parse, default, help, declared)
        self.option: Option

    def __set_name__(self, owner: type, name: str) -> None:
        parse, default, help, declared = self._declared
        self.option = Option(name, parse, default, help, **declared)

    @overload
    def __get__(self, settings: None, owner: type) -> Core[T]: ...
    @overload
    def __get__(self, settings: CoreSettings, owner: type) -> T: ...
    def __get__(self, settings: CoreSettings | None, owner: type) -> Core[T] | T:
        if settings is None:
            return self
        try:
            return cast("T", settings.values[self.option.name])
        except KeyError:
            raise AttributeError(self.option.name) from None


@overload
def core(
    parse: Callable[[Any], T], default: None, help: str, *, choices: tuple[str, ...] | None = None
) -> Core[T | None]: ...
@overload
def core(
    parse: Callable[[Any], T], default: T, help: str, *, choices: tuple[str, ...] | None = None
) -> Core[T]: ...
def core(
    parse: Callable[[Any], T], default: T | None, help: str, *, choices: tuple[str, ...] | None = None
) -> Any:
    """Declare a core setting: ``queue_size = core(parse_positive_int, 100_000, "...")``."""
    return Core(parse, default, help, choices=choices)


_LONG_RUN = re.compile(rf"\S{{{SHOWN_LIMIT + 1},}}")

DEFAULT_ENRICHERS: tuple[str, ...] = ("host", "site", "context")


class CoreSettings:
    """The core's settings, each declared once: its option (parser, default, help) and, by
    the parser's type, the type of ``settings.<name>`` (``settings.queue_size: int``)."""

    values: Mapping[str, Any]

    host = core(parse_host, None, "host of the log server; unset means console output")
    port = core(parse_port, None, "port of the log server")
    db = core(parse_path, None, "SQLite spool path; set means spool mode (durable)")
    spool_max_bytes = core(
        parse_positive_int,
        256 * 1024 * 1024,
        "spool size limit in bytes; the oldest events are evicted beyond it",
    )
    spool_max_age = core(parse_seconds, 0.0, "evict spooled events older than so many seconds (0: never)")
    spool_kept_max_age = core(
        parse_seconds,
        None,
        "age limit of kept events in the spool, at least spool_max_age (unset: the same; 0: none)",
    )
    spool_sync = core(
        parse_str, "normal", "SQLite synchronous level of the spool", choices=("normal", "full")
    )
    format = core(parse_str, None, "formatter name (default: the transport's)")
    transport = core(parse_str, None, "transport name (default: logstash if host is set)")
    site = core(parse_str, None, "site (organisation) name added to every event")
    cluster = core(parse_str, None, "cluster name added to every event")
    enrichers = core(parse_list, DEFAULT_ENRICHERS, "enrichers to run, in order")
    queue_size = core(parse_positive_int, 100_000, "events held in memory before drops")
    # 128 MiB: above what queue_size holds of ordinary events (100,000 at about 1.1 KiB each),
    # so the count binds first for them and the bytes for large ones.
    queue_max_bytes = core(
        parse_positive_int,
        128 * 1024 * 1024,
        "bytes of events held in memory (an estimate: their text and 1 KiB each) before drops",
    )
    # Overload control (issue 24): see eventlog._config.classes and docs/delivery.md.
    classes = core(
        parse_classes,
        cast("tuple[Rule, ...]", ()),
        "rules by logger, level or action, each kept or sheddable",
    )
    overload_policy = core(
        parse_overload_policy,
        cast("tuple[str, ...]", DEFAULT_POLICY),
        "what each class does when the queue is full: evict, shed_newest, shed_oldest or block:S",
    )
    collapse_repeats = core(
        parse_bool,
        True,
        "a full queue collapses shed repeats of one log template into one event with the count",
    )
    sample_sheddable = core(
        parse_positive_int,
        1,
        "keep the first of every N sheddable events of each log template (1: all)",
    )
    rate_limit_sheddable = core(
        parse_rate,
        0.0,
        "most sheddable events a second of each log template (0: no limit)",
    )
    ledger_interval = core(
        parse_seconds,
        0.0,
        "seconds between loss-ledger events; on, each event carries its sequence number (0: off)",
    )
    batch_size = core(parse_positive_int, 2000, "most events per send")
    linger_ms = core(parse_millis, 5.0, "how long a batch waits to fill, in ms")
    shutdown_timeout = core(parse_seconds, 5.0, "seconds shutdown may take at exit")
    retry_backoff_max = core(parse_seconds, 30.0, "longest wait between retries, seconds")
    max_retry_age = core(parse_seconds, 0.0, "give up on a batch after so many seconds (0: never)")
    counter_interval = core(parse_seconds, 60.0, "seconds between counter/gauge events (0: off)")
    metrics_port = core(parse_port, None, "serve Prometheus metrics on this port")
    metrics_addr = core(parse_str, "127.0.0.1", "address the metrics server binds")
    name = core(parse_str, "default", "pipeline name, the 'pipeline' label of metrics")
    exc_info_format = core(
        parse_str,
        "text",
        "exc_info in json, json-array and logstash: JSON text in a string, or the object",
        choices=("text", "object"),
    )


#: The core's options in declaration order (what errors, the reference and the CLI list).
CORE_OPTIONS: tuple[Option, ...] = tuple(
    value.option for value in vars(CoreSettings).values() if isinstance(value, Core)
)

CORE_NAMES = frozenset(o.name for o in CORE_OPTIONS)

#: Where events go.  Code that names any of ``ADDRESS`` decides all of ``DESTINATION``:
#: the environment's and Django's values for them are set aside, not mixed in.
DESTINATION = ("transport", "host", "port")
ADDRESS = ("host", "port")


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


def _check_type(value: Any, option: Option) -> None:
    """Refuse a value from code of a type the option does not declare (``Option.takes``)."""
    takes = option.takes or "any"
    accepted = TAKES[takes]
    if not isinstance(value, accepted):
        raise ValueError(f"expected {_type_words(accepted)}, got {type(value).__name__}")
    if takes != "many" and isinstance(value, str) and not value.strip():
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
    """What ``option`` accepts, as errors show it: its declaration (``Option.allowed``)."""
    return option.allowed or option.help or "see 'eventlog plugins --settings'"


# ---------------------------------------------------------------- shown without secrets

#: Setting keys whose option is declared ``secret=True`` (recorded as options are resolved).
_SECRET_KEYS: set[str] = set()


def shown_setting(key: str, value: Any) -> Any:
    """``value`` as a repr may show it: hidden for a secret option or a secret-looking name
    (``http_token``, ``EVENTLOG_NATS_PASSWORD``), credentials masked in any text."""
    if value is None:
        return None
    name = key.lower().removeprefix("eventlog_")
    if name in _SECRET_KEYS or looks_secret(name):
        return HIDDEN
    if isinstance(value, str):
        return mask_structure(value)
    if isinstance(value, Mapping):
        return {k: shown_setting(str(k), v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(shown_setting(key, v) for v in value)
    return value


class PluginOptions(dict[str, Any]):
    """A plugin's parsed options; its repr hides the ones declared secret."""

    def __init__(self, values: Mapping[str, Any], secret: Iterable[str]) -> None:
        super().__init__(values)
        self.secret = frozenset(secret)

    def __repr__(self) -> str:
        return repr(
            {
                k: HIDDEN if k in self.secret and v is not None else shown_setting(k, v)
                for k, v in self.items()
            }
        )


# ---------------------------------------------------------------- resolution


@dataclass(frozen=True)
class Settings(CoreSettings):
    """Resolved core settings (typed attributes: ``settings.queue_size``) plus access to
    every raw value for plugin options (:meth:`resolve`, :meth:`plugin_options`)."""

    values: Mapping[str, Any]
    given: Mapping[str, Any]
    environ: Mapping[str, str]
    #: False for the fallback pipeline, which must not fail on a bad Django setting.
    use_django: bool = True
    #: Who took the keyword settings, as errors name them: configure(host=...), EventHandler(...).
    given_by: str = "configure"

    def __repr__(self) -> str:
        # Never the secrets, and never the whole environment: only eventlog's variables.
        values = {k: shown_setting(k, v) for k, v in self.values.items()}
        given = {k: shown_setting(k, v) for k, v in self.given.items()}
        environ = {k: shown_setting(k, v) for k, v in self.environ.items() if k.startswith(ENV_PREFIX)}
        others = len(self.environ) - len(environ)
        return (
            f"Settings(values={values!r}, given={given!r}, environ={environ!r} "
            f"(+{others} other variables), use_django={self.use_django!r}, given_by={self.given_by!r})"
        )

    __str__ = __repr__

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
        settings._split_port(values)
        return cls(values, given, environ, use_django, given_by)

    def _split_port(self, values: dict[str, Any]) -> None:
        """``host='localhost:5959'`` -> host ``localhost``, port 5959; a second, other port is refused."""
        if values["host"] is None:
            return
        host, port = split_host_port(values["host"])  # parse_host has checked the port part
        if port is None:
            return
        if values["port"] is not None and values["port"] != port:
            host_value, host_source = self.raw("host") or (values["host"], "host")
            port_value, port_source = self.raw("port") or (values["port"], "port")
            raise ConfigurationError(
                f"{host_source} = {shown(host_value)} names port {port}, but {port_source} = "
                f"{shown(port_value)} names port {values['port']}; give the port in one place"
            )
        values["host"], values["port"] = host, port

    def code_sets_address(self) -> bool:
        """Whether code named ``host`` or ``port``, which makes it decide the whole destination."""
        return any(self.given.get(key) is not None for key in ADDRESS)

    def set_aside(self) -> dict[str, str]:
        """Destination variables code overrides: ``{'EVENTLOG_TRANSPORT': 'environment variable'}``."""
        if not self.code_sets_address():
            return {}
        found: dict[str, str] = {}
        django = _django_settings() if self.use_django else None
        for key in DESTINATION:
            if self.given.get(key) is not None:
                continue
            name = env_name(key)
            if self.environ.get(name):
                found[name] = "environment variable"
            elif django is not None and getattr(django, name, None) is not None:
                found[name] = "Django setting"
        return found

    def source(self, key: str, *, env: bool = False, django: bool = False) -> str:
        """How ``key`` is spelt where it came from: ``configure(key=...)``, ``EVENTLOG_KEY`` ..."""
        if env:
            return f"environment variable {env_name(key)}"
        if django:
            return f"Django setting {env_name(key)}"
        return f"{self.given_by}({key}=...)"

    def raw(self, key: str, option: Option | None = None) -> tuple[Any, str] | None:
        """The unparsed value of ``key`` and where it came from, or None when unset.

        None in code or in Django settings counts as unset, and so does an empty
        environment variable, unless ``option`` declares an empty value meaningful
        (``Option.empty``: an empty list means none, distinct from the default).
        """
        if key in self.given and self.given[key] is not None:
            return self.given[key], self.source(key)
        if key in DESTINATION and self.code_sets_address():
            return None  # code decided where events go: no transport or address from elsewhere
        name = env_name(key)
        if name in self.environ and (self.environ[name] != "" or (option is not None and option.empty)):
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
        found = self.raw(key, option)
        if found is None:
            where = self._explicit_none(key) if option.default is not None else None
            if where is not None:  # None would silently mean the default: say so instead
                raise ConfigurationError(
                    f"{where} = None is invalid: leave the setting out for its default "
                    f"({option.default!r}); allowed: {allowed(option)}"
                )
            return option.default
        value, source = found
        if option.secret:
            _SECRET_KEYS.add(key)
        shown_value = "<hidden>" if option.secret else shown(value)
        if option.choices is not None and (not isinstance(value, str) or value not in option.choices):
            raise ConfigurationError(
                f"{source} = {_MASK(shown_value)} is not allowed; choose one of: {', '.join(option.choices)}"
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
            # A parser may quote the value, or a part of it: no run of it longer than a shown value.
            reason = _LONG_RUN.sub(lambda m: m.group(0)[: SHOWN_LIMIT - 3] + "...", reason)
            if len(reason) > 4 * SHOWN_LIMIT:
                reason = reason[: 4 * SHOWN_LIMIT - 3] + "..."
            accepted = allowed(option)
            hint = f" ({option.help})" if option.help and option.help != accepted else ""
            # Credentials in a URL or header-like text never reach the message, whichever option.
            raise ConfigurationError(
                f"{source} = {_MASK(shown_value)} is invalid: {_MASK(reason)}; allowed: {accepted}{hint}"
            ) from None

    def plugin_options(self, plugin: str, options: Iterable[Option]) -> dict[str, Any]:
        """Parse the options a plugin declares, keyed by the option's own name."""
        options = tuple(options)
        return PluginOptions(
            {opt.name: self.resolve(option_key(plugin, opt), opt) for opt in options},
            (opt.name for opt in options if opt.secret),
        )
