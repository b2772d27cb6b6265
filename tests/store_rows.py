"""Rows written straight into the central store's tables, as the sink would write them.

Tests of what reads the store (the backfill) set up exact store contents with this: every
change goes to the history, the current row moves forward in version only, and the applied
offsets are set apart, so a test can hold the store behind a seam.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, MetaData, delete, insert, select

from services.common.catalog_feed import CatalogRecord
from services.common.store_tables import (
    ResourceTables,
    positions_table,
    resource_tables,
    source_version,
)


@dataclass(frozen=True)
class Written:
    event_id: str
    op: str
    row: dict[str, Any]
    partition: int
    offset: int


def create(engine: Engine, record: CatalogRecord) -> ResourceTables:
    metadata = MetaData()
    tables = resource_tables(record, metadata)
    positions_table(metadata)
    metadata.create_all(engine)
    return tables


def store_change(
    engine: Engine,
    tables: ResourceTables,
    op: str,
    row: dict[str, Any],
    partition: int,
    offset: int,
    position: str | None = None,
    ts_ms: int = 1_764_000_000_000,
    event_id: str | None = None,
) -> Written:
    """One change: into the history, and into the current row when its version is newer."""
    entry = tables.entry
    event_id = event_id or str(uuid.uuid4())
    version = source_version(position or f"lsn:{offset}")
    key = {k: row[k] for k in entry.key_fields}
    with engine.begin() as conn:
        conn.execute(
            insert(tables.history).values(
                event_id=event_id,
                record_key=json.dumps(key, ensure_ascii=False, sort_keys=True),
                op=op,
                before=row if op == "d" else None,
                after=None if op == "d" else row,
                ts_ms=ts_ms,
                source_ts_ms=None,
                version=version,
                topic=entry.topic,
                partition=partition,
                offset=offset,
            )
        )
        where = [tables.current.c[k] == v for k, v in key.items()]
        held = conn.scalar(select(tables.current.c._version).where(*where))
        if held is None or held < version:
            conn.execute(delete(tables.current).where(*where))
            conn.execute(
                insert(tables.current).values(
                    **row,
                    _op=op,
                    _deleted=op == "d",
                    _version=version,
                    _event_id=event_id,
                    _ts_ms=ts_ms,
                    _source_ts_ms=None,
                    _topic=entry.topic,
                    _partition=partition,
                    _offset=offset,
                )
            )
    return Written(event_id, op, row, partition, offset)


def set_applied(engine: Engine, topic: str, offsets: dict[int, int]) -> None:
    """The store's applied offsets, as the sink commits them with a batch."""
    table = positions_table()
    with engine.begin() as conn:
        for partition, next_offset in offsets.items():
            conn.execute(
                delete(table).where(table.c.topic == topic, table.c.partition == partition)
            )
            conn.execute(
                insert(table).values(topic=topic, partition=partition, next_offset=next_offset)
            )
