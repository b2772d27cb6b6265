"""The grant workflow end to end: CLI -> control-plane API -> govbus.grants -> router -> consumer.

A consumer department requests a resource with the `govbus grant` command, its provider
approves, the authority activates; the consumer receives first the masked backfill of the
current state, then live changes; revocation stops the flow. An activation while the broker
is stopped is stored at once and delivers once the broker is back.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from collections import Counter

import httpx

from services.common import catalog_feed
from services.common.feed import read_feed
from services.common.idnumbers import find_resident_ids
from services.common.plan import expected_deliveries, plan_delivery
from services.common.topics import AUDIT, CATALOG, delivery_topic
from tests.integration.brokers import PrivateBroker
from tests.integration.conftest import free_port, new_bus, wait_until
from tests.integration.flow import (
    decode_all,
    demo_changes,
    plans,
    publish,
    read_topics,
    wait_drained,
)

ADMIN_TOKEN = "test-authority-token"
FILTER = "region_code startswith '3401'"


def start_catalog_service(bus) -> dict[str, str]:
    """The catalog service of this test's bus; the environment the CLI needs to reach it."""
    port = free_port()
    bus.processes.env.update(
        {"GOVBUS_REGISTRY_PORT": str(port), "GOVBUS_AUTHORITY_TOKEN": ADMIN_TOKEN}
    )
    bus.processes.start("catalog-service")
    api = f"http://127.0.0.1:{port}/api"
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    def up() -> bool:
        bus.processes.check_alive()
        return httpx.get(f"{api}/whoami", headers=auth, timeout=1).status_code == 200

    wait_until(up, 60, "catalog service")
    return {**bus.processes.env, "GOVBUS_API_URL": api}


def run_govbus(env: dict[str, str], token: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        env={**env, "GOVBUS_TOKEN": token},
        capture_output=True,
        text=True,
        timeout=60,
    )


def govbus(env: dict[str, str], token: str, *args: str) -> str:
    done = run_govbus(env, token, *args)
    assert done.returncode == 0, f"govbus {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


def delivered(bus, topic: str) -> list[dict]:
    return [value for _, value in decode_all(bus.settings, read_topics(bus.settings, [topic]))]


def test_request_approve_activate_backfill_live_then_revoke(bus):
    env = start_catalog_service(bus)
    bus.start("router")
    bus.start("sink")
    before = publish(bus.settings, demo_changes(bus.tag, 400, seed=11))
    wait_drained(bus.settings)

    provider, consumer = f"hrss_{bus.tag}", f"edu_{bus.tag}"
    resource = f"{provider}.social_insurance_enrolment"
    hrss = govbus(
        env, ADMIN_TOKEN, "user", "add", "hrss-liu", "--department", provider, "--role", "provider"
    )
    edu = govbus(
        env, ADMIN_TOKEN, "user", "add", "edu-chen", "--department", consumer, "--role", "consumer"
    )
    case = json.loads(
        govbus(
            env, edu, "grant", "request", "--json", "--resource", resource,
            "--fields", "enrolment_id,id_number,insurance_type,status,region_code",
            "--purpose", "教师社保缴纳核验", "--legal-basis", "《教师法》第二十五条",
            "--filter", FILTER, "--until", str(dt.date.today() + dt.timedelta(days=30)),
        )
    )  # fmt: skip
    gid = case["grant"]["id"]
    assert case["grant"]["state"] == "requested"
    assert case["grant"]["masking"]["id_number"]["method"] == "redact"  # L4 masked by default
    govbus(env, hrss, "grant", "approve", gid)
    activated = time.monotonic()
    assert govbus(env, ADMIN_TOKEN, "grant", "activate", gid).endswith("active")

    topic = delivery_topic(consumer, "social_insurance_enrolment")
    wait_until(lambda: delivered(bus, topic), 30, "first deliveries")
    took = time.monotonic() - activated
    assert took < 5 + 2, f"first deliveries {took:.1f}s after activation"  # 2 s to read the topic

    # Backfill: the current state of every key the grant lets through, once, as op "r".
    # The plan is the one the router compiles: the grant's record joined with the catalog's.
    plan = next(p for p in plans(bus.settings) if p.topic == topic)
    latest: dict[str, tuple[str, object]] = {}
    for p in before:
        if p.change.resource == resource:
            row = p.change.after or p.change.before
            latest[row["enrolment_id"]] = (p.event_id, p.change)
    want_backfill = {
        event_id
        for event_id, c in latest.values()
        if c.op != "d"
        and plan_delivery(
            plan, {"before": None, "after": c.after, "op": "r", "event_id": event_id, "ts_ms": 0}
        )
    }
    assert want_backfill, "the demo data should have live Hefei enrolments"
    wait_until(lambda: len(delivered(bus, topic)) >= len(want_backfill), 30, "backfill")

    after = publish(bus.settings, demo_changes(bus.tag, 300, seed=12))
    wait_drained(bus.settings)
    want_live = expected_deliveries([plan], [(p.event_id, p.change) for p in after])[topic]
    values = delivered(bus, topic)
    counts = Counter(v["event_id"] for v in values)
    assert {v["event_id"] for v in values if v["op"] == "r"} == want_backfill
    assert {v["event_id"] for v in values if v["op"] != "r"} == want_live
    assert max(counts.values()) == 1, "nothing doubled at the seam"
    raw = b"".join(m.value() for m in read_topics(bus.settings, [topic]))
    assert find_resident_ids(raw.decode("latin-1")) == []
    for v in values:
        if v["record"] is not None:
            assert v["record"]["region_code"].startswith("3401")
            assert set(v["record"]) == {
                "enrolment_id",
                "id_number",
                "insurance_type",
                "status",
                "region_code",
            }

    audit = [json.loads(m.value()) for m in read_topics(bus.settings, [AUDIT])]
    audited = {e for r in audit if r["grant_id"] == gid for e in r["event_ids"]}
    assert audited >= want_backfill | want_live

    govbus(env, ADMIN_TOKEN, "grant", "revoke", gid, "--reason", "核验结束")
    time.sleep(5)  # the promise: stopped within 5 seconds of the revocation
    late = publish(bus.settings, demo_changes(bus.tag, 300, seed=13))
    wait_drained(bus.settings)
    late_ids = {p.event_id for p in late}
    assert not late_ids & {v["event_id"] for v in delivered(bus, topic)}

    history = json.loads(govbus(env, ADMIN_TOKEN, "grant", "show", gid, "--history"))["history"]
    assert [h["action"] for h in history] == ["revoke", "activate", "approve", "request"]


