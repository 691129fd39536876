"""The ``ecs`` formatter: ECS 8.x names, the conformance suite, and Elastic's own ecs-logging.

The comparison sends one LogRecord through eventlog (EventHandler -> ecs ->
TCP -> a loopback receiver) and through ``ecs_logging.StdlibFormatter``, and
holds the fields both write to the same values.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import eventlog
from eventlog._builtin.ecs import ECS_VERSION, EcsFormatter
from eventlog._builtin.receiver import LineReceiver
from eventlog._records.schema import LEVEL_NAMES
from eventlog._records.wire import to_wire
from eventlog.plugin.testing import FormatterConformance
from tests.peers import missing
from tests.test_spool_props import hostile_event

#: The ecs-logging spec, machine-readable (tests/data/ecs_logging/SOURCE.md says whence).
SPEC = json.loads((Path(__file__).parent / "data" / "ecs_logging" / "spec.json").read_text("utf-8"))
#: ECS's own field reference (generated/ecs/ecs_flat.yml of the release eventlog writes): types.
ECS_FIELDS = json.loads((Path(__file__).parent / "data" / "ecs" / "field_types.json").read_text("utf-8"))


def flatten(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"log": {"origin": {"function": "f"}}}`` -> ``{"log.origin.function": "f"}``."""
    flat: dict[str, Any] = {}
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and prefix != "labels." and key != "labels":
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def wire_of(doc: dict[str, Any]) -> dict[str, Any]:
    """The wire dict an ECS document was made from (the reverse of the mapping)."""
    own = dict(doc.get("eventlog", {}))
    renamed = own.pop("keys", {})

    def original(where: str, values: dict[str, Any]) -> dict[str, Any]:
        names = renamed.get(where, {})
        return {names.get(key, key): value for key, value in values.items()}

    own = original("eventlog", own)
    wire: dict[str, Any] = {"id": doc["event"]["id"], "action": doc["event"]["action"]}
    from datetime import datetime

    stamp = datetime.fromisoformat(doc["@timestamp"])
    wire["tstamp"] = int(stamp.timestamp()) * 1000 + stamp.microsecond // 1000
    log = doc.get("log", {})
    if "logger" in log:
        wire["target"], wire["tgType"] = log["logger"], "logger"
    for key in ("target", "tgType"):
        if key in own:
            wire[key] = own.pop(key)
    if "level" in own:
        wire["level"] = own.pop("level")
        wire["levelName"] = LEVEL_NAMES.get(wire["level"]) or f"Level {wire['level']}"
        assert doc["log.level"] == wire["levelName"].lower()
    else:
        assert doc["log.level"] == "info"
    if "message" in doc:
        wire["message"] = doc["message"]
    if "tags" in doc:
        wire["tags"] = doc["tags"]
    fields = {**original("labels", doc.get("labels", {})), **original("fields", own.pop("fields", {}))}
    if fields:
        wire["fields"] = fields
    if "metrics" in own:
        wire["metrics"] = original("metrics", own.pop("metrics"))
    for key, path in (
        ("user", ("user", "name")),
        ("reqId", ("http", "request", "id")),
        ("site", ("organization", "name")),
        ("host", ("host", "name")),
        ("pid", ("process", "pid")),
        ("thread", ("process", "thread", "name")),
        ("codeLine", ("log", "origin", "file", "line")),
        ("codeFunc", ("log", "origin", "function")),
        ("traceId", ("trace", "id")),
        ("spanId", ("span", "id")),
    ):
        node: Any = doc
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            wire[key] = node
    if "codeFile" in own:
        wire["codeFile"] = own.pop("codeFile")
        assert doc["log"]["origin"]["file"]["name"] == os.path.basename(wire["codeFile"])
    if "error" in doc:
        error = doc["error"]
        wire["exc_info"] = json.dumps(
            {"type": error.get("type"), "value": error.get("message"), "stack": error.get("stack_trace", "")},
            ensure_ascii=False,
        )
    wire.update(own)  # session, cluster and the rest keep their wire names
    return wire


class TestEcsFormat(FormatterConformance):
    formatter = "ecs"

    def options(self) -> dict[str, Any]:
        return {"ecs_service_name": "conformance"}

    def decode(self, payload: bytes) -> dict[str, Any]:
        assert payload.endswith(b"\n") and payload.count(b"\n") == 1
        doc = json.loads(payload)
        assert list(doc)[:1] == ["@timestamp"] and doc["ecs.version"] == ECS_VERSION
        return wire_of(doc)

    def decode_stream(self, data: bytes) -> list[dict[str, Any]]:
        return [self.decode(line + b"\n") for line in data.split(b"\n") if line]

    def decode_batch(self, body: bytes) -> list[dict[str, Any]]:
        return self.decode_stream(body)


