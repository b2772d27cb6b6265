"""Backfill from the central store on the real broker, while the grant's live changes flow.

The test plays the two processes around the backfill: the sink (it writes the store, holding it
behind the seam at first) and the router's live loop (it routes the changes at and past the seam
through the grant's key gate). The consumer must end with exactly the state below the seam,
then the live changes, with no key getting an older snapshot after a live change.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass

import pytest
from confluent_kafka import Producer

from services.common.dead_letter import DeadLetter, header_map
from services.common.grant_feed import GrantRecord
from services.common.kafka_clients import delivery_topic_spec, ensure_topics, make_admin
from services.common.plan import plan_delivery
from services.common.registry_client import make_registry_client
from services.common.schemas import envelope_schema, key_schema, source_schema
from services.common.serde import AvroCodec
from services.common.sql import build_engine
from services.common.topic_reader import end_offsets, read_range
from services.common.topics import AUDIT, DLQ, key_subject, value_subject
from services.router.backfill import latest_states, snapshot_event
from services.router.backfill_runner import BackfillRunner
from services.router.routing import RawMessage
from tests.backfill_support import output_writer, route_grant
from tests.integration.conftest import wait_until
from tests.integration.flow import backfill_completion
from tests.integration.seed import file_records
from tests.store_rows import create, set_applied, store_change
from tests.unit.fixtures import resident

pytestmark = pytest.mark.integration
GRANT = "mca-resident-population"
TODAY = dt.date.today()
YEAR_AGO_MS = int(dt.datetime(2025, 11, 1).timestamp() * 1000)


@dataclass(frozen=True)
class Sent:
    event: dict
    key: bytes
    value: bytes
    partition: int
    offset: int


class Source:
    """Publishes change events of one resource as a provider's adapter would."""

    def __init__(self, settings, catalog_record, codec: AvroCodec) -> None:
        entry, schema = catalog_record.resource, catalog_record.value_schema
        self.entry = entry
        self._key = codec.encoder(key_subject(entry.topic), key_schema(entry, schema))
        envelope = envelope_schema(schema, source_schema(settings.schemas_dir))
        self._value = codec.encoder(value_subject(entry.topic), envelope)
        self._producer = Producer(settings.kafka_config(**{"enable.idempotence": True}))
        self._n = 0

    def publish(self, changes: list[tuple[str, dict]]) -> list[Sent]:
        sent: list[Sent] = []
        for op, row in changes:
            self._n += 1
            event = {
                "before": row if op != "c" else None,
                "after": row if op != "d" else None,
                "op": op,
                "ts_ms": 1_764_000_000_000 + self._n,
                "source": {
                    "provider": self.entry.provider,
                    "resource": self.entry.code,
                    "system": "hukou",
                    "position": f"lsn:{self._n}",
                    "snapshot": False,
                    "ts_ms": None,
                },
                "event_id": str(uuid.uuid4()),
            }
            key = self._key({k: row[k] for k in self.entry.key_fields})
            value = self._value(event)

            def acked(err, msg, event=event, key=key, value=value):
                assert err is None, err
                sent.append(Sent(event, key, value, msg.partition(), msg.offset()))

            self._producer.produce(self.entry.topic, value, key, on_delivery=acked)
            self._producer.flush(30)  # one at a time: the list is in log order
        return sent


def person(n: int, **changes) -> dict:
    return resident(id_number=f"3401041986051{n:05d}", **changes)


