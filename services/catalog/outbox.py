"""The control store's transactional outbox: what must reach the bus, written with the change.

A change of a resource or grant writes its record here in the same transaction as the change
itself, so the store and what is owed to Kafka never disagree: if the transaction rolls back,
no record is owed; if it commits, the relay (outbox_relay.py) publishes the record later,
whether or not Kafka is up right now. ``seq`` orders the records as they were committed (the
store's lock serialises transactions), and the relay publishes in that order.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import (
    Column,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    func,
    select,
)
from sqlalchemy.engine import Connection, Engine

from services.common import catalog_feed, grant_feed
from services.common.catalog_feed import CatalogRecord
from services.common.grant_feed import GrantRecord
from services.common.topics import CATALOG, GRANTS

outbox_metadata = MetaData()
outbox = Table(
    "outbox",
    outbox_metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("topic", String, nullable=False),
    Column("key", String, nullable=False),
    Column("value", LargeBinary, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # A seq is never reused after its row is deleted, so "published up to seq N" stays true.
    sqlite_autoincrement=True,
)


@dataclass(frozen=True)
class OutboxRow:
    seq: int
    topic: str
    key: str
    value: bytes


class RecordTooLarge(ValueError):
    """A record larger than Kafka takes: it would block the outbox, so the change is refused."""


def enqueue(
    conn: Connection, topic: str, key: str, value: bytes, now: dt.datetime, max_bytes: int
) -> int:
    """Owe one record to the bus, in the caller's transaction; returns its seq."""
    if len(value) + len(key) > max_bytes:
        raise RecordTooLarge(
            f"the {topic} record of {key} would be {len(value)} bytes; Kafka takes {max_bytes}"
        )
    inserted = conn.execute(
        outbox.insert().values(topic=topic, key=key, value=value, created_at=now)
    )
    return int(inserted.inserted_primary_key[0])


def enqueue_resource(
    conn: Connection, record: CatalogRecord, now: dt.datetime, max_bytes: int
) -> int:
    return enqueue(conn, CATALOG, record.resource_id, catalog_feed.encode(record), now, max_bytes)


def enqueue_grant(conn: Connection, record: GrantRecord, now: dt.datetime, max_bytes: int) -> int:
    return enqueue(conn, GRANTS, record.grant.id, grant_feed.encode(record), now, max_bytes)


def pending(engine: Engine, after_seq: int, limit: int) -> list[OutboxRow]:
    """The oldest records not yet published (seq above ``after_seq``), in seq order."""
    query = select(outbox).where(outbox.c.seq > after_seq).order_by(outbox.c.seq).limit(limit)
    with engine.connect() as conn:
        return [OutboxRow(r.seq, r.topic, r.key, bytes(r.value)) for r in conn.execute(query)]


def head(conn: Connection) -> int | None:
    """The newest seq still owed to the bus, or None when everything is published."""
    return conn.execute(select(func.max(outbox.c.seq))).scalar()


def delete_through(conn: Connection, seq: int) -> int:
    """Forget the records up to ``seq``: Kafka has acknowledged them."""
    return conn.execute(outbox.delete().where(outbox.c.seq <= seq)).rowcount
