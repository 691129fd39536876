"""Hostile configuration: every setting, every way in, every kind of wrong value.

The cases are made from the registry (every option of every installed formatter,
transport and enricher), the core's settings and the Django middleware's, so a
new option is covered without a line here.  Each wrong value goes in through
``configure()``, the environment, Django settings and ``logging.config.dictConfig``;
each must give a ConfigurationError that names the setting as that path spells
it and says what is allowed, never echoing a secret.  Misspelt and orphaned
``EVENTLOG_*`` names are reported once, with the nearest name.  No network.
"""

from __future__ import annotations

import logging
import logging.config
import os
from collections.abc import Iterator
from typing import Any

import pytest

import eventlog
from eventlog._api import api
from eventlog._config import config, selection
from eventlog._config.config import CORE_OPTIONS, allowed, env_name
from eventlog._config.registry import get_registry
from eventlog._config.selection import Owner, setting_owners
from eventlog._core.errors import ConfigurationError
from eventlog._core.options import Option
from eventlog._records.event import Event
from eventlog.django.conf import MiddlewareSettings

try:
    import django
except ImportError:  # pragma: no cover - the nox session installs it
    django = None

#: A value a secret option might hold: it must never appear in a message.
SECRET = "S3cret-Value_991"
#: Longest message we accept: a 100 KB value must not come back in full.
MESSAGE_LIMIT = 1000


# ---------------------------------------------------------------- the cases


def _kind(option: Option) -> str:
    if option.choices is not None:
        return "choice"
    return {"many": "many", "number": "number", "bool": "bool"}.get(option.takes or "any", "text")


def _base(owner: Owner) -> dict[str, Any]:
    """configure() keywords under which the owner's options are read."""
    if owner.kind == "transport":
        return {"transport": owner.plugin}
    if owner.kind == "formatter":
        registry = get_registry()
        spec = registry.formatters[owner.plugin].spec
        carrier = next(
            name
            for name, reg in registry.transports.items()
            if reg.spec.formats is None or spec.name in reg.spec.formats
        )
        return {"transport": carrier, "format": owner.plugin}
    if owner.kind == "enricher":
        return {"enrichers": [owner.plugin]}
    return {}


def _settings() -> list[tuple[str, Owner]]:
    owners = setting_owners(get_registry(), django=django is not None)
    cases = [(key, found[0]) for key, found in sorted(owners.items())]
    assert {o.name for o in CORE_OPTIONS} <= {key for key, _ in cases}
    return cases


SETTINGS = _settings()
PLUGIN_SETTINGS = [(k, o) for k, o in SETTINGS if o.kind != "django"]
IDS = [key for key, _ in SETTINGS]
PLUGIN_IDS = [key for key, _ in PLUGIN_SETTINGS]


class Big:
    """Not a configuration value of any kind."""

    def __repr__(self) -> str:
        return "<Big>"


def wrong_values(option: Option, *, text_only: bool) -> list[Any]:
    """Values no reading of ``option`` may accept (as text only, for the environment)."""
    kind = _kind(option)
    values: list[Any] = ["   "]  # blank text: for a list it is an empty list, allowed
    if kind == "many":
        values = []
    if kind in ("number", "bool"):
        values += ["ten", "-1", "1e400", "nan", str(10**30)]
    if kind == "number":
        values += ["inf"]
    if kind == "choice":
        values += [SECRET, option.choices[0].upper() + "x" if option.choices else "x"]
    if text_only:
        return values
    values += [Big(), 1j, b"bytes"]
    if kind != "many":
        values += ["", [SECRET], {"a": SECRET}]
    if kind == "text":
        values += [5, 1.5, True]
    if kind == "number":
        values += [True, -1, 10**30, float("inf"), float("nan"), [1]]
    if kind == "bool":
        values += [2, 1.5, -1]
    if kind == "many":
        values += [5]
    return values


