"""eventlog-capnp: the schema against FIELDS, the formatters, the commands, and a real ClickHouse."""

from __future__ import annotations

import collections
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tests.peers.clickhouse import ClickHouse
from tests.varied import varied_events

import eventlog
from eventlog._config import registry
from eventlog._core.errors import PluginError
from eventlog._records.event import Event
from eventlog._records.schema import FIELDS
from eventlog._records.wire import to_wire
from eventlog.cli import main
from eventlog_capnp.clickhouse import insert_query, insert_url, render_ddl
from eventlog_capnp.format import CapnpFormatter, PackedCapnpFormatter, load_schema, read_messages
from eventlog_capnp.schema import COLUMNS, render_capnp, schema_path, shipped_schema

INT64_MAX = 2**63 - 1
EVENT_COUNT = 10_000

# ---------------------------------------------------------------- the schema


def test_shipped_schema_is_the_one_generated_from_fields() -> None:
    # Fails when FIELDS changes and event.capnp was not regenerated (or was edited by hand):
    #   python -c "from eventlog_capnp.schema import render_capnp; print(render_capnp(), end='')" \
    #     > plugins/eventlog_capnp/src/eventlog_capnp/event.capnp
    assert shipped_schema() == render_capnp()


def _type_name(field: Any) -> str:
    """``Text``, ``Int64``, ``List(Text)``, ``List(IntField)`` ... of a parsed Cap'n Proto field."""
    kind = field.proto.slot.type
    which = kind.which()
    if which == "list":
        element = kind.list.elementType
        inner = element.which()
        if inner == "struct":
            return f"List({_struct_name(element.struct.typeId)})"
        return f"List({inner[0].upper()}{inner[1:]})"
    return f"{which[0].upper()}{which[1:]}"


def _struct_name(type_id: int) -> str:
    module = load_schema()
    for name in ("IntField", "FloatField", "StrField"):
        if getattr(module, name).schema.node.id == type_id:
            return name
    raise AssertionError(f"unknown struct id {type_id:#x}")


EXPECTED_TYPES = {
    "str": ["Text"],
    "int": ["Int64"],
    "str_list": ["List(Text)"],
    "typed_map": ["List(IntField)", "List(FloatField)", "List(StrField)"],
    "number_map": ["List(FloatField)"],
}


def test_every_wire_field_has_typed_capnp_fields_and_nothing_else() -> None:
    fields = load_schema().Event.schema.fields
    seen = []
    for field in FIELDS:
        names = [c.name for c in COLUMNS if c.wire == field.wire]
        assert names, f"wire field {field.wire!r} has no Cap'n Proto field"
        assert [_type_name(fields[n]) for n in names] == EXPECTED_TYPES[field.kind], field.wire
        seen += names
    assert sorted(fields) == sorted(seen)
    module = load_schema()
    for pair, value in (("IntField", "int64"), ("FloatField", "float64"), ("StrField", "text")):
        pair_fields = getattr(module, pair).schema.fields
        assert list(getattr(module, pair).schema.fieldnames) == ["key", "value"]
        assert pair_fields["key"].proto.slot.type.which() == "text"
        assert pair_fields["value"].proto.slot.type.which() == value


def test_existing_ordinals_never_change() -> None:
    # Writers and servers may run different versions: a field keeps its ordinal for good,
    # new wire fields are appended at the end of FIELDS.
    pinned = [
        "id", "tstamp", "action", "target", "tgType", "level", "levelName", "message", "tags",
        "fieldsInt", "fieldsFloat", "fieldsStr", "metrics", "user", "session", "reqId", "site",
        "cluster", "host", "pid", "thread", "codeFile", "codeLine", "codeFunc", "excInfo",
    ]  # fmt: skip
    fields = load_schema().Event.schema.fields
    assert [fields[name].proto.codeOrder for name in pinned] == list(range(len(pinned)))
    assert [fields[name].proto.ordinal.explicit for name in pinned] == list(range(len(pinned)))


def test_ddl_has_a_column_per_capnp_field_and_the_seed_key() -> None:
    ddl = render_ddl("t")
    for column in COLUMNS:
        assert f"`{column.name}` {column.clickhouse_type}," in ddl
    assert "`day` Date MATERIALIZED toDate(intDiv(tstamp, 1000), 'UTC')" in ddl
    assert "ORDER BY (`day`, `tgType`, `action`, `target`, `user`)" in ddl
    assert "ENGINE = MergeTree" in ddl


# ---------------------------------------------------------------- the formatters


