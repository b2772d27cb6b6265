from __future__ import annotations

import datetime as dt
import json

from prometheus_client import CollectorRegistry

from services.common.audit import GENESIS, first_broken_link, seal, share_record
from services.common.metrics import BusMetrics
from services.common.topics import AUDIT
from services.router.forwarder import BatchForwarder, OutputWriter
from services.router.routing import RawMessage
from tests.unit.fixtures import RESIDENTS, catalog, envelope, resident
from tests.unit.test_publisher import RecordingProducer
from tests.unit.test_routing import make_router


def chain(n: int) -> list[dict]:
    records, head = [], GENESIS
    for i in range(n):
        record = seal(share_record("g", "mca", RESIDENTS, [(f"e{i}", {"k": str(i)})], i), head)
        head = record["hash"]
        records.append(record)
    return records


def test_an_intact_chain_verifies():
    assert first_broken_link(chain(5)) is None


def test_editing_or_removing_a_record_breaks_the_chain_there():
    edited = chain(5)
    edited[2] = {**edited[2], "consumer": "someone-else"}
    assert first_broken_link(edited) == 2
    removed = chain(5)
    del removed[3]
    assert first_broken_link(removed) == 3


class FlushingProducer(RecordingProducer):
    def flush(self, _timeout=None):
        return 0


def test_forwarder_audits_each_delivery_under_its_grant_and_continues_the_chain():
    router, _c, encode = make_router()
    entry = catalog()[RESIDENTS]
    events = [envelope("c", after=resident(birth_date="2015-01-02")) for _ in range(3)]
    batch = [RawMessage(entry.topic, 0, i, b"k", encode(e)) for i, e in enumerate(events)]
    producer = FlushingProducer()
    head = chain(1)[0]["hash"]
    forwarder = BatchForwarder(
        router, OutputWriter(producer, head), BusMetrics(CollectorRegistry())
    )
    forwarder.forward(batch, dt.date(2026, 11, 26))

    audits = [json.loads(s["value"]) for s in producer.sent if s["topic"] == AUDIT]
    assert {a["consumer"] for a in audits} == {"mca", "edu"}
    for record in audits:
        assert record["event_ids"] == [e["event_id"] for e in events]
        assert all(len(k["id_number"]) == 32 for k in record["keys"])  # masked as delivered
    assert audits[0]["prev_hash"] == head
    assert first_broken_link(audits, start=head) is None
