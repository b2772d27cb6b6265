"""The whole path on a real broker: provider -> router -> consumers, and -> central store."""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter

from services.common.idnumbers import find_resident_ids
from services.progress import scrape_totals
from services.sink.central_store import CentralStore
from tests.integration.flow import (
    catalog_records,
    decode_all,
    demo_changes,
    expected,
    fed_plans,
    publish,
    read_topics,
    verified_audit,
    wait_drained,
)

EVENTS = 800


def _store(bus) -> CentralStore:
    # The store's tables are those of the catalog the bus follows.
    return CentralStore(bus.settings.central_store_url, catalog_records(bus.settings).values())


def test_changes_reach_granted_consumers_masked_and_the_central_store(bus):
    bus.start("router")
    bus.start("sink")
    published = publish(bus.settings, demo_changes(bus.tag, EVENTS))
    assert len(published) == EVENTS
    wait_drained(bus.settings)

    wanted = expected(bus.settings, published)
    assert all(wanted.values()), "every demo grant should receive something"
    for topic, want in wanted.items():
        got = {
            value["event_id"]
            for _, value in decode_all(bus.settings, read_topics(bus.settings, [topic]))
        }
        assert got == want, f"{topic}: missing {len(want - got)}, unexpected {len(got - want)}"

    store = _store(bus)
    for resource in {p.change.resource for p in published}:
        ids = [p.event_id for p in published if p.change.resource == resource]
        assert store.stored_event_ids(resource, ids) == set(ids)
    history = sum(c["history"] for c in store.counts().values())
    assert history == EVENTS

    # Every delivery is on the audit trail under its grant, and the whole trail is one chain.
    audit = verified_audit(bus.settings)
    for plan in fed_plans(bus.settings, published):
        audited = {
            e
            for r in audit
            if r["consumer"] == plan.grant.consumer and r["resource"] == plan.grant.resource
            for e in r["event_ids"]
        }
        assert audited >= wanted[plan.topic], plan.topic

    for port in (bus.settings.router_metrics_port, bus.settings.sink_metrics_port):
        totals = scrape_totals(f"http://127.0.0.1:{port}/metrics")
        assert totals["govbus_events_in_total"] >= EVENTS  # at least once: a rebalance may replay
        assert totals["govbus_event_age_seconds_count"] >= EVENTS


def test_no_masked_value_appears_in_clear_in_any_delivery_topic(bus):
    bus.start("router")
    published = publish(bus.settings, demo_changes(bus.tag, 600, seed=11))
    wait_drained_router(bus)
    for plan in fed_plans(bus.settings, published):
        raw = b"".join(
            (m.key() or b"") + (m.value() or b"") for m in read_topics(bus.settings, [plan.topic])
        )
        assert raw, plan.topic
        assert find_resident_ids(raw.decode("latin-1")) == [], plan.topic
        masked = {
            name
            for name, spec in plan.grant.masking.items()
            if spec.method in ("hmac", "partial", "redact", "drop")
        }
        for p in published:
            if p.change.resource != plan.grant.resource:
                continue
            for row in (p.change.before, p.change.after):
                for name in masked:
                    value = (row or {}).get(name)
                    if isinstance(value, str) and len(value) >= 2:
                        assert value.encode() not in raw, f"{plan.topic}: {name} in clear"


def wait_drained_router(bus) -> None:
    from services.common.lag import group_lag
    from tests.integration.conftest import wait_until

    s = bus.settings
    # wait_until retries through transient errors such as a loading group coordinator
    wait_until(lambda: group_lag(s, s.router_group, s.source_pattern) == 0, 120, "router drained")


def expected_hmac(master_secret: bytes, consumer: str, clear: str) -> str:
    """The documented keyed HMAC, computed here from its definition, not by the masking code:
    HMAC-SHA256 under the consumer's key (itself an HMAC of the consumer's code under the
    master secret), the first 32 hex characters."""
    key = hmac.new(master_secret, b"govbus-mask:" + consumer.encode(), hashlib.sha256).digest()
    return hmac.new(key, clear.encode(), hashlib.sha256).hexdigest()[:32]


def test_masked_records_follow_their_grant(bus):
    bus.start("router")
    published = publish(bus.settings, demo_changes(bus.tag, 400, seed=3))
    changes = {p.event_id: p.change for p in published}
    wait_drained_router(bus)
    secret = bus.settings.mask_secret.get_secret_value().encode()
    # clear value -> {consumer: masked values}: joinable within a consumer, not across.
    hashed: dict[str, dict[str, set[str]]] = {}
    for plan in fed_plans(bus.settings, published):
        delivered = decode_all(bus.settings, read_topics(bus.settings, [plan.topic]))
        ops = Counter(v["op"] for _, v in delivered)
        assert ops["c"] > 0, plan.topic
        for key, value in delivered:
            record = value["record"]
            assert value["grant_id"] == plan.grant.id
            assert set(record) == {n for n, _ in plan.fields}
            change = changes[value["event_id"]]
            row = change.before if value["op"] == "d" else change.after
            for name, spec in plan.grant.masking.items():
                if spec.method == "hmac":
                    clear = row[name]
                    masked = expected_hmac(secret, plan.grant.consumer, clear)
                    assert record[name] == masked != clear, f"{plan.topic}: {name}"
                    if name in key:
                        assert key[name] == masked
                    hashed.setdefault(clear, {}).setdefault(plan.grant.consumer, set()).add(
                        record[name]
                    )
                if spec.method == "redact":
                    assert record[name] in ("***", None)
            assert set(key) <= set(record)
    assert all(len(v) == 1 for by in hashed.values() for v in by.values())
    shared = [by for by in hashed.values() if len(by) > 1]
    assert shared, "the demo data has people delivered to two consumers"
    for by in shared:
        values = [next(iter(v)) for v in by.values()]
        assert len(set(values)) == len(values), "the same value hashes alike across consumers"