def _assert_clear(message: str, spelling: str, option: Option, value: Any) -> None:
    assert spelling in message, message
    assert allowed(option) in message, message
    assert len(message) <= MESSAGE_LIMIT, message[:200]
    for python_says in ("invalid literal", "object is not", "argument must be"):
        assert python_says not in message, message
    if option.secret:
        for text in (str(value), SECRET):
            if len(text) >= 4 and text.strip():
                assert text not in message, message


@pytest.fixture
def reports() -> Iterator[list[str]]:
    """What eventlog's own logger says (it does not propagate), with the once-only memory reset."""
    said: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            said.append(record.getMessage())

    handler = Keep(logging.WARNING)
    own = logging.getLogger("eventlog")
    own.addHandler(handler)
    selection._reported.clear()
    try:
        yield said
    finally:
        own.removeHandler(handler)
        selection._reported.clear()


@pytest.fixture
def django_settings() -> Any:
    """Django's settings, configured from the test project if nothing configured them yet."""
    if django is None:
        pytest.skip("django is not installed (pip install django)")
    from django.conf import settings

    if not settings.configured:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.djangoproject.settings")
        django.setup()
    return settings


def _configure_fails(settings: dict[str, Any]) -> str:
    with pytest.raises(ConfigurationError) as caught:
        eventlog.configure(**settings)
    return str(caught.value)


# ---------------------------------------------------------------- every path


@pytest.mark.parametrize(("key", "owner"), PLUGIN_SETTINGS, ids=PLUGIN_IDS)
def test_configure_refuses_every_wrong_value_naming_the_keyword(key: str, owner: Owner) -> None:
    option = owner.option
    for value in wrong_values(option, text_only=False):
        message = _configure_fails({**_base(owner), key: value})
        _assert_clear(message, f"configure({key}=...)", option, value)
    if option.default is not None:  # None would silently mean the default
        message = _configure_fails({**_base(owner), key: None})
        assert f"configure({key}=...) = None is invalid" in message
        assert allowed(option) in message
    # After the error, logging goes on without raising, and flush() owns up.
    eventlog.log_event(Event("after.error"))
    logging.getLogger("hostile").error("after the error")
    assert eventlog.flush(2) is False


@pytest.mark.parametrize(("key", "owner"), PLUGIN_SETTINGS, ids=PLUGIN_IDS)
def test_environment_refuses_every_wrong_value_naming_the_variable(
    key: str, owner: Owner, monkeypatch: pytest.MonkeyPatch
) -> None:
    option = owner.option
    name = env_name(key)
    for value in wrong_values(option, text_only=True):
        monkeypatch.setenv(name, value)
        message = _configure_fails(_base(owner))
        _assert_clear(message, f"environment variable {name}", option, value)
    monkeypatch.setenv(name, "")  # an empty variable is unset (the default), or none for a list
    settings = config.Settings.load(_base(owner))
    assert settings.resolve(key, option) == (option.parse("") if option.empty else option.default)


@pytest.mark.parametrize(("key", "owner"), PLUGIN_SETTINGS, ids=PLUGIN_IDS)
def test_django_settings_refuse_every_wrong_value_naming_the_setting(
    key: str, owner: Owner, django_settings: Any
) -> None:
    from django.test import override_settings

    option = owner.option
    name = env_name(key)
    for value in wrong_values(option, text_only=False):
        with override_settings(**{name: value}):
            message = _configure_fails(_base(owner))
        _assert_clear(message, f"Django setting {name}", option, value)
    if option.default is not None:
        with override_settings(**{name: None}):
            message = _configure_fails(_base(owner))
        assert f"Django setting {name} = None is invalid" in message