def test_every_wire_field_has_its_ecs_name() -> None:
    wire = {
        "id": "0001",
        "tstamp": 1796400000123,
        "action": "order.paid",
        "target": "A-7",
        "tgType": "order",
        "level": 30,
        "levelName": "WARNING",
        "message": "paid twice",
        "tags": ["shop"],
        "fields": {"region": "eu", "items": 3, "ratio": 0.5},
        "metrics": {"amount": 12.5},
        "user": "alice",
        "session": "s-1",
        "reqId": "r-1",
        "site": "acme",
        "cluster": "eu-1",
        "host": "web-1",
        "pid": 4242,
        "thread": "T-1",
        "codeFile": "/app/shop/pay.py",
        "codeLine": 12,
        "codeFunc": "pay",
        "exc_info": json.dumps({"type": "ValueError", "value": "bad", "stack": "Traceback ..."}),
        "traceId": "4bf92f3577b34da6a3ce929d0e0e4736",
        "spanId": "00f067aa0ba902b7",
        "shard": "s3",
    }
    formatter = EcsFormatter(service_name="shop", service_version="1.2", service_environment="prod")
    payload = formatter.format(wire)
    assert list(json.loads(payload))[:4] == ["@timestamp", "log.level", "message", "ecs.version"]
    assert json.loads(payload) == {
        "@timestamp": "2026-12-04T16:00:00.123Z",
        "log.level": "warning",
        "message": "paid twice",
        "ecs.version": "8.11.0",
        "event": {"action": "order.paid", "id": "0001", "dataset": "shop"},
        "log": {"origin": {"file": {"name": "pay.py", "line": 12}, "function": "pay"}},
        "service": {"name": "shop", "version": "1.2", "environment": "prod"},
        "host": {"name": "web-1"},
        "process": {"pid": 4242, "thread": {"name": "T-1"}},
        "user": {"name": "alice"},
        "http": {"request": {"id": "r-1"}},
        "organization": {"name": "acme"},
        "trace": {"id": "4bf92f3577b34da6a3ce929d0e0e4736"},
        "span": {"id": "00f067aa0ba902b7"},
        "error": {"type": "ValueError", "message": "bad", "stack_trace": "Traceback ..."},
        "tags": ["shop"],
        "labels": {"region": "eu"},
        "eventlog": {
            "target": "A-7",
            "tgType": "order",
            "codeFile": "/app/shop/pay.py",
            "fields": {"items": 3, "ratio": 0.5},
            "metrics": {"amount": 12.5},
            "level": 30,
            "session": "s-1",
            "cluster": "eu-1",
            "shard": "s3",
        },
    }
    # The batch path gives the same bytes in one call.
    assert formatter.format_many([wire, wire]) == payload + payload
    # An exc_info that is no eventlog JSON is kept whole as the stack trace.
    odd = formatter.document({**wire, "exc_info": "plain text"})
    assert odd["error"] == {"stack_trace": "plain text"}


def test_service_options_arrive_through_a_pipeline(receiver: LineReceiver) -> None:
    eventlog.configure(
        transport="tcp",
        host="127.0.0.1",
        port=receiver.port,
        format="ecs",
        ecs_service_name="shop",
        ecs_service_environment="prod",
        site="acme",
    )
    eventlog.log_event(eventlog.Event("order.paid", "A-7", "order", fields={"region": "eu"}))
    assert eventlog.flush(10) and receiver.wait_for(1)
    [doc] = receiver.events()
    assert doc["service"] == {"name": "shop", "environment": "prod"}
    assert doc["organization"] == {"name": "acme"}
    assert doc["labels"] == {"region": "eu"}
    assert doc["eventlog"]["target"] == "A-7" and doc["log.level"] == "info"
    assert doc["event"]["dataset"] == "shop"


# ---------------------------------------------------------------- against ecs-logging


@pytest.fixture
def ecs_logging() -> Any:
    try:
        import ecs_logging
    except ImportError:
        missing("ecs-logging", "the Python package ecs-logging is not installed (pip install ecs-logging)")
    return ecs_logging


#: Fields both write, which must agree exactly.
SHARED = (
    "@timestamp",
    "log.level",
    "message",
    "log.logger",
    "log.origin.file.name",
    "log.origin.file.line",
    "log.origin.function",
    "process.pid",
    "process.thread.name",
    "error.type",
    "error.message",
)


