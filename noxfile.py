"""Sessions: tests, lint, typecheck, demo, bench, package, docs.

``nox -s tests`` does all the set-up a fresh machine needs: the Python
packages in its own virtual environment, then the peers (Debian and npm
packages) through ``scripts/provision-peers``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True

ROOT = Path(__file__).parent
PLUGINS = [
    "plugins/eventlog_fluent",
    "plugins/eventlog_capnp",
    "plugins/eventlog_http",
    "plugins/eventlog_speedups",
    "plugins/eventlog_nats",
    "plugins/eventlog_otlp",
]
EXAMPLES = ["examples/eventlog_redis_streams"]
TEST_DEPS = [
    "pytest>=8",
    "pytest-timeout>=2.3",
    # Two workers: the suite mostly waits on peers and sockets (one process used about a
    # quarter of a core), so two halve the wall time on CI's two cores.
    "pytest-xdist>=3.5",
    "hypothesis>=6.100",
    "django>=4.2",
    "requests>=2.31",
    "redis>=5",
    "orjson>=3.9",
    "cryptography>=42",
    "prometheus_client>=0.20",
    "nkeys>=0.2",  # the nats transport's NKey seed test
    # tests/test_asgi.py and tests/test_flask.py: real uvicorn and werkzeug servers.
    "uvicorn>=0.30",
    "starlette>=0.40",
    "fastapi>=0.115",
    "flask>=3.0",
    "flask-login>=0.6",
    "structlog>=23.1",
    "loguru>=0.7",
    "ecs-logging>=2.1",
    "opentelemetry-api>=1.20",
    "opentelemetry-sdk>=1.20",
    # eventlog-otlp's tests: the official OTLP classes decode what arrives, and the SDK's
    # own OTLP/HTTP exporter sends the same records for a field-by-field comparison.
    "opentelemetry-proto>=1.27",
    "opentelemetry-exporter-otlp-proto-http>=1.27",
    # eventlog-fluent's second Forward receiver (test_fluent_fluentbit_server.py): it reads
    # Forward mode only, so it checks EVENTLOG_FLUENT_MODE=forward.  Pinned: the test's wrapper
    # replaces one method of 1.0.7 (its EventTime conversion divides nanoseconds by 10**6).
    "fluentbit-server-py==1.0.7",
]


#: What our distributions build with (their [build-system] requires, and hatchling's editables).
BUILD_DEPS = ["hatchling>=1.24", "editables>=0.3", "setuptools>=77"]


def _install_local(session: nox.Session, local: list[str], *extra: str) -> None:
    """``extra`` with the build back-ends, then the editable installs ``local`` built in the venv.

    Without --no-build-isolation pip makes a build environment for each of the eight
    distributions and installs hatchling (or setuptools) into it: 32 s of CPU against 12 s
    (Python 3.12, warm pip cache); ``nox -s tests-3.13 --install-only`` went from 63 s of CPU
    to 36 s.  It applies to the second pip run only, where all but our own distributions come
    as wheels.
    """
    session.install(*BUILD_DEPS, *extra)
    session.install("--no-build-isolation", *local)


def _install_project(session: nox.Session, *extra: str) -> None:
    """The core, the plugins and the example, editable, and ``extra``."""
    local = ["-e", "."]
    for path in PLUGINS + EXAMPLES:
        if (ROOT / path / "pyproject.toml").exists():
            local += ["-e", path]
    _install_local(session, local, *extra)


#: The suite runs on each of these that is installed (CI has all three; a missing one fails there).
PYTHONS = ["3.11", "3.12", "3.13"]


def _expose_pyenv_pythons() -> None:
    """Put pyenv's other Pythons where nox looks (PATH), as pythonX.Y only.

    pyenv's shims answer ``python3.12`` only for the versions selected with
    ``pyenv global``; the interpreters themselves sit in its versions folder.
    """
    versions = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    links = ROOT / ".nox" / "pythons"
    for version in PYTHONS:
        found = sorted(versions.glob(f"{version}.*/bin/python{version}"))
        if not found:
            continue
        links.mkdir(parents=True, exist_ok=True)
        link = links / f"python{version}"
        if link.is_symlink() and link.resolve() != found[-1].resolve():
            link.unlink()
        if not link.exists():
            link.symlink_to(found[-1])
    if links.is_dir():
        os.environ["PATH"] = f"{links}{os.pathsep}{os.environ.get('PATH', '')}"


_expose_pyenv_pythons()


#: The long property and fault runs, whose findings so far never depended on the Python version:
#: at full strength on the first of PYTHONS, at about a quarter on the others (each still runs
#: there, and its assertions are the same).  Name -> (full, reduced); each test reads its
#: variable, and a plain pytest run takes the full count.
#: Seconds each took on the loaded development machine, full -> reduced (pytest --durations).
REDUCED_ON_LATER_PYTHONS = {
    "EVENTLOG_FAULTS_EXAMPLES": ("20", "5"),  # tests/test_fault_injection.py: 36 s -> 19 s
    "EVENTLOG_FAULT_EXAMPLES": ("8", "3"),  # tests/test_worker_faults.py: 19 s -> 6 s
    "HOSTILE_EXAMPLES": ("40", "10"),  # tests/test_values.py, every format each: 20 s -> 1 s
    "ECS_EXAMPLES": ("300", "75"),  # tests/test_ecs.py, each against spec.json: 28 s -> 6 s
}

#: The peers are provisioned once per nox run, not once per Python (scripts/provision-peers).
_provisioned: list[str] = []


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    """The whole suite, against real peers (set EVENTLOG_REQUIRE_PEERS=1 to fail when one is missing)."""
    _install_project(session, *TEST_DEPS)
    if not os.environ.get("EVENTLOG_SKIP_PROVISION") and not _provisioned:
        session.run("bash", "scripts/provision-peers", external=True)
        _provisioned.append(str(session.python))
    first = session.python == PYTHONS[0]
    for name, (full, reduced) in REDUCED_ON_LATER_PYTHONS.items():
        session.env.setdefault(name, os.environ.get(name, full if first else reduced))
    # pytest's exit code 5 (no tests ran) is a failure here, as every other non-zero code.
    # Each plugin carries its own tests (plugins/*/tests); the core's are in tests/.
    paths = ["tests"]
    paths += [f"{path}/tests" for path in PLUGINS + EXAMPLES if (ROOT / path / "tests").is_dir()]
    # --dist loadfile: a file's tests stay on one worker, so a module's peer starts once.
    session.run("pytest", *(session.posargs or ["-q", "-n", "2", "--dist", "loadfile", *paths]))


@nox.session(python="3.11")
def lint(session: nox.Session) -> None:
    """ruff over the core, the plugins, the tests and the examples."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python="3.11")
