"""One Debezium change record (JSON, no schemas) as a govbus ``Change``. Pure functions.

The outcome is one of four: a ``Change`` to publish; a ``Problem`` (the record is bad:
it goes to the dead-letter topic); an ``Incompatible`` schema change of the source
table (a column's type changed, a column went missing, the key changed), which stops the
adapter before the record, since every later change of the table would be wrong too; or
``NewColumns``: the row has columns the resource lacks, in an adapter that takes every column
of its table, so the resource is to be widened (``debezium_schema_change``) before the record.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastavro.validation import validate

from services.common.catalog import CatalogEntry
from services.ingest.adapters.debezium import DebeziumAdapter
from services.ingest.publisher import Change
from services.ingest.validation import Problem

OPS = {"c", "u", "d", "r"}


@dataclass(frozen=True)
class Incompatible:
    """The source table changed in a way the resource cannot take; names table and column."""

    table: str
    column: str
    detail: str

    def __str__(self) -> str:
        return f"table {self.table}, column {self.column}: {self.detail}"


@dataclass(frozen=True)
class NewColumns:
    """Source columns a change's row has and the resource not: the table gained them."""

    table: str
    columns: tuple[str, ...]  # source column names, in the row's order


def new_columns(
    rows: list[Mapping[str, Any] | None], adapter: DebeziumAdapter, types: Mapping[str, Any]
) -> NewColumns | None:
    """The columns of ``rows`` whose fields the resource lacks, when the adapter takes all of
    its table's columns; with an explicit ``columns`` list that list decides, and None."""
    if adapter.columns is not None:
        return None
    fresh = (c for row in rows if isinstance(row, Mapping) for c in row)
    added = {c: None for c in fresh if adapter.field_of(c) not in types}
    return NewColumns(adapter.table, tuple(added)) if added else None


def source_position(source: Mapping[str, Any], key: Mapping[str, Any]) -> str:
    """Where the change is in the database log. Streamed changes each have their own LSN;
    a snapshot's rows all share the snapshot's LSN, so theirs adds the key. Positions of one
    key grow with its changes (the central store orders rows by them), and a replayed change
    has the same position, hence the same event id (``source_event_id``).

    A change not yet committed when the snapshot began is streamed, not in the snapshot, but
    its own LSN can be the snapshot's: at equal LSNs "snapshot" sorts before "tx", so the
    streamed change wins over the snapshot's older row."""
    lsn = source.get("lsn")
    if _is_snapshot(source):
        return f"lsn:{lsn}:snapshot:" + json.dumps(key, sort_keys=True, ensure_ascii=False)
    return f"lsn:{lsn}:tx:{source.get('txId')}"


def _is_snapshot(source: Mapping[str, Any]) -> bool:
    return str(source.get("snapshot", "false")) not in ("false", "incremental")


def _field_types(schema: Mapping[str, Any]) -> dict[str, Any]:
    return {f["name"]: f["type"] for f in schema["fields"]}


def map_row(
    row: Mapping[str, Any] | None,
    adapter: DebeziumAdapter,
    entry: CatalogEntry,
    types: Mapping[str, Any],
) -> dict[str, Any] | Incompatible | None:
    """A source row as a resource record: renamed, only the resource's columns, types checked."""
    if row is None:
        return None
    taken = set(adapter.columns or entry.fields)
    record = {}
    for column, value in row.items():
        name = adapter.field_of(column)
        if name in taken and name in types:
            record[name] = value
    for name in taken & set(types):
        if name not in record:
            return Incompatible(adapter.table, name, "the resource has it, the source row not")
        value = record[name]
        # NULL where the resource wants a value is a bad row, not a schema change.
        if value is not None and not validate(value, types[name], raise_errors=False):
            kind = type(value).__name__
            detail = f"a {kind} value does not fit the resource's type {types[name]!r}"
            return Incompatible(adapter.table, name, detail)
    return record


def to_change(
    key: Any,
    value: Any,
    adapter: DebeziumAdapter,
    entry: CatalogEntry,
    schema: Mapping[str, Any],
) -> Change | Problem | Incompatible | NewColumns | None:
    """The change of one Debezium record; None for a record that carries no change."""
    if value is None:  # a tombstone after a delete (disabled in our connector config)
        return None
    if not isinstance(value, dict) or not isinstance(key, dict):
        return Problem("invalid_envelope", "a Debezium record is a JSON object with a key")
    op, source = value.get("op"), value.get("source")
    if op not in OPS or not isinstance(source, dict):
        return Problem("invalid_envelope", f"op {op!r} or its source block is not Debezium's")
    key_fields = sorted(adapter.field_of(c) for c in key)
    if key_fields != sorted(entry.key_fields):
        column = ",".join(sorted(set(key_fields) ^ set(entry.key_fields)))
        return Incompatible(adapter.table, column, f"key {key_fields} != {entry.key_fields}")
    types = _field_types(schema)
    if added := new_columns([value.get("before"), value.get("after")], adapter, types):
        return added
    before = map_row(value.get("before"), adapter, entry, types)
    after = map_row(value.get("after"), adapter, entry, types)
    if isinstance(after, Incompatible):
        return after
    if isinstance(before, Incompatible):
        # Without REPLICA IDENTITY FULL a delete's `before` holds the key columns only.
        detail = f"before: {before.detail}; the table needs REPLICA IDENTITY FULL"
        return Problem("partial_before", detail, None)
    position = source_position(source, key)
    return Change(
        entry.resource_id,
        op,
        before,  # type: ignore[arg-type]
        after,  # type: ignore[arg-type]
        position,
        f"postgres:{source.get('db')}.{adapter.table}",
        source_ts_ms=source.get("ts_ms"),
        snapshot=_is_snapshot(source),
    )