def _raise_here() -> None:
    raise ValueError("bad value ✓")


def test_shared_fields_equal_those_of_ecs_logging(ecs_logging: Any, receiver: LineReceiver) -> None:
    pipeline = eventlog.Pipeline(
        eventlog._config.config.Settings.load(
            {"transport": "tcp", "host": "127.0.0.1", "port": receiver.port, "format": "ecs"},
            environ={},
        )
    )
    handler = eventlog.EventHandler(pipeline=pipeline)
    logger = logging.getLogger("shop.payments")
    try:
        _raise_here()
    except ValueError:
        exc_info = sys.exc_info()
    records: list[logging.LogRecord] = []

    def log_three() -> None:  # in a thread of its own: its name must arrive too
        for level, exc in ((logging.WARNING, None), (logging.ERROR, exc_info), (5, None)):
            record = logger.makeRecord(
                logger.name, level, "/app/shop/pay.py", 12, "paid %s of %d", ("A-7", 3), exc, "pay"
            )
            record.created, record.msecs = 1796400000.5, 500.0  # see the report: .25 arrives as .249
            records.append(record)
            handler.handle(record)

    worker = threading.Thread(target=log_three, name="pay-1")
    worker.start()
    worker.join(10)
    try:
        assert pipeline.flush(10) and receiver.wait_for(3)
    finally:
        pipeline.shutdown(2)
    ours = [flatten(doc) for doc in receiver.events()]
    theirs = [flatten(json.loads(ecs_logging.StdlibFormatter().format(r))) for r in records]
    for mine, elastic in zip(ours, theirs, strict=True):
        shared = [key for key in SHARED if key in elastic]
        assert {k: mine.get(k) for k in shared} == {k: elastic[k] for k in shared}
        assert [k for k in SHARED if k in mine] == shared  # nothing theirs lacks, nothing more
    assert ours[0]["@timestamp"] == "2026-12-04T16:00:00.500Z"
    assert ours[0]["process.thread.name"] == "pay-1"
    assert ours[0]["log.level"] == "warning" and ours[2]["log.level"] == "trace"
    assert ours[1]["error.type"] == "ValueError" and ours[1]["error.message"] == "bad value ✓"
    # ecs-logging writes the frames (format_tb); eventlog the whole traceback, as logging does.
    assert theirs[1]["error.stack_trace"] in ours[1]["error.stack_trace"]
    assert ours[1]["error.stack_trace"].startswith("Traceback (most recent call last):")
    assert ours[1]["error.stack_trace"].endswith("ValueError: bad value ✓\n")


def _lookup(doc: dict[str, Any], name: str, top_level: bool) -> tuple[bool, Any]:
    """Whether ``name`` is in ``doc`` (as a dotted top-level key, or nested unless
    ``top_level``), and its value."""
    if name in doc:
        return True, doc[name]
    if top_level:
        return False, None
    node: Any = doc
    for part in name.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


_TYPES: dict[str, Any] = {
    "string": lambda v: type(v) is str,
    "integer": lambda v: type(v) is int,
    "object": lambda v: type(v) is dict,
    "datetime": lambda v: (
        type(v) is str
        and v.endswith("Z")
        and datetime.datetime.fromisoformat(v.removesuffix("Z") + "+00:00") is not None
    ),
}


def _is_long(value: Any) -> bool:
    return type(value) is int and -(2**63) <= value < 2**63


#: What a JSON value must be for an ECS field type (the types the field reference uses).
_ECS_TYPES: dict[str, Any] = {
    **dict.fromkeys(("keyword", "constant_keyword", "wildcard", "match_only_text", "ip"), _TYPES["string"]),
    "long": _is_long,
    "float": lambda v: type(v) is float or _is_long(v),
    "scaled_float": lambda v: type(v) is float or _is_long(v),
    "boolean": lambda v: type(v) is bool,
    "date": _TYPES["datetime"],
}


