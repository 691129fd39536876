"""The module layout keeps its shape: leaf modules stay leaves, and no import cycle comes back.

Every ``import`` of an eventlog module counts, also one under ``TYPE_CHECKING``
or inside a function: a cycle there is still two modules that cannot be read,
tested or moved apart.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"

#: Modules that import nothing of eventlog (spool.protocol: only Record, for typing).
LEAVES = {
    "eventlog._core.errors": set(),
    "eventlog._core.diagnostics": set(),
    "eventlog._engine.stats": set(),
    "eventlog._records.batch": {"eventlog._core.errors"},
    "eventlog._core.options": set(),
    "eventlog._records.text": set(),
    "eventlog._spool.protocol": {"eventlog._records.batch", "eventlog._core.errors"},
}

#: The one cycle left: Event.to_dict() imports wire.to_wire (in the method), which takes an Event.
KNOWN_CYCLES = [{"eventlog._records.event", "eventlog._records.wire"}]


def _modules() -> dict[str, Path]:
    found = {}
    for path in (SRC / "eventlog").rglob("*.py"):
        parts = list(path.relative_to(SRC).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str) -> set[str]:
    """The eventlog modules ``module`` imports, anywhere in its source."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from eventlog import api`` names a module; ``from eventlog.x import y`` a name in x.
            targets = [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            found = _resolve(target) if target.startswith("eventlog") else None
            if found is not None and found != module:
                out.add(found)
    return out


GRAPH = {module: _imports(module) for module in MODULES}


def _cycles() -> list[set[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for other in sorted(GRAPH[module]):
            if other not in index:
                visit(other)
                low[module] = min(low[module], low[other])
            elif other in on_stack:
                low[module] = min(low[module], index[other])
        if low[module] == index[module]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(component)

    for module in sorted(GRAPH):
        if module not in index:
            visit(module)
    return found


def test_leaf_modules_import_nothing_else_of_eventlog() -> None:
    assert {leaf: GRAPH[leaf] - allowed for leaf, allowed in LEAVES.items()} == {
        leaf: set() for leaf in LEAVES
    }


def test_no_import_cycle_but_the_known_one() -> None:
    assert sorted(map(sorted, _cycles())) == sorted(map(sorted, KNOWN_CYCLES))


def test_the_sdk_and_the_pipeline_parts_are_where_the_layout_says() -> None:
    # A rename or a merge back into one module shows up here before it shows up in the docs.
    for module in (
        "eventlog.plugin",
        "eventlog.plugin.net",
        "eventlog.plugin.testing",
        "eventlog._config.builder",
        "eventlog._engine.encoder",
        "eventlog._engine.sender",
        "eventlog._engine.delivery",
        "eventlog._engine.accounting",
        "eventlog._engine.pipeline",
        "eventlog._config.selection",
        "eventlog._spool.sqlite",
        "eventlog._spool.database",
        "eventlog._spool.admin",
    ):
        assert module in MODULES, module
    # The pipeline's parts do not reach back into the pipeline.
    parts = (
        "eventlog._config.builder",
        "eventlog._engine.encoder",
        "eventlog._engine.sender",
        "eventlog._engine.delivery",
        "eventlog._engine.accounting",
    )
    assert {part: "eventlog._engine.pipeline" in GRAPH[part] for part in parts} == dict.fromkeys(parts, False)


#: The private packages, lowest first. A module may import its own layer and the layers below
#: it, never one above: the engine never imports the doors, the web support or an integration.
LAYERS = ["_core", "_records", "_config", "_spool", "_engine", "_api", "_web"]

#: What ``ls src/eventlog`` shows a user: the application API, the CLI, the test helpers, the
#: plugin SDK, and the integrations users name in their settings. Everything else is private.
PUBLIC = {
    "__init__.py",
    "__main__.py",
    "asgi.py",
    "cli.py",
    "django",
    "flask.py",
    "loguru.py",
    "plugin",
    "prometheus.py",
    "py.typed",
    "structlog.py",
    "testing.py",
}


def _layer(module: str) -> int:
    """The layer of ``module``; the public modules and the built-in plugins sit on top."""
    parts = module.split(".")
    if len(parts) > 1 and parts[1] in LAYERS:
        return LAYERS.index(parts[1])
    return len(LAYERS)


def test_the_top_of_the_package_shows_the_public_surface_and_private_packages_only() -> None:
    names = {p.name for p in (SRC / "eventlog").iterdir() if p.name != "__pycache__"}
    assert {n for n in names if not n.startswith("_") or n in PUBLIC} == PUBLIC
    assert len(PUBLIC - {"__init__.py", "__main__.py", "py.typed"}) <= 20
    private = {n for n in names if n.startswith("_") and n not in PUBLIC}
    assert private == {f"{layer}" for layer in LAYERS} | {"_builtin"}
    for package in private:  # each says what it owns, first line of its docstring
        assert (SRC / "eventlog" / package / "__init__.py").read_text(encoding="utf-8").startswith('"""')


def test_each_layer_imports_only_itself_and_the_layers_below() -> None:
    upward = {
        module: sorted(other for other in GRAPH[module] if _layer(other) > _layer(module))
        for module in GRAPH
        if _layer(module) < len(LAYERS)
    }
    assert {module: found for module, found in upward.items() if found} == {}


def test_the_engine_never_imports_an_integration_or_the_package_itself() -> None:
    integrations = {f"eventlog.{name}" for name in ("django", "asgi", "flask", "structlog", "loguru")}
    found = {
        module: sorted(other for other in GRAPH[module] if other in integrations or other == "eventlog")
        for module in GRAPH
        if _layer(module) < len(LAYERS)
    }
    assert {module: names for module, names in found.items() if names} == {}


def test_the_web_integrations_only_translate_through_the_shared_web_support() -> None:
    # Each reads its framework's request into RequestFacts; the event, the request context and
    # the exception JSON come from eventlog._web, never from the records or the engine directly.
    web = [m for m in GRAPH if m in ("eventlog.asgi", "eventlog.flask") or m.startswith("eventlog.django")]
    assert len(web) >= 3
    below = ("eventlog._records", "eventlog._engine", "eventlog._api", "eventlog._spool")
    found = {module: sorted(o for o in GRAPH[module] if o.startswith(below)) for module in web}
    assert {module: names for module, names in found.items() if names} == {
        # Kept importable for code written before redaction moved (see its docstring).
        "eventlog.django.redact": ["eventlog._records.redact"],
    }


#: The longest a class may be, in lines (decorators aside): past it, a class holds more than one concern.
LONGEST_CLASS = 350


def _long_classes(root: Path) -> dict[str, int]:
    found = {}
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                length = node.end_lineno - node.lineno + 1
                if length > LONGEST_CLASS:
                    found[f"{path.relative_to(root.parent)}:{node.name}"] = length
    return found


def test_no_class_is_longer_than_350_lines() -> None:
    roots = [SRC, *sorted((SRC.parent / "plugins").glob("*/src"))]
    assert len(roots) > 1  # the plugins are walked too
    long = {name: length for root in roots for name, length in _long_classes(root).items()}
    assert long == {}