def test_backfill_delivers_the_state_below_the_seam_from_the_store_while_live_changes_flow(
    bus, store_url
):
    settings = bus.settings
    resources, grants = file_records(settings)
    catalog_record = next(r for r in resources if r.resource.code == "resident_population")
    record: GrantRecord = next(g for g in grants if g.grant.id == f"{GRANT}-{bus.tag}")
    grant = record.grant
    codec = AvroCodec(make_registry_client(settings))
    router, route = route_grant(settings, codec, resources, grant)
    ensure_topics(make_admin(settings), [delivery_topic_spec(grant.topic, settings)])
    source = Source(settings, catalog_record, codec)
    topic = catalog_record.topic

    # Below the seam: 30 people (every 7th outside the grant's region), some updated, some gone.
    below = source.publish(
        [("c", person(n, region_code="340204" if n % 7 == 0 else "340104")) for n in range(30)]
        + [("u", person(n, name="王改名")) for n in (1, 2, 3)]
        + [("d", person(n)) for n in (4, 5)]
    )
    seam = end_offsets(settings, [topic])
    assert sum(seam.values()) == len(below)

    engine = build_engine(store_url)  # SQLite, then the project's PostgreSQL
    tables = create(engine, catalog_record)
    # Unchanged for a year: its records are long gone from the topic; the store still has it.
    old = store_change(engine, tables, "c", person(99), 0, 0, "lsn:0", ts_ms=YEAR_AGO_MS)
    # A row the grant's masking cannot take (birth_date is generalized): dead-lettered alone.
    broken = store_change(engine, tables, "c", person(98, birth_date="unknown"), 0, 0, "lsn:0")

    writer = output_writer(settings)
    runner = BackfillRunner(settings, router, writer, store_url, page_rows=7)
    assert not any(runner.is_done(record.backfill_id, p) for p in seam)
    runner.start(record, route, seam)
    gate = runner.gate(grant.id)
    assert gate is not None and runner.running() == {grant.id}

    # Past the seam, routed live while the backfill waits for the store: person 1 updated, 40
    # created. Their snapshots must not follow.
    live_first = source.publish([("u", person(1, name="王新名")), ("c", person(40))])
    # Past the seam, stored by the sink but not yet routed: the snapshot of 2 and 3 is their
    # state below the seam (from the history), and their live changes come after it.
    live_after = source.publish([("u", person(2, name="王后改")), ("d", person(3))])

    def live(sent: list[Sent]) -> None:
        for s in sent:
            outputs = router.route(RawMessage(topic, s.partition, s.offset, s.key, s.value), TODAY)
            assert not isinstance(outputs, DeadLetter), outputs
            for out in outputs:

                def produce(out=out):
                    writer.produce(out.plan.topic, out.value, out.key)

                current = runner.gate(grant.id)
                if current is None:
                    produce()
                else:
                    current.live(out.key, produce)
        writer.flush(30)

    live(live_first)

    # The sink catches up: everything published so far, then its applied offsets.
    for s in below + live_first + live_after:
        row = s.event["after"] or s.event["before"]
        event_id = s.event["event_id"]
        store_change(engine, tables, s.event["op"], row, s.partition, s.offset, event_id=event_id)
    assert runner.running() == {grant.id}  # still waiting: the store is behind the seam
    set_applied(engine, topic, {p: off for (_, p), off in end_offsets(settings, [topic]).items()})

    wait_until(
        lambda: all(runner.is_done(record.backfill_id, p) for p in seam), 120, "backfill done"
    )
    assert runner.running() == set() and runner.gate(grant.id) is None
    live(live_after)
    runner.stop()

    # What the consumer received, in order per key.
    messages = list(read_range(settings, {}, end_offsets(settings, [grant.topic])))
    received = [(m.key(), codec.decode(m.value())) for m in messages]
    per_key: dict[bytes, list[tuple[str, str]]] = {}
    for key, value in received:
        per_key.setdefault(key, []).append((value["op"], value["event_id"]))

    expected_state = latest_states((s.key, s.event) for s in below)
    snapshot_ids = {
        e["event_id"]
        for e in expected_state.values()
        if plan_delivery(route.plan, snapshot_event(e)) is not None
        and e["after"]["id_number"] != person(1)["id_number"]
    } | {old.event_id}
    assert {v["event_id"] for _, v in received if v["op"] == "r"} == snapshot_ids
    assert len(snapshot_ids) == 30 - 5 - 2 - 1 + 1  # 5 outside, 2 deleted, 1 went live first

    def ops_of(n: int) -> list[str]:
        """The ops person n's key received, in order."""
        snap = snapshot_event({"after": person(n), "ts_ms": 0, "event_id": "-"})
        key = route.encode_key(plan_delivery(route.plan, snap).key)
        return [op for op, _ in per_key.get(key, [])]

    assert ops_of(1) == ["u"]  # live before the backfill: no older snapshot after it
    assert ops_of(40) == ["c"]  # created past the seam: live only
    assert ops_of(2) == ["r", "u"] and ops_of(3) == ["r", "d"]  # snapshot, then live
    assert ops_of(4) == [] and ops_of(98) == []

    # Audited as a backfill, completion recorded once acknowledged, the broken row dead-lettered.
    audit = [
        json.loads(m.value()) for m in read_range(settings, {}, end_offsets(settings, [AUDIT]))
    ]
    audited = {
        e
        for a in audit
        if a["grant_id"] == grant.id and a["kind"] == "backfill"
        for e in a["event_ids"]
    }
    assert audited == snapshot_ids
    done = backfill_completion(settings, record.backfill_id)
    assert done is not None and done["delivered"] == len(snapshot_ids)
    letters = [
        header_map(m.headers())
        for m in read_range(settings, {}, end_offsets(settings, [DLQ]))
        if grant.id in header_map(m.headers()).get("govbus.detail", "")
    ]
    assert [(h["govbus.reason"], h["govbus.stage"]) for h in letters] == [
        ("masking_failed", "router")
    ]
    assert broken.event_id not in audited
    engine.dispose()


def test_a_backfill_whose_grant_stops_routing_sends_nothing_and_is_not_recorded(bus, tmp_path):
    settings = bus.settings
    resources, grants = file_records(settings)
    catalog_record = next(r for r in resources if r.resource.code == "resident_population")
    record = next(g for g in grants if g.grant.id == f"{GRANT}-{bus.tag}")
    codec = AvroCodec(make_registry_client(settings))
    router, route = route_grant(settings, codec, resources, record.grant)
    ensure_topics(make_admin(settings), [delivery_topic_spec(record.grant.topic, settings)])
    store_url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = build_engine(store_url)
    tables = create(engine, catalog_record)
    for n in range(5):
        store_change(engine, tables, "c", person(n), 0, n)
    seam = {(catalog_record.topic, 0): 5}

    runner = BackfillRunner(settings, router, output_writer(settings), store_url)
    runner.start(record, route, seam)  # waits: the store has applied nothing yet
    router.remove_grant(record.grant.id)  # revoked meanwhile
    set_applied(engine, catalog_record.topic, {0: 5})
    wait_until(lambda: not runner.running(), 60, "backfill ended")
    runner.stop()

    assert not runner.is_done(record.backfill_id, (catalog_record.topic, 0))
    assert set(end_offsets(settings, [record.grant.topic]).values()) == {0}  # nothing sent
    assert backfill_completion(settings, record.backfill_id) is None
    engine.dispose()
