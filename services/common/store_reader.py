"""Read a resource's state below a seam from the central store, page by page.

The sink keeps, per resource, a current table (one row per record key, deletes as tombstones,
with the Kafka position of the change it holds), a history table (every change), and per
source partition the next offset it has stored, written in the same transaction as each batch
(layout: ``store_tables``). Unlike a source topic, the store has no retention: a row unchanged
for a year is still there.

The state below a seam (per source partition, the first offset that is routed live): for each
key, the latest change whose offset is below the seam of its partition, deletes left out. The
current row answers for almost every key. A key that changed since the seam (its current row at
or past it) takes its latest history row below the seam instead, so the state is exact while the
sink keeps writing. Pages follow the key columns (keyset pagination), so memory stays bounded
whatever the size of the resource. SQLAlchemy Core only: SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    and_,
    false,
    inspect,
    not_,
    or_,
    select,
    tuple_,
)

from services.common.catalog_feed import CatalogRecord
from services.common.store_tables import (
    META_COLUMNS,
    POSITIONS,
    applied_offsets,
    resource_tables,
)

PAGE_ROWS = 2000
Seam = Mapping[tuple[str, int], int]  # (topic, partition) -> first offset routed live


@dataclass(frozen=True)
class StateRow:
    """One key's latest change below the seam, as the store holds it."""

    record_key: str  # JSON of the key fields, as the history table names it
    after: dict[str, Any]
    event_id: str
    ts_ms: int
    topic: str
    partition: int
    offset: int

    def change(self) -> dict[str, Any]:
        """The change event this row stands for (what ``snapshot_event`` reads)."""
        return {
            "before": None,
            "after": self.after,
            "op": "r",
            "ts_ms": self.ts_ms,
            "event_id": self.event_id,
        }


def record_key(key_fields: Iterable[str], row: Mapping[str, Any]) -> str:
    """The key as the history table's ``record_key`` holds it (the sink writes it this way)."""
    return json.dumps({k: row[k] for k in key_fields}, ensure_ascii=False, sort_keys=True)


def partition_seam(seam: Seam, topic: str) -> dict[int, int]:
    return {p: offset for (t, p), offset in seam.items() if t == topic}


def is_below(seam_of: Mapping[int, int], partition: int, offset: int) -> bool:
    """Whether a change was routed before the grant. A partition the seam does not name came
    after it (every record on it is routed live), so nothing on it is below."""
    return offset < seam_of.get(partition, 0)


def behind(positions: Mapping[int, int], seam_of: Mapping[int, int]) -> dict[int, tuple[int, int]]:
    """Partitions the store has not yet stored up to the seam: partition -> (stored, seam)."""
    return {
        p: (positions.get(p, 0), s) for p, s in sorted(seam_of.items()) if positions.get(p, 0) < s
    }


def resolve(fields: list[dict[str, Any]] | None, values: Mapping[str, Any]) -> dict[str, Any]:
    """A record of the resource's current schema from stored values: a field the stored change
    predates takes its schema default, as Avro schema resolution would give it."""
    if fields is None:
        return dict(values)
    out = {}
    for field in fields:
        name = field["name"]
        value = values.get(name)
        # A column added for a later schema is NULL in older rows; a null in a field that cannot
        # be null, or a field missing from a stored change, means the change predates the field.
        predates = name not in values or (value is None and not _nullable(field["type"]))
        out[name] = field.get("default") if predates and "default" in field else value
    return out


def _nullable(avro_type: Any) -> bool:
    return avro_type == "null" or (isinstance(avro_type, list) and "null" in avro_type)


def latest_below(
    history: Iterable[Mapping[str, Any]], seam_of: Mapping[int, int]
) -> Mapping[str, Any] | None:
    """The latest change below the seam among one key's history rows (by version, the store's
    order; then offset), or None when there is none."""
    below = [h for h in history if is_below(seam_of, h["partition"], h["offset"])]
    if not below:
        return None
    return max(below, key=lambda h: (h["version"], h["offset"]))


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def store_positions(engine: Engine, topic: str) -> dict[int, int]:
    """Per partition of ``topic``, the next offset the sink has stored (none yet: empty)."""
    if not inspect(engine).has_table(POSITIONS):
        return {}
    with engine.connect() as conn:
        return applied_offsets(conn, topic)


