"""The running router follows the catalog: resources created later, unknown topics, and every
schema change the registry accepts, with no restart and no good event dead-lettered."""

from __future__ import annotations

import datetime as dt
import time
import uuid

import httpx

from services.common.catalog import CatalogEntry, Grant, GrantState
from services.common.catalog_feed import CatalogRecord
from services.common.dead_letter import header_map
from services.common.grant_feed import GrantRecord
from services.common.kafka_clients import (
    ensure_topics,
    make_admin,
    make_producer,
    source_topic_spec,
)
from services.common.registry_client import make_registry_client
from services.common.schemas import envelope_schema, key_schema, source_schema
from services.common.serde import AvroCodec
from services.common.topic_reader import end_offsets, read_range
from services.common.topics import DLQ, key_subject, value_subject
from services.ingest.publisher import Change, make_envelope
from tests.integration.conftest import wait_until
from tests.integration.flow import decode_all, read_topics
from tests.integration.seed import publish_records
from tests.integration.test_end_to_end import wait_drained_router

L1 = {"sensitivity": "L1", "description": "测试字段"}
KIND_V1 = {
    "type": "enum",
    "name": "Kind",
    "symbols": ["UNKNOWN", "LOW", "HIGH"],
    "default": "UNKNOWN",  # an older reader maps a symbol it lacks here (FORWARD)
}


def schema_v1() -> dict:
    return {
        "type": "record",
        "name": "Inspection",
        "namespace": "govbus.test",
        "fields": [
            {"name": "record_id", "type": "string"},
            {"name": "level", "type": "int"},
            {"name": "kind", "type": KIND_V1},
            {"name": "note", "type": ["null", "string"], "default": None},
            {"name": "region_code", "type": "string"},
        ],
    }


def schema_v2() -> dict:
    """``note`` removed, ``level`` widened to long, ``comment`` added with a default."""
    fields = [f for f in schema_v1()["fields"] if f["name"] != "note"]
    fields[1] = {"name": "level", "type": "long"}
    fields.append({"name": "comment", "type": "string", "default": ""})
    return {**schema_v1(), "fields": fields}


def schema_v3() -> dict:
    """An enum symbol added (under FORWARD)."""
    schema = schema_v2()
    schema["fields"][2] = {
        "name": "kind",
        "type": {**KIND_V1, "symbols": [*KIND_V1["symbols"], "MEDIUM"]},
    }
    return schema


def inspection_entry(tag: str, code: str) -> CatalogEntry:
    return CatalogEntry(
        code=code,
        provider=f"samr_{tag}",
        name_zh="抽查检查结果",
        name_en="Inspection results",
        category="government",
        update_frequency="realtime",
        share_type="unconditional",
        schema_file=f"{code}.avsc",
        key_fields=("record_id",),
        fields={n: L1 for n in ("record_id", "level", "kind", "note", "region_code", "comment")},
    )


def inspection_grant(tag: str, entry: CatalogEntry) -> GrantRecord:
    grant = Grant(
        id=f"mca-{entry.code.replace('_', '-')}-{tag}",
        consumer=f"mca_{tag}",
        resource=entry.resource_id,
        purpose="测试",
        legal_basis="测试",
        # ``comment`` comes with schema v2: delivered from then on, with its default for events
        # written before it existed (read with the current schema).
        fields=("record_id", "level", "kind", "note", "region_code", "comment"),
        valid_from=dt.date(2020, 1, 1),
        valid_until=dt.date(2099, 12, 31),
        state=GrantState.ACTIVE,
    )
    return GrantRecord(grant=grant, activation=1)


class Provider:
    """Publishes change events of one resource with one schema version, registering the key and
    envelope schemas the way the ingest publisher does."""

    def __init__(self, bus, entry: CatalogEntry, schema: dict) -> None:
        codec = AvroCodec(make_registry_client(bus.settings))
        self._entry = entry
        self._key = codec.encoder(key_subject(entry.topic), key_schema(entry, schema))
        self._value = codec.encoder(
            value_subject(entry.topic),
            envelope_schema(schema, source_schema(bus.settings.schemas_dir)),
        )
        self._producer = make_producer(bus.settings)

    def send(self, rows: list[dict]) -> list[str]:
        sent = []
        for row in rows:
            event_id = f"ev-{uuid.uuid4().hex[:12]}"
            change = Change(self._entry.resource_id, "c", None, row, event_id, "inspection")
            envelope = make_envelope(change, self._entry, int(time.time() * 1000), event_id)
            self._producer.produce(
                self._entry.topic, self._value(envelope), self._key({"record_id": row["record_id"]})
            )
            sent.append(event_id)
        assert self._producer.flush(30) == 0
        return sent


