"""The central store's upsert path against a raw COPY, side by side on one PostgreSQL.

    make bench-store        # or: python benchmarks/store_upsert.py --url postgresql+psycopg://...

Makes N realistic changes of the three demo resources once (DemoFeed), then loads them into a
fresh database two ways, in batches of the sink's size, one transaction per batch:
  upsert  CentralStore.apply: history (every change, JSON before/after) and current state
          (upsert by key, forward-only by source version) and the applied offsets
  copy    COPY of the same rows (each change's history row and current-state row, made by
          the store's own functions) into tables of the same columns with no index
Prints rows/s of both and their ratio; merges store_upsert_rows_per_s, store_copy_rows_per_s
and store_ratio into benchmarks/results/latest.json (the other keys stay).
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
import uuid
import zlib
from collections.abc import Iterator

import psycopg
from results_file import RESULTS, merge_results
from sqlalchemy import create_engine, make_url, text

from services.common.catalog_feed import CatalogRecord
from services.common.config_files import load_catalog
from services.common.schemas import value_schema
from services.common.settings import REPO_ROOT
from services.common.store_tables import META_COLUMNS, source_version
from services.ingest.demo_data import DemoFeed
from services.sink.central_store import (
    HISTORY_COLUMNS,
    CentralStore,
    StoredChange,
    current_row,
    history_row,
    value_fields,
)

PARTITIONS = 3


def demo_records() -> dict[str, CatalogRecord]:
    schemas = REPO_ROOT / "schemas" / "avro"
    catalog = load_catalog(REPO_ROOT / "deploy" / "catalog", schemas)
    return {
        rid: CatalogRecord(resource=e, value_schema=value_schema(e, schemas), schema_version=1)
        for rid, e in catalog.items()
    }


def demo_changes(records: dict[str, CatalogRecord], n: int) -> list[StoredChange]:
    """N changes as the sink would store them: positions from the feed, Kafka offsets made up."""
    offsets: dict[tuple[str, int], int] = {}
    now = int(time.time() * 1000)
    out = []
    for c in DemoFeed(seed=1).changes(n):
        entry = records[c.resource].resource
        row = c.after or c.before
        key = "|".join(str(row[k]) for k in entry.key_fields)
        tp = (entry.topic, zlib.crc32(key.encode()) % PARTITIONS)
        offset = offsets[tp] = offsets.get(tp, -1) + 1
        out.append(
            StoredChange(
                c.resource, str(uuid.uuid4()), c.op, c.before, c.after, now,
                row["updated_at"], source_version(c.position), tp[0], tp[1], offset,
            )
        )  # fmt: skip
    return out


def batches(changes: list[StoredChange], size: int) -> Iterator[list[StoredChange]]:
    for i in range(0, len(changes), size):
        yield changes[i : i + size]


def run_upsert(store: CentralStore, changes: list[StoredChange], size: int) -> float:
    started = time.perf_counter()
    for batch in batches(changes, size):
        positions = {(c.topic, c.partition): c.offset + 1 for c in batch}
        store.apply(batch, positions)
    took = time.perf_counter() - started
    assert sum(c["history"] for c in store.counts().values()) == len(changes)
    return len(changes) / took


def run_copy(store: CentralStore, changes: list[StoredChange], size: int) -> float:
    """The same rows the store writes (a history row and a current-state row per change),
    made by the same functions, COPY'd into tables of the same columns with no index."""
    url = store.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url) as conn:
        plan = {}
        for rid, tables in store.resources.items():
            fields = value_fields(tables)
            plan[rid] = (tables.entry.key_fields, fields)
            for table, cols in (
                (tables.history.name, HISTORY_COLUMNS),
                (tables.current.name, [*fields, *META_COLUMNS]),
            ):
                names = ", ".join(f'"{c}"' for c in cols)
                conn.execute(
                    f'CREATE TABLE "copy_{table}" AS SELECT {names} FROM "{table}" WITH NO DATA'
                )
        conn.commit()
        started = time.perf_counter()
        for batch in batches(changes, size):
            by_resource: dict[str, list[StoredChange]] = {}
            for c in batch:
                by_resource.setdefault(c.resource, []).append(c)
            with conn.cursor() as cur:
                for rid, group in by_resource.items():
                    keys, fields = plan[rid]
                    tables = store.resources[rid]
                    with cur.copy(f'COPY "copy_{tables.history.name}" FROM STDIN') as copy:
                        for c in group:
                            copy.write_row(history_row(keys, c))
                    with cur.copy(f'COPY "copy_{tables.current.name}" FROM STDIN') as copy:
                        for c in group:
                            copy.write_row(current_row(fields, c))
            conn.commit()
        took = time.perf_counter() - started
    return len(changes) / took


def fresh_database(server_url: str) -> tuple[str, callable]:
    name = f"bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return make_url(server_url).set(database=name).render_as_string(hide_password=False), drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="PostgreSQL server URL (pg.sh url)")
    parser.add_argument("--changes", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000, help="changes per transaction")
    args = parser.parse_args()
    records = demo_records()
    print(f"making {args.changes} demo changes ...", flush=True)
    changes = demo_changes(records, args.changes)
    url, drop = fresh_database(args.url)
    try:
        store = CentralStore(url, records.values())
        print("copy (unindexed tables) ...", flush=True)
        copied = run_copy(store, changes, args.batch)
        print("upsert (central store) ...", flush=True)
        upserted = run_upsert(store, changes, args.batch)
        store.close()
    finally:
        drop()
    ratio = upserted / copied
    merge_results(
        {
            "store_changes": args.changes,
            "store_upsert_rows_per_s": round(upserted),
            "store_copy_rows_per_s": round(copied),
            "store_ratio": round(ratio, 3),
            "store_measured_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        },
    )
    print(f"\ncopy into unindexed tables      {copied:>10,.0f} rows/s")
    print(f"central store upsert            {upserted:>10,.0f} rows/s")
    print(f"ratio upsert / copy             {ratio:>10.3f}")
    print(f"written to {RESULTS.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