def expected(wire: dict[str, Any]) -> dict[str, Any]:
    """What a reader of the Cap'n Proto message (or the ClickHouse row) holds for ``wire``."""
    row: dict[str, Any] = {}
    for field in FIELDS:
        value = wire.get(field.wire)
        name = "excInfo" if field.wire == "exc_info" else field.wire
        if field.kind == "str":
            row[name] = "" if value is None else value
        elif field.kind == "int":
            row[name] = 0 if value is None else value
        elif field.kind == "str_list":
            row[name] = value or []
        elif field.kind == "number_map":
            row[name] = {k: float(v) for k, v in (value or {}).items()}
        else:
            ints, floats, strs = {}, {}, {}
            for k, v in (value or {}).items():
                if type(v) is int and -INT64_MAX - 1 <= v <= INT64_MAX:
                    ints[k] = v
                elif type(v) is float:
                    floats[k] = v
                else:
                    strs[k] = str(v)
            row |= {"fieldsInt": ints, "fieldsFloat": floats, "fieldsStr": strs}
    return row


def _from_message(message: dict[str, Any]) -> dict[str, Any]:
    row = {c.name: "" if c.capnp_type == "Text" else 0 for c in COLUMNS}
    row |= {"tags": [], "fieldsInt": {}, "fieldsFloat": {}, "fieldsStr": {}, "metrics": {}}
    for name, value in message.items():
        if name in ("fieldsInt", "fieldsFloat", "fieldsStr", "metrics"):
            value = {kv["key"]: kv["value"] for kv in value}
        row[name] = value
    return row


@pytest.fixture(scope="module")
def varied() -> list[Event]:
    """10,000 varied events (see tests/varied.py)."""
    return list(varied_events(EVENT_COUNT))


@pytest.fixture(scope="module")
def events(varied: list[Event]) -> list[dict[str, Any]]:
    """The varied events as wire dicts; this assigns their ids, which the pipeline keeps."""
    return [to_wire(event, None) for event in varied]


@pytest.mark.parametrize(
    "formatter", [CapnpFormatter(), PackedCapnpFormatter()], ids=["capnp", "capnp-packed"]
)
def test_batch_reads_back_equal_through_pycapnp(
    formatter: CapnpFormatter, events: list[dict[str, Any]]
) -> None:
    sample = events[:2000]
    body = formatter.format_batch([formatter.format(w) for w in sample])
    messages = read_messages(body, packed=isinstance(formatter, PackedCapnpFormatter))
    assert [_from_message(m) for m in messages] == [expected(w) for w in sample]


def test_unpacked_messages_are_whole_words_and_packed_are_smaller(
    events: list[dict[str, Any]],
) -> None:
    plain, packed = CapnpFormatter(), PackedCapnpFormatter()
    for wire in events[:500]:
        message = plain.format(wire)
        assert len(message) % 8 == 0  # keeps every message of a batch word-aligned
        assert len(packed.format(wire)) < len(message)
    assert plain.content_type == "application/x-capnp"
    assert packed.content_type == "application/x-capnp-packed"


def test_numbers_beyond_int64_and_float64_are_kept_exactly_as_text() -> None:
    wire = {
        "id": "x",
        "tstamp": 1,
        "action": "a",
        "fields": {"big": 2**64, "neg": -(2**63) - 1, "edge": 2**63 - 1, "r": 0.25, "s": "t"},
        "metrics": {"ok": 3, "vast": 10**400},
    }
    (message,) = read_messages(CapnpFormatter().format(wire))
    row = _from_message(message)
    assert row["fieldsInt"] == {"edge": 2**63 - 1}
    assert row["fieldsFloat"] == {"r": 0.25}
    assert row["fieldsStr"] == {"vast": str(10**400), "big": str(2**64), "neg": str(-(2**63) - 1), "s": "t"}
    assert row["metrics"] == {"ok": 3.0}


# ---------------------------------------------------------------- configuration


@pytest.mark.parametrize("name", ["capnp", "capnp-packed"])
def test_capnp_without_the_plugin_is_a_configure_time_error(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A registry without entry points is what a machine without eventlog-capnp has.
    monkeypatch.setattr(registry, "_default", registry.Registry(load_entry_points=False))
    with pytest.raises(PluginError) as info:
        eventlog.configure(transport="tcp", host="127.0.0.1", port=9, format=name)
    assert str(info.value).startswith(
        f"formatter {name!r} is not installed; install it: "
        "pip install --find-links dist/ 'eventlog[capnp]==0.1.0'"
    )


def test_packed_capnp_over_tcp_reads_back() -> None:
    """capnp-packed where it fits: a plain TCP stream of self-delimiting messages."""
    received = bytearray()
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]

        def accept() -> None:
            conn, _ = server.accept()
            with conn:
                while chunk := conn.recv(65536):
                    received.extend(chunk)

        reader = threading.Thread(target=accept, daemon=True)
        reader.start()
        pipeline = eventlog.configure(
            transport="tcp", host="127.0.0.1", port=port, format="capnp-packed", enrichers=""
        )
        sample = list(varied_events(300, seed=11))
        for event in sample[:150]:
            eventlog.log_event(event)
        # Beyond Int64: clamped where the Event is made, the original kept as text and counted.
        beyond = Event("beyond", level=2**70)
        eventlog.log_event(beyond)
        for event in sample[150:]:
            eventlog.log_event(event)
        assert pipeline.flush(20)
        assert pipeline.stats.dropped_by_reason() == {}
        conversions: dict[str, int] = {"int_range": 1}  # the level; then the sample's own
        for event in sample:
            to_wire(event, conversions)
        assert pipeline.stats.converted == conversions
        eventlog.shutdown(5)
        reader.join(10)
    messages = read_messages(bytes(received), packed=True)
    assert [m["id"] for m in messages] == [e.id for e in [*sample[:150], beyond, *sample[150:]]]
    clamped = messages.pop(150)
    assert clamped["level"] == 2**63 - 1
    assert clamped["fieldsStr"] == [{"key": "level_original", "value": str(2**70)}]
    assert [_from_message(m) for m in messages] == [expected(to_wire(e, None)) for e in sample]