def _letters_from(bus, start, topic: str) -> list[dict]:
    s = bus.settings
    found = [header_map(m.headers()) for m in read_range(s, start, end_offsets(s, [DLQ]))]
    return [h for h in found if h.get("govbus.source.topic") == topic]


def _deliveries(bus, topic: str) -> dict[str, dict]:
    return {
        v["event_id"]: v for _, v in decode_all(bus.settings, read_topics(bus.settings, [topic]))
    }


def test_a_resource_created_while_the_router_runs_is_routed_and_an_unknown_topic_dead_lettered(bus):
    s = bus.settings
    bus.start("router")
    dlq_start = end_offsets(s, [DLQ])
    entry = inspection_entry(bus.tag, "inspection_late")
    record = inspection_grant(bus.tag, entry)
    created = time.monotonic()
    publish_records(
        s, [CatalogRecord(resource=entry, value_schema=schema_v1(), schema_version=1)], [record]
    )
    rows = [
        {"record_id": f"r{i}", "level": i, "kind": "LOW", "note": None, "region_code": "340104"}
        for i in range(20)
    ]
    sent = Provider(bus, entry, schema_v1()).send(rows)
    stray = f"gov.samr_{bus.tag}.not_in_the_catalog"
    ensure_topics(make_admin(s), [source_topic_spec(stray, s)])
    producer = make_producer(s)
    producer.produce(stray, b"\x00\x00\x00\x00\x01whatever", b"k")
    assert producer.flush(30) == 0

    topic = record.grant.topic
    wait_until(lambda: set(sent) <= set(_deliveries(bus, topic)), 60, "new resource delivered")
    print(f"\nnew resource: delivered {time.monotonic() - created:.1f}s after its catalog record")
    wait_until(lambda: _letters_from(bus, dlq_start, stray), 60, "unknown topic dead-lettered")
    (letter,) = _letters_from(bus, dlq_start, stray)
    assert letter["govbus.reason"] == "unknown_resource" and letter["govbus.stage"] == "router"
    assert _letters_from(bus, dlq_start, entry.topic) == []


def test_every_schema_change_the_registry_accepts_reads_old_and_new_events_alike(bus):
    s = bus.settings
    entry = inspection_entry(bus.tag, "inspection_result")
    record = inspection_grant(bus.tag, entry)
    topic = record.grant.topic

    def version(schema: dict, n: int) -> CatalogRecord:
        return CatalogRecord(resource=entry, value_schema=schema, schema_version=n)

    def row(i: int, kind: str = "HIGH", **extra) -> dict:
        return {
            "record_id": f"r{i}",
            "level": 40_000 + i,
            "kind": kind,
            "region_code": "340104",
            **extra,
        }

    publish_records(s, [version(schema_v1(), 1)], [record])
    bus.start("router")
    dlq_start = end_offsets(s, [DLQ])
    v1 = Provider(bus, entry, schema_v1())
    old = v1.send([row(i, note=f"n{i}") for i in range(5)])

    # v2: a field removed, int widened to long, a field added with a default (BACKWARD).
    publish_records(s, [version(schema_v2(), 2)])
    v2 = Provider(bus, entry, schema_v2())  # registered: the registry accepts the change
    new = v2.send([row(i, comment="c") for i in range(5, 10)])
    # v3: an enum symbol added, under FORWARD.
    subject = value_subject(entry.topic)
    level = {"compatibility": "FORWARD"}
    auth = (s.registry_user, s.registry_password.get_secret_value())
    put = httpx.put(f"{s.registry_url}/config/{subject}", json=level, auth=auth)
    assert put.status_code == 200, put.text
    publish_records(s, [version(schema_v3(), 3)])
    v3 = Provider(bus, entry, schema_v3())
    # From here on the router reads with the v3 schema. (v2 and v3 may reach it together, and
    # it then compiles v3 only: its log says which version it applied.)
    applied = f"resource {entry.resource_id} at schema version 3"
    wait_until(lambda: applied in bus.processes.log("router"), 60, "router on v3")
    newest = v3.send([row(10, kind="MEDIUM", comment="c")])
    late_old = v1.send([row(i, note=f"late{i}") for i in range(11, 14)])  # an old provider
    wait_drained_router(bus)

    delivered = _deliveries(bus, topic)
    assert _letters_from(bus, dlq_start, entry.topic) == []
    missing = set(old + new + newest + late_old) - set(delivered)
    assert not missing, f"{len(missing)} events not delivered"
    assert delivered[newest[0]]["record"]["kind"] == "MEDIUM"
    assert delivered[newest[0]]["record"]["comment"] == "c"
    for event_id in late_old:  # written with v1, read with v3: no note, level as long
        record_out = delivered[event_id]["record"]
        assert "note" not in record_out and record_out["level"] >= 40_011
        assert record_out["kind"] == "HIGH" and record_out["comment"] == ""  # its default
