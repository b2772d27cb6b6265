"""The provider side of the CDC bench: its database and table, and the writers that load it.

Changes (inserts and updates of resident-population rows from the demo data generator) are
made into SQL before any timing starts, so the writer spends its time committing, not
generating. Each transaction records its id and the moment its COMMIT returned: the bench
holds Debezium's ``source.ts_ms`` against them (``cdc_timing.commit_check``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import psycopg

from services.common.catalog_feed import CatalogRecord
from services.ingest.adapters.provider_tables import change_sql, table_ddl
from services.ingest.demo_data import DemoFeed

TABLE = "psb.resident_population"
Statement = tuple[str, dict[str, Any]]


class Changes:
    """Inserts and updates of the resource's source table, as SQL, from the demo data
    generator (deletes skipped: a later change of the key then upserts)."""

    def __init__(self, record: CatalogRecord, seed: int = 11) -> None:
        self._feed = DemoFeed(seed=seed, invalid_rate=0.0)
        self._record = record
        self._fields = [f["name"] for f in record.value_schema["fields"]]

    def take(self, n: int) -> list[Statement]:
        out: list[Statement] = []
        while len(out) < n:
            c = self._feed.next_change()
            if c.resource.split(".")[1] != self._record.resource.code or c.op == "d":
                continue
            after = {f: c.after[f] for f in self._fields}
            out.append(change_sql(TABLE, c.op, None, after, self._record.resource.key_fields))
        return out


def create_table(url: str, record: CatalogRecord) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in table_ddl(TABLE, record.value_schema, record.resource.key_fields):
            conn.execute(statement)


@dataclass
class Written:
    rows: int = 0
    commits: dict[int, int] = field(default_factory=dict)  # transaction id -> COMMIT returned, ms
    started_ms: int = 0
    ended_ms: int = 0

    @property
    def per_s(self) -> float:
        return self.rows / max((self.ended_ms - self.started_ms) / 1000, 0.001)


def _commit(conn: psycopg.Connection, statements: list[Statement], written: Written) -> None:
    with conn.transaction():
        # The 32-bit xid, as logical decoding (and so Debezium's source.txId) reports it.
        xid = conn.execute("SELECT pg_current_xact_id()::text::bigint % 4294967296").fetchone()[0]
        for sql, params in statements:
            conn.execute(sql, params)
    written.commits[xid] = int(time.time() * 1000)
    written.rows += len(statements)


def write(
    url: str, statements: list[Statement], tx_rows: int, rate: float | None = None
) -> Written:
    """Commit ``statements`` in transactions of ``tx_rows`` rows: at ``rate`` rows/s on a fixed
    schedule (a writer that fell behind commits back to back until it is on time again), or,
    without ``rate``, as fast as PostgreSQL takes them."""
    written = Written(started_ms=int(time.time() * 1000))
    started = time.monotonic()
    with psycopg.connect(url) as conn:
        for at in range(0, len(statements), tx_rows):
            chunk = statements[at : at + tx_rows]
            if rate is not None:  # pacing: this transaction's slot in the schedule
                time.sleep(max(0.0, started + (at + len(chunk)) / rate - time.monotonic()))
            _commit(conn, chunk, written)
    written.ended_ms = int(time.time() * 1000)
    return written


class Connector:
    """Pause and resume one Debezium connector (the burst's backlog builds while paused)."""

    def __init__(self, url: str, name: str) -> None:
        self._http = httpx.Client(base_url=url, timeout=10)
        self.name = name

    def _state_is(self, state: str) -> bool:
        status = self._http.get(f"/connectors/{self.name}/status").json()
        states = [status["connector"]["state"], *(t["state"] for t in status["tasks"])]
        return all(s == state for s in states)

    def set_state(self, action: str, state: str, timeout_s: float = 60) -> None:
        self._http.put(f"/connectors/{self.name}/{action}").raise_for_status()
        deadline = time.monotonic() + timeout_s
        while not self._state_is(state):
            if time.monotonic() > deadline:
                raise TimeoutError(f"connector {self.name} not {state} after {timeout_s}s")
            time.sleep(0.2)

    def close(self) -> None:
        self._http.close()
