"""Plugins installed as real distributions are found by entry point; names are checked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from eventlog import ConfigurationError, PluginError, configure
from eventlog.registry import Registry

DATA = Path(__file__).parent / "data"


def _install(target: Path, project: Path) -> None:
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
            str(project),
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
        "main(['plugins'])\n"
        "eventlog.log_event(eventlog.Event('plugin.used', 'x'))\n"
        "assert eventlog.flush(5)\n"
    )
    result = _python(plugin_site, code, EVENTLOG_TRANSPORT="memo", EVENTLOG_MEMO_PATH=str(out))
    assert result.returncode == 0, result.stderr
    row = next(line for line in result.stdout.splitlines() if " memo " in line)
    assert row.split()[:4] == ["transport", "memo", "eventlog-memo", "1.2.3"]
    (event,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert (event["action"], event["target"]) == ("plugin.used", "x")


def test_duplicate_name_names_both_distributions(dup_site: Path) -> None:
    result = _python(dup_site, "from eventlog.registry import Registry; Registry()")
    assert result.returncode == 1
    assert "transport 'tcp' is registered twice: by eventlog" in result.stderr
    assert "and by eventlog-dup (dup)" in result.stderr


def test_unknown_name_lists_installed_and_the_extra() -> None:
    registry = Registry(load_entry_points=False)
    with pytest.raises(PluginError) as info:
        registry.transport("fluent")
    assert str(info.value).startswith(
        "transport 'fluent' is not installed; pip install eventlog[fluent]"
    )
    assert "console, logstash, syslog, tcp, udp" in str(info.value)
    with pytest.raises(
        PluginError, match=r"formatter 'capnp' is not installed; pip install eventlog\[capnp\]"
    ):
        registry.formatter("capnp")
    with pytest.raises(
        PluginError, match=r"transport 'carrier-pigeon' is not installed \(installed"
    ):
        registry.transport("carrier-pigeon")


def test_unknown_names_fail_at_configure_time() -> None:
    with pytest.raises(PluginError, match="transport 'nope' is not installed"):
        configure(transport="nope")
    with pytest.raises(
        ConfigurationError, match="transport 'console' cannot carry format 'x-binary'"
    ):
        registry = Registry(load_entry_points=False)
        from eventlog.config import Settings
        from eventlog.engine import Pipeline
        from eventlog.interfaces import FormatterSpec

        class Binary:
            @staticmethod
            def eventlog_formatters() -> list[FormatterSpec]:
                from eventlog.builtin.formats import JsonFormatter

                return [FormatterSpec("x-binary", lambda c: JsonFormatter())]

        from eventlog import hookimpl

        Binary.eventlog_formatters = hookimpl(Binary.eventlog_formatters)  # type: ignore[method-assign]
        registry = Registry(load_entry_points=False, extra_plugins=(Binary,))
        Pipeline(Settings.load({"transport": "console", "format": "x-binary"}), registry)


def test_builtins_are_registered_through_the_same_hooks() -> None:
    registry = Registry(load_entry_points=False)
    names = {name for plugin in registry.pm.get_plugins() if (name := registry.pm.get_name(plugin))}
    assert {
        "eventlog.builtin.formats",
        "eventlog.builtin.transports",
        "eventlog.builtin.enrichers",
        "eventlog.builtin.syslog",
    } <= names
    assert sorted(registry.transports) == ["console", "logstash", "syslog", "tcp", "udp"]
    assert sorted(registry.formatters) == ["json", "json-array", "logstash", "syslog"]


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
