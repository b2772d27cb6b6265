"""Bad input lands in the dead-letter topic with its reason and origin; the stream goes on."""

from __future__ import annotations

import json
import struct

from services.common.dead_letter import header_map
from services.common.kafka_clients import (
    ensure_topics,
    make_admin,
    make_producer,
    source_topic_spec,
)
from services.common.topic_reader import end_offsets, read_range
from services.common.topics import DLQ
from services.ingest.publisher import Change
from tests.integration.flow import (
    decode_all,
    demo_changes,
    expected,
    publish,
    read_topics,
)
from tests.integration.test_end_to_end import wait_drained_router


def test_garbage_unknown_schema_and_unknown_resource_go_to_the_dlq_and_good_events_flow(bus):
    s = bus.settings
    residents = f"gov.psb_{bus.tag}.resident_population"
    stray = f"gov.psb_{bus.tag}.no_such_resource"
    ensure_topics(make_admin(s), [source_topic_spec(stray, s)])
    dlq_start = end_offsets(s, [DLQ])
    first = publish(s, demo_changes(bus.tag, 50, seed=5))  # registers the schemas, creates topics
    bus.start("router")

    producer = make_producer(s)
    producer.produce(residents, b"this is not avro", b"k1")
    producer.produce(residents, struct.pack(">bI", 0, 99_999) + b"\x02\x04", b"k2")
    valid_envelope = None
    for m in read_topics(s, [residents])[:1]:
        valid_envelope = m.value()
    producer.produce(stray, valid_envelope, b"k3")
    assert producer.flush(30) == 0
    later = publish(s, demo_changes(bus.tag, 200, seed=6))
    wait_drained_router(bus)

    letters = [
        (header_map(m.headers()), m) for m in read_range(s, dlq_start, end_offsets(s, [DLQ]))
    ]
    mine = {
        h["govbus.reason"]: (h, m)
        for h, m in letters
        if bus.tag in h.get("govbus.source.topic", "")
    }
    assert set(mine) >= {"not_avro", "unknown_schema_id", "unknown_resource"}
    h, m = mine["not_avro"]
    assert h["govbus.stage"] == "router"
    assert h["govbus.source.topic"] == residents
    assert int(h["govbus.source.offset"]) >= 0 and int(h["govbus.source.partition"]) >= 0
    # The bytes stay on the source topic: the dead letter refers to them by their position.
    body = json.loads(m.value())
    assert body["source"] == {
        "topic": residents,
        "partition": int(h["govbus.source.partition"]),
        "offset": int(h["govbus.source.offset"]),
    }
    assert b"this is not avro" not in m.value() and m.key() != b"k1"
    assert mine["unknown_resource"][0]["govbus.source.topic"] == stray

    # Good events after the bad ones were all delivered.
    for topic, want in expected(s, first + later).items():
        got = {v["event_id"] for _, v in decode_all(s, read_topics(s, [topic]))}
        assert want <= got, f"{topic}: {len(want - got)} missing after bad input"


def test_invalid_id_number_is_dead_lettered_at_ingest(bus):
    s = bus.settings
    dlq_start = end_offsets(s, [DLQ])
    good = demo_changes(bus.tag, 1, seed=9)[0]
    assert good.resource.endswith("resident_population") and good.op == "c"
    bad_id = good.after["id_number"][:17] + ("0" if good.after["id_number"][17] != "0" else "1")
    bad = Change(good.resource, "c", None, {**good.after, "id_number": bad_id}, "p:1", "psb-hukou")
    assert publish(s, [bad]) == []
    letters = [header_map(m.headers()) for m in read_range(s, dlq_start, end_offsets(s, [DLQ]))]
    assert {"govbus.stage": "ingest", "govbus.reason": "invalid_id_number"}.items() <= {
        k: v for k, v in letters[-1].items()
    }.items()
