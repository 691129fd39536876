"""Settings: from ``configure(...)``, the environment, then Django settings.

Every setting has one name in three spellings: ``configure(fluent_tag=...)``,
``EVENTLOG_FLUENT_TAG`` in the environment, ``EVENTLOG_FLUENT_TAG`` in Django's
settings.  Code wins over the environment, which wins over Django.  Values are
parsed and checked when the pipeline is configured, and an error names the
setting, the value and what is allowed.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from eventlog.interfaces import ConfigurationError, Option

ENV_PREFIX = "EVENTLOG_"


# ---------------------------------------------------------------- parsers


def parse_str(value: Any) -> str:
    """Any value as text."""
    return str(value)


def parse_int(value: Any) -> int:
    """An integer; text like '5001' is accepted."""
    if isinstance(value, bool):
        raise ValueError("expected an integer, not a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    try:
        return int(str(value).strip())
    except ValueError:
        raise ValueError(f"expected a whole number, got {value!r}") from None


def parse_positive_int(value: Any) -> int:
    """An integer of 1 or more."""
    number = parse_int(value)
    if number < 1:
        raise ValueError("must be 1 or more")
    return number


def parse_non_negative_int(value: Any) -> int:
    """An integer of 0 or more."""
    number = parse_int(value)
    if number < 0:
        raise ValueError("must be 0 or more")
    return number


def parse_port(value: Any) -> int:
    """A TCP/UDP port, 0 to 65535."""
    number = parse_int(value)
    if not 0 <= number <= 65535:
        raise ValueError("a port is 0 to 65535")
    return number


def _duration(value: Any, unit: str) -> float:
    if isinstance(value, bool):
        raise ValueError(f"expected a number of {unit}, not a boolean")
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise ValueError(f"expected a number of {unit}, got {value!r}") from None
    if not number >= 0:  # also refuses NaN
        raise ValueError(f"must be 0 or more {unit}")
    return number


def parse_seconds(value: Any) -> float:
    """A non-negative number of seconds."""
    return _duration(value, "seconds")


def parse_millis(value: Any) -> float:
    """A non-negative number of milliseconds."""
    return _duration(value, "milliseconds")


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def parse_bool(value: Any) -> bool:
    """true/false, yes/no, on/off, 1/0."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError("expected true or false")


def parse_list(value: Any) -> tuple[str, ...]:
    """A comma-separated list (or a list in code)."""
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    return tuple(str(v) for v in value)


def parse_path(value: Any) -> str:
    """A file system path; ``~`` is expanded."""
    text = str(os.path.expanduser(os.fspath(value)))
    if not text:
        raise ValueError("must not be empty")
    return text


# ---------------------------------------------------------------- the core's settings

CORE_OPTIONS: tuple[Option, ...] = (
    Option("host", parse_str, None, "host of the log server; unset means console output"),
    Option("port", parse_port, None, "port of the log server"),
    Option("db", parse_path, None, "SQLite spool path; set means spool mode (durable)"),
    Option("spool_max_bytes", parse_positive_int, 256 * 1024 * 1024,
           "spool size limit in bytes; the oldest events are evicted beyond it"),
    Option("spool_max_age", parse_seconds, 0.0,
           "evict spooled events older than so many seconds (0: never)"),
    Option("spool_sync", parse_str, "normal", "SQLite synchronous level of the spool",
           choices=("normal", "full")),
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
    Option(
        "counter_interval", parse_seconds, 60.0, "seconds between counter/gauge events (0: off)"
    ),
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


def _django_settings() -> Any:
    """Django's settings object when Django is installed and configured, else None."""
    import sys

    if "django.conf" not in sys.modules:  # never import Django for a non-Django app
        return None
    from django.conf import settings

    try:
        return settings if settings.configured else None
    except Exception:
        return None


@dataclass(frozen=True)
class Settings:
    """Resolved core settings plus access to every raw value for plugin options."""

    values: Mapping[str, Any]
    given: Mapping[str, Any]
    environ: Mapping[str, str]
    #: False for the fallback pipeline, which must not fail on a bad Django setting.
    use_django: bool = True

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
    ) -> Settings:
        """Resolve the core settings from code, the environment and Django."""
        given = dict(given or {})
        environ = dict(os.environ if environ is None else environ)
        settings = cls(values={}, given=given, environ=environ, use_django=use_django)
        values = {opt.name: settings.resolve(opt.name, opt) for opt in CORE_OPTIONS}
        return cls(values=values, given=given, environ=environ, use_django=use_django)

    def raw(self, key: str) -> tuple[Any, str] | None:
        """The unparsed value of ``key`` and where it came from, or None when unset."""
        if key in self.given and self.given[key] is not None:
            return self.given[key], f"configure({key}=...)"
        name = env_name(key)
        if name in self.environ and self.environ[name] != "":
            return self.environ[name], f"environment variable {name}"
        django = _django_settings() if self.use_django else None
        if django is not None and getattr(django, name, None) is not None:
            return getattr(django, name), f"Django setting {name}"
        return None

    def resolve(self, key: str, option: Option) -> Any:
        """Parse one setting; raise ConfigurationError naming it, its value and what is allowed."""
        found = self.raw(key)
        if found is None:
            return option.default
        value, source = found
        shown = "<hidden>" if option.secret else repr(value)
        if option.choices is not None and str(value) not in option.choices:
            raise ConfigurationError(
                f"{source} = {shown} is not allowed; choose one of: {', '.join(option.choices)}"
            )
        try:
            return option.parse(value)
        except (ValueError, TypeError) as exc:
            hint = f" ({option.help})" if option.help else ""
            raise ConfigurationError(f"{source} = {shown} is invalid: {exc}{hint}") from None

    def plugin_options(self, plugin: str, options: Iterable[Option]) -> dict[str, Any]:
        """Parse the options a plugin declares, keyed by the option's own name."""
        return {opt.name: self.resolve(option_key(plugin, opt), opt) for opt in options}


def check_unknown(given: Mapping[str, Any], known: Iterable[str]) -> None:
    """Refuse configure() keywords that no core setting or selected plugin reads."""
    known_set = set(known)
    for key in given:
        if key not in known_set:
            close = difflib.get_close_matches(key, sorted(known_set), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ConfigurationError(
                f"configure() got an unknown setting {key!r}{hint} "
                "(run 'eventlog plugins' to see every setting)"
            )


Parser = Callable[[Any], Any]
