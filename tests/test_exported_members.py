"""Each public module's ``__all__`` is what the docs list, and what the module defines publicly.

In the style of httpx's ``test_exported_members``: the user guide's API table and the plugin
guide's SDK table (tests/test_docs_plugins.py) name exactly what ``__all__`` exports, and a
public class or function defined in a public module is exported or named with a ``_``.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "guide.md"

#: The application's public modules (the SDK's are held by tests/test_docs_plugins.py).
PUBLIC = [
    "eventlog",
    "eventlog.testing",
    "eventlog.prometheus",
    "eventlog.django",
    "eventlog.asgi",
    "eventlog.flask",
    "eventlog.structlog",
    "eventlog.loguru",
]
SDK = ["eventlog.plugin", "eventlog.plugin.net", "eventlog.plugin.aio", "eventlog.plugin.testing"]


def _api_rows() -> dict[str, list[str]]:
    text = GUIDE.read_text(encoding="utf-8")
    table = text[text.index("## The public API") :].split("\n\n")[2]
    rows = re.findall(r"^\| `(eventlog(?:\.\w+)*)` \| (.*) \|$", table, re.M)
    return {module: re.findall(r"`([A-Za-z_]\w*)`", cells) for module, cells in rows}


def test_the_guide_lists_every_public_module_once() -> None:
    assert list(_api_rows()) == PUBLIC


@pytest.mark.parametrize("name", PUBLIC)
def test_the_guide_lists_exactly_what_the_module_exports(name: str) -> None:
    listed = _api_rows()[name]
    assert len(listed) == len(set(listed)), f"{name}: a name is listed twice"
    assert sorted(listed) == sorted(importlib.import_module(name).__all__)


@pytest.mark.parametrize("name", PUBLIC + SDK)
def test_every_exported_name_exists_and_every_public_definition_is_exported(name: str) -> None:
    module = importlib.import_module(name)
    exported = set(module.__all__)
    assert sorted(n for n in exported if not hasattr(module, n)) == []
    defined_here = {
        attr
        for attr, value in vars(module).items()
        if not attr.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and getattr(value, "__module__", "").startswith(name)
        and not inspect.ismodule(value)
    }
    assert sorted(defined_here - exported) == []


def test_private_packages_are_not_reexported_as_modules() -> None:
    # ``eventlog._engine`` is reachable, but no public module hands out a private module object.
    for name in PUBLIC + SDK:
        module = importlib.import_module(name)
        leaked = [n for n in module.__all__ if inspect.ismodule(getattr(module, n))]
        assert leaked == [], name
