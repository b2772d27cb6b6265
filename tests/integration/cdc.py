"""Fixtures and helpers of the CDC tests: a real Connect worker, a provider database whose
table is written by a demo-data writer, and the comparison of source and central store."""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from sqlalchemy import create_engine, make_url, text

from services import demo_rows
from services.common.catalog_feed import CatalogRecord
from services.common.settings import REPO_ROOT
from services.ingest.adapters.connect_rest import ConnectClient
from services.ingest.adapters.debezium import DebeziumAdapter, connector_name, slot_name
from services.ingest.adapters.debezium_run import drop_slot
from services.ingest.adapters.provider_tables import change_sql, table_ddl
from services.ingest.demo_data import DemoFeed
from tests.integration.conftest import Bus, free_port, wait_until

CONNECT_SH = REPO_ROOT / "deploy" / "connect" / "connect.sh"


class ConnectWorker:
    """The session's Connect worker, which a test may kill -9 and start again."""

    def __init__(self, bootstrap: str, data_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("GOVBUS_")},
            "GOVBUS_KAFKA_BOOTSTRAP": bootstrap,
            "GOVBUS_CONNECT_PORT": str(self.port),
            "GOVBUS_CONNECT_GROUP": f"connect-{uuid.uuid4().hex[:8]}",
            "GOVBUS_CONNECT_DIR": str(data_dir),
            "GOVBUS_CONNECT_WAIT_S": "420",
        }
        self.pidfile = data_dir / "connect.pid"

    def run(self, command: str) -> None:
        subprocess.run(["bash", str(CONNECT_SH), command], env=self.env, check=True)

    def kill9(self) -> None:
        os.kill(int(self.pidfile.read_text()), 9)


@pytest.fixture(scope="session")
def connect_worker(kafka_bootstrap: str, tmp_path_factory) -> Iterator[ConnectWorker]:
    worker = ConnectWorker(kafka_bootstrap, tmp_path_factory.mktemp("connect"))
    worker.run("start")
    try:
        yield worker
    finally:
        worker.run("stop")


