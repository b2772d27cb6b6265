"""A resource created through the API flows end to end with no restart of any process.

The catalog service, router and sink run; a provider creates a new resource with
`govbus catalog put`, a consumer is granted it, the provider publishes, and the changes land
in the central store and reach the consumer.
"""

from __future__ import annotations

import datetime as dt
import json

from sqlalchemy import create_engine, func, select

from services.common.store_tables import resource_tables
from services.common.topics import delivery_topic
from services.ingest.publisher import Change
from tests.integration.conftest import wait_until
from tests.integration.flow import catalog_records, demo_changes, publish
from tests.integration.test_control_plane import (
    ADMIN_TOKEN,
    delivered,
    govbus,
    start_catalog_service,
)

FIELDS = "enrolment_id,id_number,insurance_type,status,region_code"


def test_a_resource_put_through_the_api_is_stored_and_delivered_without_a_restart(bus, tmp_path):
    env = start_catalog_service(bus)
    bus.start("router")
    bus.start("sink")
    provider, consumer = f"hrss_{bus.tag}", f"edu_{bus.tag}"
    template = json.loads(
        govbus(env, ADMIN_TOKEN, "catalog", "show", f"{provider}.social_insurance_enrolment")
    )
    entry = {**template["entry"], "code": "pension_payment", "name_en": "pension payments"}
    resource = f"{provider}.pension_payment"
    path = tmp_path / "pension_payment.json"
    body = {"entry": entry, "value_schema": template["value_schema"]}
    path.write_text(json.dumps(body, ensure_ascii=False), encoding="utf-8")

    hrss = govbus(
        env, ADMIN_TOKEN, "user", "add", "hrss-wu", "--department", provider, "--role", "provider"
    )
    edu = govbus(
        env, ADMIN_TOKEN, "user", "add", "edu-lin", "--department", consumer, "--role", "consumer"
    )
    govbus(env, hrss, "catalog", "put", resource, "--file", str(path))
    case = json.loads(
        govbus(
            env, edu, "grant", "request", "--json", "--resource", resource,
            "--fields", FIELDS, "--purpose", "养老金发放核验", "--legal-basis", "《社会保险法》",
            "--until", str(dt.date.today() + dt.timedelta(days=30)),
        )
    )  # fmt: skip
    gid = case["grant"]["id"]
    if case["grant"]["state"] == "requested":
        govbus(env, hrss, "grant", "approve", gid)
    assert govbus(env, ADMIN_TOKEN, "grant", "activate", gid).endswith("active")

    changes = [
        Change(resource, c.op, c.before, c.after, c.position, c.system)
        for c in demo_changes(bus.tag, 600, seed=21)
        if c.resource.endswith(".social_insurance_enrolment")
    ]
    published = publish(bus.settings, changes)
    assert published, "the publisher takes the new resource from the live catalog"

    record = catalog_records(bus.settings)[resource]
    tables = resource_tables(record)
    engine = create_engine(bus.settings.central_store_url)
    keys = {(p.change.after or p.change.before)["enrolment_id"] for p in published}

    def stored() -> int:
        with engine.connect() as conn:
            return conn.scalar(select(func.count()).select_from(tables.current)) or 0

    wait_until(lambda: stored() == len(keys), 90, "the new resource's rows in the store")
    topic = delivery_topic(consumer, "pension_payment")
    want = {p.event_id for p in published}
    wait_until(
        lambda: {v["event_id"] for v in delivered(bus, topic)} == want,
        90,
        "every change delivered to the granted consumer",
    )
    assert all(v["grant_id"] == gid for v in delivered(bus, topic))
