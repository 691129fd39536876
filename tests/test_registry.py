"""Plugins installed as real distributions are found by entry point; names are checked."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import eventlog
from eventlog import ConfigurationError, configure
from eventlog._builtin.formats import JsonFormatter
from eventlog._builtin.receiver import LineReceiver
from eventlog._builtin.transports import ConsoleTransport
from eventlog._config.config import Settings
from eventlog._config.contracts import ALL_FRAMINGS
from eventlog._config.registry import Registry
from eventlog._engine.pipeline import Pipeline
from eventlog.plugin import FormatterSpec, PluginError, TransportSpec, hookimpl
from eventlog.plugin.testing import closed_port

DATA = Path(__file__).parent / "data"


def _install(target: Path, *projects: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            *map(str, projects),
        ],
        check=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site-good")
    _install(target, DATA / "plugin_good")
    return target


@pytest.fixture(scope="module")
def broken_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """eventlog-broken (its module imports a missing module) beside the working eventlog-memo."""
    target = tmp_path_factory.mktemp("site-broken")
    _install(target, DATA / "plugin_broken", DATA / "plugin_good")
    return target


@pytest.fixture(scope="module")
def dup_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("site-dup")
    _install(target, DATA / "plugin_dup")
    return target


def _python(site: Path, code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("EVENTLOG_")}
    environ["PYTHONPATH"] = os.pathsep.join([str(site), environ.get("PYTHONPATH", "")])
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environ, timeout=60
    )


def test_installed_plugin_is_listed_and_used_by_name(plugin_site: Path, tmp_path: Path) -> None:
    out = tmp_path / "memo.jsonl"
    code = (
        "import eventlog, sys\n"
        "from eventlog.cli import main\n"
        "assert main(['plugins']) == 0\n"
        "eventlog.log_event(eventlog.Event('plugin.used', 'x'))\n"
        "assert eventlog.flush(5)\n"
    )
    result = _python(plugin_site, code, EVENTLOG_TRANSPORT="memo", EVENTLOG_MEMO_PATH=str(out))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    row = next(line for line in result.stdout.splitlines() if " memo " in line)
    assert row.split()[:5] == ["transport", "memo", "eventlog-memo", "1.2.3", "lines"]
    (event,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert (event["action"], event["target"]) == ("plugin.used", "x")


# ---------------------------------------------------------------- broken plugins (issue 13, item 1)

BROKEN_WARNING = (
    "eventlog: WARNING: plugin 'broken' from eventlog-broken 0.3.0 failed to load: "
    "ModuleNotFoundError: No module named 'eventlog_missing_dependency'; its formatters, "
    "transports and enrichers are unavailable until it is repaired or uninstalled "
    "(pip uninstall eventlog-broken)\n"
)


def test_a_plugin_that_fails_to_load_is_warned_once_and_the_rest_delivers(
    broken_site: Path, receiver: LineReceiver, tmp_path: Path
) -> None:
    out = tmp_path / "memo.jsonl"
    code = (
        "import eventlog\n"
        "from eventlog._config import registry\n"
        "eventlog.log_event(eventlog.Event('still.delivered', 'default'))\n"
        "assert eventlog.flush(10)\n"
        # A registry built again (another pipeline, a test helper) does not warn again.
        "registry.reset_registry()\n"
        f"memo = eventlog.configure(transport='memo', memo_path={str(out)!r})\n"
        "eventlog.log_event(eventlog.Event('memo.too', 'x'))\n"
        "assert memo.flush(10)\n"
    )
    # The default transport with a host: logstash, to a real JSON-lines listener.
    result = _python(broken_site, code, EVENTLOG_HOST="127.0.0.1", EVENTLOG_PORT=str(receiver.port))
    assert result.returncode == 0, result.stderr
    assert result.stderr == BROKEN_WARNING
    assert receiver.wait_for(1)
    assert [(e["action"], e["target"]) for e in receiver.events()] == [("still.delivered", "default")]
    (memo,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert memo["action"] == "memo.too"


def test_selecting_the_broken_plugins_name_says_why_at_configure_time(broken_site: Path) -> None:
    code = (
        "import eventlog\n"
        "try:\n"
        "    eventlog.configure(transport='broken')\n"
        "except eventlog.PluginError as exc:\n"
        "    print(exc)\n"
    )
    result = _python(broken_site, code)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        "transport 'broken' from eventlog-broken 0.3.0 is unavailable: it failed to load: "
        "ModuleNotFoundError: No module named 'eventlog_missing_dependency' (repair or uninstall "
        "eventlog-broken; `eventlog plugins` lists what is broken); it comes from "
        "configure(transport=...)\n"
    )
    assert result.stderr == BROKEN_WARNING


def test_eventlog_plugins_lists_the_broken_plugin_and_exits_1(broken_site: Path) -> None:
    result = _python(broken_site, "import sys\nfrom eventlog.cli import main\nsys.exit(main(['plugins']))")
    assert result.returncode == 1
    assert result.stderr == BROKEN_WARNING
    listing, broken = result.stdout.split("\n\n")
    assert ["transport", "memo", "eventlog-memo", "1.2.3", "lines"] in [
        line.split()[:5] for line in listing.splitlines()
    ]
    assert broken == (
        "BROKEN (1): left out; pipelines that do not select these names work\n"
        "  plugin 'broken' from eventlog-broken 0.3.0 failed to load: ModuleNotFoundError: "
        "No module named 'eventlog_missing_dependency'; its formatters, transports and enrichers "
        "are unavailable until it is repaired or uninstalled (pip uninstall eventlog-broken)\n"
    )


def test_a_name_clash_leaves_out_that_name_only(dup_site: Path, receiver: LineReceiver) -> None:
    code = (
        "import sys, eventlog\n"
        "from eventlog.cli import main\n"
        "eventlog.log_event(eventlog.Event('clash.elsewhere', 'x'))\n"
        "assert eventlog.flush(10)\n"
        "try:\n"
        "    eventlog.configure(transport='tcp', host='127.0.0.1', port=9)\n"
        "except eventlog.PluginError as exc:\n"
        "    print(exc)\n"
        "sys.exit(main(['plugins']))\n"
    )
    result = _python(dup_site, code, EVENTLOG_HOST="127.0.0.1", EVENTLOG_PORT=str(receiver.port))
    assert result.returncode == 1
    version = eventlog_version()
    holders = (
        f"by eventlog {version} (plugin 'eventlog._builtin.transports') "
        "and by eventlog-dup 0.0.1 (plugin 'dup')"
    )
    warning = (
        f"transport 'tcp' is registered twice, {holders}: it cannot be selected until you "
        "uninstall one of the distributions (pip uninstall eventlog-dup)"
    )
    assert result.stderr == f"eventlog: WARNING: {warning}\n"
    lines = result.stdout.splitlines()
    assert lines[0] == (
        f"transport 'tcp' is unavailable: it is registered twice, {holders}; "
        "uninstall one of the distributions (pip uninstall eventlog-dup); "
        "it comes from configure(transport=...)"
    )
    assert lines[-2:] == [
        "BROKEN (1): left out; pipelines that do not select these names work",
        f"  {warning}",
    ]
    assert [e["action"] for e in receiver.wait_for(1) and receiver.events()] == ["clash.elsewhere"]


def eventlog_version() -> str:
    import importlib.metadata

    return importlib.metadata.version("eventlog")


class _Warnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture
def warnings() -> Iterator[_Warnings]:
    handler = _Warnings()
    logging.getLogger("eventlog").addHandler(handler)
    try:
        yield handler
    finally:
        logging.getLogger("eventlog").removeHandler(handler)


class Flaky:
    """A plugin whose formatters hook works and whose transports hook raises."""

    @staticmethod
    @hookimpl
    def eventlog_formatters() -> list[FormatterSpec]:
        return [FormatterSpec("flaky-json", lambda _: JsonFormatter(), framing="lines")]

    @staticmethod
    @hookimpl
    def eventlog_transports() -> list[TransportSpec]:
        raise RuntimeError("flaky cannot list its transports")


class Confused:
    """A plugin whose transports hook returns a formatter spec."""

    @staticmethod
    @hookimpl
    def eventlog_transports() -> list[Any]:
        return [FormatterSpec("confused", lambda _: JsonFormatter(), framing="lines")]


def test_a_hook_that_raises_leaves_out_its_plugin_only(warnings: _Warnings, receiver: LineReceiver) -> None:
    registry = Registry(load_entry_points=False, extra_plugins=(Flaky, Confused))
    assert [(b.plugin, b.reason) for b in registry.broken] == [
        ("Flaky", "failed in eventlog_transports(): RuntimeError: flaky cannot list its transports"),
        (
            "Confused",
            "returned FormatterSpec 'confused' from eventlog_transports(), "
            "where a TransportSpec was expected",
        ),
    ]
    # All of a broken plugin is left out, also what its working hook returned.
    assert "flaky-json" not in registry.formatters
    assert warnings.messages == [
        "plugin 'Flaky' (registered in code) failed in eventlog_transports(): RuntimeError: "
        "flaky cannot list its transports; its formatters, transports and enrichers are "
        "unavailable until it is fixed",
        "plugin 'Confused' (registered in code) returned FormatterSpec 'confused' from "
        "eventlog_transports(), where a TransportSpec was expected; its formatters, transports "
        "and enrichers are unavailable until it is fixed",
    ]
    assert registry.problems() == warnings.messages
    with pytest.raises(PluginError) as info:
        registry.transport("flaky")
    assert str(info.value) == (
        "transport 'flaky' (registered in code) is unavailable: it failed in "
        "eventlog_transports(): RuntimeError: flaky cannot list its transports (fix that plugin)"
    )
    # A second registry with the same problems does not warn again.
    Registry(load_entry_points=False, extra_plugins=(Flaky, Confused))
    assert len(warnings.messages) == 2
    settings = Settings.load(
        {"transport": "tcp", "host": "127.0.0.1", "port": receiver.port, "enrichers": ()},
        environ={},
    )
    pipeline = Pipeline(settings, registry)
    pipeline.submit_event(eventlog.Event("hook.failed.elsewhere"))
    assert pipeline.flush(10)
    pipeline.shutdown(2)
    # flush() means sent; the receiver's thread may still be reading it.
    assert receiver.wait_for(1, 10)
    assert [e["action"] for e in receiver.events()] == ["hook.failed.elsewhere"]


class BadCommands:
    @staticmethod
    @hookimpl
    def eventlog_add_commands(subparsers: Any) -> None:
        subparsers.add_parser("spool")  # the core's own command: argparse refuses it


def test_a_plugin_whose_commands_fail_loses_its_commands_only(warnings: _Warnings) -> None:
    import argparse

    registry = Registry(load_entry_points=False, extra_plugins=(BadCommands,))
    sub = argparse.ArgumentParser(prog="eventlog").add_subparsers(dest="command")
    registry.add_commands(sub)
    assert "spool" in sub.choices  # the built-in command is there
    assert warnings.messages == [
        "plugin 'BadCommands' (registered in code) failed in eventlog_add_commands(): "
        "ArgumentError: argument command: conflicting subparser: spool; its commands are left out"
    ]


def test_a_name_registered_twice_in_code_names_both_when_selected() -> None:
    class Second:
        @staticmethod
        @hookimpl
        def eventlog_transports() -> list[TransportSpec]:
            return [TransportSpec("udp", lambda _: ConsoleTransport(), "another udp")]

    registry = Registry(load_entry_points=False, extra_plugins=(Second,))
    assert "udp" not in registry.transports and "tcp" in registry.transports
    with pytest.raises(PluginError) as info:
        registry.transport("udp")
    assert str(info.value) == (
        f"transport 'udp' is unavailable: it is registered twice, by eventlog {eventlog_version()} "
        "(plugin 'eventlog._builtin.transports') and by plugin 'Second' (registered in code); "
        "uninstall one of the distributions, or register one plugin less"
    )


def test_unknown_name_lists_installed_and_the_extra() -> None:
    registry = Registry(load_entry_points=False)
    with pytest.raises(PluginError) as info:
        registry.transport("fluent")
    assert str(info.value).startswith(
        "transport 'fluent' is not installed; install it: "
        "pip install --find-links dist/ 'eventlog[fluent]==0.1.0' (installed transports: "
    )
    assert "console, logstash, syslog, tcp, udp" in str(info.value)
    with pytest.raises(
        PluginError,
        match=r"formatter 'capnp' is not installed; install it: pip install --find-links dist/ "
        r"'eventlog\[capnp\]==0\.1\.0'",
    ):
        registry.formatter("capnp")
    with pytest.raises(PluginError, match=r"transport 'carrier-pigeon' is not installed \(installed"):
        registry.transport("carrier-pigeon")


def test_unknown_names_fail_at_configure_time() -> None:
    with pytest.raises(PluginError, match="transport 'nope' is not installed"):
        configure(transport="nope")


# ---------------------------------------------------------------- framing (issue 13, items 4 and 8)


def test_the_seeds_capnp_example_is_refused_at_configure_time(monkeypatch: pytest.MonkeyPatch) -> None:
    # The seed's own example: a host (so the logstash transport, a JSON-lines socket) and capnp.
    monkeypatch.setenv("EVENTLOG_HOST", "127.0.0.1")
    monkeypatch.setenv("EVENTLOG_FORMAT", "capnp")
    with pytest.raises(ConfigurationError) as info:
        configure()
    assert str(info.value) == (
        "transport 'logstash' cannot carry format 'capnp': it carries newline-delimited text "
        "lines, and capnp's payloads are self-delimiting messages; set EVENTLOG_FORMAT to a "
        "format it carries (ecs, json, json-array, logstash), or EVENTLOG_TRANSPORT to a transport "
        "that carries capnp (http, nats, redis_streams, tcp, udp)"
    )


class Undeclared:
    """A third-party pair that declares nothing: checked all the same."""

    @staticmethod
    @hookimpl
    def eventlog_formatters() -> list[FormatterSpec]:
        return [FormatterSpec("plain", lambda _: JsonFormatter())]

    @staticmethod
    @hookimpl
    def eventlog_transports() -> list[TransportSpec]:
        return [TransportSpec("pipe", lambda _: ConsoleTransport())]


def test_an_undeclared_pair_is_checked_with_safe_defaults() -> None:
    registry = Registry(load_entry_points=False, extra_plugins=(Undeclared,))
    assert registry.formatter("plain").spec.framing == "unframed"
    assert registry.transport("pipe").spec.carries == {"lines"}
    with pytest.raises(PluginError) as info:
        Pipeline(Settings.load({"transport": "pipe", "format": "plain"}, environ={}), registry)
    assert str(info.value) == (
        "transport 'pipe' cannot carry format 'plain': it carries newline-delimited text lines, "
        "and plain's payloads are unframed payloads (each needs a frame of its own) "
        "(FormatterSpec.framing's default, which claims nothing); set EVENTLOG_FORMAT to a "
        "format it carries (ecs, json, json-array, logstash), or EVENTLOG_TRANSPORT to a transport "
        "that carries plain (udp)"
    )
    # Either side alone, next to a built-in that declares, works.
    registry.check_carries("pipe", "json")
    registry.check_carries("udp", "plain")


class CapnpSink:
    """A transport that names its one format: the names decide, not the framing."""

    @staticmethod
    @hookimpl
    def eventlog_transports() -> list[TransportSpec]:
        return [
            TransportSpec(
                "capnp-sink",
                lambda _: ConsoleTransport(),
                formats=frozenset({"capnp"}),
                default_format="capnp",
            )
        ]


def test_a_transport_naming_its_formats_carries_exactly_those() -> None:
    registry = Registry(extra_plugins=(CapnpSink,))
    registry.check_carries("capnp-sink", "capnp")
    with pytest.raises(PluginError) as info:
        registry.check_carries("capnp-sink", "json")
    assert str(info.value) == (
        "transport 'capnp-sink' cannot carry format 'json': it carries only capnp; set "
        "EVENTLOG_FORMAT to a format it carries (capnp), or EVENTLOG_TRANSPORT to a transport "
        "that carries json (console, http, logstash, nats, redis_streams, tcp, udp)"
    )


def test_the_formatter_suite_fails_a_format_whose_lines_are_not_lines() -> None:
    from eventlog.plugin.testing import FormatterConformance

    class NoNewline(JsonFormatter):
        def format(self, wire: dict[str, Any]) -> bytes:
            return super().format(wire).rstrip(b"\n")

    class Plugin:
        @staticmethod
        @hookimpl
        def eventlog_formatters() -> list[FormatterSpec]:
            return [FormatterSpec("no-newline", lambda _: NoNewline(), framing="lines")]

    class Suite(FormatterConformance):
        formatter = "no-newline"

        def registry(self) -> Registry:
            return Registry(load_entry_points=False, extra_plugins=(Plugin,))

    with pytest.raises(AssertionError, match="framing 'lines' needs one newline, at the end"):
        Suite().test_payloads_keep_the_declared_framing()


def test_a_spec_with_an_unknown_framing_is_refused_where_it_is_made() -> None:
    with pytest.raises(ValueError, match="framing 'line' is not one of lines, self-delimiting"):
        FormatterSpec("typo", lambda _: JsonFormatter(), framing="line")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"carries \[\] must name one or more of lines"):
        TransportSpec("mute", lambda _: ConsoleTransport(), carries=frozenset())


_ALL = Registry()
_PAIRS = [(t, f) for t in sorted(_ALL.transports) for f in sorted(_ALL.formatters)]
_BINARY = ("capnp", "capnp-packed", "msgpack")
#: Every pair of this repository's distributions that must be refused: line readers get
#: no binary nor octet-counted syslog, fluent only msgpack, syslog only syslog.
_REFUSED = {
    *((reader, binary) for reader in ("console", "logstash") for binary in (*_BINARY, "syslog")),
    *(("fluent", other) for other in ("capnp", "capnp-packed", "json", "json-array", "logstash", "ecs")),
    ("fluent", "syslog"),
    *(("syslog", other) for other in (*_BINARY, "json", "json-array", "logstash", "ecs")),
    # otlp sends only its own protobuf requests; its payloads are unframed, so stream and
    # line transports (and http, which posts a batch body of lines) cannot carry them.
    *(("otlp", other) for other in (*_BINARY, "json", "json-array", "logstash", "ecs", "syslog")),
    *((carrier, "otlp") for carrier in ("console", "fluent", "http", "logstash", "syslog", "tcp")),
}


#: The names the set above is about (a plugin added later is checked by the test below it).
_SHIPPED = {
    *("console", "logstash", "tcp", "udp", "fluent", "http", "redis_streams", "syslog", "nats", "otlp"),
    *("json", "json-array", "logstash", "msgpack", "capnp", "capnp-packed", "syslog", "ecs", "otlp"),
}


def test_exactly_the_pairs_that_cannot_work_are_refused() -> None:
    refused = set()
    for transport, format_name in _PAIRS:
        if not {transport, format_name} <= _SHIPPED:
            continue
        try:
            _ALL.check_carries(transport, format_name)
        except PluginError:
            refused.add((transport, format_name))
    assert refused == _REFUSED


def _settings_for(transport: str, format_name: str) -> dict[str, Any]:
    port = closed_port()  # nothing is sent: configuring does no I/O
    given: dict[str, Any] = {"transport": transport, "format": format_name, "enrichers": ()}
    if transport == "http":
        return {**given, "http_url": f"http://127.0.0.1:{port}/"}
    if transport == "redis_streams":
        return {**given, "redis_streams_url": f"redis://127.0.0.1:{port}/0"}
    return {**given, "host": "127.0.0.1", "port": port}


@pytest.mark.parametrize(("transport", "format_name"), [p for p in _PAIRS if p not in _REFUSED])
def test_every_pair_that_fits_configures(transport: str, format_name: str) -> None:
    pipeline = Pipeline(Settings.load(_settings_for(transport, format_name), environ={}), _ALL)
    assert (pipeline.transport_name, pipeline.format_name) == (transport, format_name)
    pipeline.shutdown(1)


def test_every_transports_default_format_fits() -> None:
    for name, registered in _ALL.transports.items():
        _ALL.check_carries(name, registered.spec.default_format)


def test_a_transport_that_frames_each_payload_carries_any_format() -> None:
    assert _ALL.transport("udp").spec.carries == ALL_FRAMINGS


def test_builtins_are_registered_through_the_same_hooks() -> None:
    registry = Registry(load_entry_points=False)
    names = {name for plugin in registry.pm.get_plugins() if (name := registry.pm.get_name(plugin))}
    assert {
        "eventlog._builtin.formats",
        "eventlog._builtin.transports",
        "eventlog._builtin.enrichers",
        "eventlog._builtin.syslog",
    } <= names
    assert sorted(registry.transports) == ["console", "logstash", "syslog", "tcp", "udp"]
    assert sorted(registry.formatters) == ["ecs", "json", "json-array", "logstash", "syslog"]


@pytest.mark.parametrize(
    ("settings", "says"),
    [
        ({"queue_size": 1.5}, r"queue_size=\.\.\.\) = 1\.5 is invalid: expected a whole number, got 1\.5"),
        ({"batch_size": "ten"}, r"batch_size=\.\.\.\) = 'ten' is invalid: expected a whole number"),
        ({"linger_ms": -1}, r"linger_ms=\.\.\.\) = -1 is invalid: must be 0 or more milliseconds"),
        ({"shutdown_timeout": "soon"}, r"expected a number of seconds, got 'soon'"),
    ],
)
def test_bad_numbers_are_named_in_their_own_units(settings: dict[str, object], says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        configure(transport="console", **settings)


def test_a_whole_float_is_a_whole_number() -> None:
    pipeline = configure(transport="console", queue_size=1000.0)
    assert pipeline.settings.queue_size == 1000 and type(pipeline.settings.queue_size) is int
