"""The eventlog command: plugins, send, demo, run as a real process."""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import shlex
import subprocess
import sys

import pytest

from eventlog._builtin.receiver import LineReceiver
from tests.peers import free_port


def _eventlog(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("EVENTLOG_")}
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-m", "eventlog", *args], capture_output=True, text=True, env=environ, timeout=60
    )


def test_send_delivers_one_event_and_says_so(receiver: LineReceiver) -> None:
    result = _eventlog(
        "send", "deploy.finish", "api", "--type", "service", "--message", "v1.2",
        "--tag", "prod", "--tag", "eu", "--field", "replicas:int=3", "--field", "ratio:float=0.5",
        "--field", "who=ci", "--field", "version=1.10", "--field", "build=007", "--field", "sha=1e5",
        "--field", "label:str=42", "--level", "warning",
        EVENTLOG_TRANSPORT="tcp", EVENTLOG_HOST="127.0.0.1", EVENTLOG_PORT=str(receiver.port),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert receiver.wait_for(1)
    (event,) = receiver.events()
    assert result.stdout == f"sent {event['id']} via tcp (json)\n"
    assert (event["action"], event["target"], event["tgType"], event["message"]) == (
        "deploy.finish",
        "api",
        "service",
        "v1.2",
    )
    assert event["tags"] == ["prod", "eu"]
    # Text unless a type is given: 1.10 stays 1.10, not the number 1.1 (issue 29, item 4).
    assert event["fields"] == {
        "replicas": 3,
        "ratio": 0.5,
        "who": "ci",
        "version": "1.10",
        "build": "007",
        "sha": "1e5",
        "label": "42",
    }
    assert (event["level"], event["levelName"]) == (30, "WARNING")


def test_send_exit_status_says_not_delivered() -> None:
    port = free_port()  # nobody listens there
    result = _eventlog(
        "send", "x", "--timeout", "1",
        EVENTLOG_TRANSPORT="tcp", EVENTLOG_HOST="127.0.0.1", EVENTLOG_PORT=str(port),
    )  # fmt: skip
    assert result.returncode == 1
    assert "not delivered to tcp within 1.0s" in result.stderr


def test_send_reports_bad_configuration() -> None:
    result = _eventlog("send", "x", EVENTLOG_TRANSPORT="carrier-pigeon")
    assert result.returncode == 2
    assert "transport 'carrier-pigeon' is not installed" in result.stderr


def test_demo_shows_events_from_both_doors_and_the_metrics() -> None:
    result = _eventlog("demo")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "5 of 5 events arrived" in out
    assert '"action": "click", "target": "my-button", "tgType": "ui"' in out
    assert '"message": "my message", "tags": ["thing-one", "thing-two"]' in out
    assert 'eventlog_events_sent_total{pipeline="default"} 5.0' in out


def test_plugins_lists_builtins_with_distribution_and_settings() -> None:
    result = _eventlog("plugins", "--settings")
    assert result.returncode == 0, result.stderr
    rows = [line.split()[:5] for line in result.stdout.splitlines()]
    assert rows[0] == ["KIND", "NAME", "DISTRIBUTION", "VERSION", "FRAMING"]
    version = importlib.metadata.version("eventlog")
    # FRAMING: what a formatter writes, what a transport carries (issue 13, item 4).
    assert ["transport", "tcp", "eventlog", version, "lines,self-delimiting"] in rows
    assert ["transport", "logstash", "eventlog", version, "lines"] in rows
    assert ["transport", "udp", "eventlog", version, "any"] in rows
    assert ["formatter", "logstash", "eventlog", version, "lines"] in rows
    assert ["enricher", "host", "eventlog", version, "-"] in rows
    assert "BROKEN" not in result.stdout
    # Each value as it is written in the environment, and read back as the same value.
    assert "  EVENTLOG_TCP_TLS_VERIFY=true  # " in result.stdout
    assert "  EVENTLOG_ENRICHERS=host,site,context  # " in result.stdout
    assert "  EVENTLOG_HOST=  # " in result.stdout
    assert "  EVENTLOG_SHUTDOWN_TIMEOUT=5  # " in result.stdout
    assert "None" not in result.stdout and "('" not in result.stdout


def test_every_default_printed_by_plugins_settings_is_accepted_back_from_the_environment() -> None:
    from eventlog._config.config import CORE_OPTIONS, Settings, env_name
    from eventlog.cli import env_text

    result = _eventlog("plugins", "--settings")
    lines = result.stdout.split("SETTINGS", 1)[1].splitlines()[1:]
    environ = {}
    for line in lines:
        assignment = line.split("  # ", 1)[0].strip()
        name, _, value = assignment.partition("=")
        if name in {env_name(o.name) for o in CORE_OPTIONS}:
            environ[name] = shlex.split(value)[0] if value else ""
    assert len(environ) == len(CORE_OPTIONS)
    settings = Settings.load({}, environ=environ)
    for option in CORE_OPTIONS:
        assert settings.values[option.name] == option.default, option.name
        assert env_text(settings.values[option.name]) == environ[env_name(option.name)]


def test_a_reader_that_leaves_early_is_no_traceback() -> None:
    # `eventlog plugins --settings | head -1`, made certain: the pipe's reader is gone before
    # the first write (with head, a listing that fits the pipe's buffer might never notice).
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "eventlog", "plugins", "--settings"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=60,
        )
    finally:
        os.close(write_end)
    assert result.returncode == 141
    assert result.stderr == ""


def test_plugins_help_says_when_it_exits_non_zero() -> None:
    result = _eventlog("plugins", "--help")
    assert result.returncode == 0
    assert "Exit status: 0 when nothing is broken, 1 when something is." in " ".join(result.stdout.split())


