"""The Cap'n Proto schema and the ClickHouse table, both derived from :data:`eventlog._records.schema.FIELDS`.

One wire field becomes one Cap'n Proto field and one ClickHouse column, except
``fields`` (str -> int|float|str), which is split by value type into three
key/value lists so ClickHouse stores each as a typed ``Nested`` column::

    fields={"n": 3, "ratio": 0.5, "plan": "pro"}
      -> fieldsInt   [(n, 3)]          Nested(key String, value Int64)
         fieldsFloat [(ratio, 0.5)]    Nested(key String, value Float64)
         fieldsStr   [(plan, "pro")]   Nested(key String, value String)

Cap'n Proto names must be camelCase, so ``exc_info`` is ``excInfo`` in the
schema and in the table; every other name is the wire name.

ClickHouse 18.16 matches table columns to Cap'n Proto fields by name (a
``Nested`` column ``fieldsInt`` to a list of structs, sub-columns by the
struct's field order) and has no Nullable mapping: a field an event does not
carry reads as ``''``, ``0`` or an empty array.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from eventlog.plugin import FIELDS, Field

#: File name of the shipped schema; also what ``format_schema`` names (without ``.capnp``).
SCHEMA_FILE = "event.capnp"
#: The root struct, the second half of ``format_schema='event:Event'``.
ROOT_STRUCT = "Event"
#: Cap'n Proto needs a unique 64-bit file id; this one is ours, fixed so the file is stable.
FILE_ID = 0xE7A3_5C0D_9B21_4F86


@dataclass(frozen=True)
class Pair:
    """A key/value struct: one element of a typed list such as ``fieldsInt``."""

    struct: str
    capnp_value: str
    clickhouse_value: str


INT_PAIR = Pair("IntField", "Int64", "Int64")
FLOAT_PAIR = Pair("FloatField", "Float64", "Float64")
STR_PAIR = Pair("StrField", "Text", "String")
PAIRS = (INT_PAIR, FLOAT_PAIR, STR_PAIR)


@dataclass(frozen=True)
class Column:
    """One Cap'n Proto field, which is also one ClickHouse column (or Nested group)."""

    name: str
    wire: str
    capnp_type: str
    clickhouse_type: str
    doc: str
    pair: Pair | None = None


def capnp_name(wire: str) -> str:
    """Cap'n Proto's camelCase spelling of a wire name: ``exc_info`` -> ``excInfo``."""
    head, *rest = wire.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _nested(pair: Pair) -> str:
    return f"Nested(key String, value {pair.clickhouse_value})"


def columns_for(field: Field) -> tuple[Column, ...]:
    """The Cap'n Proto fields / ClickHouse columns that carry one wire field."""
    name = capnp_name(field.wire)
    if field.kind == "str":
        return (Column(name, field.wire, "Text", "String", field.doc),)
    if field.kind == "int":
        return (Column(name, field.wire, "Int64", "Int64", field.doc),)
    if field.kind == "str_list":
        return (Column(name, field.wire, "List(Text)", "Array(String)", field.doc),)
    if field.kind == "number_map":
        return (
            Column(
                name, field.wire, f"List({FLOAT_PAIR.struct})", _nested(FLOAT_PAIR), field.doc, FLOAT_PAIR
            ),
        )
    if field.kind == "typed_map":
        return tuple(
            Column(
                f"{name}{suffix}",
                field.wire,
                f"List({pair.struct})",
                _nested(pair),
                f"{field.doc}: the {label} values",
                pair,
            )
            for suffix, label, pair in (
                ("Int", "integer", INT_PAIR),
                ("Float", "float", FLOAT_PAIR),
                ("Str", "string", STR_PAIR),
            )
        )
    raise ValueError(
        f"wire field {field.wire!r} has kind {field.kind!r}, which eventlog-capnp "
        "cannot map; add it to eventlog_capnp.schema.columns_for"
    )


#: Every column, in FIELDS order; the Cap'n Proto ordinals follow this order.
COLUMNS: tuple[Column, ...] = tuple(c for f in FIELDS for c in columns_for(f))


def render_capnp() -> str:
    """The text of ``event.capnp``, generated from :data:`eventlog._records.schema.FIELDS`."""
    lines = [
        "# The eventlog event as Cap'n Proto, for ClickHouse's CapnProto input format.",
        "# Generated from eventlog._records.schema.FIELDS (eventlog_capnp.schema.render_capnp); do not",
        "# edit.  `eventlog capnp schema --output DIR` writes it into the server's folder.",
        "# Insert into the table of `eventlog capnp ddl` with the setting",
        f"#   format_schema='{Path(SCHEMA_FILE).stem}:{ROOT_STRUCT}'",
        "",
        f"@0x{FILE_ID:016x};",
        "",
        f"struct {ROOT_STRUCT} {{",
    ]
    width = max(len(c.name) for c in COLUMNS) + 4
    for ordinal, column in enumerate(COLUMNS):
        decl = f"{column.name} @{ordinal}".ljust(width)
        lines.append(f"  {decl} :{column.capnp_type};  # {column.doc}")
    lines.append("}")
    for pair in PAIRS:
        lines += [
            "",
            f"struct {pair.struct} {{",
            "  key   @0 :Text;",
            f"  value @1 :{pair.capnp_value};",
            "}",
        ]
    return "\n".join(lines) + "\n"


def schema_path() -> Path:
    """Where the shipped ``event.capnp`` is on disk."""
    return Path(str(resources.files("eventlog_capnp").joinpath(SCHEMA_FILE)))


def shipped_schema() -> str:
    """The text of the shipped ``event.capnp``."""
    return schema_path().read_text(encoding="utf-8")