@pytest.mark.parametrize(("key", "owner"), PLUGIN_SETTINGS, ids=PLUGIN_IDS)
def test_dict_config_refuses_every_wrong_value_naming_the_handler_keyword(key: str, owner: Owner) -> None:
    option = owner.option
    for value in wrong_values(option, text_only=False):
        handler = {"class": "eventlog.EventHandler", **_base(owner), key: value}
        with pytest.raises(ValueError, match="Unable to configure handler 'events'") as caught:
            logging.config.dictConfig(
                {"version": 1, "disable_existing_loggers": False, "handlers": {"events": handler}}
            )
        cause = caught.value.__cause__
        assert isinstance(cause, ConfigurationError), repr(cause)
        _assert_clear(str(cause), f"EventHandler({key}=...)", option, value)
    assert eventlog.flush(2) is False


MIDDLEWARE_SETTINGS = [(k, o) for k, o in SETTINGS if o.kind == "django"]


@pytest.mark.parametrize(("key", "owner"), MIDDLEWARE_SETTINGS, ids=[k for k, _ in MIDDLEWARE_SETTINGS])
def test_the_middleware_refuses_every_wrong_value_from_django_and_the_environment(
    key: str, owner: Owner, django_settings: Any
) -> None:
    from django.test import override_settings

    option, name = owner.option, env_name(key)
    for value in wrong_values(option, text_only=True):
        with pytest.raises(ConfigurationError) as caught:
            MiddlewareSettings.load({name: value})
        _assert_clear(str(caught.value), f"environment variable {name}", option, value)
    for value in wrong_values(option, text_only=False):
        with override_settings(**{name: value}), pytest.raises(ConfigurationError) as caught:
            MiddlewareSettings.load({})
        _assert_clear(str(caught.value), f"Django setting {name}", option, value)
    # configure() does not read it: it says where it belongs instead of "unknown".
    message = _configure_fails({key: "x"})
    assert f"configure() got {key}, a setting of the Django middleware" in message
    assert f"reads {name} from settings.py or the environment" in message


@pytest.mark.parametrize(("key", "owner"), PLUGIN_SETTINGS, ids=PLUGIN_IDS)
def test_huge_values_are_refused_or_taken_never_echoed_in_full(key: str, owner: Owner) -> None:
    option = owner.option
    huge = ",".join(["x" * 64] * 1600) if _kind(option) == "many" else "x" * 100_000
    try:
        pipeline = eventlog.configure(**_base(owner), **{key: huge})
    except ConfigurationError as exc:
        # Refused (or the base settings are not enough for this plugin): short either way.
        assert len(str(exc)) <= MESSAGE_LIMIT, str(exc)[:200]
        assert "x" * 100 not in str(exc)
    else:  # taken whole (a long site name, say), and logging goes on
        assert pipeline.settings.resolve(key, option) == option.parse(huge)
        eventlog.log_event(Event("huge.value"))
        pipeline.shutdown(0.5)  # no peer listens here: nothing to wait for


def _misspelt(key: str) -> str:
    """``key`` with two neighbouring letters swapped (or one doubled), not another setting."""
    known = {k for k, _ in SETTINGS}
    for i in range(len(key) - 1):
        if key[i] != key[i + 1] and "_" not in key[i : i + 2]:
            candidate = key[:i] + key[i + 1] + key[i] + key[i + 2 :]
            if candidate not in known:
                return candidate
    return key + key[-1]


