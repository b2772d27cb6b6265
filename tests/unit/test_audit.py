from __future__ import annotations

import datetime as dt
import json

from prometheus_client import CollectorRegistry

from services.audit_verify import Delivery, uncovered
from services.common.audit import AuditChain, share_record, verify_chains
from services.common.metrics import BusMetrics
from services.common.topics import AUDIT
from services.router.forwarder import BatchForwarder, OutputWriter
from services.router.routing import RawMessage
from tests.unit.fixtures import RESIDENTS, catalog, envelope, resident
from tests.unit.test_publisher import RecordingProducer
from tests.unit.test_routing import make_router

KEY = b"the-authority-audit-key"


def sealed(chain: AuditChain, n: int, grant: str = "g") -> list[dict]:
    return [
        chain.seal(share_record(grant, "mca", RESIDENTS, [(f"{chain.chain}-e{i}", {"k": i})], i))
        for i in range(n)
    ]


def on_topic(records: list[dict]) -> list[tuple[tuple[str, int, int], bytes]]:
    """Records as the audit topic holds them: at consecutive offsets of partition 0."""
    return [((AUDIT, 0, i), json.dumps(r).encode()) for i, r in enumerate(records)]


def test_interleaved_chains_of_several_writers_all_verify():
    a, b = AuditChain(KEY), AuditChain(KEY)
    ra, rb = sealed(a, 3), sealed(b, 3)
    report = verify_chains(on_topic([ra[0], rb[0], ra[1], rb[1], rb[2], ra[2]]), KEY)
    assert report.ok
    assert report.chains == {a.chain: 3, b.chain: 3}
    assert ("g", f"{a.chain}-e2") in report.covered and len(report.covered) == 6


def test_an_edited_record_is_named_with_its_chain_and_position():
    chain = AuditChain(KEY)
    records = sealed(chain, 5)
    records[2] = {**records[2], "consumer": "someone-else"}
    report = verify_chains(on_topic(records), KEY)
    (broken,) = report.breaks
    assert (broken.chain, broken.position) == (chain.chain, (AUDIT, 0, 2))
    assert "MAC" in broken.why
    # Nothing from the break on counts as audited.
    assert report.chains == {chain.chain: 2}
    assert ("g", f"{chain.chain}-e3") not in report.covered


def test_a_record_sealed_without_the_audit_key_is_forged():
    chain = AuditChain(KEY)
    records = sealed(chain, 2)
    guessed = b"a key the writer of the topic guessed"
    forger = AuditChain(guessed, chain.chain, 2, records[-1]["mac"])
    records += sealed(forger, 1, grant="stolen")
    (broken,) = verify_chains(on_topic(records), KEY).breaks
    assert broken.position == (AUDIT, 0, 2) and "MAC" in broken.why


def test_a_removed_or_replayed_record_breaks_the_sequence_at_the_next_one():
    chain = AuditChain(KEY)
    records = sealed(chain, 4)
    (removed,) = verify_chains(on_topic(records[:1] + records[2:]), KEY).breaks
    assert removed.position == (AUDIT, 0, 1) and "sequence 2 where 1" in removed.why
    (replayed,) = verify_chains(on_topic(records[:3] + records[1:2]), KEY).breaks
    assert replayed.position == (AUDIT, 0, 3) and "sequence 1 where 3" in replayed.why


def test_a_record_that_is_not_a_sealed_record_is_named():
    chain = AuditChain(KEY)
    raw = on_topic(sealed(chain, 1))
    raw += [((AUDIT, 0, 1), b"{not json"), ((AUDIT, 0, 2), json.dumps({"kind": "live"}).encode())]
    report = verify_chains(raw, KEY)
    assert [(b.position[2], b.why.split(":")[0]) for b in report.breaks] == [
        (1, "not JSON"),
        (2, "not sealed"),
    ]


def test_deliveries_not_named_by_a_verified_audit_record_are_uncovered():
    covered = {("g1", "e1"), ("g2", "e2")}
    good = Delivery(("deliver.mca.x", 0, 0), "g1", "e1")
    other_grant = Delivery(("deliver.mca.x", 0, 1), "g2", "e1")
    unreadable = Delivery(("deliver.mca.x", 0, 2), None, None, "unreadable delivery")
    assert uncovered([good, other_grant, unreadable], covered) == [other_grant, unreadable]


class FlushingProducer(RecordingProducer):
    def flush(self, _timeout=None):
        return 0


def test_forwarder_audits_each_delivery_under_its_grant_on_the_writers_own_chain():
    router, _c, encode = make_router()
    entry = catalog()[RESIDENTS]
    events = [envelope("c", after=resident(birth_date="2015-01-02")) for _ in range(3)]
    batch = [RawMessage(entry.topic, 0, i, b"k", encode(e)) for i, e in enumerate(events)]
    producer = FlushingProducer()
    chain = AuditChain(KEY)
    forwarder = BatchForwarder(
        router, OutputWriter(producer, chain), BusMetrics(CollectorRegistry())
    )
    forwarder.forward(batch, dt.date(2026, 11, 26))

    sent = [s for s in producer.sent if s["topic"] == AUDIT]
    audits = [json.loads(s["value"]) for s in sent]
    assert {a["consumer"] for a in audits} == {"mca", "edu"}
    for record in audits:
        assert record["event_ids"] == [e["event_id"] for e in events]
        assert all(len(k["id_number"]) == 32 for k in record["keys"])  # masked as delivered
    assert {s["key"] for s in sent} == {chain.chain.encode()}  # one chain, one partition
    assert [a["seq"] for a in audits] == [0, 1]
    assert verify_chains(on_topic(audits), KEY).ok
    assert not verify_chains(on_topic(audits), b"another key").ok
