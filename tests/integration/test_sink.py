"""The sink's consumer loop on the real broker: it stores what is good, dead-letters what is not
(stage sink, with a reason) and goes on, follows the catalog live (new resources, new schema
versions), and commits offsets only once a batch is written."""

from __future__ import annotations

import copy
import json
import re
import time
import uuid
from collections.abc import Callable

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import inspect, text
from sqlalchemy.exc import SQLAlchemyError

from services.common.catalog import FieldSpec, Sensitivity
from services.common.catalog_feed import CatalogRecord
from services.common.dead_letter import header_map
from services.common.idnumbers import find_resident_ids
from services.common.kafka_clients import (
    ensure_topics,
    make_admin,
    make_producer,
    source_topic_spec,
)
from services.common.lag import committed_offsets, group_lag, partitions_of
from services.common.metrics import BusMetrics
from services.common.registry_client import make_registry_client
from services.common.schemas import envelope_schema, source_schema
from services.common.serde import AvroCodec, Encoder
from services.common.settings import Settings
from services.common.topic_reader import end_offsets, read_range
from services.common.topics import CATALOG, DLQ, value_subject
from services.ingest.demo_data import DemoFeed
from services.sink.app import StoreSink, build_sink
from tests.integration.conftest import wait_until
from tests.integration.seed import file_records, publish_records


class Source:
    """A provider system writing change events straight onto the bus (no ingest checks)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.codec = AvroCodec(make_registry_client(settings))
        self.producer = make_producer(settings)
        self._source = source_schema(settings.schemas_dir)

    def encoder(self, record: CatalogRecord, subject: str | None = None) -> Encoder:
        schema = envelope_schema(record.value_schema, self._source)
        return self.codec.encoder(subject or value_subject(record.topic), schema)

    def send(self, record: CatalogRecord, op, before, after, position, encode=None) -> None:
        entry = record.resource
        event = {
            "before": before,
            "after": after,
            "op": op,
            "ts_ms": int(time.time() * 1000),
            "source": {
                "provider": entry.provider,
                "resource": entry.code,
                "system": "test",
                "position": position,
                "snapshot": False,
                "ts_ms": None,
            },
            "event_id": str(uuid.uuid4()),
        }
        row = after or before or {}
        key = "|".join(str(row.get(k)) for k in entry.key_fields).encode()
        self.raw(record.topic, (encode or self.encoder(record))(event), key)

    def raw(self, topic: str, value: bytes | None, key: bytes = b"k") -> None:
        self.producer.produce(topic, value, key)

    def flush(self) -> None:
        assert self.producer.flush(30) == 0


def start_sink(settings: Settings) -> StoreSink:
    sink = build_sink(settings, BusMetrics(CollectorRegistry()))
    sink.subscribe()
    return sink


def drive(sink: StoreSink, until: Callable[[], bool], timeout_s: float = 60.0) -> None:
    """Run the sink's loop until ``until()`` holds."""
    deadline = time.monotonic() + timeout_s
    while not until():
        assert time.monotonic() < deadline, "sink did not get there in time"
        sink.step(200, 0.2)


def history(sink: StoreSink, rid: str) -> int:
    return sink.store.counts().get(rid, {}).get("history", 0)


def records_of(bus) -> dict[str, CatalogRecord]:
    return {r.resource.code: r for r in file_records(bus.settings)[0]}


def send_demo(source: Source, records: dict[str, CatalogRecord], n: int) -> dict[str, int]:
    """n demo changes of the three resources; the changes sent per resource id."""
    sent: dict[str, int] = {}
    for c in DemoFeed(seed=11).changes(n):
        record = records[c.resource.split(".")[1]]
        source.send(record, c.op, c.before, c.after, c.position)
        sent[record.resource_id] = sent.get(record.resource_id, 0) + 1
    source.flush()
    return sent


@pytest.fixture
def sink_settings(bus, store_url) -> Settings:
    return bus.settings.model_copy(update={"store_url": store_url})


