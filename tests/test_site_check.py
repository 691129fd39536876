"""The docs site's browser check (scripts/check_site.py) and table hook, on known-bad pages.

``nox -s docs`` runs the check on every built page in headless Chromium; these
tests hold its judgement to the two faults the site had: numbered steps that
restarted at 1 (or became a paragraph) after a code block not indented under its
item, and identifiers cut in table cells.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[path.stem]
    return module


check = _load(ROOT / "scripts" / "check_site.py")
tables = _load(ROOT / "docs" / "hooks" / "tables.py")

SOURCE = """# Page

1. Install [eventlog](../index.md#install) with `pip`.
2. Add the extension:

   ```python
   1. not a step, inside code
   ```

3. The user: `get_user`.
4. Run it.
"""


def test_steps_are_read_from_the_source_outside_code() -> None:
    assert check.numbered_steps(SOURCE) == [
        (1, "Install eventlog with pip."),
        (2, "Add the extension:"),
        (3, "The user: get_user."),
        (4, "Run it."),
    ]


def test_a_list_that_restarts_or_loses_a_step_is_reported() -> None:
    steps = check.numbered_steps(SOURCE)
    # What Python-Markdown made of the page with the fence indented 3 spaces: step 3 started
    # a new list at 1, and step 4 went into step 3's paragraph.
    broken = [
        {"start": 1, "items": ["Install eventlog with pip.", "Add the extension:"]},
        {"start": 1, "items": ["The user: get_user. 4. Run it."]},
    ]
    assert check.list_problems(steps, broken) == [
        "step 3 ('The user: get_user.') is numbered 1 on the page",
        "step 4 ('Run it.') is not a list item on the page",
    ]
    whole = [{"start": 1, "items": [text for _, text in steps]}]
    assert check.list_problems(steps, whole) == []


def test_table_code_breaks_only_at_spaces_and_commas() -> None:
    html = (
        "<p><code>X-Request-ID</code></p><table><tr><td><code>X-Request-ID</code></td>"
        "<td><code>host,site</code> <code>eventlog capnp ddl</code></td></tr></table>"
    )
    assert tables.nobreak(html) == (
        "<p><code>X-Request-ID</code></p><table><tr><td>"
        '<code><span class="nobreak">X-Request-ID</span></code></td><td>'
        '<code><span class="nobreak">host</span>,<wbr><span class="nobreak">site</span></code> '
        '<code><span class="nobreak">eventlog</span> <span class="nobreak">capnp</span> '
        '<span class="nobreak">ddl</span></code></td></tr></table>'
    )


def test_the_docs_session_runs_the_browser_check() -> None:
    noxfile = (ROOT / "noxfile.py").read_text()
    assert '"scripts/check_site.py"' in noxfile
    assert "--no-sandbox" in check.FLAGS and "--disable-quic" in check.FLAGS