@pytest.mark.parametrize(("key", "owner"), SETTINGS, ids=IDS)
def test_misspelt_names_are_refused_in_code_and_reported_from_outside(
    key: str,
    owner: Owner,
    monkeypatch: pytest.MonkeyPatch,
    reports: list[str],
    django_settings: Any,
) -> None:
    from django.test import override_settings

    typo = _misspelt(key)
    message = _configure_fails({**_base(owner), typo: SECRET})
    assert f"unknown setting {typo!r}; did you mean " in message and key in message
    assert SECRET not in message
    with pytest.raises(ValueError) as caught:
        logging.config.dictConfig(
            {
                "version": 1,
                "disable_existing_loggers": False,
                "handlers": {"events": {"class": "eventlog.EventHandler", typo: SECRET}},
            }
        )
    assert f"EventHandler() got an unknown setting {typo!r}" in str(caught.value.__cause__)

    # From the environment and from Django settings: reported once per process, with the
    # nearest name, and the pipeline is built (or fails) as if the name were not there.
    name = env_name(typo)
    for where, put in (
        ("environment variable", lambda: monkeypatch.setenv(name, SECRET)),
        ("Django setting", lambda: monkeypatch.delenv(name)),
    ):
        put()
        with override_settings(**({name: SECRET} if where == "Django setting" else {})):
            for _ in range(2):
                _configure_if_possible(_base(owner))
        said = [m for m in reports if name in m]
        assert len(said) == 1, said
        assert said[0].startswith(
            f"{where} {name} is not an eventlog setting and is ignored; did you mean "
        ), said[0]
        assert env_name(key) in said[0]
        assert not any(SECRET in m for m in reports)
        reports.clear()
        selection._reported.clear()


def _configure_if_possible(settings: dict[str, Any]) -> None:
    """configure(); a plugin that needs more settings (a URL ...) may refuse: that is fine here."""
    try:
        eventlog.configure(**settings)
    except ConfigurationError:
        pass


# ---------------------------------------------------------------- issue 13, item 5, one by one


def test_misspelt_environment_variables_are_reported_once_with_the_nearest_name(
    monkeypatch: pytest.MonkeyPatch, reports: list[str]
) -> None:
    monkeypatch.setenv("EVENTLOG_HOTS", "127.0.0.1")
    monkeypatch.setenv("EVENTLOG_LOGSTASH_PROTOCL", "udp")
    monkeypatch.setenv("eventlog_port", "5959")
    if "syslog" in get_registry().transports:  # the issue's own example, once it is installed
        monkeypatch.setenv("EVENTLOG_SYSLOG_PROTOCL", "udp")
    for _ in range(3):
        pipeline = eventlog.configure()
    assert pipeline.transport_name == "console"  # EVENTLOG_HOTS is not EVENTLOG_HOST
    tail = " ('eventlog plugins --settings' lists every setting)"
    expected = [
        "environment variable EVENTLOG_HOTS is not an eventlog setting and is ignored; "
        "did you mean EVENTLOG_HOST?" + tail,
        "environment variable EVENTLOG_LOGSTASH_PROTOCL is not an eventlog setting and is "
        "ignored; did you mean EVENTLOG_LOGSTASH_PROTOCOL?" + tail,
        "environment variable eventlog_port is not an eventlog setting and is ignored; "
        "did you mean EVENTLOG_PORT?" + tail,
    ]
    if "syslog" in get_registry().transports:
        assert any("EVENTLOG_SYSLOG_PROTOCL" in m and "EVENTLOG_SYSLOG_PROTOCOL" in m for m in reports), (
            reports
        )
        reports[:] = [m for m in reports if "EVENTLOG_SYSLOG_PROTOCL" not in m]
    assert sorted(reports) == sorted(expected)


def test_a_setting_of_another_transport_in_the_environment_is_reported_naming_it(
    monkeypatch: pytest.MonkeyPatch, reports: list[str]
) -> None:
    if "http" not in get_registry().transports:
        pytest.skip("eventlog-http is not installed")
    monkeypatch.setenv("EVENTLOG_HTTP_URL", f"http://ingest:{SECRET}@127.0.0.1:9/")
    monkeypatch.setenv("EVENTLOG_HOST", "127.0.0.1")
    pipeline = eventlog.configure()
    assert pipeline.transport_name == "logstash"
    assert reports == [
        "environment variable EVENTLOG_HTTP_URL is a setting of transport 'http', but this "
        "pipeline's transport is 'logstash', so it is ignored; select it with "
        "EVENTLOG_TRANSPORT=http (or configure(transport='http'))"
    ]
    # A pipeline whose transport the code chose is not the one the variable was meant for.
    reports.clear()
    selection._reported.clear()
    eventlog.configure(transport="udp", host="127.0.0.1", port=9)
    assert reports == []