def test_stores_two_resources_and_dead_letters_poison_with_its_reason(bus, sink_settings):
    s = sink_settings
    records = records_of(bus)
    residents, enterprises, enrolments = (
        records["resident_population"],
        records["enterprise_registration"],
        records["social_insurance_enrolment"],
    )
    stray = f"gov.psb_{bus.tag}.no_such_resource"
    ensure_topics(make_admin(s), [source_topic_spec(stray, s)])
    dlq_start = end_offsets(s, [DLQ])
    sink = start_sink(s)
    source = Source(s)
    # Enrolments' catalog record becomes unreadable: its events must stop, not flow on.
    source.raw(CATALOG, b"{not a catalog record", enrolments.resource_id.encode())
    source.flush()
    drive(sink, lambda: enrolments.resource_id in sink.view.blocked)

    sent = send_demo(source, records, 300)
    other = list(DemoFeed(seed=3).changes(400))
    person = other[0].after
    firm = next(c.after for c in other if c.op == "c" and c.resource.startswith("samr."))
    source.send(residents, "d", None, None, "psb-hukou:lsn:9999999990")  # delete, no before
    source.send(enterprises, "u", firm, None, "samr-qydj:row:9999999990")  # update, no after
    source.raw(residents.topic, b"not avro at all")
    bad_types = copy.deepcopy(residents.value_schema)
    next(f for f in bad_types["fields"] if f["name"] == "updated_at")["type"] = "string"
    wrong = source.encoder(
        CatalogRecord(resource=residents.resource, value_schema=bad_types, schema_version=1),
        subject=f"{residents.topic}-wrong-types-value",
    )
    source.send(residents, "c", None, dict(person, updated_at="today"), "p:1", encode=wrong)
    source.send(residents, "c", None, person, "psb-hukou:lsn:9999999991")  # a good one
    source.raw(stray, source.encoder(residents)(_event(person)))
    source.flush()

    rid_res, rid_ent = residents.resource_id, enterprises.resource_id
    drive(sink, lambda: history(sink, rid_res) == sent[rid_res] + 1)
    drive(sink, lambda: history(sink, rid_ent) == sent[rid_ent])
    drive(sink, lambda: group_lag(s, s.sink_group, s.source_pattern) == 0)
    assert history(sink, enrolments.resource_id) == 0

    letters = [
        (header_map(m.headers()), m)
        for m in read_range(s, dlq_start, end_offsets(s, [DLQ]))
        if bus.tag in header_map(m.headers()).get("govbus.source.topic", "")
    ]
    assert {h["govbus.stage"] for h, _ in letters} == {"sink"}
    reasons = {h["govbus.reason"] for h, _ in letters}
    assert reasons == {
        "delete_without_before",
        "missing_after",
        "not_avro",
        "schema_resolution",
        "unknown_resource",
        "catalog_unreadable",
    }
    unreadable = [h for h, _ in letters if h["govbus.reason"] == "catalog_unreadable"]
    assert len(unreadable) == sent[enrolments.resource_id]  # every one, none dropped
    garbage = next(m for h, m in letters if h["govbus.reason"] == "not_avro")
    assert garbage.topic() == DLQ and b"not avro at all" not in garbage.value()
    assert json.loads(garbage.value())["source"]["topic"] == residents.topic
    # The update without after names its before's fields, the legal representative's ID masked.
    (no_after,) = [
        json.loads(m.value()) for h, m in letters if h["govbus.reason"] == "missing_after"
    ]
    assert set(no_after["record"]["before"]) == set(firm)
    assert all(find_resident_ids(m.value()) == [] for _, m in letters)
    sink.close()


def _event(row: dict) -> dict:
    return {
        "before": None,
        "after": row,
        "op": "c",
        "ts_ms": 1,
        "source": {
            "provider": "psb",
            "resource": "no_such_resource",
            "system": "test",
            "position": "1",
            "snapshot": False,
            "ts_ms": None,
        },
        "event_id": str(uuid.uuid4()),
    }


def test_new_resource_and_schema_version_are_stored_without_restart(bus, pg_url):
    s = bus.settings.model_copy(update={"store_url": pg_url})
    residents = records_of(bus)["resident_population"]
    sink = start_sink(s)
    sink.step(10, 0.2)

    schema = copy.deepcopy(residents.value_schema)
    schema["name"] = "MigrantPopulation"
    schema["fields"].append({"name": "household_size", "type": "int", "default": 1})
    fields = dict(residents.resource.fields)
    fields["household_size"] = FieldSpec(sensitivity=Sensitivity.L3, description="户人数")
    entry = residents.resource.model_copy(update={"code": "migrant_population", "fields": fields})
    v1 = CatalogRecord(resource=entry, value_schema=schema, schema_version=1)
    publish_records(s, [v1])  # what the control plane's outbox does for a new resource
    source = Source(s)
    people = [c.after for c in DemoFeed(seed=5).changes(40) if c.op == "c" and "gender" in c.after]
    for i, person in enumerate(people[:10]):
        source.send(v1, "c", None, dict(person, household_size=3), f"lsn:{i}")
    source.flush()
    drive(sink, lambda: history(sink, v1.resource_id) == 10)
    table = f"psb_{bus.tag}_migrant_population"

    v2_schema = copy.deepcopy(schema)
    next(f for f in v2_schema["fields"] if f["name"] == "household_size")["type"] = "long"
    v2_schema["fields"].append({"name": "email", "type": ["null", "string"], "default": None})
    fields["email"] = FieldSpec(sensitivity=Sensitivity.L3, description="电子邮箱")
    v2_entry = entry.model_copy(update={"fields": fields})
    v2 = CatalogRecord(resource=v2_entry, value_schema=v2_schema, schema_version=2)
    publish_records(s, [v2])
    big = dict(people[0], household_size=2**40, email="zhang@example.cn")
    source.send(v2, "u", dict(people[0], household_size=3, email=None), big, "lsn:20")
    # A provider still on version 1 goes on writing: read with version 2, email is null.
    source.send(v1, "u", dict(people[1], household_size=3), dict(people[1], household_size=4),
                "lsn:21")  # fmt: skip
    source.flush()
    drive(sink, lambda: history(sink, v1.resource_id) == 12)

    columns = {c["name"]: c for c in inspect(sink.store.engine).get_columns(table)}
    assert "email" in columns and str(columns["household_size"]["type"]) == "BIGINT"
    with sink.store.engine.connect() as conn:
        rows = {
            r.id_number: r
            for r in conn.execute(text(f'SELECT id_number, household_size, email FROM "{table}"'))
        }
    assert rows[people[0]["id_number"]][1:] == (2**40, "zhang@example.cn")
    assert rows[people[1]["id_number"]][1:] == (4, None)
    sink.close()


