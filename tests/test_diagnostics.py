"""eventlog's own loggers (one per module, all under ``eventlog``) and its one warn-once mechanism."""

from __future__ import annotations

import ast
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventlog._api.handler import EventHandler
from eventlog._core import diagnostics
from eventlog._core.diagnostics import OWN_LOGGERS, Warnings, is_own
from eventlog.testing import capture_events

SRC = Path(__file__).resolve().parent.parent / "src" / "eventlog"


def _sources() -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(SRC.rglob("*.py")):
        yield str(path.relative_to(SRC)), ast.parse(path.read_text(encoding="utf-8"))


def test_every_module_logs_under_its_own_name() -> None:
    literal = {}
    for name, tree in _sources():
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "getLogger"
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and str(node.args[0].value).startswith("eventlog")
            ):
                literal.setdefault(name, []).append(node.args[0].value)
    # Only the parent of them all is named by hand, where it is configured.
    assert literal == {"_core/diagnostics.py": ["eventlog"]}


def test_one_warn_once_mechanism_no_module_keeps_its_own_memory() -> None:
    own = []
    for name, tree in _sources():
        for node in ast.walk(tree):
            targets = (
                node.targets
                if isinstance(node, ast.Assign)
                else [node.target]
                if isinstance(node, ast.AnnAssign)
                else []
            )
            for target in targets:
                label = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
                if label.endswith(("_warned", "_reported")) and name != "_core/diagnostics.py":
                    value = node.value
                    if not (isinstance(value, ast.Call) and getattr(value.func, "id", "") == "Warnings"):
                        own.append(f"{name}: {label}")
    assert own == []


def test_a_handler_on_the_eventlog_logger_hears_every_module() -> None:
    heard: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            heard.append(record.name)

    keep = Keep()
    logging.getLogger("eventlog").addHandler(keep)
    try:
        for name in ("eventlog._engine.sender", "eventlog._spool.sqlite", "eventlog._config.selection"):
            logging.getLogger(name).warning("x")
    finally:
        logging.getLogger("eventlog").removeHandler(keep)
    assert heard == ["eventlog._engine.sender", "eventlog._spool.sqlite", "eventlog._config.selection"]
    assert all(is_own(name) and name in OWN_LOGGERS for name in heard)
    assert not is_own("eventlogger") and "eventlog_fluent" not in OWN_LOGGERS


def test_every_module_logger_is_known_to_the_feedback_guard() -> None:
    import eventlog._engine.pipeline
    import eventlog._spool.sqlite  # noqa: F401

    loggers = {
        name: module.log.name
        for name, module in list(sys.modules.items())
        if name.startswith("eventlog.") and isinstance(getattr(module, "log", None), logging.Logger)
    }
    assert "eventlog._spool.sqlite" in loggers and "eventlog._engine.sender" in loggers
    assert all(name == logger for name, logger in loggers.items())
    assert set(loggers.values()) <= OWN_LOGGERS


def test_an_event_handler_on_eventlog_loggers_never_feeds_their_records_back() -> None:
    with capture_events() as captured:
        handler = EventHandler()
        own = logging.getLogger("eventlog")
        app = logging.getLogger("app.orders")
        own.addHandler(handler)
        app.addHandler(handler)
        app.propagate = False
        try:
            logging.getLogger("eventlog._engine.sender").warning("peer down")
            app.warning("order %d paid", 7)
        finally:
            own.removeHandler(handler)
            app.removeHandler(handler)
            app.propagate = True
    assert [e["message"] for e in captured] == ["order 7 paid"]


def test_warnings_are_logged_once_per_key_and_memory_is_bounded(caplog: pytest.LogCaptureFixture) -> None:
    said: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            said.append(record.getMessage())

    logger = logging.getLogger("eventlog.test_diagnostics")
    keep = Keep()
    logger.addHandler(keep)
    try:
        warnings = Warnings("p", logger, limit=2)
        assert [warnings.once(k, "%s down", k) for k in ("a", "a", "b", "c", "a")] == [
            True,
            False,
            True,
            True,
            True,
        ]
        warnings.again("c")
        assert warnings.once("c", "c again")
        assert "b" not in warnings and len(warnings._warned) == 2
    finally:
        logger.removeHandler(keep)
    assert said == ["[p] a down", "[p] b down", "[p] c down", "[p] a down", "[p] c again"]
    assert Warnings().limit == diagnostics.MAX_KEYS


class _SlowStream:
    """A stream whose write holds its own lock until told to finish, as a buffered file does."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.writing = threading.Event()
        self.finish = threading.Event()

    def write(self, text: str) -> None:
        with self.lock:
            self.writing.set()
            self.finish.wait(10)

    def flush(self) -> None:
        with self.lock:
            pass


def test_a_fork_while_a_warning_is_written_leaves_the_child_a_usable_stream() -> None:
    # Found by the fault run: a forked child hung in its first warning (shutdown's), in the
    # stream's flush: a worker thread of the parent was writing a warning at the fork, and a
    # buffered stream's lock stays held in the child for ever (logging renews only its own
    # locks).  The fork now waits until eventlog's handler has finished its write.
    stream = _SlowStream()
    old = diagnostics._stderr.setStream(stream)  # type: ignore[arg-type]
    # eventlog's logger as an application has it: its own handler only.  Under pytest it also
    # carries pytest's capture handlers (a file handler on /dev/null among them), which the
    # writer goes on to after ours; a fork while it wrote there left the child that buffered
    # file's lock held (the child hung in 8 of 25 runs on a loaded machine), which no fork
    # hook of eventlog's can cover: that handler is pytest's, not ours.
    handlers = diagnostics.ROOT.handlers[:]
    diagnostics.ROOT.handlers[:] = [diagnostics._stderr]
    try:
        writer = threading.Thread(target=lambda: logging.getLogger("eventlog.test").warning("parent"))
        writer.start()
        assert stream.writing.wait(10)
        threading.Timer(0.2, stream.finish.set).start()  # the write ends on its own, a little later
        pid = os.fork()
        if pid == 0:  # the child: one warning, then exit
            code = 1
            try:
                logging.getLogger("eventlog.test").warning("child")
                code = 0
            finally:
                os._exit(code)
        deadline = time.monotonic() + 20
        status = None
        while status is None and time.monotonic() < deadline:
            done, raw = os.waitpid(pid, os.WNOHANG)
            status = os.waitstatus_to_exitcode(raw) if done else None
            time.sleep(0.01)
        if status is None:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        assert status == 0, "the child hung in its first warning"
        writer.join(10)
    finally:
        stream.finish.set()
        diagnostics._stderr.setStream(old)
        diagnostics.ROOT.handlers[:] = handlers
