"""Grants followed live from govbus.grants: activation with backfill, revocation, new fields.

Times are measured on the real broker and printed (``pytest -s``); the bound is 5 seconds.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter

from services.common.catalog import FieldSpec, GrantState, Sensitivity
from services.common.catalog_feed import CatalogRecord
from services.common.grant_feed import GrantRecord
from services.common.idnumbers import make_resident_id
from services.common.plan import compile_plan, plan_delivery
from services.common.registry_client import make_registry_client
from services.common.serde import AvroCodec
from services.common.topic_reader import end_offsets
from services.ingest.publisher import Change
from services.router.backfill import backfill_deliveries, latest_states
from tests.integration.conftest import wait_until
from tests.integration.flow import (
    Feeder,
    backfill_completion,
    catalog_records,
    decode_all,
    demo_changes,
    grant_records,
    publish,
    read_topics,
    verified_audit,
)
from tests.integration.seed import publish_records
from tests.integration.test_end_to_end import wait_drained_router

BOUND_S = 5.0


def _secret(bus) -> bytes:
    return bus.settings.mask_secret.get_secret_value().encode()


def _record(bus, grant_id: str) -> GrantRecord:
    return grant_records(bus.settings)[f"{grant_id}-{bus.tag}"]


def _resource(bus, record: GrantRecord) -> CatalogRecord:
    return catalog_records(bus.settings)[record.grant.resource]


def publish_grants(settings, records: list[GrantRecord]) -> None:
    publish_records(settings, grants=records)


def _with_grant(record: GrantRecord, **changes) -> GrantRecord:
    return record.model_copy(update={"grant": record.grant.model_copy(update=changes)})


def _wait_for_first_record(bus, topic: str, timeout_s: float = 30.0) -> float:
    """Monotonic time at which ``topic`` first holds a record."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if sum(end_offsets(bus.settings, [topic]).values()) > 0:
            return time.monotonic()
        time.sleep(0.05)
    raise TimeoutError(f"{topic}: nothing delivered in {timeout_s}s")


def _completion(bus, grant_id: str) -> dict:
    found = backfill_completion(bus.settings, grant_id)
    assert found, f"no backfill completion for {grant_id}"
    return found