def test_offsets_are_committed_only_after_the_batch_is_written(bus, tmp_path):
    s = bus.settings.model_copy(update={"store_url": f"sqlite:///{tmp_path / 'store.db'}"})
    records = records_of(bus)
    sink = start_sink(s)
    residents = records["resident_population"]
    history_table = f"psb_{bus.tag}_resident_population_history"
    with sink.store.engine.begin() as conn:
        conn.execute(text(f'DROP TABLE "{history_table}"'))  # the write will fail
    source = Source(s)
    sent = send_demo(source, records, 100)
    with pytest.raises(SQLAlchemyError):
        drive(sink, lambda: False, timeout_s=30)
    sink.close()
    # Nothing of the residents' topic is committed: no batch holding one of them was written.
    lag = group_lag(s, s.sink_group, re.escape(residents.topic))
    assert lag == sent[residents.resource_id]

    again = start_sink(s)  # tables made again from the catalog
    drive(again, lambda: group_lag(s, s.sink_group, s.source_pattern) == 0)
    for rid, n in sent.items():
        assert history(again, rid) == n, rid  # every change, none lost to the failed batch
    assert residents.resource_id in sent
    again.close()


def recreate_topic(settings: Settings, topic: str) -> None:
    """Delete and create ``topic`` again, once the sink's group has lost its offsets on it."""
    admin = make_admin(settings)
    partitions = partitions_of(admin, lambda t: t == topic, 10)
    for future in admin.delete_topics([topic], operation_timeout=30).values():
        future.result()

    # The group coordinator drops a deleted topic's committed offsets a little after the
    # delete; a sink starting before that resumes the new partitions at the old offsets.
    def forgotten() -> bool:
        found = committed_offsets(admin, settings.sink_group, partitions, 10)
        return all(offset < 0 for offset in found.values())

    wait_until(forgotten, 60, f"the sink group's offsets on deleted {topic} dropped")
    deadline = time.monotonic() + 60
    while True:  # the broker takes a moment to forget a deleted topic
        try:
            ensure_topics(admin, [source_topic_spec(topic, settings)])
            return
        except Exception:  # noqa: BLE001 - retried until the deadline
            assert time.monotonic() < deadline, f"{topic} not recreated"
            time.sleep(0.5)


def test_a_recreated_topic_replays_nothing_and_its_new_changes_apply(bus, tmp_path):
    s = bus.settings.model_copy(update={"store_url": f"sqlite:///{tmp_path / 'store.db'}"})
    residents = records_of(bus)["resident_population"]
    changes = [c for c in DemoFeed(seed=21).changes(400) if c.resource.startswith("psb.")]
    first, later = changes[:120], changes[120:]
    touched = {(c.after or c.before)["id_number"] for c in first}
    assert any((c.after or c.before)["id_number"] in touched for c in later)
    source = Source(s)
    sink = start_sink(s)
    for c in first:
        source.send(residents, c.op, c.before, c.after, c.position)
    source.flush()
    drive(sink, lambda: history(sink, residents.resource_id) == len(first))
    sink.close()
    sent = list(read_range(s, {}, end_offsets(s, [residents.topic])))

    # The topic is recreated: offsets start again at 0, below those of the stored rows. The
    # provider goes on with new changes, then its connector sends the old ones again.
    recreate_topic(s, residents.topic)
    for c in later:
        source.send(residents, c.op, c.before, c.after, c.position)
    source.flush()
    sink = start_sink(s)
    drive(sink, lambda: group_lag(s, s.sink_group, re.escape(residents.topic)) == 0)
    for m in sent:
        source.raw(residents.topic, m.value(), m.key())
    source.flush()
    drive(sink, lambda: group_lag(s, s.sink_group, re.escape(residents.topic)) == 0)

    assert history(sink, residents.resource_id) == len(changes)  # the replay added nothing
    final: dict[str, tuple[str, str]] = {}
    for c in changes:
        row = c.after or c.before
        final[row["id_number"]] = (c.op, row["address"])
    table = f"psb_{bus.tag}_resident_population"
    with sink.store.engine.connect() as conn:
        query = text(f'SELECT id_number, _op, address FROM "{table}"')
        stored = {key: (op, address) for key, op, address in conn.execute(query)}
    # The later changes applied, though Kafka numbered them lower than the earlier ones.
    assert stored == final
    sink.close()
