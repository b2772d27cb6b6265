"""The central store (归集库): current state per resource plus the full change history.

Tables are derived from each resource's catalog record (services/common/store_tables.py) and
follow its schema versions. Writes are idempotent: a change is known by its event id, and a
row only moves forward in version — the *source* position, never the Kafka offset — so
re-reading a topic, even one recreated with offsets from 0, changes nothing.

Each batch is one transaction: history, current state and the applied offsets of the source
partitions (``govbus_sink_positions``) together. Rows go many per statement.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, func, select
from sqlalchemy.engine import Connection, Engine

from services.common import catalog_feed
from services.common.catalog_feed import CatalogRecord
from services.common.feed import read_feed
from services.common.settings import Settings
from services.common.sql import build_engine
from services.common.store_tables import (
    META_COLUMNS,
    ResourceTables,
    applied_offsets,
    positions_table,
    resource_tables,
)
from services.common.topics import CATALOG
from services.sink.bulk import forget_stages_on_rollback, insert_rows
from services.sink.store_schema import migrate

HISTORY_COLUMNS = (
    "event_id",
    "record_key",
    "op",
    "before",
    "after",
    "ts_ms",
    "source_ts_ms",
    "version",
    "topic",
    "partition",
    "offset",
)


def _json(value: dict[str, Any]) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


@dataclass(frozen=True)
class StoredChange:
    resource: str
    event_id: str
    op: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    ts_ms: int
    source_ts_ms: int | None
    version: str  # store_tables.source_version of the source position
    topic: str
    partition: int
    offset: int

    @property
    def row(self) -> dict[str, Any]:
        return self.after if self.after is not None else self.before  # type: ignore[return-value]


def _insert(engine: Engine, table: Table):
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table)


def value_fields(tables: ResourceTables) -> list[str]:
    """Value columns of the current table, those of removed fields too (see store_schema):
    a row written now has them NULL."""
    return [c.name for c in tables.current.columns if c.name not in META_COLUMNS]


def history_row(key_fields: Sequence[str], c: StoredChange) -> tuple[Any, ...]:
    """A change as a row of HISTORY_COLUMNS."""
    return (
        c.event_id,
        _json({k: c.row[k] for k in key_fields}),
        c.op,
        None if c.before is None else _json(c.before),
        None if c.after is None else _json(c.after),
        c.ts_ms,
        c.source_ts_ms,
        c.version,
        c.topic,
        c.partition,
        c.offset,
    )


def current_row(fields: Sequence[str], c: StoredChange) -> tuple[Any, ...]:
    """A change as a row of the current table: ``fields`` then META_COLUMNS."""
    row = c.row
    return (
        *[row.get(f) for f in fields],
        c.op,
        c.op == "d",
        c.version,
        c.event_id,
        c.ts_ms,
        c.source_ts_ms,
        c.topic,
        c.partition,
        c.offset,
    )


class CentralStore:
    def __init__(self, url: str, records: Iterable[CatalogRecord] = ()) -> None:
        self.engine = build_engine(url)
        forget_stages_on_rollback(self.engine)
        self.resources: dict[str, ResourceTables] = {}
        self._positions = positions_table()
        self._positions.metadata.create_all(self.engine)
        for record in records:
            self.ensure(record)

    @classmethod
    def from_catalog_feed(cls, settings: Settings) -> CentralStore:
        """The store of ``settings`` with the tables of every resource on ``govbus.catalog``."""
        feed = read_feed(settings, CATALOG, catalog_feed.decode)
        records = [r for r in feed.values() if isinstance(r, CatalogRecord)]
        return cls(settings.central_store_url, records)

    def ensure(self, record: CatalogRecord) -> ResourceTables:
        """Create or alter the resource's tables to its record's schema (idempotent)."""
        tables = resource_tables(record)
        migrate(self.engine, tables)
        self.resources[record.resource_id] = tables
        return tables

    def apply(
        self, changes: Sequence[StoredChange], positions: Mapping[tuple[str, int], int] = {}
    ) -> dict[str, int]:
        """Write a batch and the partitions' next offsets in one transaction.

        Returns the changes new to the store per resource (a replayed change is not new).
        """
        by_resource: dict[str, list[StoredChange]] = {}
        for change in changes:
            by_resource.setdefault(change.resource, []).append(change)
        written = {}
        with self.engine.begin() as conn:
            for resource, batch in by_resource.items():
                tables = self.resources[resource]
                written[resource] = self._insert_history(conn, tables, batch)
                self._upsert_current(conn, tables, batch)
            self._store_positions(conn, positions)
        return written

    def _insert_history(self, conn: Connection, tables: ResourceTables, batch) -> int:
        keys = tables.entry.key_fields
        rows = [history_row(keys, c) for c in batch]
        return insert_rows(conn, tables.history, HISTORY_COLUMNS, rows, ["event_id"])

    def _upsert_current(self, conn: Connection, tables: ResourceTables, batch) -> None:
        keys = tables.entry.key_fields
        latest: dict[tuple, StoredChange] = {}
        for change in batch:
            key = tuple(change.row[k] for k in keys)
            held = latest.get(key)
            if held is None or held.version <= change.version:
                latest[key] = change
        fields = value_fields(tables)
        rows = [current_row(fields, c) for c in latest.values()]
        # Only move forward: a replayed older change never overwrites a newer one.
        columns = [*fields, *META_COLUMNS]
        insert_rows(conn, tables.current, columns, rows, keys, forward_only_by="_version")

    def _store_positions(self, conn: Connection, positions: Mapping[tuple[str, int], int]) -> None:
        if not positions:
            return
        rows = [{"topic": t, "partition": p, "next_offset": o} for (t, p), o in positions.items()]
        stmt = _insert(self.engine, self._positions).values(rows)
        # Set, not max: a recreated topic starts again from offset 0.
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["topic", "partition"],
                set_={"next_offset": stmt.excluded.next_offset},
            )
        )

    def applied_offsets(self, topic: str) -> dict[int, int]:
        with self.engine.connect() as conn:
            return applied_offsets(conn, topic)

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

    def close(self) -> None:
        self.engine.dispose()