class StoreState:
    """The state of one resource below a seam, read in pages of ``page_rows`` keys."""

    def __init__(
        self, engine: Engine, record: CatalogRecord, seam: Seam, page_rows: int = PAGE_ROWS
    ) -> None:
        tables = resource_tables(record)
        self._current, self._history = tables.current, tables.history
        # The sink adds a new schema version's columns while running: read only the columns
        # it has made so far (a missing one takes the field's default, as a stored change that
        # predates the field would).
        stored = {c["name"] for c in inspect(engine).get_columns(tables.current.name)}
        self._value_columns = [n for n in tables.value_columns if n in stored]
        self._columns = [self._current.c[n] for n in self._value_columns + list(META_COLUMNS)]
        self._engine = engine
        self._keys = record.resource.key_fields
        self._seam = partition_seam(seam, record.topic)
        self._fields = record.value_schema["fields"]
        self._page_rows = page_rows

    def _below(self, partition: ColumnElement, offset: ColumnElement) -> ColumnElement[bool]:
        terms = [and_(partition == p, offset < s) for p, s in self._seam.items() if s > 0]
        return or_(*terms) if terms else false()

    def pages(self) -> Iterator[list[StateRow]]:
        """Pages of state rows in key order; a page may be short (deletes are left out)."""
        c = self._current.c
        keys = [c[k] for k in self._keys]
        below = self._below(c._partition, c._offset)
        # A tombstone below the seam is a deleted key; one past it may hide an older live row.
        wanted = or_(not_(c._deleted), not_(below))
        last: tuple | None = None
        while True:
            query = select(*self._columns).where(wanted).order_by(*keys).limit(self._page_rows)
            if last is not None:
                after = keys[0] > last[0] if len(keys) == 1 else tuple_(*keys) > tuple_(*last)
                query = query.where(after)
            with self._engine.connect() as conn:
                rows = conn.execute(query).mappings().all()
                if not rows:
                    return
                last = tuple(rows[-1][k] for k in self._keys)
                yield self._page(conn, rows)
            if len(rows) < self._page_rows:
                return

    def _page(self, conn, rows: list[Mapping[str, Any]]) -> list[StateRow]:
        out: dict[str, StateRow] = {}
        order, changed = [], []  # changed: keys whose current row is at or past the seam
        for row in rows:
            key = record_key(self._keys, row)
            order.append(key)
            if not is_below(self._seam, row["_partition"], row["_offset"]):
                changed.append(key)
            elif not row["_deleted"]:
                values = {name: row[name] for name in self._value_columns}
                out[key] = StateRow(
                    key,
                    resolve(self._fields, values),
                    row["_event_id"],
                    row["_ts_ms"],
                    row["_topic"],
                    row["_partition"],
                    row["_offset"],
                )
        for key, found in self._history_below(conn, changed).items():
            if found["op"] != "d" and found["after"] is not None:
                out[key] = StateRow(
                    key,
                    resolve(self._fields, _json(found["after"])),
                    found["event_id"],
                    found["ts_ms"],
                    found["topic"],
                    found["partition"],
                    found["offset"],
                )
        return [out[k] for k in order if k in out]

    def _history_below(self, conn, keys: list[str]) -> dict[str, Mapping[str, Any]]:
        if not keys:
            return {}
        h = self._history.c
        query = select(self._history).where(
            h.record_key.in_(keys), self._below(h.partition, h.offset)
        )
        by_key: dict[str, list[Mapping[str, Any]]] = {}
        for row in conn.execute(query).mappings():
            by_key.setdefault(row["record_key"], []).append(row)
        found = {k: latest_below(rows, self._seam) for k, rows in by_key.items()}
        return {k: v for k, v in found.items() if v is not None}
