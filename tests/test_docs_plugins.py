"""The walk-through of docs/plugins.md keeps working: its plugin, loaded from the page, delivers.

(The whole walk-through, pip install included, was followed by hand in a scratch
folder; this test keeps the page's code from drifting away from the API.)
"""

from __future__ import annotations

import json
import re
import types
from pathlib import Path

from eventlog import Event
from eventlog.plugin.testing import TransportConformance, make_pipeline

GUIDE = Path(__file__).parent.parent / "docs" / "plugins.md"


def _walkthrough_files() -> dict[str, str]:
    text = GUIDE.read_text(encoding="utf-8")
    walk = text[text.index("## Walk-through") : text.index("## Transports")]
    # A file's name in backticks, its paragraph, then its block (a marker such as
    # an HTML comment may sit right above the fence).
    pattern = re.compile(
        r"^`([^`]+)`[^\n]*(?:\n[^\n`][^\n]*)*\n\n(?:<!--[^\n]*-->\n)?```\w*\n(.*?)```", re.S | re.M
    )
    return {m.group(1): m.group(2) for m in pattern.finditer(walk)}


def _module(name: str, source: str) -> types.ModuleType:
    module = types.ModuleType(name)
    exec(compile(source, f"docs/plugins.md:{name}", "exec"), module.__dict__)
    return module


def test_the_guides_plugin_delivers_through_a_real_pipeline(tmp_path: Path) -> None:
    files = _walkthrough_files()
    assert set(files) == {
        "pyproject.toml",
        "src/eventlog_jsonfile/__init__.py",
        "src/eventlog_jsonfile/plugin.py",
        "tests/conftest.py",
        "tests/test_jsonfile.py",
    }
    assert 'jsonfile = "eventlog_jsonfile.plugin"' in files["pyproject.toml"]
    plugin = _module("eventlog_jsonfile.plugin", files["src/eventlog_jsonfile/plugin.py"])
    path = tmp_path / "events.jsonl"
    # As the guide tells an author to: the plugin registered without installing it.
    pipeline = make_pipeline({"transport": "jsonfile", "jsonfile_path": str(path)}, plugins=(plugin,))
    events = [Event("docs.walkthrough", str(n)) for n in range(25)]
    for event in events:
        pipeline.submit_event(event)
    assert pipeline.shutdown(timeout=10)
    lines = path.read_bytes().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [e.id for e in events]


def test_the_guides_conformance_class_is_a_transport_suite() -> None:
    tests = _module("test_jsonfile", _walkthrough_files()["tests/test_jsonfile.py"])
    suite = tests.TestJsonFile
    assert issubclass(suite, TransportConformance)
    assert suite.transport == "jsonfile" and suite.detects_peer_loss is False
    assert not hasattr(tests, "pytest_plugins"), "pytest_plugins belongs in conftest.py"
    conftest = _module("conftest", _walkthrough_files()["tests/conftest.py"])
    assert conftest.pytest_plugins == ["eventlog.plugin.testing"]


def _sdk_rows() -> dict[str, set[str]]:
    """The SDK table of the guide: module -> the names its row lists."""
    text = GUIDE.read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(eventlog\.plugin(?:\.\w+)?)` \| (.*) \|$", text, re.M)
    return {module: set(re.findall(r"`([A-Za-z_]\w*)`", cells)) for module, cells in rows}


def test_the_sdk_table_names_what_the_sdk_exports() -> None:
    import importlib

    rows = _sdk_rows()
    modules = ["eventlog.plugin", "eventlog.plugin.net", "eventlog.plugin.aio", "eventlog.plugin.testing"]
    assert sorted(rows) == sorted(modules)
    for name in modules:
        exported = set(importlib.import_module(name).__all__)
        listed = rows[name] - {"pytest_plugins", "conftest"}
        assert listed - exported == set(), f"{name}: the guide lists names it does not export"
        assert exported - listed == set(), f"{name}: the guide's table omits names it exports"
