"""The demo feed as a provider database: its changes written as SQL into source tables.

Each demo resource ``<provider>.<code>`` gets the table ``<provider>.<code>`` in the provider
database (columns as the resource's fields); a Debezium adapter per table (deploy/adapters/)
carries the changes onto the bus. Bad rows (the demo's invalid ID numbers) are written too,
as a provider's system would: the bridge dead-letters them.
"""

from __future__ import annotations

import argparse
import logging
import signal
import time
from collections.abc import Callable, Iterable

import psycopg

from services.common import catalog_feed
from services.common.catalog_feed import CatalogRecord
from services.common.feed import read_feed
from services.common.settings import Settings
from services.common.topics import CATALOG
from services.ingest.adapters.provider_tables import change_sql, table_ddl
from services.ingest.demo_data import Change, DemoFeed
from services.ingest.demo_utilities import DEMO_RESOURCES as RESOURCES
from services.ingest.demo_utilities import MixedFeed, live_feed

log = logging.getLogger("govbus.ingest")


def source_table(resource_id: str) -> str:
    return resource_id  # <provider>.<code>: schema <provider>, table <code>


def create_tables(conn: psycopg.Connection, records: Iterable[CatalogRecord]) -> None:
    for record in records:
        for statement in table_ddl(
            source_table(record.resource_id), record.value_schema, record.resource.key_fields
        ):
            conn.execute(statement)


def write_change(
    conn: psycopg.Connection, records: dict[str, CatalogRecord], change: Change
) -> int | None:
    """One change as its own transaction; its transaction id as Debezium's records carry it
    (``source.txId``: the 32-bit xid, without the epoch), None when it changed no row."""
    keys = records[change.resource].resource.key_fields
    sql, params = change_sql(
        source_table(change.resource), change.op, change.before, change.after, keys
    )
    row = conn.execute(f"{sql} RETURNING pg_current_xact_id()::text", params).fetchone()
    return None if row is None else int(row[0]) % 2**32


def write_feed(
    conn: psycopg.Connection,
    records: dict[str, CatalogRecord],
    feed: DemoFeed | MixedFeed,
    events: int | None,
    rate: float | None,
    should_stop: Callable[[], bool] = lambda: False,
) -> int:
    """Write ``events`` changes (None: forever) at ``rate`` per second, one transaction each."""
    started, sent = time.monotonic(), 0
    while (events is None or sent < events) and not should_stop():
        write_change(conn, records, feed.next_change())
        sent += 1
        if rate:
            ahead = sent / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
    return sent


def demo_records(settings: Settings, timeout_s: float = 60.0) -> dict[str, CatalogRecord]:
    """The demo resources' catalog records, once the control plane has published them."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = read_feed(settings, CATALOG, catalog_feed.decode).values()
        records = {r.resource_id: r for r in found if isinstance(r, CatalogRecord)}
        if all(r in records for r in RESOURCES):
            return records
        if time.monotonic() > deadline:
            missing = [r for r in RESOURCES if r not in records]
            raise RuntimeError(f"not in govbus.catalog after {timeout_s}s: {missing}")
        time.sleep(0.5)


def pg_url(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL as libpq takes it."""
    return url.replace("postgresql+psycopg://", "postgresql://")


def create_demo_tables(settings: Settings) -> None:
    """The demo resources' tables in the provider database (``provider_db_url``)."""
    records = demo_records(settings)
    with psycopg.connect(pg_url(settings.provider_db_url), autocommit=True) as conn:
        create_tables(conn, [records[r] for r in RESOURCES])


def main(args: argparse.Namespace, settings: Settings) -> None:
    """``govbus feed --sql URL``: the demo providers' tables, then their changes, as SQL."""
    stopping: list[int] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
    records = demo_records(settings)
    seed = args.seed if args.seed is not None else int(time.time())
    feed = live_feed(seed, args.invalid_rate)
    with psycopg.connect(pg_url(args.sql), autocommit=True) as conn:
        create_tables(conn, [records[r] for r in RESOURCES])
        log.info("demo feed writing SQL into %s: seed %d, %s/s", args.sql, seed, args.rate)
        stop = lambda: bool(stopping)  # noqa: E731
        sent = write_feed(conn, records, feed, args.events, args.rate or None, stop)
    log.info("demo feed done: %d changes written", sent)
