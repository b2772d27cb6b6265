"""Backfill on activation, the pure part: the seam and the current state a consumer receives."""

from __future__ import annotations

import json
import threading

from services.common.plan import compile_plan, plan_delivery
from services.common.schemas import value_schema
from services.common.serde import EncodeError
from services.router.backfill import (
    Resume,
    backfill_deliveries,
    latest_states,
    progress,
    progress_key,
    resume,
    seam,
    snapshot_dead_letter,
    snapshot_event,
    snapshot_failure,
)
from services.router.backfill_state import KeyGate
from tests.unit.fixtures import RESIDENTS, SCHEMAS, catalog, envelope, grant, resident

TOPIC = "gov.psb.resident_population"
P0, P1, P2 = (TOPIC, 0), (TOPIC, 1), (TOPIC, 2)


def test_seam_is_the_routed_position_else_the_committed_offset_else_the_beginning():
    routed = {P0: 120}
    committed = {P0: 100, P1: 57, P2: -1001}  # -1001: librdkafka's "no committed offset"
    assert seam([P0, P1, P2], routed, committed) == {P0: 120, P1: 57, P2: 0}
    assert seam([P0, P1], {}, {}) == {P0: 0, P1: 0}


def _plan():
    entry = catalog()[RESIDENTS]
    return compile_plan(
        grant("mca-resident-population"),
        entry,
        value_schema(entry, SCHEMAS),
        b"unit-test-master-secret",
    )


def _changes():
    """Key by key: what happened to each record below the seam."""
    a, a2 = resident(), resident(phone="13900000000", name="王建军")
    b = resident(id_number="340104201001010012", name="李四")
    out_of_region = resident(id_number="340204198001010011", region_code="340204")
    leaves = resident(id_number="340104198001010027")
    back = resident(id_number="340104198501010015", name="赵六")
    return [
        (b"a", envelope("c", after=a)),
        (b"b", envelope("c", after=b)),
        (b"x", envelope("c", after=out_of_region)),
        (b"l", envelope("c", after=leaves)),
        (b"a", envelope("u", before=a, after=a2)),  # updated: the update is the state
        (b"b", envelope("d", before=b)),  # deleted: gone
        (b"l", envelope("u", before=leaves, after={**leaves, "household_type": "其他"})),
        (b"r", envelope("d", before=back)),  # deleted, then created again
        (b"r", envelope("c", after=back)),
    ]


def test_latest_state_keeps_the_last_change_per_key_and_drops_deleted_keys():
    changes = _changes()
    latest = latest_states(changes)
    assert set(latest) == {b"a", b"x", b"l", b"r"}
    assert latest[b"a"] is changes[4][1]
    assert latest[b"r"] is changes[8][1]


def test_backfill_is_the_current_state_filtered_and_masked_as_op_r():
    changes = _changes()
    planned = backfill_deliveries(_plan(), latest_states(changes).values())
    assert planned.failures == []
    by_event = {d.value["event_id"]: d for d in planned.deliveries}
    # Out of the filter's region, or moved out of its household types: not delivered.
    assert set(by_event) == {changes[4][1]["event_id"], changes[8][1]["event_id"]}
    a = by_event[changes[4][1]["event_id"]]
    assert a.value["op"] == "r" and a.value["grant_id"] == "mca-resident-population"
    assert a.value["ts_ms"] == changes[4][1]["ts_ms"]
    record = a.value["record"]
    assert set(record) == {n for n, _ in _plan().fields}
    assert record["name"] != "王建军" and record["name"].startswith("王")  # partial
    assert record["birth_date"] == "1986-05"  # generalized to year-month
    assert len(record["id_number"]) == 32 and record["id_number"] != resident()["id_number"]
    assert a.key == {"id_number": record["id_number"]}


def test_a_snapshot_read_carries_the_latest_change_s_after_and_id():
    change = envelope("u", before=resident(), after=resident(name="王二"))
    snap = snapshot_event(change)
    assert snap["op"] == "r" and snap["before"] is None
    assert snap["after"] == change["after"] and snap["event_id"] == change["event_id"]


def test_a_record_the_plan_cannot_deliver_is_reported_not_raised():
    broken = envelope("c", after={k: v for k, v in resident().items() if k != "gender"})
    planned = backfill_deliveries(_plan(), [broken])
    assert planned.deliveries == []
    assert planned.failures and planned.failures[0][0] == broken["event_id"]


