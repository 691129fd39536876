"""Every ```python block of docs/**/*.md and README.md runs, and what it sends arrives.

Each block runs alone in a fresh interpreter (its own default pipeline, its own
exit), with ``EVENTLOG_HOST``/``EVENTLOG_PORT`` pointing at a real
:class:`~eventlog._builtin.receiver.LineReceiver` on loopback; a block that names the
Logstash port, 5959, is given the receiver's port instead. After the
block, every pipeline that sends to the receiver is flushed: what those
pipelines counted as sent must be exactly what the receiver holds, with nothing
dropped, and a block that logs must have sent something.

A block that cannot run alone (it needs a server such as ClickHouse, a Django
project, a framework's request) carries, on the line above it,
``<!-- not-run: <why>; covered by tests/<test file>.py -->``, and the named test
must exist.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from eventlog._builtin.receiver import LineReceiver

ROOT = Path(__file__).parent.parent
PAGES = [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "README.md"]

FENCE = re.compile(r"^(?P<indent>[ \t]*)```python[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.S | re.M)
NOT_RUN = re.compile(r"<!--\s*not-run:\s*(?P<why>.*?)\s*-->")
COVERED = re.compile(r"^(?P<reason>\S.*?);\s*covered by (?P<tests>\S+\.py(?:(?:,| and) \S+\.py)*)$")
#: Calls that send an event: a block making one at its top level must have sent something.
SENDS = ("log_event(", "logEvent(", ".info(", ".exception(", ".inc(", ".set(")


@dataclass(frozen=True)
class Example:
    page: Path
    line: int
    code: str
    marker: str  # the HTML comment on the line above, or ""

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def _examples() -> list[Example]:
    found: list[Example] = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
            marker = before if before.startswith("<!--") else ""
            line = text.count("\n", 0, match.start()) + 1
            found.append(Example(page, line, textwrap.dedent(match.group("body")), marker))
    return found


EXAMPLES = _examples()
RUNNABLE = [e for e in EXAMPLES if not NOT_RUN.search(e.marker)]

HARNESS = """
import json, sys
import eventlog

made = []
_init = eventlog.Pipeline.__init__


def _track(self, *args, **kwargs):
    _init(self, *args, **kwargs)
    made.append(self)


eventlog.Pipeline.__init__ = _track
source, name, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
exec(compile(open(source, encoding="utf-8").read(), name, "exec"), {"__name__": "__main__"})
eventlog.flush(10)
ours = [
    p
    for p in made
    if (p.settings.host, p.settings.port) == ("127.0.0.1", port)
    and p.settings.transport in (None, "tcp", "logstash")
]
for pipeline in ours:
    pipeline.flush(10)
dropped = {}
for pipeline in made:
    for reason, count in pipeline.stats.dropped_by_reason().items():
        dropped[reason] = dropped.get(reason, 0) + count
report = {
    "sent": sum(p.stats.sent for p in ours),
    "sent_anywhere": sum(p.stats.sent for p in made),  # the console, capture_events ...
    "dropped": dropped,
}
print("DOCS-EXAMPLE " + json.dumps(report))
"""


def test_examples_are_found() -> None:
    pages = {e.page.relative_to(ROOT).as_posix() for e in EXAMPLES}
    assert {"README.md", "docs/index.md", "docs/guide.md", "docs/plugins.md"} <= pages
    assert len(RUNNABLE) >= 20


def _test_exists(path: str) -> bool:
    """The covering test is where the page says (a moved test must move its mention too)."""
    return (ROOT / path).is_file()


def test_every_block_not_run_says_why_and_which_test_covers_it() -> None:
    skipped = [e for e in EXAMPLES if NOT_RUN.search(e.marker)]
    assert skipped, "no block is marked not-run: the markers are not being read"
    problems: list[str] = []
    for example in skipped:
        match = NOT_RUN.search(example.marker)
        assert match is not None
        covered = COVERED.match(match.group("why"))
        if covered is None:
            problems.append(
                f"{example.name}: say '<why>; covered by tests/<file>.py', not {match.group('why')!r}"
            )
            continue
        for path in re.split(r",\s*| and ", covered.group("tests")):
            if not _test_exists(path):
                problems.append(f"{example.name}: {path} does not exist")
    assert not problems, problems


def test_every_marker_sits_on_a_python_block() -> None:
    """A not-run comment that is not right above a block marks nothing."""
    attached = {(e.page, e.marker) for e in EXAMPLES if e.marker}
    stray: list[str] = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in re.finditer(r"<!--\s*not-run:.*?\s*-->", text):
            if (page, match.group(0).strip()) not in attached:
                stray.append(f"{page.relative_to(ROOT)}:{text.count(chr(10), 0, match.start()) + 1}")
    assert not stray, f"markers not directly above a ```python block: {stray}"


def _environment(port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTLOG_")}
    env.update(EVENTLOG_HOST="127.0.0.1", EVENTLOG_PORT=str(port), PYTHONDONTWRITEBYTECODE="1")
    return env


@pytest.mark.parametrize("example", RUNNABLE, ids=[e.name for e in RUNNABLE])
def test_example_runs_and_what_it_sends_arrives(example: Example, tmp_path: Path) -> None:
    with LineReceiver() as receiver:
        code = re.sub(r"\b5959\b", str(receiver.port), example.code)
        source = tmp_path / "example.py"
        source.write_text(code, encoding="utf-8")
        harness = tmp_path / "harness.py"
        harness.write_text(HARNESS, encoding="utf-8")
        done = subprocess.run(
            [sys.executable, str(harness), str(source), example.name, str(receiver.port)],
            cwd=tmp_path,
            env=_environment(receiver.port),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, f"{example.name} failed:\n{done.stdout}\n{done.stderr}"
        (report_line,) = [line for line in done.stdout.splitlines() if line.startswith("DOCS-EXAMPLE ")]
        report = json.loads(report_line.removeprefix("DOCS-EXAMPLE "))
        assert report["dropped"] == {}, f"{example.name} dropped events: {done.stderr}"
        top_level = [line for line in code.splitlines() if line and not line[0].isspace()]
        if any(call in line for call in SENDS for line in top_level):
            assert report["sent_anywhere"] >= 1, f"{example.name} logs, but nothing was sent"
        assert receiver.wait_for(report["sent"], 10)
        assert len(receiver.lines) == report["sent"]
