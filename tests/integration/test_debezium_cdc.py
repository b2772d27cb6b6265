"""Log-based CDC on real PostgreSQL and a real Connect worker: PostgreSQL -> Debezium ->
bridge -> gov.<provider>.<resource> -> central store."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import make_url

from services.ingest.adapters.connect_rest import ConnectClient
from services.ingest.adapters.debezium import DebeziumAdapter, connector_name
from tests.integration.cdc import (
    ConnectWorker,
    ProviderTable,
    connect_worker,  # noqa: F401 - fixture
    drop_provider_database,
    provider_database,
    store_rows,
    write_adapter_file,
)
from tests.integration.conftest import Bus, new_bus, wait_until
from tests.integration.seed import publish_file_feeds, publish_records

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]
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


@pytest.fixture
def cdc(
    kafka_bootstrap: str,
    registry_url: str,
    pg_server_url: str,
    connect_worker: ConnectWorker,  # noqa: F811
    tmp_path: Path,
) -> Iterator[Cdc]:
    url, database = provider_database(pg_server_url)
    server = make_url(pg_server_url)
    adapters_dir = tmp_path / "adapters"
    bus = new_bus(
        kafka_bootstrap,
        registry_url,
        tmp_path,
        adapters_dir=str(adapters_dir),
        connect_port=str(connect_worker.port),
    )
    name = f"samr-{bus.tag}"
    resources, _ = publish_file_feeds(bus.settings)
    record = next(r for r in resources if r.resource.code == "enterprise_registration")
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
        },
    )
    table = ProviderTable(url, SOURCE_TABLE, record, RENAMES)
    bus.start("sink")
    yield Cdc(bus, table, adapter, connect_worker, name)
    table.stop_writing()
    bus.processes.stop()
    client = ConnectClient(connect_worker.url)
    try:
        client.forget(connector_name(name))
    finally:
        client.close()
        drop_provider_database(pg_server_url, database, {name: adapter})


def test_snapshot_while_writes_go_on_leaves_the_store_equal_to_the_source(cdc: Cdc) -> None:
    cdc.table.write(1500)  # the snapshot's rows
    cdc.table.start_writing()  # and changes going on while Debezium takes it
    cdc.start_adapter()
    wait_until(lambda: len(cdc.stored()) > 500, 180, "the snapshot reaching the store")
    wait_until(lambda: cdc.table.written > 2500, 120, "more changes in the source")
    cdc.table.stop_writing()
    cdc.wait_equal()
    log = cdc.bus.processes.log("adapter")
    assert "halted" not in log


def test_kill9_of_bridge_and_connect_worker_mid_stream_loses_nothing(cdc: Cdc) -> None:
    cdc.table.write(500)
    cdc.table.start_writing()
    cdc.start_adapter()
    wait_until(lambda: len(cdc.stored()) > 300, 180, "changes reaching the store")
    cdc.bus.kill("adapter")
    seen = cdc.table.written
    wait_until(lambda: cdc.table.written > seen + 300, 60, "changes while the bridge is down")
    cdc.start_adapter()
    stored = len(cdc.stored())
    wait_until(lambda: len(cdc.stored()) != stored, 120, "the restarted bridge storing")
    cdc.worker.kill9()
    seen = cdc.table.written
    wait_until(lambda: cdc.table.written > seen + 300, 60, "changes while Connect is down")
    cdc.table.stop_writing()  # a bounded backlog: the worker takes minutes on a loaded machine
    cdc.worker.run("start")
    cdc.table.start_writing()
    seen = cdc.table.written
    wait_until(lambda: cdc.table.written > seen + 300, 60, "changes after Connect is back")
    cdc.table.stop_writing()
    cdc.wait_equal(timeout_s=480)


def test_a_dropped_source_column_halts_the_adapter_until_the_catalog_follows(cdc: Cdc) -> None:
    cdc.table.write(300)
    cdc.start_adapter()
    cdc.wait_equal()
    with cdc.table.connect() as conn:
        conn.execute(f"ALTER TABLE {SOURCE_TABLE} DROP COLUMN address")
    cdc.table.columns = {**RENAMES}
    record = cdc.table.record
    narrowed = record.model_copy(
        update={
            "resource": record.resource.model_copy(
                update={
                    "fields": {k: v for k, v in record.resource.fields.items() if k != "address"}
                }
            ),
            "value_schema": {
                **record.value_schema,
                "fields": [f for f in record.value_schema["fields"] if f["name"] != "address"],
            },
            "schema_version": record.schema_version + 1,
        }
    )
    cdc.table.record = narrowed  # the source table now has the narrowed resource's columns
    cdc.table.write(200)

    def halted() -> bool:
        return "halted: table qydj.enterprise, column address" in cdc.bus.processes.log("adapter")

    wait_until(halted, 120, "the adapter halting on the dropped column")
    stored = cdc.stored()
    assert stored != cdc.table.rows()  # nothing after the halting change was taken
    publish_records(cdc.bus.settings, [narrowed])  # the control plane's catalog change
    wait_until(
        lambda: "the adapter resumes" in cdc.bus.processes.log("adapter"),
        60,
        "the adapter resuming",
    )
    cdc.wait_equal()