def test_a_snapshot_never_follows_the_live_delivery_of_its_key():
    gate, out = KeyGate(), []
    job, other_job = threading.Event(), threading.Event()
    gate.live(b"k1", lambda: out.append("live k1"))
    assert gate.went_live(b"k1") and not gate.went_live(b"k2")
    gate.snapshot(b"k1", lambda: out.append("snap k1"), job)  # older than the live: skipped
    gate.snapshot(b"k2", lambda: out.append("snap k2"), job)
    gate.live(b"k2", lambda: out.append("live k2"))  # after its snapshot: delivered
    gate.stop(job)  # its partition was handed over: that job sends nothing more
    gate.snapshot(b"k3", lambda: out.append("snap k3"), job)
    gate.snapshot(b"k4", lambda: out.append("snap k4"), other_job)  # another partition's job
    gate.live(b"k3", lambda: out.append("live k3"))  # live always goes out
    assert out == ["live k1", "snap k2", "live k2", "snap k4", "live k3"]


def test_live_waits_while_the_snapshot_of_its_key_is_being_produced():
    gate, out = KeyGate(), []

    def live():
        gate.live(b"k", lambda: out.append("live"))

    def snapshot_produce():
        # The router's loop delivers the same key meanwhile: it must come after the snapshot,
        # or the consumer would end with the older state.
        racer = threading.Thread(target=live)
        racer.start()
        racer.join(timeout=0.5)
        out.append("snap")
        threads.append(racer)

    threads: list[threading.Thread] = []
    gate.snapshot(b"k", snapshot_produce, threading.Event())
    threads[0].join(timeout=10)
    assert out == ["snap", "live"]


def test_a_failed_snapshot_is_a_dead_letter_naming_the_grant_and_the_stored_change():
    change = snapshot_event(envelope("c", after=resident(birth_date="unknown")))
    try:
        plan_delivery(_plan(), change)
    except ValueError as exc:
        failure = exc
    entry = catalog()[RESIDENTS]
    letter = snapshot_dead_letter("g-1", failure, change, entry, ("t", 2, 41))
    assert (letter.stage, letter.reason) == ("router", "masking_failed")
    assert letter.detail.startswith("grant g-1 backfill: masking failed:")
    # The source position, never the record key (an ID number), keys the dead letter ...
    assert letter.key() == b"t:2:41"
    body = json.loads(letter.value())
    assert body["source"] == {"topic": "t", "partition": 2, "offset": 41}
    # ... and its record names every field, with the L4 ID number masked and L1/L2 kept.
    assert set(body["record"]["after"]) == set(change["after"])
    assert (
        body["record"]["after"]["id_number"]
        == resident()["id_number"][:6] + "*" * 8 + (resident()["id_number"][-4:])
    )
    assert body["record"]["after"]["gender"] == resident()["gender"]
    assert resident()["id_number"] not in letter.value().decode()
    assert (letter.topic, letter.partition, letter.offset) == ("t", 2, 41)
    assert dict(letter.headers())["govbus.grant"] == b"g-1"
    assert snapshot_failure(KeyError("gender")) == ("missing_field", "record lacks field 'gender'")
    assert snapshot_failure(EncodeError("schema_mismatch", "bad"))[0] == "schema_mismatch"


def test_a_partitions_backfill_taken_over_goes_on_after_its_last_key_skipping_what_went_live():
    part = ("gov.psb.resident_population", 1)
    assert progress_key("g@2", part) == "g@2#gov.psb.resident_population:1"
    begun = progress("g", "g@2", part, Resume(100, ["34010119900101001X"]), 2000, 1, done=False)
    assert begun["seam"] == {"gov.psb.resident_population:1": 100}
    taken_over = resume(begun, 250)  # the new owner's seam: where the old owner's commits ended
    assert taken_over == Resume(100, ["34010119900101001X"])
    assert taken_over.sent_live(100) and taken_over.sent_live(249)  # routed live since 100
    assert not taken_over.sent_live(99)  # below the first seam: its snapshot is due
    assert resume(begun, 99) == Resume(99)  # offsets went back: start over
    assert resume({**begun, "done": True}, 250) == Resume(250)
    assert resume(None, 5) == Resume(5)
    fresh = resume(None, 5)
    assert not any(fresh.sent_live(o) for o in range(5))  # a fresh run skips nothing below