def test_activation_backfills_the_current_state_then_live_changes_without_gap_or_double(bus):
    s = bus.settings
    changes = demo_changes(bus.tag, 1600, seed=31)
    publish(s, changes[:1000])  # before the grant exists: the consumer gets none of these live
    bus.start("router")
    bus.start("sink")  # an activation backfills from the central store
    wait_drained_router(bus)

    base = _record(bus, "mca-resident-population")
    late = _with_grant(base, id=f"late-{bus.tag}", consumer=f"late_{bus.tag}")
    resource = _resource(bus, base)
    topic, source = late.grant.topic, resource.topic
    feeder = Feeder(s, changes[1000:], chunk=10, pause_s=0.1)  # flowing across the activation
    feeder.start()
    time.sleep(1.0)
    publish_grants(s, [late])
    activated = time.monotonic()
    first = _wait_for_first_record(bus, topic) - activated
    print(f"\nactivation: first delivery {first:.2f}s after the grant record was acknowledged")
    assert first < BOUND_S
    feeder.finish()
    wait_drained_router(bus)

    # Reconstruct what the consumer must hold from the source log and the seam the router used.
    completion = _completion(bus, late.grant.id)
    seam = {}
    for name, offset in completion["seam"].items():
        t, p = name.rsplit(":", 1)
        seam[(t, int(p))] = offset
    codec = AvroCodec(make_registry_client(s))
    log = sorted(read_topics(s, [source]), key=lambda m: (m.partition(), m.offset()))
    routed_before = sum(1 for m in log if m.offset() < seam[(source, m.partition())])
    assert routed_before >= sum(1 for c in changes[:1000] if c.resource == base.grant.resource)
    plan = compile_plan(late.grant, resource.resource, resource.value_schema, _secret(bus))
    below = [
        (m.key(), codec.decode(m.value()))
        for m in log
        if m.offset() < seam[(source, m.partition())]
    ]
    wanted_backfill = backfill_deliveries(plan, latest_states(below).values()).deliveries
    wanted_live = [
        d
        for m in log
        if m.offset() >= seam[(source, m.partition())]
        and (d := plan_delivery(plan, codec.decode(m.value()))) is not None
    ]
    assert wanted_backfill and wanted_live, "the test needs both sides of the seam"

    delivered = read_topics(s, [topic])
    pairs = decode_all(s, delivered)

    def canon(key, value) -> str:
        return json.dumps([key, value], sort_keys=True, ensure_ascii=False)

    # Live changes arrive exactly once each. The backfill runs beside them: a key whose live
    # change went out first keeps that newer state and gets no older snapshot; every other key
    # gets its snapshot exactly once, before any live change of it.
    got = Counter(canon(k, v) for k, v in pairs)
    live_want = Counter(canon(d.key, d.value) for d in wanted_live)
    snapshots = {canon(d.key, d.value): json.dumps(d.key, sort_keys=True) for d in wanted_backfill}
    assert all(got[c] == n for c, n in live_want.items()), "a live change missing or doubled"
    unexpected = set(got) - set(live_want) - set(snapshots)
    assert not unexpected, f"{len(unexpected)} deliveries neither live nor backfill"
    assert all(got[c] <= 1 for c in snapshots), "a snapshot doubled"
    order: dict[str, list[str]] = {}  # per delivered key: "r" or "live", in topic order
    for k, v in pairs:
        order.setdefault(json.dumps(k, sort_keys=True), []).append(
            "r" if canon(k, v) in snapshots else "live"
        )
    for c, key in snapshots.items():
        if got[c] == 0:
            assert order.get(key, [None])[0] == "live", f"snapshot of {key} missing"
    for key, kinds in order.items():
        assert kinds == sorted(kinds, key=lambda k: k != "r"), f"{key}: snapshot after live"
    sent = [d for d in wanted_backfill if got[canon(d.key, d.value)]]
    assert sent, "the test needs a backfill that delivered"
    backfill_ids = {d.value["event_id"] for d in sent}
    assert all(d.value["op"] == "r" for d in wanted_backfill)
    assert len({json.dumps(d.key) for d in wanted_backfill}) == len(wanted_backfill)  # one per key
    assert completion["delivered"] == len(sent)

    audit = verified_audit(s)
    mine = [r for r in audit if r["grant_id"] == late.grant.id]
    audited = {e for r in mine if r["kind"] == "backfill" for e in r["event_ids"]}
    assert audited >= backfill_ids
    # A page is audited before it is sent: a key that went live in between is audited and not
    # sent (its newer live change went instead).
    raced = {d.value["event_id"]: json.dumps(d.key, sort_keys=True) for d in wanted_backfill}
    for event_id in audited - backfill_ids:
        assert order[raced[event_id]][0] == "live", event_id
    live_ids = {d.value["event_id"] for d in wanted_live}
    assert {e for r in mine if r["kind"] == "live" for e in r["event_ids"]} == live_ids


def test_revocation_stops_delivery_within_seconds(bus):
    s = bus.settings
    record = _record(bus, "tax-social-insurance")  # no row filter: every change is delivered
    topic = record.grant.topic
    changes = demo_changes(bus.tag, 4000, seed=41)
    markers = [c for c in changes[3000:] if c.resource == record.grant.resource][:20]
    publish(s, changes[:300])
    bus.start("router")
    feeder = Feeder(s, changes[300:3000], chunk=10, pause_s=0.05)
    feeder.start()
    wait_until(lambda: sum(end_offsets(s, [topic]).values()) > 20, 60, "deliveries flowing")
    publish_grants(s, [_with_grant(record, state=GrantState.REVOKED)])
    revoked_ms = time.time() * 1000
    time.sleep(BOUND_S)
    feeder.finish(stop=True)
    marked = publish(s, markers)  # after the bound: must not reach the revoked grant
    wait_drained_router(bus)

    produced_ms = {}
    codec = AvroCodec(make_registry_client(s))
    for m in read_topics(s, [_resource(bus, record).topic]):
        produced_ms[codec.decode(m.value())["event_id"]] = m.timestamp()[1]
    delivered = {v["event_id"] for _, v in decode_all(s, read_topics(s, [topic]))}
    assert delivered
    assert not delivered & {p.event_id for p in marked}
    last = max(produced_ms[e] for e in delivered)
    stop_s = (last - revoked_ms) / 1000
    print(
        f"\nrevocation: last delivered event was produced {stop_s:.2f}s after the revocation "
        f"was acknowledged (negative: before it)"
    )
    assert stop_s < BOUND_S
    after = [e for e, ts in produced_ms.items() if ts > revoked_ms]
    assert after, "events must keep flowing after the revocation"
    assert len(set(after) - delivered) > 0