def test_version_and_help_without_a_command() -> None:
    version = _eventlog("--version")
    assert (version.returncode, version.stdout) == (0, f"eventlog {importlib.metadata.version('eventlog')}\n")
    bare = _eventlog()
    assert bare.returncode == 0
    assert bare.stdout == _eventlog("--help").stdout
    assert bare.stdout.startswith("usage: eventlog [-h] [--version] COMMAND ...")


def _help_pages() -> dict[str, str]:
    from eventlog.cli import build_parser

    parser = build_parser()
    pages = {"eventlog": parser.format_help()}
    todo = [("eventlog", parser)]
    while todo:
        name, current = todo.pop()
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub_name, sub in action.choices.items():
                    pages[f"{name} {sub_name}"] = sub.format_help()
                    todo.append((f"{name} {sub_name}", sub))
    return pages


def test_every_command_has_help_without_markup_or_jargon() -> None:
    pages = _help_pages()
    assert {"eventlog send", "eventlog demo", "eventlog config", "eventlog plugins"} <= set(pages)
    for name, page in pages.items():
        description = page.split("\n\n", 2)[1]
        assert not description.startswith(("positional arguments", "options")), f"{name} has no description"
        for word in ("``", ":func:", ":class:", "issue ", "hook", "pipeline"):
            assert word not in page, f"{name}: {word!r} in its help"
    send = pages["eventlog send"]
    for argument in ("action", "target", "--type", "--message", "--tag", "--field", "--level", "--timeout"):
        line = next(line for line in send.splitlines() if line.strip().startswith(argument))
        assert len(line.split()) > 1 or argument in {"--field"}, f"{argument} has no help"


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--level", "LOUD"], "'LOUD' is not a level: use DEBUG, INFO, WARNING, ERROR, CRITICAL or a number"),
        (["--field", "n:int=1.5"], "--field 'n:int=1.5': '1.5' is not a whole number"),
        (["--field", "x:float=abc"], "--field 'x:float=abc': 'abc' is not a number"),
        (["--field", "x:bool=1"], "--field 'x:bool=1': the type is int, float or str, not 'bool'"),
        (["--field", "novalue"], "expected key=value (or key:int=5, key:float=1.5), got 'novalue'"),
    ],
)
def test_send_refuses_a_bad_level_or_field_saying_why(args: list[str], error: str) -> None:
    result = _eventlog("send", "x", *args)
    assert result.returncode == 2
    assert error in result.stderr


def test_config_prints_each_value_and_where_it_comes_from() -> None:
    secret = "s3cret-Pa55word"
    result = _eventlog(
        "config", "--set", "host=collector.internal:5959",
        EVENTLOG_TRANSPORT="udp", EVENTLOG_DB="/tmp/spool.db", EVENTLOG_BATCH_SIZE="500",
        EVENTLOG_LOGSTASH_TLS_KEY="/etc/key.pem", EVENTLOG_SITE=secret,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split(None, 2)[1:] for line in result.stdout.splitlines()[1:] if line}
    assert rows["host"] == ["collector.internal", "argument --set host=..."]
    assert rows["port"] == ["5959", "from host"]
    assert rows["transport"] == [
        "logstash",
        "default (logstash with a host, else console) (environment variable EVENTLOG_TRANSPORT "
        "set aside: code names the destination)",
    ]
    assert rows["format"] == ["json", "default (the logstash transport's)"]
    assert rows["db"] == ["/tmp/spool.db", "environment variable EVENTLOG_DB"]
    assert rows["batch_size"] == ["500", "environment variable EVENTLOG_BATCH_SIZE"]
    assert rows["queue_size"] == ["100000", "default"]
    assert rows["logstash_tls_key"] == ["/etc/key.pem", "environment variable EVENTLOG_LOGSTASH_TLS_KEY"]
    assert result.stdout.endswith(
        "events go to: logstash (json) collector.internal:5959, spooled in /tmp/spool.db\n"
    )


def test_config_hides_secrets() -> None:
    result = _eventlog(
        "config",
        EVENTLOG_TRANSPORT="http",
        EVENTLOG_HTTP_URL="https://ingest:url-Pa55word@127.0.0.1:9/in",
        EVENTLOG_HTTP_TOKEN="tok",
        EVENTLOG_HTTP_HEADERS="X-Api-Key: header-Secret",
    )
    assert result.returncode == 0, result.stderr
    assert "Pa55word" not in result.stdout and "tok " not in result.stdout
    assert "header-Secret" not in result.stdout
    rows = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()[1:] if line}
    assert rows["http_url"] == "https://ingest:<hidden>@127.0.0.1:9/in"
    assert rows["http_token"] == "<hidden>"
    assert rows["http_headers"] == "<hidden>"


def test_config_refuses_what_configure_would_refuse() -> None:
    result = _eventlog("config", EVENTLOG_BATCH_SIZE="0")
    assert result.returncode == 2
    assert result.stderr.startswith(
        "eventlog config: environment variable EVENTLOG_BATCH_SIZE = '0' is invalid: must be 1 or more"
    )


def test_config_names_django_settings_as_the_source() -> None:
    result = _eventlog(
        "config",
        DJANGO_SETTINGS_MODULE="tests.djangoproject.settings",
        DJANGOPROJECT_EVENTLOG_PORT="5999",
        EVENTLOG_SITE="from-env",  # the environment wins over Django's settings.py
    )
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split(None, 2)[1:] for line in result.stdout.splitlines()[1:] if line}
    assert rows["host"] == ["127.0.0.1", "Django setting EVENTLOG_HOST"]
    assert rows["port"] == ["5999", "Django setting EVENTLOG_PORT"]
    assert rows["transport"] == ["tcp", "Django setting EVENTLOG_TRANSPORT"]
    assert rows["site"] == ["from-env", "environment variable EVENTLOG_SITE"]
