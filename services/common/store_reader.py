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
from collections.abc import Iterable, Iterator, Mapping, Sequence
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

    key_fields: tuple[str, ...]
    after: dict[str, Any]
    event_id: str
    ts_ms: int
    topic: str
    partition: int
    offset: int

    @property
    def record_key(self) -> str:
        return record_key(self.key_fields, self.after)

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


Defaults = list[tuple[str, Any, bool]]  # (field, its default, whether it may be null)


def defaults_of(fields: list[dict[str, Any]]) -> Defaults:
    """The fields of a value schema that have a default."""
    return [(f["name"], f["default"], _nullable(f["type"])) for f in fields if "default" in f]


def resolve(defaults: Defaults, values: dict[str, Any]) -> dict[str, Any]:
    """A record of the resource's current schema from stored values (changed in place): a field
    the stored change predates takes its schema default, as Avro schema resolution gives it.

    A field missing from a stored change predates it; so does a null in a field that cannot be
    null (the column the sink added for a later schema version is NULL in older rows).
    """
    for name, default, nullable in defaults:
        if name not in values or (values[name] is None and not nullable):
            values[name] = default
    return values


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
        found = inspect(engine)
        # No table yet: the sink has stored nothing of the resource, so there is no state.
        self._exists = found.has_table(tables.current.name)
        stored = (
            {c["name"] for c in found.get_columns(tables.current.name)}
            if self._exists
            else set(tables.value_columns)
        )
        self._value_columns = [n for n in tables.value_columns if n in stored]
        names = self._value_columns + list(META_COLUMNS)
        self._columns = [self._current.c[n] for n in names]
        # Rows come as tuples in that order (mappings cost more than the rest of the read).
        at = {name: i for i, name in enumerate(names)}
        self._key_at = [at[k] for k in record.resource.key_fields]
        self._meta_at = [at[m] for m in ("_deleted", "_event_id", "_ts_ms", "_topic")]
        self._position_at = (at["_partition"], at["_offset"])
        self._engine = engine
        self._keys = record.resource.key_fields
        self._seam = partition_seam(seam, record.topic)
        self._defaults = defaults_of(record.value_schema["fields"])
        self._page_rows = page_rows
        self.last_key: list[Any] | None = None

    def _below(self, partition: ColumnElement, offset: ColumnElement) -> ColumnElement[bool]:
        terms = [and_(partition == p, offset < s) for p, s in self._seam.items() if s > 0]
        return or_(*terms) if terms else false()

    def pages(self, after: Sequence[Any] | None = None) -> Iterator[list[StateRow]]:
        """Pages of state rows in key order, from after the key ``after`` (its key field values)
        if given; a page may be short (deletes are left out). ``last_key`` is the key a page
        read up to, once it is yielded."""
        if not self._exists:
            return
        c = self._current.c
        keys = [c[k] for k in self._keys]
        below = self._below(c._partition, c._offset)
        # A tombstone below the seam is a deleted key; one past it may hide an older live row.
        # A key stays on its partition: only the seam's partitions hold its state.
        wanted = and_(c._partition.in_(sorted(self._seam)), or_(not_(c._deleted), not_(below)))
        last: tuple | None = tuple(after) if after is not None else None
        while True:
            query = select(*self._columns).where(wanted).order_by(*keys).limit(self._page_rows)
            if last is not None:
                after = keys[0] > last[0] if len(keys) == 1 else tuple_(*keys) > tuple_(*last)
                query = query.where(after)
            with self._engine.connect() as conn:
                rows = conn.execute(query).all()
                if not rows:
                    return
                last = tuple(rows[-1][i] for i in self._key_at)
                self.last_key = list(last)
                yield self._page(conn, rows)
            if len(rows) < self._page_rows:
                return

    def _page(self, conn, rows: list[tuple]) -> list[StateRow]:
        out: list[StateRow | None] = []
        changed: dict[str, int] = {}  # keys whose current row is at or past the seam -> place
        p_at, o_at = self._position_at
        deleted_at, event_at, ts_at, topic_at = self._meta_at
        for row in rows:
            partition, offset = row[p_at], row[o_at]
            if not is_below(self._seam, partition, offset):
                key_values = {k: row[i] for k, i in zip(self._keys, self._key_at, strict=True)}
                key = record_key(self._keys, key_values)
                changed[key] = len(out)
                out.append(None)
            elif not row[deleted_at]:
                # The row goes on past the value columns with the store's own columns.
                values = dict(zip(self._value_columns, row, strict=False))
                values = resolve(self._defaults, values)
                out.append(
                    StateRow(
                        self._keys,
                        values,
                        row[event_at],
                        row[ts_at],
                        row[topic_at],
                        partition,
                        offset,
                    )
                )
        for key, found in self._history_below(conn, list(changed)).items():
            if found["op"] != "d" and found["after"] is not None:
                out[changed[key]] = StateRow(
                    self._keys,
                    resolve(self._defaults, dict(_json(found["after"]))),
                    found["event_id"],
                    found["ts_ms"],
                    found["topic"],
                    found["partition"],
                    found["offset"],
                )
        return [r for r in out if r is not None]

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