def typecheck(session: nox.Session) -> None:
    """mypy --strict over the core, the plugins and the example plugin."""
    # flask, structlog, loguru: eventlog.flask / .structlog / .loguru import them (typed).
    _install_project(
        session,
        "mypy>=1.10",
        "django-stubs>=5",
        "types-requests",
        "pytest>=8",
        "flask>=3.0",
        "structlog>=23.1",
        "loguru>=0.7",
        # eventlog.plugin.testing makes test certificates with it; eventlog.context reads OpenTelemetry.
        "cryptography>=42",
        "opentelemetry-api>=1.20",
    )
    sources = [f"{p}/src" for p in PLUGINS + EXAMPLES if (ROOT / p).exists()]
    session.run("mypy", "src/eventlog", *sources)


@nox.session(python="3.11")
def demo(session: nox.Session) -> None:
    """The library's main job on an embedded receiver: eventlog demo."""
    _install_project(session)
    session.run("eventlog", "demo", *session.posargs)


@nox.session(python="3.11")
def bench(session: nox.Session) -> None:
    """Caller cost and throughput against the peers, side by side in one run (benchmarks/)."""
    _install_project(session)
    session.install(
        "python-logstash-async>=3",
        "fluent-logger>=0.10",
        "opentelemetry-sdk>=1.20",
        # The "opentelemetry otlp" contender's exporter; its opentelemetry-proto decodes in receiver.py.
        "opentelemetry-exporter-otlp-proto-http>=1.27",
        "matplotlib>=3.7",
        "msgpack>=1.0",
        "orjson>=3.9",
    )
    if "--instructions" in session.posargs:
        # Instruction counts (callgrind), per Python version found: benchmarks/instructions.py.
        if shutil.which("valgrind") is None:
            session.log("valgrind is missing: installing Debian's package (needs root)")
            session.run("apt-get", "-o", "DPkg::Lock::Timeout=300", "update", "-q", external=True)
            session.run(
                "apt-get", "-o", "DPkg::Lock::Timeout=300", "install", "-y", "-q", "valgrind", external=True
            )
        rest = [a for a in session.posargs if a != "--instructions"]
        session.run("python", "benchmarks/instructions.py", *rest)
        return
    if "--overload" in session.posargs:
        # Issue 24's scenario at 10x the queue's capacity: kept and shed per class.
        rest = [a for a in session.posargs if a != "--overload"]
        session.run("python", "benchmarks/overload.py", *rest)
        return
    session.run("python", "benchmarks/bench.py", *session.posargs)


