"""A column added to a CDC adapter's source table, as a wider resource. Pure functions.

The new field's Avro type is the one Debezium's JSON gives the column's values (the connector
as ``debezium.connector_config`` sets it up: ``decimal.handling.mode=double``, the default
``time.precision.mode=adaptive``), so the values the adapter already has fit it as they are.
It is optional with default null, which every older reader and writer of the subject accepts
(backward compatible), and gets the level ``NEW_FIELD_SENSITIVITY`` until the provider
reviews it: a column nobody has classified may well be personal data.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from services.common.catalog import CODE_MAX, NAME_MAX, CatalogEntry, FieldSpec, Sensitivity
from services.ingest.adapters.debezium import DebeziumAdapter
from services.ingest.adapters.debezium_mapping import Incompatible

# Nothing keeps an L4 field out of the central store, and L4 is the level at which no grant
# delivers it in clear without the authority's approval (l4_clear_reason): a mis-guessed
# identity number or health column stays protected until the provider lowers it.
NEW_FIELD_SENSITIVITY = Sensitivity.L4
AVRO_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# information_schema.columns.data_type -> (Avro type, what a value is), as Debezium renders it.
_TEXT = ("text", "character varying", "character", "uuid", "inet", "cidr", "macaddr")
DEBEZIUM_TYPES: dict[str, tuple[str, str]] = {
    **{t: ("string", "") for t in _TEXT},
    **{t: ("string", f"{t.upper()} text") for t in ("json", "jsonb", "xml")},
    **{t: ("int", "") for t in ("smallint", "integer")},
    "bigint": ("long", ""),
    "boolean": ("boolean", ""),
    "real": ("float", ""),
    "double precision": ("double", ""),
    # decimal.handling.mode=double: exact decimals become doubles
    **{t: ("double", "decimal as double") for t in ("numeric", "money")},
    "date": ("int", "days since 1970-01-01"),
    "timestamp with time zone": ("string", "ISO-8601 timestamp in UTC"),
    "time with time zone": ("string", "ISO-8601 time in UTC"),
    "interval": ("long", "microseconds"),
}
# time.precision.mode=adaptive: up to 3 fractional digits in milliseconds, else microseconds.
_BY_PRECISION: dict[str, tuple[tuple[str, str], tuple[str, str]]] = {
    "timestamp without time zone": (
        ("long", "milliseconds since 1970-01-01, local time"),
        ("long", "microseconds since 1970-01-01, local time"),
    ),
    "time without time zone": (
        ("int", "milliseconds since midnight"),
        ("long", "microseconds since midnight"),
    ),
}


@dataclass(frozen=True)
class SourceColumn:
    """A column as ``information_schema.columns`` describes it."""

    name: str
    data_type: str
    datetime_precision: int | None = None


def debezium_avro_type(column: SourceColumn) -> tuple[str, str] | None:
    """(Avro type, unit or form of a value) of the column's values in Debezium's JSON; None
    for a type with no mapping here (arrays, bytea, bit strings, user-defined types...)."""
    if column.data_type in _BY_PRECISION:
        millis, micros = _BY_PRECISION[column.data_type]
        precision = 6 if column.datetime_precision is None else column.datetime_precision
        return millis if precision <= 3 else micros
    return DEBEZIUM_TYPES.get(column.data_type)


@dataclass(frozen=True)
class Widening:
    """The resource with the table's new columns: the control plane's PUT body."""

    entry: CatalogEntry
    value_schema: dict[str, Any]
    added: tuple[tuple[SourceColumn, str], ...]  # (column, its field's Avro type)

    def describe(self) -> str:
        return ", ".join(f"{c.name} ({c.data_type} -> {t})" for c, t in self.added)


def widen(
    entry: CatalogEntry,
    value_schema: Mapping[str, Any],
    adapter: DebeziumAdapter,
    columns: Sequence[SourceColumn],
) -> Widening | Incompatible:
    """The resource and its value schema with one optional field per new column, or why a
    column cannot be added (the first such column)."""
    fields = dict(entry.fields)
    schema_fields = list(value_schema["fields"])
    added = []
    for column in columns:
        name = adapter.field_of(column.name)
        if not AVRO_NAME.match(name) or len(name) > CODE_MAX:
            detail = f"{name!r} is no field name (letters, digits, _; at most {CODE_MAX})"
            return Incompatible(adapter.table, column.name, detail)
        mapped = debezium_avro_type(column)
        if mapped is None:
            detail = f"type {column.data_type} has no Avro type here; add the field by hand"
            return Incompatible(adapter.table, column.name, detail)
        avro, form = mapped
        about = f"added with source column {adapter.table}.{column.name} ({column.data_type}"
        about += f"; {form})" if form else ")"
        fields[name] = FieldSpec(sensitivity=NEW_FIELD_SENSITIVITY, description=about[:NAME_MAX])
        schema_fields.append({"name": name, "type": ["null", avro], "default": None, "doc": about})
        added.append((column, avro))
    widened = entry.model_copy(update={"fields": fields})
    return Widening(
        CatalogEntry.model_validate(widened.model_dump()),
        {**value_schema, "fields": schema_fields},
        tuple(added),
    )