def test_activated_with_the_broker_stopped_a_grant_delivers_once_it_is_back(registry_url, tmp_path):
    with PrivateBroker(tmp_path / "kafka") as broker:
        bus = new_bus(broker.bootstrap, registry_url, tmp_path)  # a broker the test stops
        try:
            env = start_catalog_service(bus)
            api, admin = env["GOVBUS_API_URL"], {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            provider, consumer = f"hrss_{bus.tag}", f"edu_{bus.tag}"
            resource = f"{provider}.social_insurance_enrolment"

            def on_bus() -> bool:  # the imported catalog, published by the catalog service
                return resource in read_feed(bus.settings, CATALOG, catalog_feed.decode)

            wait_until(on_bus, 60, "the catalog on govbus.catalog")
            bus.start("router")
            bus.start("sink")  # the activation backfills from the central store
            publish(bus.settings, demo_changes(bus.tag, 200, seed=21))
            hrss = govbus(
                env, ADMIN_TOKEN, "user", "add", "hrss-liu", "--department", provider,
                "--role", "provider",
            )  # fmt: skip
            edu = govbus(
                env, ADMIN_TOKEN, "user", "add", "edu-chen", "--department", consumer,
                "--role", "consumer",
            )  # fmt: skip
            gid = json.loads(
                govbus(
                    env, edu, "grant", "request", "--json", "--resource", resource,
                    "--fields", "enrolment_id,insurance_type,status,region_code",
                    "--purpose", "教师社保缴纳核验", "--legal-basis", "《教师法》第二十五条",
                    "--until", str(dt.date.today() + dt.timedelta(days=30)),
                )
            )["grant"]["id"]  # fmt: skip
            govbus(env, hrss, "grant", "approve", gid)

            broker.stop()
            started = time.monotonic()
            r = httpx.post(f"{api}/grants/{gid}/activate", headers=admin, json={}, timeout=10)
            took = time.monotonic() - started
            assert r.status_code == 200 and r.json()["grant"]["state"] == "active", r.text
            assert r.json()["publication"] == "pending"
            assert took < 1.0, f"activate answered after {took:.2f}s with the broker stopped"

            broker.start()
            topic = delivery_topic(consumer, "social_insurance_enrolment")
            wait_until(lambda: delivered(bus, topic), 90, "deliveries once the broker is back")
            assert {v["op"] for v in delivered(bus, topic)} == {"r"}  # the grant's backfill
        finally:
            bus.processes.stop()