@nox.session(python="3.11")
def package(session: nox.Session) -> None:
    """Build every distribution's wheel, install eventlog[fluent] the README's way, run the seed.

    The version pin (``==0.1.0``, only in dist/) is what keeps pip from
    resolving to the unrelated project called ``eventlog`` on the public index.
    """
    dist = ROOT / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    session.install("build>=1.0")
    for path in [".", *PLUGINS]:
        session.run("python", "-m", "build", "--wheel", "--outdir", str(dist), path)
    check = Path(session.create_tmp()) / "fresh-venv"
    shutil.rmtree(check, ignore_errors=True)
    session.run("python", "-m", "venv", str(check))
    pip = str(check / "bin" / "pip")
    # Exactly the README's install line: our distributions from dist/, their dependencies
    # (pluggy, msgpack ...) from the index.  ==0.1.0 exists only in dist/: the index's
    # unrelated "eventlog" has 0.5.2 to 0.11.0.
    session.run(pip, "install", "--find-links", str(dist), "eventlog[fluent]==0.1.0", external=True)
    # The seed's two examples, in that venv, from outside the checkout.
    session.run(str(check / "bin" / "python"), str(ROOT / "scripts" / "seed_examples.py"), external=True)
    # The install advice the library prints for a plugin not installed, run as printed (from the
    # checkout, where dist/ is): it must add eventlog-http and keep our eventlog 0.1.0.
    advice = session.run(
        str(check / "bin" / "python"),
        "-c",
        "from eventlog._config.registry import install_command; print(install_command('http'))",
        external=True,
        silent=True,
    )
    session.run("sh", "-c", f"PATH={check / 'bin'}:$PATH; {str(advice).strip()}", external=True)
    listing = session.run(str(check / "bin" / "eventlog"), "plugins", external=True, silent=True)
    print(listing)
    fluent_rows = [line for line in str(listing).splitlines() if " eventlog-fluent " in line]
    if not fluent_rows:
        session.error("eventlog plugins lists nothing from eventlog-fluent")
    if not [line for line in str(listing).splitlines() if " eventlog-http " in line]:
        session.error("the printed install advice did not install eventlog-http")
    origin = session.run(
        str(check / "bin" / "python"),
        "-c",
        "import importlib.metadata as m; d = m.distribution('eventlog'); "
        "print(d.version, d.read_text('direct_url.json') or '')",
        external=True,
        silent=True,
    )
    if not str(origin).startswith("0.1.0"):
        session.error(f"the installed eventlog is not ours: {origin}")
    # The compiled fast path from its wheel: installed, and taken by the worker.
    session.run(pip, "install", "--no-index", "--find-links", str(dist), "eventlog[speedups]", external=True)
    session.run(
        str(check / "bin" / "python"),
        "-c",
        "import eventlog._records.logrecords as r; "
        "assert r.accelerator is not None, 'eventlog-speedups not loaded'",
        external=True,
    )


#: What the documentation site needs to build (``nox -s docs``).
DOCS_DEPS = ["mkdocs>=1.6", "mkdocs-material>=9.5", "django>=4.2"]


@nox.session(python="3.11")
def docs(session: nox.Session) -> None:
    """The documentation site: mkdocs build --strict into site/, then every page checked in Chromium.

    ``mkdocs build --strict`` fails on a warning; scripts/check_site.py then loads each
    page in headless Chromium (Debian's package, installed when missing), fails on
    anything wider than its column, an identifier cut in a table or a numbered step
    numbered wrong, and leaves a screenshot of each page in site-shots/ (git-ignored).

    The configuration page's option tables are generated from the installed
    plugins (docs/hooks/config_reference.py), so every plugin with options is
    installed; django, for the middleware's settings.  eventlog-speedups has no
    options and is left out (compiling it would cost the session most of its time).
    """
    local = ["-e", "."]
    for path in PLUGINS + EXAMPLES:
        if path != "plugins/eventlog_speedups" and (ROOT / path / "pyproject.toml").exists():
            local += ["-e", path]
    _install_local(session, local, *DOCS_DEPS)
    session.env["NO_MKDOCS_2_WARNING"] = "1"  # material's notice about its successor, not about our pages
    session.run("mkdocs", "build", "--strict", "--site-dir", str(ROOT / "site"))
    # Then every page in a real browser: nothing wider than its column, identifiers whole,
    # numbered steps numbered as written; screenshots in site-shots/ (scripts/check_site.py).
    browser = shutil.which("chromium")
    if browser is None:
        session.log("chromium is missing: installing Debian's package (needs root)")
        apt = ["apt-get", "-o", "DPkg::Lock::Timeout=300"]
        session.run(*apt, "update", "-q", external=True)
        session.run(*apt, "install", "-y", "-q", "--no-install-recommends", "chromium", external=True)
        browser = shutil.which("chromium") or "chromium"
    session.run(
        "python",
        "scripts/check_site.py",
        "--site",
        str(ROOT / "site"),
        "--docs",
        str(ROOT / "docs"),
        "--shots",
        str(ROOT / "site-shots"),
        "--browser",
        browser,
    )
