"""One exception tree: every exception class eventlog and its plugins define is an EventlogError,
retryability is said by the class, and errors.py's docstring draws the tree as it is."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from types import ModuleType

import eventlog
from eventlog._core import errors
from eventlog._core.errors import (
    ConfigurationError,
    EventlogError,
    PluginError,
    RejectedError,
    SpoolCorrupt,
    SpoolUnavailable,
    TransportError,
)

#: The core and every distribution in this repository (the ones installed in the test venv).
PACKAGES = [
    "eventlog",
    "eventlog_fluent",
    "eventlog_capnp",
    "eventlog_http",
    "eventlog_nats",
    "eventlog_otlp",
    "eventlog_speedups",
    "eventlog_redis_streams",
]


def _modules() -> list[ModuleType]:
    found = []
    for name in PACKAGES:
        try:
            package = importlib.import_module(name)
        except ImportError:  # a plugin not installed here: nothing of it can raise
            continue
        found.append(package)
        for info in pkgutil.walk_packages(getattr(package, "__path__", []), prefix=name + "."):
            if not info.name.endswith(".__main__"):  # importing it would run the CLI
                found.append(importlib.import_module(info.name))
    return found


def test_every_exception_class_defined_in_eventlog_is_an_eventlog_error() -> None:
    defined = {
        f"{module.__name__}.{name}": cls
        for module in _modules()
        for name, cls in vars(module).items()
        if inspect.isclass(cls) and issubclass(cls, BaseException) and cls.__module__ == module.__name__
    }
    assert "eventlog._core.errors.SpoolUnavailable" in defined  # the walk reached the leaves
    assert {name for name, cls in defined.items() if not issubclass(cls, EventlogError)} == set()


def test_callers_that_catch_oserror_and_valueerror_still_do() -> None:
    assert issubclass(SpoolUnavailable, OSError) and issubclass(SpoolUnavailable, EventlogError)
    assert issubclass(SpoolCorrupt, EventlogError)
    assert issubclass(PluginError, ConfigurationError) and issubclass(ConfigurationError, ValueError)


def test_retryability_is_said_by_the_class_not_by_a_flag() -> None:
    retryable = {
        cls.__name__: cls.retryable
        for cls in vars(errors).values()
        if inspect.isclass(cls) and issubclass(cls, TransportError)
    }
    assert retryable == {
        "TransportError": True,
        "ConnectError": True,
        "SendTimeout": True,
        "AuthError": True,
        "RejectedError": False,
    }
    assert RejectedError("400", retry_after=2.0).retry_after == 2.0


def test_the_docstring_draws_every_class_of_the_tree_under_its_parent() -> None:
    block = (errors.__doc__ or "").split("::\n\n", 1)[1].split("\n\n", 1)[0]
    drawn: dict[str, int] = {}  # class name -> its depth (indent) in the drawing
    for line in block.splitlines():
        name = line.lstrip(" │├└─").split(" ")[0]
        if name[:1].isupper():  # a comment's second line starts lower case
            drawn[name] = len(line) - len(line.lstrip(" │├└─"))
    classes = {
        name: cls
        for name, cls in vars(errors).items()
        if inspect.isclass(cls) and issubclass(cls, BaseException) and cls.__module__ == errors.__name__
    }
    assert set(drawn) == set(classes)
    # Each class is drawn deeper than its EventlogError parent, and that parent is drawn above it.
    order = list(drawn)
    for name, cls in classes.items():
        parent = next((base for base in cls.__bases__ if issubclass(base, EventlogError)), None)
        if parent is None:
            assert cls is EventlogError
            continue
        assert order.index(parent.__name__) < order.index(name)
        assert drawn[parent.__name__] < drawn[name]


def test_the_public_base_is_the_one_tree() -> None:
    assert eventlog.EventlogError is EventlogError


def test_the_0_1_retryable_argument_still_means_what_it_said_and_warns() -> None:
    import warnings

    from eventlog.plugin import RejectedError, TransportError

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        refused = TransportError("no", retryable=False)
    assert [w.category for w in caught] == [DeprecationWarning]
    assert "raise RejectedError" in str(caught[0].message)
    assert refused.retryable is False
    assert TransportError.retryable is True  # the class is untouched
    assert TransportError("again").retryable is True and RejectedError("x").retryable is False