def test_configure_with_a_setting_of_another_transport_names_the_transport() -> None:
    if "http" not in get_registry().transports:
        pytest.skip("eventlog-http is not installed")
    message = _configure_fails(
        {"transport": "tcp", "host": "127.0.0.1", "port": 9, "http_url": f"http://{SECRET}/"}
    )
    assert message == (
        "configure() got http_url, a setting of transport 'http', but this pipeline's "
        "transport is 'tcp', so it is ignored; select it with EVENTLOG_TRANSPORT=http "
        "(or configure(transport='http'))"
    )


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        (
            {"linger_ms": -1},
            "configure(linger_ms=...) = -1 is invalid: must be 0 or more "
            "milliseconds; allowed: a number of milliseconds, 0 to 1e12 "
            "(how long a batch waits to fill, in ms)",
        ),
        (
            {"queue_size": 1.5},
            "configure(queue_size=...) = 1.5 is invalid: expected a whole "
            "number, got 1.5; allowed: a whole number, 1 or more "
            "(events held in memory before drops)",
        ),
        (
            {"host": ""},
            "configure(host=...) = '' is invalid: must not be empty; allowed: a host "
            "name or IP address, optionally with :port ([::1]:5959 for IPv6), or a Unix "
            "socket path (/path or unix:///path) "
            "(host of the log server; unset means console output)",
        ),
        (
            {"site": 5},
            "configure(site=...) = 5 is invalid: expected text, got int; "
            "allowed: text, not empty (site (organisation) name added to every event)",
        ),
        (
            {"shutdown_timeout": None},
            "configure(shutdown_timeout=...) = None is invalid: "
            "leave the setting out for its default (5.0); allowed: a number of seconds, 0 to 1e9",
        ),
        (
            {"linger_ms": float("inf")},
            "configure(linger_ms=...) = inf is invalid: must be at "
            "most 1e+12 milliseconds; allowed: a number of milliseconds, 0 to 1e12 "
            "(how long a batch waits to fill, in ms)",
        ),
    ],
)
def test_each_reported_value_is_refused_at_configure_time(settings: dict[str, Any], message: str) -> None:
    assert _configure_fails(settings) == message


def test_flush_is_false_after_a_configuration_error_until_configure_succeeds(
    capsys: pytest.CaptureFixture[str],
) -> None:
    eventlog.configure()  # console
    eventlog.log_event(Event("before"))
    assert eventlog.flush(5) is True
    _configure_fails({"transport": "tcp", "host": "127.0.0.1", "port": 9, "queue_size": 1.5})
    eventlog.log_event(Event("after"))  # never raises; the console pipeline still runs
    assert eventlog.flush(5) is False
    assert eventlog.configure() is api._default
    assert eventlog.flush(5) is True
    assert [line.count('"action"') for line in capsys.readouterr().err.splitlines()] == [1, 1]


def test_flush_is_false_when_the_environment_at_first_use_is_bad(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], reports: list[str]
) -> None:
    monkeypatch.setenv("EVENTLOG_QUEUE_SIZE", "lots")
    eventlog.log_event(Event("first"))  # configures from the environment: refused, console
    assert eventlog.flush(5) is False
    [said] = reports
    assert said.startswith("environment variable EVENTLOG_QUEUE_SIZE = 'lots' is invalid")
    assert '"action":"first"' in capsys.readouterr().err


def test_a_handler_that_dict_config_refused_leaves_nothing_for_logging_shutdown() -> None:
    handler = {"class": "eventlog.EventHandler", "transport": "tcp", "port": "http"}
    with pytest.raises(ValueError) as caught:
        logging.config.dictConfig(
            {"version": 1, "disable_existing_loggers": False, "handlers": {"events": handler}}
        )
    assert str(caught.value.__cause__).startswith("EventHandler(port=...) = 'http' is invalid")
    # logging.shutdown() at exit flushes every handler ever made: none is half-made.
    assert not [
        ref()
        for ref in logging._handlerList  # type: ignore[attr-defined]
        if isinstance(ref(), eventlog.EventHandler) and not hasattr(ref(), "pipeline")
    ]
    assert eventlog.flush(1) is False


