"""A column added to a CDC adapter's source table, on real PostgreSQL, Connect and the catalog
service: the adapter widens the resource through the control plane, the central store takes
the new column, and no consumer receives it until a grant names it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.common import catalog_feed
from services.common.catalog import Sensitivity
from services.common.catalog_feed import CatalogRecord
from services.common.feed import read_feed
from services.common.topics import CATALOG, delivery_topic, value_subject
from services.ingest.adapters.debezium_schema_change import SourceColumn, Widening, widen
from tests.integration.cdc import (
    SOURCE_TABLE,
    Cdc,
    ConnectWorker,
    connect_worker,  # noqa: F401 - fixture
    enterprises,
    run_cdc,
    store_rows,
)
from tests.integration.conftest import Bus, free_port, new_bus, wait_until
from tests.integration.flow import decode_all, read_topics, wait_drained
from tests.integration.seed import file_records

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]
ADMIN_TOKEN = "test-authority-token"


def bus_with_catalog_service(bootstrap: str, tmp_path: Path, **extra: str) -> Bus:
    """A test's bus whose catalog service runs: the control plane (its first start imports the
    test's catalog and grants, and the outbox publishes them) and the one schema registry."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    bus = new_bus(
        bootstrap,
        url,
        tmp_path,
        registry_port=str(port),
        api_url=f"{url}/api",
        authority_token=ADMIN_TOKEN,
        **extra,
    )
    bus.processes.start("catalog-service")

    def up() -> bool:
        bus.processes.check_alive()
        return api(bus, ADMIN_TOKEN, "get", "/whoami").status_code == 200

    wait_until(up, 90, "catalog service")
    return bus