# ---------------------------------------------------------------- the command


def test_commands_print_the_schema_the_ddl_and_the_url(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["capnp", "schema"]) == 0
    assert capsys.readouterr().out == schema_path().read_text(encoding="utf-8")
    assert main(["capnp", "schema", "--output", str(tmp_path)]) == 0
    assert (tmp_path / "event.capnp").read_text(encoding="utf-8") == render_capnp()
    capsys.readouterr()
    assert main(["capnp", "schema", "--output", str(tmp_path / "nope")]) == 2
    assert "is not a directory; give the server's format_schema_path" in capsys.readouterr().err
    assert main(["capnp", "ddl", "--table", "logs.events"]) == 0
    assert capsys.readouterr().out == render_ddl("logs.events")
    assert main(["capnp", "url", "http://ch:8123/"]) == 0
    assert capsys.readouterr().out == (
        "http://ch:8123/?query=INSERT+INTO+events+FORMAT+CapnProto++++&format_schema=event%3AEvent\n"
    )


@pytest.mark.parametrize("table", ["events", "e", "db.events_2026", "таблица"])
def test_insert_query_starts_the_rows_word_aligned(table: str) -> None:
    query = insert_query(table)
    assert query.rstrip() == f"INSERT INTO {table} FORMAT CapnProto"
    assert (len(query.encode()) + 1) % 8 == 0  # + the newline the server reads after it


# ---------------------------------------------------------------- a real ClickHouse


def _send(clickhouse: ClickHouse, table: str, events: list[Event], **settings: Any) -> None:
    """Log ``events`` through the ``http`` transport, format ``capnp``, into ``table``."""
    pipeline = eventlog.configure(
        transport="http",
        format="capnp",
        http_url=insert_url(clickhouse.url, table),
        enrichers="",
        **settings,
    )
    for event in events:
        eventlog.log_event(event)
    assert pipeline.flush(60)
    assert (pipeline.stats.sent, pipeline.stats.dropped_by_reason()) == (len(events), {})
    eventlog.shutdown(5)


def _create(clickhouse: ClickHouse, table: str) -> None:
    """Place the schema and create the table as the README says: with the two commands."""
    assert main(["capnp", "schema", "--output", str(clickhouse.format_schema_dir)]) == 0
    clickhouse.query(f"DROP TABLE IF EXISTS {table}")
    clickhouse.query(render_ddl(table))


@pytest.fixture(scope="module")
def loaded(clickhouse: ClickHouse, varied: list[Event], events: list[dict[str, Any]]) -> Iterator[str]:
    """The table of ``eventlog capnp ddl``, with the 10,000 varied events sent as capnp."""
    table = "capnp_events"
    _create(clickhouse, table)
    _send(clickhouse, table, varied, batch_size=500)
    yield table
    clickhouse.query(f"DROP TABLE IF EXISTS {table}")


def _from_row(row: dict[str, Any]) -> dict[str, Any]:
    out = {c.name: row[c.name] for c in COLUMNS if c.pair is None}
    for c in COLUMNS:
        if c.pair is not None:
            out[c.name] = dict(zip(row[f"{c.name}.key"], row[f"{c.name}.value"], strict=True))
    return out


@pytest.mark.peer("clickhouse")
def test_every_field_of_10000_events_reads_back_equal(
    clickhouse: ClickHouse, loaded: str, events: list[dict[str, Any]]
) -> None:
    rows = clickhouse.rows(f"SELECT *, toString(day) AS day FROM {loaded} ORDER BY id")
    assert len(rows) == EVENT_COUNT
    by_id = {row["id"]: row for row in rows}
    for wire in events:
        row = by_id[wire["id"]]
        assert _from_row(row) == expected(wire), wire["id"]
        day = datetime.fromtimestamp(wire["tstamp"] / 1000, UTC).date().isoformat()
        assert row["day"] == day


