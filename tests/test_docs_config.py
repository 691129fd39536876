"""The documentation's facts come from the code: options, environment names, metric names.

The configuration reference is generated at build time by an mkdocs hook
(docs/hooks/config_reference.py) from the registry; these tests hold the page
and its hook to ``CORE_OPTIONS`` and every installed plugin's options, and every
``EVENTLOG_*`` name or ``eventlog_*`` metric any page mentions to the code.
"""

from __future__ import annotations

import importlib.util
import re
import types
from pathlib import Path

import pytest

from eventlog._config import config
from eventlog._config.config import CORE_OPTIONS, env_name
from eventlog._config.registry import Registry, get_registry
from eventlog._config.selection import setting_owners
from eventlog.plugin import Option, TransportSpec, hookimpl

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"
HOOK = DOCS / "hooks" / "config_reference.py"
PAGES = [*sorted(DOCS.rglob("*.md")), ROOT / "README.md", *sorted(ROOT.glob("plugins/*/README.md"))]


def _hook() -> types.ModuleType:
    spec = importlib.util.spec_from_file_location("config_reference", HOOK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _env_names_in(text: str) -> set[str]:
    return set(re.findall(r"`(EVENTLOG_[A-Z0-9_]+)`", text))


def test_mkdocs_runs_the_hook_on_the_configuration_page() -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    assert "  - docs/hooks/config_reference.py" in config
    assert "configuration.md" in config
    assert _hook().MARKER in (DOCS / "configuration.md").read_text(encoding="utf-8")


def test_every_registered_option_is_on_the_configuration_page() -> None:
    hook = _hook()
    page = hook.fill((DOCS / "configuration.md").read_text(encoding="utf-8"))
    owners = setting_owners(get_registry(), django=True)
    expected = {env_name(key) for key in owners} | {env_name(o.name) for o in CORE_OPTIONS}
    missing = sorted(expected - _env_names_in(page))
    assert not missing, f"options missing from docs/configuration.md: {missing}"
    # The plugins of this repository are installed here (EVENTLOG_REQUIRE_PEERS runs have them all).
    for name in (
        "EVENTLOG_FLUENT_TAG",
        "EVENTLOG_HTTP_URL",
        "EVENTLOG_NATS_SERVERS",
        "EVENTLOG_SYSLOG_FACILITY",
    ):
        assert name in expected
    assert "EVENTLOG_DJANGO_MAX_BODY" in expected


class _Plugin:
    """A transport registered in code, whose options the page must pick up."""

    @hookimpl
    def eventlog_transports(self) -> list[TransportSpec]:
        return [
            TransportSpec(
                "docscheck",
                lambda context: None,  # type: ignore[arg-type,return-value]
                "a transport of this test",
                options=(Option("shard_count", int, 3, "shards to spread events over"),),
            )
        ]


def test_a_new_plugins_option_appears_with_its_default_and_help() -> None:
    table = _hook().render(Registry(extra_plugins=(_Plugin(),)))
    (row,) = [line for line in table.splitlines() if "EVENTLOG_DOCSCHECK_SHARD_COUNT" in line]
    assert row == (
        "| `EVENTLOG_DOCSCHECK_SHARD_COUNT`<br>`docscheck_shard_count` | `3` | shards to spread events over "
        "| A whole number. |"
    )
    assert "### Transport `docscheck`" in table


def test_secrets_defaults_are_not_shown_and_markup_is_escaped() -> None:
    table = _hook().render()
    (row,) = [line for line in table.splitlines() if "`EVENTLOG_FLUENT_SHARED_KEY`" in line]
    assert "(secret)" in row and "secret: never printed" in row
    assert "&lt;security&gt;" in row  # the help's <security> would be an HTML tag


def test_the_page_without_its_marker_is_an_error() -> None:
    hook = _hook()
    with pytest.raises(ValueError, match="options-table"):
        hook.fill("# Configuration\n\nno tables here\n")


def test_every_environment_name_in_the_docs_is_a_setting() -> None:
    owners = setting_owners(get_registry(), django=True)
    known = {env_name(key) for key in owners}
    web = {name.removeprefix("EVENTLOG_DJANGO_") for name in known if name.startswith("EVENTLOG_DJANGO_")}
    # Names that are not settings, on purpose: read once at import (not a setting, see
    # config.NOT_SETTINGS), a misspelling shown in an error message, the guide's example plugins.
    # The suite's own switches (conftest.py) are not settings either.
    not_settings = {"EVENTLOG_SPEEDUPS", "EVENTLOG_HOTS", "EVENTLOG_JSONFILE_PATH", *config.NOT_SETTINGS}
    wrong: list[str] = []
    for page in PAGES:
        for name in set(re.findall(r"EVENTLOG_[A-Z0-9_]*[A-Z0-9]", page.read_text(encoding="utf-8"))):
            if name in known or name in not_settings or name.startswith("EVENTLOG_MYPLUGIN"):
                continue
            if name == "EVENTLOG_FLASK" or name.removeprefix("EVENTLOG_FLASK_") in web:
                continue  # Flask's app.config keys: the web settings with another prefix
            if any(k.startswith(name + "_") for k in known):
                continue  # a prefix written before `_TLS_CA`-style suffixes
            wrong.append(f"{page.relative_to(ROOT)}: {name}")
    assert not wrong, f"not settings of eventlog or its plugins: {wrong}"


def test_every_metric_name_in_the_docs_is_exported() -> None:
    source = (ROOT / "src" / "eventlog" / "_engine" / "prometheus.py").read_text(encoding="utf-8")
    families = set(re.findall(r'"(eventlog_[a-z_]+)"', source))
    assert "eventlog_events_sent" in families
    wrong: list[str] = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for name in set(re.findall(r"\beventlog_(?:events|values|send|queue|spool|transport)_[a-z_]+", text)):
            if name.removesuffix("_total") not in families:
                wrong.append(f"{page.relative_to(ROOT)}: {name}")
    assert not wrong, f"metrics eventlog._engine.prometheus does not export: {wrong}"


def test_the_redaction_list_in_the_docs_is_the_code_s() -> None:
    from eventlog._records.redact import DEFAULT_REDACT_KEYS

    text = (ROOT / "docs" / "integrations" / "index.md").read_text(encoding="utf-8")
    line = text.split("<!-- redact-keys:", 1)[1].splitlines()[1]
    assert line.strip("`").split(", ") == list(DEFAULT_REDACT_KEYS)