def api(bus: Bus, token: str, method: str, path: str, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.request(method, f"{bus.settings.api_url}{path}", headers=headers, timeout=10, **kw)


@pytest.fixture
def cdc_plane(
    kafka_bootstrap: str,
    pg_server_url: str,
    connect_worker: ConnectWorker,  # noqa: F811
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Iterator[Cdc]:
    """As ``cdc``, with the catalog service running and the adapter holding the token of a
    provider user of the resource's department (or of the department given as parameter)."""
    adapters_dir = tmp_path / "adapters"
    bus = bus_with_catalog_service(
        kafka_bootstrap,
        tmp_path,
        adapters_dir=str(adapters_dir),
        connect_port=str(connect_worker.port),
    )
    record = enterprises(file_records(bus.settings)[0])
    other = getattr(request, "param", None)
    department = f"{other}_{bus.tag}" if other else record.resource.provider
    user = {"name": "samr-cdc", "department": department, "role": "provider"}
    made = api(bus, ADMIN_TOKEN, "post", "/users", json=user)
    assert made.status_code == 201, made.text
    token_file = tmp_path / "samr.token"
    token_file.write_text(made.json()["token"], encoding="utf-8")
    bus.start("router")
    extra = {"catalog_token_file": str(token_file)}
    yield from run_cdc(bus, record, pg_server_url, connect_worker, adapters_dir, **extra)


def test_a_column_added_in_the_source_widens_the_resource_and_reaches_no_grant(
    cdc_plane: Cdc,
) -> None:
    cdc, settings = cdc_plane, cdc_plane.bus.settings
    cdc.table.write(300)
    cdc.start_adapter()
    cdc.wait_equal()
    record = cdc.table.record
    delivery = delivery_topic(f"tax_{cdc.bus.tag}", record.resource.code)
    wait_drained(settings)
    delivered_before = len(read_topics(settings, [delivery]))
    assert delivered_before > 0  # the tax department's grant delivers this resource
    with cdc.table.connect() as conn:
        conn.execute(f"ALTER TABLE {SOURCE_TABLE} ADD COLUMN capital_currency varchar(3)")
        conn.execute(
            f"UPDATE {SOURCE_TABLE} SET capital_currency = 'CNY' WHERE uscc IN "
            f"(SELECT uscc FROM {SOURCE_TABLE} ORDER BY uscc LIMIT 50)"
        )
    cdc.table.write(200)  # the demo writer leaves the new column NULL

    def wider() -> CatalogRecord | None:
        now = read_feed(settings, CATALOG, catalog_feed.decode).get(record.resource_id)
        return now if now and "capital_currency" in now.resource.fields else None

    wait_until(wider, 180, "the control plane publishing the wider resource")
    widened = wider()
    assert widened.schema_version == record.schema_version + 1
    assert widened.resource.fields["capital_currency"].sensitivity is Sensitivity.L4

    def stored_equal() -> bool:
        cdc.bus.processes.check_alive()
        return store_rows(settings.central_store_url, widened) == cdc.table.rows()

    wait_until(stored_equal, 240, "the central store equal to the source, new column too")
    stored = store_rows(settings.central_store_url, widened)
    assert any(r["capital_currency"] == "CNY" for r in stored.values())

    subject = value_subject(record.topic)
    auth = tuple(settings.registry_auth.split(":", 1))
    versions = httpx.get(f"{settings.registry_url}/subjects/{subject}/versions", auth=auth)
    assert len(versions.json()) >= 2, versions.text
    latest = httpx.get(f"{settings.registry_url}/subjects/{subject}/versions/latest", auth=auth)
    assert "capital_currency" in latest.json()["schema"]

    wait_drained(settings)
    delivered = decode_all(settings, read_topics(settings, [delivery]))
    assert len(delivered) > delivered_before, "no delivery after the column was added"
    assert not [v for _, v in delivered if "capital_currency" in json.dumps(v, default=str)]

    log = cdc.bus.processes.log("adapter")
    added = "new columns capital_currency (character varying -> string)"
    assert f"table {SOURCE_TABLE}: {added}" in log
    assert f"schema version {widened.schema_version}" in log
    assert "halted" not in log


@pytest.mark.parametrize("cdc_plane", ["hrss"], indirect=True)  # another department's token
def test_a_new_column_the_control_plane_refuses_halts_the_adapter_until_the_catalog_follows(
    cdc_plane: Cdc,
) -> None:
    cdc = cdc_plane
    cdc.table.write(200)
    cdc.start_adapter()
    cdc.wait_equal()
    with cdc.table.connect() as conn:
        conn.execute(f"ALTER TABLE {SOURCE_TABLE} ADD COLUMN staff integer")
        conn.execute(
            f"UPDATE {SOURCE_TABLE} SET staff = 12 WHERE uscc IN "
            f"(SELECT uscc FROM {SOURCE_TABLE} ORDER BY uscc LIMIT 20)"
        )
    cdc.table.write(100)

    refused = "the control plane refused the new field: 403"

    def halted() -> bool:
        log = cdc.bus.processes.log("adapter")
        return f"halted: table {SOURCE_TABLE}, column staff: {refused}" in log

    wait_until(halted, 180, "the adapter halting on the refused column")
    record = cdc.table.record
    source = {k: {f: v for f, v in r.items() if f != "staff"} for k, r in cdc.table.rows().items()}
    assert cdc.stored() != source  # nothing from the held change on was taken
    # The authority adds the field (as the provider would): the catalog follows the source.
    wider = widen(
        record.resource, record.value_schema, cdc.adapter, [SourceColumn("staff", "integer")]
    )
    assert isinstance(wider, Widening)
    body = {"entry": wider.entry.model_dump(mode="json"), "value_schema": wider.value_schema}
    put = api(cdc.bus, ADMIN_TOKEN, "put", f"/resources/{record.resource_id}", json=body)
    assert put.status_code == 200, put.text
    wait_until(
        lambda: "the adapter resumes" in cdc.bus.processes.log("adapter"),
        120,
        "the adapter resuming",
    )
    widened = record.model_copy(
        update={"resource": wider.entry, "value_schema": wider.value_schema}
    )

    def stored_equal() -> bool:
        cdc.bus.processes.check_alive()
        return store_rows(cdc.bus.settings.central_store_url, widened) == cdc.table.rows()

    wait_until(stored_equal, 240, "the central store equal to the source, new column too")