def _leaf_values(doc: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in doc.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _leaf_values(value, name + ".")
        else:
            yield name, value


def assert_ecs_field_types(doc: dict[str, Any]) -> None:
    """Every ECS name in ``doc`` has the type ECS's field reference gives it (arrays only where
    it allows them); labels are keywords; anything else lives in the ``eventlog`` namespace."""
    types, arrays = ECS_FIELDS["types"], set(ECS_FIELDS["arrays"])
    assert "eventlog" not in {name.split(".")[0] for name in types}, "eventlog's namespace is ECS's"
    for name, value in _leaf_values(doc):
        if name.startswith("eventlog."):
            continue
        field = "labels" if name.startswith("labels.") else name
        assert field in types, f"{name} is no ECS {ECS_FIELDS['ecs_version']} field: {doc}"
        kind = "keyword" if field == "labels" else types[field]
        values = value if type(value) is list and field in arrays else [value]
        for item in values:
            assert _ECS_TYPES[kind](item), f"{name}: {item!r} is not an ECS {kind}"


def _paths(doc: dict[str, Any], prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], bool]]:
    """Every path Elasticsearch maps (a dot in a key nests), and whether it is a leaf."""
    for key, value in doc.items():
        path = (*prefix, *key.split("."))
        if isinstance(value, dict) and value:
            yield path, False
            yield from _paths(value, path)
        else:
            yield path, True


def assert_follows_the_spec(doc: dict[str, Any]) -> None:
    """``doc`` against spec.json: required fields, types, top-level names, field order,
    sanitisation; and every name mappable by Elasticsearch (no leaf that is also an object)."""
    for name, rule in SPEC["fields"].items():
        found, value = _lookup(doc, name, rule.get("top_level_field", False))
        if rule["required"]:
            assert found, f"{name} is required by the spec: {doc}"
        if not found:
            continue
        assert _TYPES[rule["type"]](value), f"{name}: {value!r} is not a {rule['type']}"
        sanitization = rule.get("sanitization", {})
        if "key" in sanitization:
            for key in value:
                assert not set(sanitization["key"]["replacements"]) & set(key), f"{name} key {key!r}"
        if "value" in sanitization:
            given = sanitization["value"]
            assert not set(given["replacements"]) & set(value), f"{name}: {value!r}"
            assert len(value) <= given["max_chars"] and (not given["lower_case"] or value == value.lower())
        # A default such as "${service.name} OR ...": the library's own value is the first.
        reference = str(rule.get("default", "")).split(" OR ")[0]
        if reference.startswith("${") and reference.endswith("}"):
            given, source = _lookup(doc, reference[2:-1], False)
            assert not given or value == source, f"{name}: {value!r}, the spec says {reference}"
    indexed = sorted((rule["index"], name) for name, rule in SPEC["fields"].items() if "index" in rule)
    present = [name for _, name in indexed if name in doc]
    assert list(doc)[: len(present)] == present, f"field order: {list(doc)}"
    leaves: set[tuple[str, ...]] = set()
    objects: set[tuple[str, ...]] = set()
    for path, leaf in _paths(doc):
        assert all(part.strip() for part in path), f"an empty name in {path}"
        (leaves if leaf else objects).add(path)
    for path in leaves:
        assert path not in objects, f"{'.'.join(path)} is both a value and an object"
        assert all(path[:n] not in leaves for n in range(1, len(path))), f"{'.'.join(path)} under a value"
    assert_ecs_field_types(doc)
    for number in _numbers(doc):  # Elasticsearch maps a JSON integer as long and refuses more
        assert type(number) is not bool, f"a boolean in {doc}: eventlog sends booleans as 1/0"
        assert type(number) is float or -(2**63) <= number < 2**63, f"{number} is beyond a long"


def _numbers(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _numbers(item)
    elif isinstance(value, list):
        for item in value:
            yield from _numbers(item)
    elif isinstance(value, (int, float)):
        yield value


def test_the_documented_example_follows_the_spec() -> None:
    wire = to_wire(eventlog.Event("order.paid", "A-7", "order", fields={"a": "x", "a.b": "y"}), {})
    assert_follows_the_spec(EcsFormatter(service_name="Shop").document(wire))


def test_label_keys_are_sanitised_and_kept_apart() -> None:
    wire = to_wire(
        eventlog.Event(
            "a",
            fields={"a": "x", "a.b": "y", "a_b": "z", "x*y": "1", "back\\slash": "2", "": "3", "n.m": 4},
            metrics={"p.q": 1.5},
        ),
        {},
    )
    doc = EcsFormatter().document(wire)
    assert doc["labels"] == {"a": "x", "a_b_2": "y", "a_b": "z", "x_y": "1", "back_slash": "2", "_": "3"}
    assert doc["eventlog"]["fields"] == {"n_m": 4}
    assert doc["eventlog"]["metrics"] == {"p_q": 1.5}
    assert doc["eventlog"]["keys"] == {
        "labels": {"a_b_2": "a.b", "x_y": "x*y", "back_slash": "back\\slash", "_": ""},
        "fields": {"n_m": "n.m"},
        "metrics": {"p_q": "p.q"},
    }
    assert wire_of(doc)["fields"] == wire["fields"]


def test_an_event_without_a_level_has_log_level_info() -> None:
    doc = EcsFormatter().document(to_wire(eventlog.Event("a", message="m"), {}))
    assert list(doc)[:3] == ["@timestamp", "log.level", "message"] and doc["log.level"] == "info"


@pytest.mark.parametrize("name", ["shop", "My Shop-API", "a/b:c"])
def test_event_dataset_is_the_service_name(name: str) -> None:
    """The spec: a user-configured service name gives ``event.dataset=${service.name}``."""
    doc = EcsFormatter(service_name=name).document(to_wire(eventlog.Event("a"), {}))
    assert doc["event"]["dataset"] == doc["service"]["name"] == name
    assert EcsFormatter().document(to_wire(eventlog.Event("a"), {}))["event"].get("dataset") is None


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)