@pytest.mark.peer("clickhouse")
def test_typed_fields_aggregate_like_python(
    clickhouse: ClickHouse, loaded: str, events: list[dict[str, Any]]
) -> None:
    amounts = [w["fields"]["amount"] for w in events if "amount" in w.get("fields", {})]
    ratios = [w["fields"]["ratio"] for w in events if "ratio" in w.get("fields", {})]
    durations = [w["metrics"]["durationMs"] for w in events if "metrics" in w]
    (row,) = clickhouse.rows(
        "SELECT sumIf(fieldsInt.value, fieldsInt.key = 'amount') AS amount,"
        " countIf(fieldsInt.key = 'amount') AS n FROM "
        f"{loaded} ARRAY JOIN fieldsInt",
    )
    assert (row["amount"], row["n"]) == (sum(amounts), len(amounts))
    (row,) = clickhouse.rows(
        f"SELECT avg(fieldsFloat.value[indexOf(fieldsFloat.key, 'ratio')]) AS ratio FROM {loaded}"
        " WHERE has(fieldsFloat.key, 'ratio')",
    )
    assert row["ratio"] == pytest.approx(sum(ratios) / len(ratios), rel=1e-12)
    (row,) = clickhouse.rows(
        f"SELECT avg(metrics.value) AS d FROM {loaded} ARRAY JOIN metrics WHERE metrics.key = 'durationMs'",
    )
    assert row["d"] == pytest.approx(sum(durations) / len(durations), rel=1e-12)


@pytest.mark.peer("clickhouse")
def test_dotted_actions_count_under_their_prefix(
    clickhouse: ClickHouse, loaded: str, events: list[dict[str, Any]]
) -> None:
    (row,) = clickhouse.rows(f"SELECT count() AS n FROM {loaded} WHERE action LIKE 'account.%'")
    assert row["n"] == sum(1 for w in events if w["action"].startswith("account."))
    assert 0 < row["n"] < EVENT_COUNT
    rows = clickhouse.rows(
        f"SELECT action, count() AS n FROM {loaded} WHERE action LIKE 'account.admin.%' GROUP BY action",
    )
    counts = collections.Counter(w["action"] for w in events if w["action"].startswith("account.admin."))
    assert {r["action"]: r["n"] for r in rows} == dict(counts)


@pytest.mark.peer("clickhouse")
def test_gzipped_and_split_bodies_insert_every_event(
    clickhouse: ClickHouse, events: list[dict[str, Any]]
) -> None:
    table = "capnp_gzip"
    _create(clickhouse, table)
    sample = list(varied_events(3000, seed=21))
    # 256 KiB bodies: a batch of 500 (about 700 KB) is split into several POSTs, each gzipped.
    _send(clickhouse, table, sample, http_gzip=True, http_max_body_bytes=262_144, batch_size=500)
    rows = clickhouse.rows(f"SELECT * FROM {table}")
    assert sorted(r["id"] for r in rows) == sorted(e.id or "" for e in sample)
    wires = {w["id"]: w for w in (to_wire(e, None) for e in sample)}
    assert all(_from_row(r) == expected(wires[r["id"]]) for r in rows)
    clickhouse.query(f"DROP TABLE {table}")


@pytest.mark.peer("clickhouse")
def test_events_wait_for_a_missing_schema_and_arrive_once_it_is_placed(
    clickhouse: ClickHouse,
) -> None:
    table = "capnp_late_schema"
    _create(clickhouse, table)
    late = clickhouse.format_schema_dir / "late.capnp"
    late.unlink(missing_ok=True)
    url = insert_url(clickhouse.url, table).replace("=event%3AEvent", "=late%3AEvent")
    pipeline = eventlog.configure(
        transport="http",
        format="capnp",
        http_url=url,
        http_retries=0,
        retry_backoff_max=0.2,
        enrichers="",
    )
    sample = list(varied_events(50, seed=5))
    for event in sample:
        eventlog.log_event(event)
    for _ in range(200):  # until ClickHouse has refused the batch at least once
        if pipeline.stats.send_errors:
            break
        time.sleep(0.05)
    assert pipeline.stats.send_errors
    assert clickhouse.query(f"SELECT count() FROM {table}").strip() == "0"
    late.write_text(shipped_schema(), encoding="utf-8")
    assert pipeline.flush(30)
    assert pipeline.stats.dropped_by_reason() == {}
    rows = clickhouse.rows(f"SELECT id FROM {table}")
    assert sorted(r["id"] for r in rows) == sorted(e.id or "" for e in sample)
    clickhouse.query(f"DROP TABLE {table}")
