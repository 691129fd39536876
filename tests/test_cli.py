"""The eventlog command: plugins, send, demo, run as a real process."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys

from eventlog.receiver import LineReceiver
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
        "--tag", "prod", "--tag", "eu", "--field", "replicas=3", "--field", "ratio=0.5",
        "--field", "who=ci",
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
    assert event["fields"] == {"replicas": 3, "ratio": 0.5, "who": "ci"}


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
    assert "EVENTLOG_TCP_TLS_VERIFY = True" in result.stdout


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
