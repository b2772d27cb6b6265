"""`govbus demo` through the provider database (what `make demo` runs, CDC=1): the demo's
changes written as SQL, carried by Debezium on a real Connect worker, and the summary's
row-by-row comparison of the source tables with the central store."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest
import yaml
from sqlalchemy import make_url

from services.common.config_files import file_records
from services.common.settings import REPO_ROOT
from services.demo_rows import compare_tables
from services.ingest.adapters.connect_rest import ConnectClient
from services.ingest.adapters.debezium import connector_name
from services.ingest.demo_data import ENTERPRISES
from tests.integration.cdc import (
    ConnectWorker,
    connect_worker,  # noqa: F401 - fixture
    drop_provider_database,
    provider_database,
    write_adapter_file,
)
from tests.integration.conftest import command_env, free_port

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]
EVENTS = 300
DEPLOY = REPO_ROOT / "deploy"


def _adapter_files(directory: Path, server_url: str, database: str, tag: str) -> dict:
    """The demo's Debezium adapter files, pointed at the test's provider database; their own
    names, so their connectors, slots and consumer groups are the test's."""
    server = make_url(server_url)
    adapters = {}
    for path in sorted((DEPLOY / "adapters").glob("*.yaml")):
        config = yaml.safe_load(path.read_text(encoding="utf-8"))
        if config["kind"] != "debezium":
            continue
        config["connection"].update(host=server.host, port=server.port, database=database)
        config["metrics_port"] = free_port()
        name = f"{path.stem}-{tag}"
        adapters[name] = write_adapter_file(directory, name, config)
    return adapters


def test_demo_through_cdc_compares_the_store_with_the_source_tables_row_by_row(
    kafka_bootstrap: str,
    pg_server_url: str,
    connect_worker: ConnectWorker,  # noqa: F811
    tmp_path: Path,
) -> None:
    url, database = provider_database(pg_server_url)
    tmp = tmp_path / f"demo{uuid.uuid4().hex[:8]}"
    adapters = _adapter_files(tmp / "adapters", pg_server_url, database, tmp.name)
    env = command_env(
        kafka_bootstrap,
        tmp / "data",
        tmp.name,
        GOVBUS_ADAPTERS_DIR=str(tmp / "adapters"),
        GOVBUS_CONNECT_PORT=str(connect_worker.port),
        GOVBUS_PROVIDER_DB_URL=url,
    )
    try:
        began = time.monotonic()
        demo = subprocess.run(
            [sys.executable, "-m", "services.cli", "demo", "--events", str(EVENTS)],
            env=env,
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=800,
        )
        took = time.monotonic() - began
        out = demo.stdout + demo.stderr
        assert demo.returncode == 0, out[-8000:]
        assert "source tables against the central store" in out
        assert "every change accounted for" in out, out[-8000:]
        print(demo.stdout, f"govbus demo --events {EVENTS} through CDC: {took:.0f} s")

        # The comparison reads both real databases: a source row changed or removed behind
        # the bus (no bridge runs now) is named as different or extra in the store.
        resources, _ = file_records(
            DEPLOY / "catalog", DEPLOY / "grants", REPO_ROOT / "schemas/avro"
        )
        records = {r.resource_id: r for r in resources}
        tables = {a.table: records[a.resource] for a in adapters.values()}
        store_url = f"sqlite:///{tmp / 'data' / 'store.db'}"
        before = compare_tables(url, store_url, tables)
        assert all(r.comparison.same for r in before.values())
        assert before[ENTERPRISES].comparison.equal > 0
        table = ENTERPRISES  # the demo's source table of the resource has its name
        with psycopg.connect(url, autocommit=True) as conn:
            keys = [k for (k,) in conn.execute(f"SELECT credit_code FROM {table} ORDER BY 1")]
            conn.execute(
                f"UPDATE {table} SET name = name || '*' WHERE credit_code = %s", (keys[0],)
            )
            conn.execute(f"DELETE FROM {table} WHERE credit_code = %s", (keys[1],))
        after = compare_tables(url, store_url, tables)[ENTERPRISES].comparison
        assert after.different == [(keys[0],)]
        assert after.extra == [(keys[1],)]
        assert after.missing == [] and not after.same
    finally:
        client = ConnectClient(connect_worker.url)
        try:
            for name in adapters:
                client.forget(connector_name(name))
        finally:
            client.close()
        drop_provider_database(pg_server_url, database, adapters)
