"""mkdocs hook: the configuration reference's option tables, generated from the registry.

``docs/configuration.md`` holds the marker ``<!-- options-table -->``; at build
time it is replaced by one table per owner (the core's ``CORE_OPTIONS``, every
installed formatter, transport and enricher, the Django middleware), built from
the same :func:`eventlog._config.selection.setting_owners` that ``configure()`` checks
settings against. A new option therefore appears on the page without anyone
writing it there; ``tests/test_docs_config.py`` holds the page to the registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from eventlog._config.config import CORE_OPTIONS, env_name, option_key
from eventlog._config.registry import Registry, get_registry
from eventlog._config.selection import setting_owners
from eventlog.plugin import Option

MARKER = "<!-- options-table -->"
PAGE = "configuration.md"


def _cell(text: str) -> str:
    """Text safe inside a markdown table cell (a help text may say ``<tag>``)."""
    text = text.replace("``", "`").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("|", "\\|").replace("\n", " ").strip()


def _default(option: Option) -> str:
    if option.secret:
        return "(secret)" if option.default is None else "(secret default)"
    if option.default is None:
        return "unset"
    value = option.default
    if isinstance(value, tuple):
        if not value:
            return "none"
        # One code span per item: the column may wrap between them (one long token would not).
        return ", ".join(f"`{v}`" for v in value)
    if isinstance(value, bool):
        value = "true" if value else "false"
    return f"`{value}`"


def _allowed(option: Option) -> str:
    """What the option declares it accepts: what configure() quotes as "allowed"."""
    if option.choices:
        return ", ".join(f"`{c}`" for c in option.choices)
    text = option.allowed or ""
    if option.empty:
        text += "; empty: none"
    return text[:1].upper() + text[1:] + "." if text else ""


def _table(rows: list[tuple[str, Option]], *, keyword: bool = True) -> list[str]:
    """One row per option; ``keyword=False`` for settings that configure() does not take."""
    # The two spellings share one cell, one above the other: five columns of which two hold
    # long identifiers do not fit the page's column (scripts/check_site.py checks it).
    out = [
        "| environment variable / Django setting<br>`configure()` keyword | default | meaning | allowed |",
        "| --- | --- | --- | --- |",
    ]
    for key, option in rows:
        meaning = option.help + (" (secret: never printed)" if option.secret else "")
        name = f"`{env_name(key)}`<br>`{key}`" if keyword else f"`{env_name(key)}`<br>(not a keyword)"
        cells = [name, _cell(_default(option)), _cell(meaning), _cell(_allowed(option))]
        out.append("| " + " | ".join(cells) + " |")
    return out


def _registered(registry: Registry, kind: str, name: str) -> Any:
    tables: dict[str, Mapping[str, Any]] = {
        "formatter": registry.formatters,
        "transport": registry.transports,
        "enricher": registry.enrichers,
    }
    return tables[kind][name]


def render(registry: Registry | None = None) -> str:
    """Every setting, grouped by who reads it, as markdown."""
    registry = registry if registry is not None else get_registry()
    owners = setting_owners(registry, django=True)
    lines: list[str] = ["### Core", ""]
    lines += _table([(o.name, o) for o in CORE_OPTIONS])
    groups: dict[tuple[str, str], list[tuple[str, Option]]] = {}
    for key, holders in sorted(owners.items()):
        for owner in holders:
            if owner.kind != "core":
                groups.setdefault((owner.kind, owner.plugin), []).append((key, owner.option))
    order = {"transport": 0, "formatter": 1, "enricher": 2, "django": 3}
    for (kind, plugin), rows in sorted(groups.items(), key=lambda item: (order[item[0][0]], item[0][1])):
        if kind == "django":
            title, note = "Django middleware (`eventlog.django`)", ""
        else:
            registered = _registered(registry, kind, plugin)
            title, note = f"{kind.capitalize()} `{plugin}`", f" (distribution `{registered.distribution}`)"
            # The order the plugin declared its options in, not the alphabet.
            declared = [option_key(plugin, o) for o in registered.spec.options]
            rows.sort(key=lambda row: declared.index(row[0]))
        lines += ["", f"### {title}", ""]
        if note:
            lines += [f"Read when {kind} `{plugin}` is selected{note}.", ""]
        lines += _table(rows, keyword=kind != "django")
    return "\n".join(lines) + "\n"


def fill(markdown: str, registry: Registry | None = None) -> str:
    """The page with its marker replaced by the tables; an error if the marker is gone."""
    if MARKER not in markdown:
        raise ValueError(f"{PAGE} lost its {MARKER} marker: the option tables would be missing")
    return markdown.replace(MARKER, render(registry))


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """mkdocs event: fill the configuration page."""
    if page.file.src_uri == PAGE:
        return fill(markdown)
    return markdown