class ProviderTable:
    """A resource's source table in a provider database, changed by the demo data generator."""

    def __init__(self, url: str, table: str, record: CatalogRecord, columns: dict[str, str]):
        self.url, self.table, self.record, self.columns = url, table, record, columns
        self.feed = DemoFeed(seed=7, invalid_rate=0.0, start_ms=1_780_000_000_000)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.written = 0
        with self.connect() as conn:
            for statement in table_ddl(
                table, record.value_schema, record.resource.key_fields, columns
            ):
                conn.execute(statement)

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(self.url, autocommit=True)

    def write(self, n: int, conn: psycopg.Connection | None = None) -> None:
        """``n`` changes of the resource, each its own transaction, as a provider makes them."""
        own = conn is None
        conn = conn or self.connect()
        try:
            done = 0
            while done < n and not self._stop.is_set():
                change = self.feed.next_change()
                if change.resource.split(".")[1] != self.record.resource.code:
                    continue
                sql, params = change_sql(
                    self.table,
                    change.op,
                    self._columns_of(change.before),
                    self._columns_of(change.after),
                    self.record.resource.key_fields,
                    self.columns,
                )
                conn.execute(sql, params)
                done += 1
                self.written += 1
        finally:
            if own:
                conn.close()

    def _columns_of(self, row: dict[str, Any] | None) -> dict[str, Any] | None:
        """The row's values of the resource's fields (the table may have lost a column)."""
        fields = [f["name"] for f in self.record.value_schema["fields"]]
        return None if row is None else {f: row[f] for f in fields}

    def start_writing(self, rate: float = 150.0) -> None:
        """Write changes at ``rate`` per second in the background, until ``stop_writing``."""

        self._stop.clear()

        def loop() -> None:
            started, sent = time.monotonic(), 0
            with self.connect() as conn:
                while not self._stop.is_set():
                    self.write(10, conn)
                    sent += 10
                    self._stop.wait(max(0.0, sent / rate - (time.monotonic() - started)))

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop_writing(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(30)

    def rows(self) -> dict[str, dict[str, Any]]:
        """The source table's rows, keyed by the resource's key, with resource field names."""
        back = {column: field for field, column in self.columns.items()}
        key = self.record.resource.key_fields[0]
        with self.connect() as conn, conn.cursor() as cur:
            cur.execute(f"SELECT * FROM {self.table}")
            names = [back.get(d.name, d.name) for d in cur.description]
            rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        return {r[key]: r for r in rows}


def store_rows(store_url: str, record: CatalogRecord) -> dict[str, dict[str, Any]]:
    """Live rows of the resource in the central store, keyed like ``ProviderTable.rows``."""
    return {key[0]: row for key, row in demo_rows.store_rows(store_url, record).items()}


def write_adapter_file(directory: Path, name: str, adapter: dict[str, Any]) -> DebeziumAdapter:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.yaml").write_text(yaml.safe_dump(adapter), encoding="utf-8")
    return DebeziumAdapter.model_validate(adapter)


def provider_database(server_url: str) -> tuple[str, str]:
    """A fresh database for a provider: (its psycopg URL, its name)."""
    name = f"prov_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = make_url(server_url).set(drivername="postgresql", database=name)
    return url.render_as_string(hide_password=False), name


def drop_provider_database(server_url: str, name: str, adapters: dict[str, DebeziumAdapter]):
    """Remove what the adapters (by name) left at the source (slot, publication), then the
    database."""
    for adapter_name, adapter in adapters.items():
        drop_slot(adapter, slot_name(adapter_name), deadline_s=60)
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


SOURCE_TABLE = "qydj.enterprise"
RENAMES = {"credit_code": "uscc"}  # resource field -> source column


@dataclass
class Cdc:
    bus: Bus
    table: ProviderTable
    adapter: DebeziumAdapter
    worker: ConnectWorker
    name: str  # of the adapter: its own connector, slot and Connect offsets per test

    def start_adapter(self) -> None:
        self.bus.processes.start("adapter", self.name)

    def stored(self) -> dict:
        return store_rows(self.bus.settings.central_store_url, self.table.record)

    def wait_equal(self, timeout_s: float = 240) -> None:
        def equal() -> bool:
            self.bus.processes.check_alive()
            return self.stored() == self.table.rows()

        try:
            wait_until(equal, timeout_s, "central store equal to the source table")
        except TimeoutError:
            source, stored = self.table.rows(), self.stored()
            missing = [k for k in source if source[k] != stored.get(k)]
            extra = [k for k in stored if k not in source]
            raise AssertionError(
                f"{len(source)} source rows, {len(stored)} stored; differ: {missing[:5]} "
                f"({len(missing)}), not in source: {extra[:5]} ({len(extra)})\n"
                + self.bus.processes.log("adapter")[-3000:]
            ) from None


def run_cdc(
    bus: Bus,
    record: CatalogRecord,
    pg_server_url: str,
    worker: ConnectWorker,
    adapters_dir: Path,
    **adapter_extra: object,
) -> Iterator[Cdc]:
    """A provider database with the resource's table, the adapter's file, the sink running."""
    url, database = provider_database(pg_server_url)
    server = make_url(pg_server_url)
    name = f"samr-{bus.tag}"
    adapter = write_adapter_file(
        adapters_dir,
        name,
        {
            "kind": "debezium",
            "resource": record.resource_id,
            "connection": {
                "host": server.host,
                "port": server.port,
                "database": database,
                "user": server.username,
            },
            "table": SOURCE_TABLE,
            "key": ["uscc"],
            "renames": {column: field for field, column in RENAMES.items()},
            **adapter_extra,
        },
    )
    table = ProviderTable(url, SOURCE_TABLE, record, RENAMES)
    bus.start("sink")
    yield Cdc(bus, table, adapter, worker, name)
    table.stop_writing()
    bus.processes.stop()
    client = ConnectClient(worker.url)
    try:
        client.forget(connector_name(name))
    finally:
        client.close()
        drop_provider_database(pg_server_url, database, {name: adapter})


def enterprises(resources: list[CatalogRecord]) -> CatalogRecord:
    return next(r for r in resources if r.resource.code == "enterprise_registration")
