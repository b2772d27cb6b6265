"""The demo providers' source tables against the central store, row by row, per resource.

Reads both sides (the I/O around ``row_compare.compare_rows``) and renders the summary table.
A source row the bus must refuse (it fails its resource's checks, like the demo's bad ID
numbers) is dead-lettered at ingest, never stored: it is counted apart, not compared.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import psycopg
from fastavro import parse_schema
from rich.table import Table
from sqlalchemy import inspect, select

from services.common.catalog import CatalogEntry
from services.common.catalog_feed import CatalogRecord
from services.common.dead_letter import mask_value
from services.common.sql import build_engine
from services.common.store_tables import resource_tables
from services.ingest.adapters.provider_tables import qualified
from services.ingest.sql_feed import pg_url
from services.ingest.validation import record_problem
from services.row_compare import Key, RowComparison, compare_rows

SHOWN_KEYS = 3


@dataclass(frozen=True)
class ResourceRows:
    comparison: RowComparison
    refused: int  # source rows that fail the resource's checks (dead-lettered, not stored)


def _fields(record: CatalogRecord) -> list[str]:
    return [f["name"] for f in record.value_schema["fields"]]


def _key(record: CatalogRecord, row: dict[str, Any]) -> Key:
    return tuple(row[k] for k in record.resource.key_fields)


def source_rows(conn: psycopg.Connection, table: str, record: CatalogRecord) -> list[dict]:
    """The source table's rows with the resource's fields (its columns carry their names)."""
    fields = _fields(record)
    columns = ", ".join(f'"{f}"' for f in fields)
    with conn.cursor() as cur:
        cur.execute(f"SELECT {columns} FROM {qualified(table)}")  # noqa: S608 - catalog names
        return [dict(zip(fields, r, strict=True)) for r in cur.fetchall()]


def store_rows(store_url: str, record: CatalogRecord) -> dict[Key, dict[str, Any]]:
    """The resource's live rows in the central store (deleted keys left out), by key."""
    tables = resource_tables(record)
    engine = build_engine(store_url)
    try:
        if not inspect(engine).has_table(tables.current.name):
            return {}  # the sink has stored nothing of it yet
        current = tables.current
        query = select(*[current.c[f] for f in _fields(record)]).where(
            current.c["_deleted"].is_(False)
        )
        with engine.connect() as conn:
            return {_key(record, dict(r)): dict(r) for r in conn.execute(query).mappings()}
    finally:
        engine.dispose()


def compare_resource(
    source: Iterable[dict[str, Any]], stored: dict[Key, dict[str, Any]], record: CatalogRecord
) -> ResourceRows:
    parsed = parse_schema(record.value_schema)
    taken, refused = {}, 0
    for row in source:
        if record_problem(record.resource, parsed, row) is None:
            taken[_key(record, row)] = row
        else:
            refused += 1
    return ResourceRows(compare_rows(taken, stored), refused)


def compare_tables(
    provider_url: str, store_url: str, tables: dict[str, CatalogRecord]
) -> dict[str, ResourceRows]:
    """Per resource, its source table (``tables``: table name -> catalog record) and the store."""
    out = {}
    with psycopg.connect(pg_url(provider_url)) as conn:
        for table, record in sorted(tables.items()):
            rows = source_rows(conn, table, record)
            out[record.resource_id] = compare_resource(rows, store_rows(store_url, record), record)
    return out


def shown(entry: CatalogEntry, keys: list[Key], n: int = SHOWN_KEYS) -> str:
    """A few keys as a dead letter shows values: an ID number masked, never in clear."""
    names = entry.key_fields
    parts = [
        "/".join(str(mask_value(entry, f, v)) for f, v in zip(names, k, strict=True))
        for k in keys[:n]
    ]
    return ", ".join(parts) + (f" (+{len(keys) - n})" if len(keys) > n else "")


def rows_table(results: dict[str, ResourceRows], entries: dict[str, CatalogEntry]) -> Table:
    t = Table(title="source tables against the central store, row by row")
    heads = ("resource", "in source", "refused", "in store", "equal", "missing", "extra", "differ")
    for col in heads:
        t.add_column(col, justify="left" if col == "resource" else "right")
    for resource, r in sorted(results.items()):
        c, entry = r.comparison, entries[resource]
        t.add_row(
            resource,
            str(c.source + r.refused),
            str(r.refused),
            str(c.store),
            str(c.equal),
            _cell(entry, c.missing),
            _cell(entry, c.extra),
            _cell(entry, c.different),
        )
    return t


def _cell(entry: CatalogEntry, keys: list[Key]) -> str:
    return f"{len(keys)}: {shown(entry, keys)}" if keys else "0"


def problems(results: dict[str, ResourceRows]) -> list[str]:
    return [
        f"{resource}: store differs from the source ({len(r.comparison.missing)} missing, "
        f"{len(r.comparison.extra)} extra, {len(r.comparison.different)} different)"
        for resource, r in sorted(results.items())
        if not r.comparison.same
    ]
