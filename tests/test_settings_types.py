"""The core settings are typed attributes of Settings, declared once (CoreSettings), and
mypy sees their types: ``settings.queue_size`` is an int, ``settings.host`` a str or None."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from eventlog._config.config import CORE_OPTIONS, Core, CoreSettings, Settings


def test_each_core_option_is_one_typed_attribute_declared_once() -> None:
    declared = [value.option for value in vars(CoreSettings).values() if isinstance(value, Core)]
    assert declared == list(CORE_OPTIONS) and len({o.name for o in declared}) == len(declared)
    settings = Settings.load({"queue_size": 7}, environ={"EVENTLOG_SITE": "shop"})
    assert {o.name: getattr(settings, o.name) for o in CORE_OPTIONS} == dict(settings.values)
    assert (settings.queue_size, settings.site, settings.host) == (7, "shop", None)


def test_a_setting_that_is_not_resolved_is_no_attribute() -> None:
    empty = Settings({}, {}, {})
    assert getattr(empty, "exc_info_format", "text") == "text"
    with pytest.raises(AttributeError):
        _ = Settings.load({}, environ={}).fluent_tag  # type: ignore[attr-defined]  # plugin options: plugin_options()


def test_mypy_sees_the_type_of_each_core_setting(tmp_path: Path) -> None:
    api = pytest.importorskip("mypy.api")
    snippet = tmp_path / "typed_settings.py"
    snippet.write_text(
        textwrap.dedent(
            """
            from typing import assert_type

            from eventlog._config.config import Core, Settings

            s = Settings.load({})
            assert_type(s.queue_size, int)
            assert_type(s.host, str | None)
            assert_type(s.port, int | None)
            assert_type(s.enrichers, tuple[str, ...])
            assert_type(s.linger_ms, float)
            assert_type(s.spool_sync, str)
            assert_type(Settings.queue_size, Core[int])
            s.no_such_setting
            """
        ),
        encoding="utf-8",
    )
    out, _, status = api.run(["--strict", "--no-incremental", "--no-error-summary", str(snippet)])
    assert [line.split(": error: ", 1)[-1] for line in out.splitlines()] == [
        '"Settings" has no attribute "no_such_setting"  [attr-defined]'
    ]
    assert status == 1
