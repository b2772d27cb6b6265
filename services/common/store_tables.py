"""The central store's tables, derived from a resource's catalog record.

The sink writes these tables and the router's backfill reads them; both take the layout from
here, so it has one definition.

Per resource (``CatalogRecord``: entry + current value schema), with ``T = <provider>_<code>``:

``T`` — the current state, one row per key:
    one column per field of the value schema (key fields: the primary key, NOT NULL; every
    other field nullable, so a field a later schema version removes keeps its column and new
    rows leave it NULL), then
    ``_op``            c | u | d | r of the change that wrote the row
    ``_deleted``       true after a delete (the row stays as a tombstone with its last state)
    ``_version``       the row's version, from the source position (see :func:`source_version`)
    ``_event_id``      event id of that change
    ``_ts_ms``         when the bus saw it (envelope ``ts_ms``)
    ``_source_ts_ms``  when the source recorded it (``source.ts_ms``, may be NULL)
    ``_topic``, ``_partition``, ``_offset``  Kafka position of that change

``T_history`` — every change once, by event id:
    ``event_id`` (PK), ``record_key`` (JSON object of the key fields, sorted keys),
    ``op``, ``before``, ``after`` (JSON), ``ts_ms``, ``source_ts_ms``, ``version``,
    ``topic``, ``partition``, ``offset``

And one table for the whole store:

``govbus_sink_positions(topic, partition, next_offset)`` — how far the store has applied each
source partition: the offset of the next record to apply. The sink updates it in the same
transaction as each batch it stores, so a reader that sees ``next_offset >= n`` sees every
change of that partition before offset ``n``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    select,
)
from sqlalchemy.engine import Connection
from sqlalchemy.types import TypeEngine

from services.common.catalog import CatalogEntry
from services.common.catalog_feed import CatalogRecord

POSITIONS = "govbus_sink_positions"
META_COLUMNS = (
    "_op",
    "_deleted",
    "_version",
    "_event_id",
    "_ts_ms",
    "_source_ts_ms",
    "_topic",
    "_partition",
    "_offset",
)

# Versions compare byte by byte on every database: PostgreSQL's default collation would
# ignore punctuation and case, and order "a:10" and "a-9" differently from SQLite.
VERSION = Text().with_variant(Text(collation="C"), "postgresql")

_PRIMITIVE: dict[str, type[TypeEngine]] = {
    "string": Text,
    "long": BigInteger,
    "int": Integer,
    "double": Float,
    "float": Float,
    "boolean": Boolean,
    "bytes": LargeBinary,
    "enum": Text,
}
_LOGICAL: dict[str, type[TypeEngine]] = {"date": Date, "timestamp-millis": DateTime}


def sql_type(avro_type: Any) -> type[TypeEngine]:
    """SQL type of an Avro field type: primitives, ``["null", T]``, enums, logical types.

    Anything structured (records, arrays, maps, other unions) is stored as JSON.
    """
    if isinstance(avro_type, list):
        others = [t for t in avro_type if t != "null"]
        return sql_type(others[0]) if len(others) == 1 else JSON
    if isinstance(avro_type, dict):
        logical = _LOGICAL.get(avro_type.get("logicalType", ""))
        if logical is not None:
            return logical
        return sql_type(avro_type["type"])
    return _PRIMITIVE.get(avro_type, JSON)


def table_name(entry: CatalogEntry) -> str:
    return f"{entry.provider}_{entry.code}"


def history_name(entry: CatalogEntry) -> str:
    return f"{table_name(entry)}_history"


@dataclass(frozen=True)
class ResourceTables:
    record: CatalogRecord
    current: Table
    history: Table

    @property
    def entry(self) -> CatalogEntry:
        return self.record.resource

    @property
    def value_columns(self) -> list[str]:
        """The current schema's fields, in order (columns of removed fields are not here)."""
        return [f["name"] for f in self.record.value_schema["fields"]]


def resource_tables(record: CatalogRecord, metadata: MetaData | None = None) -> ResourceTables:
    """The tables of one resource as its current schema defines them."""
    metadata = MetaData() if metadata is None else metadata
    entry = record.resource
    columns = []
    for field in record.value_schema["fields"]:
        is_key = field["name"] in entry.key_fields
        columns.append(
            Column(field["name"], sql_type(field["type"]), primary_key=is_key, nullable=not is_key)
        )
    current = Table(
        table_name(entry),
        metadata,
        *columns,
        Column("_op", String(1), nullable=False),
        Column("_deleted", Boolean, nullable=False),
        Column("_version", VERSION, nullable=False),
        Column("_event_id", String(64), nullable=False),
        Column("_ts_ms", BigInteger, nullable=False),
        Column("_source_ts_ms", BigInteger),
        Column("_topic", String(255), nullable=False),
        Column("_partition", Integer, nullable=False),
        Column("_offset", BigInteger, nullable=False),
        comment=f"{entry.name_zh} current state",
        extend_existing=True,
    )
    history = Table(
        history_name(entry),
        metadata,
        Column("event_id", String(64), primary_key=True),
        Column("record_key", Text, nullable=False, index=True),
        Column("op", String(1), nullable=False),
        Column("before", JSON),
        Column("after", JSON),
        Column("ts_ms", BigInteger, nullable=False),
        Column("source_ts_ms", BigInteger),
        Column("version", VERSION, nullable=False),
        Column("topic", String(255), nullable=False),
        Column("partition", Integer, nullable=False),
        Column("offset", BigInteger, nullable=False),
        comment=f"{entry.name_zh} change history",
        extend_existing=True,
    )
    return ResourceTables(record, current, history)


def positions_table(metadata: MetaData | None = None) -> Table:
    return Table(
        POSITIONS,
        MetaData() if metadata is None else metadata,
        Column("topic", String(255), primary_key=True),
        Column("partition", Integer, primary_key=True),
        Column("next_offset", BigInteger, nullable=False),
        comment="next offset of each source partition the central store has yet to apply",
        extend_existing=True,
    )


def applied_offsets(conn: Connection, topic: str) -> dict[int, int]:
    """Partition -> next offset to apply, of one source topic, as the store has committed it."""
    table = positions_table()
    query = select(table.c.partition, table.c.next_offset).where(table.c.topic == topic)
    return {partition: offset for partition, offset in conn.execute(query)}


_DIGITS = re.compile(r"\d+")


def source_version(position: str) -> str:
    """A row version from the source position, ordered as the source orders its changes.

    The order is the *natural* order of positions: runs of digits compare as numbers, the
    rest byte by byte. Each digit run becomes its length (two digits) then its digits without
    leading zeros, so plain string comparison of versions (collation "C") is that order:
    ``lsn:9 < lsn:10``, and zero-padded positions (``psb-hukou:lsn:0000001234``) keep theirs.
    It is total; positions equal as numbers ("7", "007") are one version. A source whose
    positions do not grow per key (no LSN, no sequence) must give its adapter a position made
    of source time and a sequence, e.g. ``f"{ts_ms}:{seq}"``.
    """
    return _DIGITS.sub(_digit_run, position)


def _digit_run(match: re.Match[str]) -> str:
    digits = match.group().lstrip("0") or "0"
    if len(digits) > 99:
        raise ValueError(f"position has a number of {len(digits)} digits (at most 99)")
    return f"{len(digits):02d}{digits}"
