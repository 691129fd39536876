"""The first hour: the README's commands, CI running exactly them, and install advice that works.

What a new user copies must work as printed on a stock Debian python3 (where a
bare ``pip install`` is refused as externally managed) and must never install
the unrelated project called ``eventlog`` from the public index (0.5.2 to 0.11.0).
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import sys
import tomllib
from pathlib import Path

import pytest

from eventlog._config.registry import EXTRAS, install_command

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()

#: Every page a user reads install commands from.
PAGES = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").rglob("*.md")),
    *sorted(ROOT.glob("plugins/*/README.md")),
    *sorted(ROOT.glob("examples/*/README.md")),
    # What the library itself prints: docstrings (help()) and messages.
    *sorted(ROOT.glob("src/eventlog/**/*.py")),
    *sorted(ROOT.glob("plugins/*/src/**/*.py")),
]


def _two_commands() -> list[str]:
    section = README.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line and not line.startswith("#")]


def test_the_readme_commands_bring_their_own_venv() -> None:
    demo, tests = _two_commands()
    setup = "python3 -m venv .venv && .venv/bin/pip install nox && "
    assert demo == setup + ".venv/bin/nox -s demo"
    assert tests == setup + ".venv/bin/nox -s tests lint typecheck package docs"
    # A bare pip outside a venv is what Debian refuses (externally-managed-environment).
    assert "python3 -m pip install" not in README
    assert "python3-venv" in README  # Debian's python3 cannot make a venv without it


def test_ci_runs_exactly_the_readme_test_command() -> None:
    run = (ROOT / ".ci" / "run").read_text().splitlines()
    commands = [line for line in run if line and not line.startswith(("#", "set ", "cd ", "export "))]
    assert commands == [_two_commands()[1]]


def test_provision_waits_for_the_dpkg_lock_bounded() -> None:
    script = (ROOT / "scripts" / "provision-peers").read_text()
    assert "apt=(apt-get -o DPkg::Lock::Timeout=300)" in script
    runs = [line.strip() for line in script.splitlines() if re.search(r"apt-get |\$\{apt\[@\]\}", line)]
    runs = [line for line in runs if not line.startswith(("#", "echo", "apt=(", "if command -v apt-get"))]
    # Every apt-get run goes through the lock-waiting array: the peers' installs and syslog-ng's
    # download.
    assert len(runs) >= 4 and all('"${apt[@]}"' in line and "apt-get " not in line for line in runs), runs


def test_the_nox_sessions_wait_for_the_dpkg_lock_too() -> None:
    lines = [line for line in (ROOT / "noxfile.py").read_text().splitlines() if '"apt-get"' in line]
    assert len(lines) >= 3  # bench's valgrind (update, install), docs' chromium
    for line in lines:
        assert '"-o", "DPkg::Lock::Timeout=300"' in line, line


def _pip_lines() -> list[tuple[Path, str]]:
    found = []
    for page in PAGES:
        for line in page.read_text().splitlines():
            if "installs that one" in line:  # the warning against the bare name
                continue
            for match in re.finditer(r"pip install ([^`#\n\")]*)", line):
                found.append((page, match.group(1).strip()))
    return found


def test_every_printed_install_of_ours_is_pinned_or_local() -> None:
    """An eventlog requirement without ==0.1.0 lets pip take the other project's 0.11.0."""
    checked = 0
    for page, args in _pip_lines():
        if "{" in args:  # install_command's own f-string: its output is tested below
            continue
        for word in shlex.split(args):
            if word.startswith("-") or word in {".", "nox"} or "/" in word.split("[")[0]:
                continue  # options, local folders, nox itself
            name = re.split(r"[\[=<>!~ ]", word, maxsplit=1)[0].lower().replace("_", "-")
            if name == "eventlog" or name.startswith("eventlog-"):
                checked += 1
                assert word.endswith("==0.1.0"), f"{page.relative_to(ROOT)}: pip install {args}"
    assert checked >= 10


def test_the_install_advice_the_library_prints_is_the_documented_command() -> None:
    assert install_command("http") == "pip install --find-links dist/ 'eventlog[http]==0.1.0'"
    documented = {args for _, args in _pip_lines()}
    for extra in set(EXTRAS.values()):
        printed = install_command(extra)
        assert shlex.split(printed)[-1] == f"eventlog[{extra}]==0.1.0"
        assert printed.removeprefix("pip install ") in documented or extra in {"capnp", "http", "nats"}


@pytest.mark.parametrize("pyproject", sorted(ROOT.glob("*/*/pyproject.toml")), ids=lambda p: p.parent.name)
def test_plugin_distributions_bound_their_eventlog_dependency(pyproject: Path) -> None:
    requires = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    ours = [r for r in requires if re.match(r"eventlog\b(?!-)", r)]
    assert len(ours) == 1, requires
    # ==0.1.0, or a range that stops below the other project's 0.5.2.
    assert ours[0] in {"eventlog==0.1.0", "eventlog>=0.1,<0.2"}, ours


def test_bench_targets_say_what_each_is_and_why() -> None:
    """``nox -s bench`` prints its targets for users, not where they were once asked for."""
    spec = importlib.util.spec_from_file_location("bench", ROOT / "benchmarks" / "bench.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules["bench"] = bench  # dataclasses look their module up
    try:
        spec.loader.exec_module(bench)
        results = {"info_cpu_us": 2.0, "info_wall_us": 2.0, "events_per_s": 1000.0, "complete": True}
        found = [
            bench.Contender("floor", None, "", {"info_cpu_us": 1.0, "info_wall_us": 1.0}),
            bench.Contender("stdlib", "json", "", {"events_per_s": 100.0}),
            bench.Contender("stdlib lean", "json", "", {"events_per_s": 500.0}),
            bench.Contender("eventlog memory json/tcp", "json", "", dict(results, latency_p99_ms=3.0)),
            bench.Contender("eventlog spool json/tcp", "json", "", dict(results)),
        ]
        lines = bench.targets(found)
    finally:
        del sys.modules["bench"]
    assert [line.split(" (", 1)[0] for line in lines] == [
        "- caller cost",
        "- [x] throughput, memory mode json/tcp, as a multiple of the leanest stdlib set-up",
        "- [x] throughput, memory mode json/tcp",
        "- [x] throughput, spool mode json/tcp",
        "- [x] no loss in a flood",
        "- [x] delivery latency",
    ]
    for line in lines:
        assert ": " in line.split(" (", 1)[1], line  # the why, in the brackets
    source = (ROOT / "benchmarks" / "bench.py").read_text()
    assert not re.search(r"issue \d", source)


def test_readme_code_lines_fit_githubs_code_box() -> None:
    """GitHub shows a README's code at about 105 characters a line and cuts the rest off."""
    blocks = re.findall(r"```(?:sh|python)\n(.*?)```", README, re.S)
    long = [line for block in blocks for line in block.splitlines() if len(line) > 105]
    assert long == []