def test_a_plugin_name_that_is_not_installed_names_where_it_came_from(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EVENTLOG_TRANSPORT", "carrier-pigeon")
    message = _configure_fails({})
    assert message.startswith("transport 'carrier-pigeon' is not installed (installed transports: ")
    assert message.endswith("; it comes from environment variable EVENTLOG_TRANSPORT")
    monkeypatch.delenv("EVENTLOG_TRANSPORT")
    message = _configure_fails({"enrichers": ["host", "x" * 100_000]})
    assert message.endswith("; it comes from configure(enrichers=...)")
    assert len(message) <= MESSAGE_LIMIT


def test_a_setting_of_a_plugin_that_is_not_installed_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, reports: list[str]
) -> None:
    from eventlog._config.registry import Registry
    from eventlog._engine.pipeline import Pipeline

    bare = Registry(load_entry_points=False)  # the core alone: no http, no fluent
    with pytest.raises(ConfigurationError) as caught:
        Pipeline(config.Settings.load({"http_url": "http://127.0.0.1:9/"}, environ={}), bare)
    assert str(caught.value) == (
        "configure() got http_url, which looks like a setting of 'http', which is not "
        "installed (pip install --find-links dist/ 'eventlog[http]==0.1.0')"
    )
    pipeline = Pipeline(config.Settings.load({}, environ={"EVENTLOG_FLUENT_TAG": "app"}), bare)
    pipeline.shutdown(1)
    assert reports == [
        "environment variable EVENTLOG_FLUENT_TAG is ignored: it looks like a setting of "
        "'fluent', which is not installed (pip install --find-links dist/ 'eventlog[fluent]==0.1.0')"
    ]


def test_no_secret_shows_in_the_repr_of_settings_or_plugin_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTLOG_NATS_TOKEN", "nats-tok-5e3f")
    monkeypatch.setenv("SOMETHING_ELSE_ENTIRELY", "an-unrelated-value-77")
    monkeypatch.setenv("EVENTLOG_HTTP_TOKEN", "h77p-s3cr3t-tok")
    secrets = ["h77p-s3cr3t-tok", "x-api-k3y!", "q-token-1"]
    pipeline = eventlog.configure(
        transport="http",
        http_url="http://127.0.0.1:9/in?token=q-token-1",
        http_read_timeout=7,
        http_headers={"X-Api-Key": "x-api-k3y!", "X-Team": "blue"},
    )
    try:
        settings = pipeline.settings
        options = settings.plugin_options("http", get_registry().transport("http").spec.options)
        for text in (repr(settings), str(settings), repr(options), str(options)):
            for secret in [*secrets, "nats-tok-5e3f"]:
                assert secret not in text
            assert "an-unrelated-value-77" not in text and "SOMETHING_ELSE_ENTIRELY" not in text
        assert "EVENTLOG_NATS_TOKEN': '<hidden>'" in repr(settings)
        assert "'http_url': '<hidden>'" in repr(settings)  # declared secret=True
        # What is no secret stays readable.
        assert "'http_read_timeout': 7" in repr(settings) and "'read_timeout': 7.0" in repr(options)
        assert options["token"] == "h77p-s3cr3t-tok"  # hidden in the repr only
        # A URL's password in a setting that refuses it: the error names the value, masked.
        with pytest.raises(ConfigurationError) as refused:
            config.Settings.load({"host": "https://user:pw-of-the-url@example.test/"}, environ={})
        assert "pw-of-the-url" not in str(refused.value) and "user:<hidden>@" in str(refused.value)
    finally:
        eventlog.shutdown()