# nox -s tests takes fewer on all but its first Python (noxfile.py).
@settings(
    max_examples=int(os.environ.get("ECS_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    event=hostile_event(),
    service=st.none() | _text.filter(lambda s: s.strip()).map(lambda s: s.strip()[:1024]),
    # What enrichers add, any name; text the wire would carry (no lone surrogates), any int, bools.
    extra=st.dictionaries(_text, _text | st.integers() | st.booleans(), max_size=3),
    # A process id an enricher set, which the wire passes on as it is.
    pid=st.none() | st.integers() | st.booleans() | _text,
)
def test_every_document_follows_the_ecs_logging_spec(
    event: eventlog.Event, service: str | None, extra: dict[str, str | int], pid: Any
) -> None:
    wire = to_wire(event, {})
    for key, value in extra.items():  # what enrichers add, under any name
        wire.setdefault(key, value)
    if pid is not None:
        wire["pid"] = pid
    formatter = EcsFormatter(service_name=service)
    payload = formatter.format(wire)
    doc = json.loads(payload)
    assert_follows_the_spec(doc)
    # Nothing is lost to the renaming: the document still gives the wire back.
    back = wire_of(doc)
    for key in ("fields", "metrics", "message", "level", "user"):
        assert back.get(key) == wire.get(key)
    for key in [*extra, "pid"]:
        # Booleans as 1/0, an int beyond long as its digits (a pid that is none: as text).
        assert back.get(key) == _as_elasticsearch_maps(wire.get(key), text=key == "pid")


def _as_elasticsearch_maps(value: Any, text: bool) -> Any:
    if type(value) is bool:
        return int(value)
    if type(value) is int:
        return value if -(2**63) <= value < 2**63 else str(value)
    return str(value) if text and value is not None else value


def test_booleans_and_ints_beyond_a_long_arrive_as_elasticsearch_maps_them() -> None:
    wire = to_wire(eventlog.Event("a", fields={"ok": True, "off": False, "big": 2**64, "n": 7}), {})
    assert wire["fields"] == {"ok": 1, "off": 0, "big": str(2**64), "n": 7}  # the wire's own rules
    # What enrichers set, which the wire passes on as they are.
    wire.update(pid=2**63, cluster=True, quota=-(2**63) - 1, limit=2**63 - 1)
    doc = EcsFormatter().document(wire)
    assert_follows_the_spec(json.loads(EcsFormatter().format(wire)))
    assert doc["labels"] == {"big": "18446744073709551616"}
    assert doc["process"] == {"thread": {"name": threading.current_thread().name}}  # no pid there
    assert doc["eventlog"] == {
        "fields": {"ok": 1, "off": 0, "n": 7},
        "pid": "9223372036854775808",
        "cluster": 1,
        "quota": "-9223372036854775809",
        "limit": 2**63 - 1,
    }
    wire["pid"] = True
    assert EcsFormatter().document(wire)["process"]["pid"] == 1


def test_the_field_types_are_those_of_the_ecs_release_eventlog_writes() -> None:
    assert ECS_FIELDS["ecs_version"] == ECS_VERSION
    doc = EcsFormatter(service_name="shop").document(to_wire(eventlog.Event("a", fields={"n": 1}), {}))
    assert_ecs_field_types(doc)
    # The check refuses what Elasticsearch's ECS template would refuse or not know.
    for wrong in ({"process": {"pid": "7"}}, {"host": {"name": 1}}, {"shard": "s3"}, {"labels": {"n": 1}}):
        with pytest.raises(AssertionError):
            assert_ecs_field_types({**doc, **wrong})
