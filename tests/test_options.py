"""Options declare what they accept (Parser / Option fields), and an empty value that means
"none" can be set, distinct from unset."""

from __future__ import annotations

from typing import Any

import pytest

import eventlog
from eventlog._config.config import CORE_OPTIONS, Settings, allowed
from eventlog._config.web_options import OPTIONS as WEB_OPTIONS
from eventlog._core.errors import ConfigurationError
from eventlog._core.options import Option, Parser, parse_list, parse_port, parser
from eventlog.testing import capture_events


def _option(name: str, options: tuple[Option, ...] = CORE_OPTIONS) -> Option:
    return next(o for o in options if o.name == name)


# ---------------------------------------------------------------- declarations


def test_the_core_parsers_declare_what_they_take_and_allow() -> None:
    assert isinstance(parse_port, Parser) and parse_port("5959") == 5959
    assert (parse_port.takes, parse_port.allowed) == ("number", "a port number, 0 to 65535")
    assert (parse_list.takes, parse_list.empty) == ("many", True)
    port = _option("port")
    assert (port.takes, port.allowed, port.empty) == ("number", "a port number, 0 to 65535", False)


def test_a_parsers_docstring_and_annotation_are_not_read() -> None:
    def parse_shards(value: Any) -> int:
        """A number of shards."""
        return int(value)

    option = Option("shards", parse_shards, 3, "shards to spread events over")
    # Undeclared: any single value, and the help is what is allowed.
    assert (option.takes, allowed(option)) == ("any", "shards to spread events over")
    declared = Option("shards", parser(takes="number", allowed="1 to 64 shards")(parse_shards), 3, "shards")
    assert (declared.takes, allowed(declared)) == ("number", "1 to 64 shards")
    with pytest.raises(ConfigurationError) as info:
        Settings.load({}, environ={"EVENTLOG_X_SHARDS": "many"}).plugin_options("x", [declared])
    assert str(info.value) == (
        "environment variable EVENTLOG_X_SHARDS = 'many' is invalid: invalid literal for int() "
        "with base 10: 'many'; allowed: 1 to 64 shards (shards)"
    )


def test_an_option_declares_over_its_parser_and_a_wrong_kind_is_refused() -> None:
    option = Option(
        "keys", parse_list, (), "keys", takes="text", allowed="keys, comma-separated", empty=False
    )
    assert (option.takes, option.allowed, option.empty) == ("text", "keys, comma-separated", False)
    with pytest.raises(ConfigurationError, match=r"expected text, got list"):
        Settings.load({"x_keys": ["a"]}, environ={}).plugin_options("x", [option])
    with pytest.raises(TypeError, match="takes must be one of text, number, bool, many, any"):
        Option("keys", parse_list, takes="list")  # type: ignore[arg-type]


def test_choices_are_what_is_allowed() -> None:
    assert _option("spool_sync").allowed == "one of: normal, full"


# ---------------------------------------------------------------- empty values


def test_an_empty_list_variable_means_none_and_an_absent_one_the_default() -> None:
    assert Settings.load({}, environ={"EVENTLOG_ENRICHERS": ""}).enrichers == ()
    assert Settings.load({}, environ={}).enrichers == ("host", "site", "context")
    assert Settings.load({}, environ={"EVENTLOG_ENRICHERS": " , "}).enrichers == ()


def test_an_empty_text_variable_is_still_unset() -> None:
    settings = Settings.load({}, environ={"EVENTLOG_SITE": "", "EVENTLOG_SPOOL_SYNC": ""})
    assert (settings.site, settings.spool_sync) == (None, "normal")


def test_the_django_redact_keys_can_be_emptied_from_the_environment() -> None:
    option = _option("redact_keys", WEB_OPTIONS)
    assert option.empty and option.default != ()
    settings = Settings.load({}, environ={"EVENTLOG_DJANGO_REDACT_KEYS": ""})
    assert settings.resolve("django_redact_keys", option) == ()
    assert Settings.load({}, environ={}).resolve("django_redact_keys", option) == option.default


def test_an_empty_otlp_headers_variable_overrides_the_otel_one() -> None:
    otlp = pytest.importorskip("eventlog_otlp.plugin")
    options = otlp.OPTIONS
    values = Settings.load({}, environ={"EVENTLOG_OTLP_HEADERS": ""}).plugin_options("otlp", options)
    assert values["headers"] == {}  # none, so OTEL_EXPORTER_OTLP_HEADERS is not read
    assert Settings.load({}, environ={}).plugin_options("otlp", options)["headers"] is None


def test_a_pipeline_with_an_empty_enrichers_variable_runs_no_enricher(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EVENTLOG_ENRICHERS", "")
    monkeypatch.setenv("EVENTLOG_SITE", "shop")
    with capture_events() as events:
        eventlog.log_event(eventlog.Event("paid", "A-7"))
    assert [(e["action"], e["target"], "host" in e, "site" in e) for e in events] == [
        ("paid", "A-7", False, False)
    ]