NEW_FIELD = "informant_note"


def _evolved(record: CatalogRecord) -> CatalogRecord:
    """The resource's next schema version, as the control plane publishes it: one optional
    field added, declared in the catalog at L2."""
    schema = json.loads(json.dumps(record.value_schema))
    schema["fields"].append({"name": NEW_FIELD, "type": "string", "default": ""})
    spec = FieldSpec(sensitivity=Sensitivity.L2, description="note of the informant")
    entry = record.resource.model_copy(
        update={"fields": {**record.resource.fields, NEW_FIELD: spec}}
    )
    return CatalogRecord(
        resource=entry, value_schema=schema, schema_version=record.schema_version + 1
    )


def _delivered(bus, topic: str, event_ids: set[str]) -> dict[str, list[dict]]:
    """Deliveries of ``event_ids`` on ``topic`` by event id, once every one is there."""
    found: dict[str, list[dict]] = {}

    def all_there() -> bool:
        found.clear()
        for _, value in decode_all(bus.settings, read_topics(bus.settings, [topic])):
            if value["event_id"] in event_ids:
                found.setdefault(value["event_id"], []).append(value)
        return set(found) == event_ids

    wait_until(all_there, 60, f"{len(event_ids)} deliveries on {topic}")
    return found


def test_a_new_field_reaches_a_consumer_only_under_an_amended_grant_naming_it(bus):
    s = bus.settings
    record = _record(bus, "mca-resident-population")
    grant = record.grant
    resource = _resource(bus, record)
    publish(s, demo_changes(bus.tag, 50, seed=51))
    bus.start("router")
    bus.start("sink")  # an activation backfills from the central store

    evolved = _evolved(resource)
    publish_records(s, resources=[evolved])
    template = next(
        c.after
        for c in demo_changes(bus.tag, 100, seed=52)
        if c.op == "c" and c.resource == grant.resource
    )

    def send(mark: str, first_seq: int) -> set[str]:
        """Three new residents of Hefei (in the grant's row filter) carrying the new field."""
        changes = []
        for seq in range(first_seq, first_seq + 3):
            id_number = make_resident_id("340104", dt.date(1990, 1, 1), seq)
            row = {
                **template,
                "id_number": id_number,
                "region_code": "340104",
                "household_type": "城镇",
                NEW_FIELD: f"{mark}-{seq}",
            }
            changes.append(Change(grant.resource, "c", None, row, f"p:{seq}", "psb-hukou"))
        published = publish(s, changes)  # ingest follows the catalog: the field is accepted
        assert len(published) == 3
        return {p.event_id for p in published}

    # Before any grant names the field, it reaches no consumer.
    before = _delivered(bus, grant.topic, send("NOTE-BEFORE-AMENDMENT", 101))
    for values in before.values():
        for value in values:
            assert value["grant_id"] == grant.id
            assert NEW_FIELD not in value["record"]
    raw = b"".join((m.value() or b"") for m in read_topics(s, [grant.topic]))
    assert b"NOTE-BEFORE-AMENDMENT" not in raw

    # The authority activates an amended grant that names it: from then on it is delivered.
    amended = grant.model_copy(
        update={"id": f"{grant.id}-v2", "amends": grant.id, "fields": (*grant.fields, NEW_FIELD)}
    )
    publish_records(s, grants=[GrantRecord(grant=amended, activation=1)])
    wait_until(
        lambda: any(
            v["grant_id"] == amended.id for _, v in decode_all(s, read_topics(s, [grant.topic]))
        ),
        60,
        "the amended grant delivering",
    )
    after = _delivered(bus, grant.topic, send("NOTE-AFTER-AMENDMENT", 201))
    for values in after.values():
        assert {v["grant_id"] for v in values} == {amended.id}, "the old grant still routes"
        assert all(v["record"][NEW_FIELD].startswith("NOTE-AFTER-AMENDMENT-") for v in values)
    # The old grant's deliveries never carried it, before or after.
    for _, value in decode_all(s, read_topics(s, [grant.topic])):
        if value["grant_id"] == grant.id and value["record"] is not None:
            assert NEW_FIELD not in value["record"]
