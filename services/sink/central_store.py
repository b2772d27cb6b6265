"""The central store (归集库): current state per resource plus the full change history.

Tables are derived from each resource's Avro schema. Writes are idempotent: a change is
known by its event id, and a row only moves forward in version (its Kafka offset; a key
always lives in one partition), so re-reading a topic adds nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    select,
)
from sqlalchemy.engine import Engine

from services.common.catalog import CatalogEntry
from services.common.schemas import value_schema
from services.common.sql import build_engine

AVRO_SQL = {
    "string": Text,
    "long": BigInteger,
    "int": Integer,
    "double": Float,
    "float": Float,
    "boolean": Boolean,
}


@dataclass(frozen=True)
class StoredChange:
    resource: str
    event_id: str
    op: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    ts_ms: int
    source_ts_ms: int | None
    topic: str
    partition: int
    offset: int

    @property
    def row(self) -> dict[str, Any]:
        return self.after if self.after is not None else self.before  # type: ignore[return-value]


def _sql_type(avro_type: Any) -> tuple[Any, bool]:
    """(SQLAlchemy type, nullable) of a primitive or ["null", primitive] Avro type."""
    if isinstance(avro_type, list):
        others = [t for t in avro_type if t != "null"]
        return AVRO_SQL[others[0]], True
    return AVRO_SQL[avro_type], False


def table_name(entry: CatalogEntry) -> str:
    return f"{entry.provider}_{entry.code}"


@dataclass(frozen=True)
class ResourceTables:
    entry: CatalogEntry
    current: Table
    history: Table


def _tables(metadata: MetaData, entry: CatalogEntry, schemas_dir: Path) -> ResourceTables:
    columns = []
    for field in value_schema(entry, schemas_dir)["fields"]:
        sql_type, nullable = _sql_type(field["type"])
        is_key = field["name"] in entry.key_fields
        key_type = String(64) if sql_type is Text and is_key else sql_type
        columns.append(
            Column(field["name"], key_type, primary_key=is_key, nullable=nullable or is_key)
        )
    current = Table(
        table_name(entry),
        metadata,
        *columns,
        Column("_op", String(1), nullable=False),
        Column("_deleted", Boolean, nullable=False),
        Column("_version", BigInteger, nullable=False),
        Column("_event_id", String(64), nullable=False),
        Column("_ts_ms", BigInteger, nullable=False),
        Column("_source_ts_ms", BigInteger),
        comment=f"{entry.name_zh} current state",
    )
    history = Table(
        f"{table_name(entry)}_history",
        metadata,
        Column("event_id", String(64), primary_key=True),
        Column("record_key", Text, nullable=False, index=True),
        Column("op", String(1), nullable=False),
        Column("before", JSON),
        Column("after", JSON),
        Column("ts_ms", BigInteger, nullable=False),
        Column("source_ts_ms", BigInteger),
        Column("topic", String(255), nullable=False),
        Column("partition", Integer, nullable=False),
        Column("offset", BigInteger, nullable=False),
        comment=f"{entry.name_zh} change history",
    )
    return ResourceTables(entry, current, history)


def _insert(engine: Engine, table: Table):
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


class CentralStore:
    def __init__(self, url: str, catalog: Iterable[CatalogEntry], schemas_dir: Path) -> None:
        self.engine = build_engine(url)
        self._metadata = MetaData()
        self.resources = {e.resource_id: _tables(self._metadata, e, schemas_dir) for e in catalog}
        self._metadata.create_all(self.engine)

    def apply(self, changes: Iterable[StoredChange]) -> dict[str, int]:
        """Write a batch in one transaction; returns the changes new to the store per resource."""
        by_resource: dict[str, list[StoredChange]] = {}
        for change in changes:
            by_resource.setdefault(change.resource, []).append(change)
        written = {}
        with self.engine.begin() as conn:
            for resource, batch in by_resource.items():
                tables = self.resources[resource]
                fresh = self._new_changes(conn, tables, batch)
                if fresh:
                    conn.execute(
                        _insert(self.engine, tables.history).on_conflict_do_nothing(),
                        [self._history_row(tables.entry, c) for c in fresh],
                    )
                self._upsert_current(conn, tables, batch)
                written[resource] = len(fresh)
        return written

    @staticmethod
    def _new_changes(conn, tables: ResourceTables, batch: list[StoredChange]):
        ids = {c.event_id for c in batch}
        seen = set(
            conn.scalars(
                select(tables.history.c.event_id).where(tables.history.c.event_id.in_(ids))
            )
        )
        fresh, taken = [], set()
        for change in batch:
            if change.event_id not in seen and change.event_id not in taken:
                taken.add(change.event_id)
                fresh.append(change)
        return fresh

    @staticmethod
    def _history_row(entry: CatalogEntry, c: StoredChange) -> dict[str, Any]:
        key = {k: c.row[k] for k in entry.key_fields}
        return {
            "event_id": c.event_id,
            "record_key": json.dumps(key, ensure_ascii=False, sort_keys=True),
            "op": c.op,
            "before": c.before,
            "after": c.after,
            "ts_ms": c.ts_ms,
            "source_ts_ms": c.source_ts_ms,
            "topic": c.topic,
            "partition": c.partition,
            "offset": c.offset,
        }

    def _upsert_current(self, conn, tables: ResourceTables, batch: list[StoredChange]) -> None:
        keys = tables.entry.key_fields
        latest: dict[tuple, StoredChange] = {}
        for change in batch:
            key = tuple(change.row[k] for k in keys)
            if key not in latest or latest[key].offset < change.offset:
                latest[key] = change
        rows = [
            {
                **c.row,
                "_op": c.op,
                "_deleted": c.op == "d",
                "_version": c.offset,
                "_event_id": c.event_id,
                "_ts_ms": c.ts_ms,
                "_source_ts_ms": c.source_ts_ms,
            }
            for c in latest.values()
        ]
        stmt = _insert(self.engine, tables.current)
        updates = {col.name: stmt.excluded[col.name] for col in tables.current.columns}
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=list(keys),
                set_=updates,
                # Only move forward: a replayed older change never overwrites a newer one.
                where=tables.current.c._version < stmt.excluded._version,
            ),
            rows,
        )

    def counts(self) -> dict[str, Mapping[str, int]]:
        """Rows per resource: live (not deleted), deleted, and history."""
        out = {}
        with self.engine.connect() as conn:
            for rid, t in self.resources.items():
                live = conn.scalar(select(func.count()).where(t.current.c._deleted.is_(False)))
                dead = conn.scalar(select(func.count()).where(t.current.c._deleted.is_(True)))
                history = conn.scalar(select(func.count()).select_from(t.history))
                out[rid] = {"live": live or 0, "deleted": dead or 0, "history": history or 0}
        return out

    def stored_event_ids(self, resource: str, event_ids: Iterable[str]) -> set[str]:
        history = self.resources[resource].history
        ids, found = list(event_ids), set()
        with self.engine.connect() as conn:
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                found.update(
                    conn.scalars(select(history.c.event_id).where(history.c.event_id.in_(chunk)))
                )
        return found
