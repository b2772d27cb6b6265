"""Dead letters hold no clear ID numbers and redrive after a fix; the citizen data-use ledger.

Real broker, real router, sink and catalog service (the commands ask it whose token they get);
the `govbus` commands run as the authority would run them.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from services.common.dead_letter import header_map
from services.common.idnumbers import find_resident_ids
from services.common.kafka_clients import make_producer
from services.common.registry_client import make_registry_client
from services.common.serde import AvroCodec
from services.common.topic_reader import end_offsets, read_range
from services.common.topics import BACKFILLS, CATALOG, DLQ
from services.ingest.publisher import Change
from tests.integration.conftest import wait_until
from tests.integration.flow import (
    catalog_records,
    decode_all,
    demo_changes,
    expected,
    grant_records,
    publish,
    read_topics,
)
from tests.integration.seed import publish_records
from tests.integration.test_backfill_from_store import Source
from tests.integration.test_control_plane import (
    ADMIN_TOKEN,
    govbus,
    run_govbus,
    start_catalog_service,
)
from tests.integration.test_end_to_end import expected_hmac, wait_drained_router

# Each test runs the `govbus` command a few times, each a process of its own: on a loaded
# machine that alone can take minutes.
pytestmark = pytest.mark.timeout(900)


def _refused(env: dict[str, str], token: str, *args: str) -> str:
    done = run_govbus(env, token, *args)
    assert done.returncode != 0, f"govbus {' '.join(args)} was not refused"
    return done.stderr


def _letters(bus, start) -> list:
    """This test's dead letters since ``start``: its resources' ingest rejects and the events
    of its own topics."""
    s = bus.settings
    return [
        m
        for m in read_range(s, start, end_offsets(s, [DLQ]))
        if bus.tag in (m.key() or b"").decode()
    ]


def _delivered(bus, topic: str) -> dict[str, dict]:
    pairs = decode_all(bus.settings, read_topics(bus.settings, [topic]))
    return {value["event_id"]: value for _, value in pairs}


def test_dead_letters_hold_no_clear_id_number_and_redrive_delivers_the_fixed_record(bus):
    s = bus.settings
    env = start_catalog_service(bus)
    bus.start("router")
    dlq_start = end_offsets(s, [DLQ])
    mca = grant_records(s)[f"mca-resident-population-{bus.tag}"].grant
    residents = catalog_records(s)[mca.resource]
    secret = s.mask_secret.get_secret_value().encode()

    # Ingest rejects a change whose ID number fails its check digit: it never reaches a topic.
    published = publish(s, demo_changes(bus.tag, 300, seed=51))
    wanted = expected(s, published)[mca.topic]
    good = next(p.change for p in published if p.event_id in wanted and p.change.op == "c")
    fixed = good.after["id_number"]
    wrong = fixed[:17] + ("0" if fixed[17] != "0" else "1")
    bad = Change(good.resource, "c", None, {**good.after, "id_number": wrong}, "p:77", "psb-hukou")
    assert publish(s, [bad]) == []

    # The router dead-letters the events of a resource whose catalog record it cannot read
    # (written by the provider's own adapter: ingest would refuse them too).
    codec = AvroCodec(make_registry_client(s))
    adapter = Source(s, residents, codec)
    wait_drained_router(bus)
    producer = make_producer(s)
    producer.produce(CATALOG, b"{not a catalog record", residents.resource_id.encode())
    assert producer.flush(30) == 0

    def router_dead_lettered() -> bool:
        adapter.publish([("c", good.after)])
        return any(
            header_map(m.headers())["govbus.reason"] == "catalog_unreadable"
            for m in _letters(bus, dlq_start)
        )

    wait_until(router_dead_lettered, 90, "catalog_unreadable dead letters")

    letters = _letters(bus, dlq_start)
    for m in letters:
        seen = (m.key() or b"") + m.value() + b"".join(v for _, v in m.headers() or [])
        assert find_resident_ids(seen) == [], f"clear ID number in dead letter {m.offset()}"
    by_reason = {header_map(m.headers())["govbus.reason"]: m for m in letters}
    ingest = json.loads(by_reason["invalid_id_number"].value())
    assert ingest["source"] is None and ingest["sealed"]
    assert ingest["record"]["after"]["id_number"] == wrong[:6] + "*" * 8 + wrong[-4:]
    assert set(ingest["record"]["after"]) == set(good.after)
    routed = json.loads(by_reason["catalog_unreadable"].value())
    assert routed["source"]["topic"] == residents.topic and routed["sealed"] is None

    # The authority only: a consumer's token is refused.
    edu = govbus(env, ADMIN_TOKEN, "user", "add", "edu-dlq", "--department", f"edu_{bus.tag}",
                 "--role", "consumer")  # fmt: skip
    assert "403" in _refused(env, edu, "dlq", "list")
    listed = json.loads(govbus(env, ADMIN_TOKEN, "dlq", "list", "--json", "--limit", "100000"))
    assert {m.offset() for m in letters} <= {row["offset"] for row in listed}
    offset = str(by_reason["invalid_id_number"].offset())
    shown = govbus(env, ADMIN_TOKEN, "dlq", "show", offset)
    assert find_resident_ids(shown) == [] and "sealed to the authority's key" in shown

    # The catalog mended, the router's dead letter is redriven from its source offset ...
    publish_records(s, resources=[residents])
    fresh: list[str] = []

    def mended() -> bool:
        fresh.extend(sent.event["event_id"] for sent in adapter.publish([("c", good.after)]))
        return bool(set(fresh) & set(_delivered(bus, mca.topic)))

    wait_until(mended, 90, "the router following the mended catalog")
    source = routed["source"]
    where = (source["topic"], source["partition"])
    original = next(read_range(s, {where: source["offset"]}, {where: source["offset"] + 1}))
    event_id = codec.decode(original.value())["event_id"]
    assert event_id not in _delivered(bus, mca.topic)
    govbus(env, ADMIN_TOKEN, "dlq", "redrive", str(by_reason["catalog_unreadable"].offset()))
    # ... and the ingest reject is opened, mended and published through ingest again.
    said = govbus(env, ADMIN_TOKEN, "dlq", "redrive", offset, "--set", f"id_number={fixed}")
    fixed_event = said.rsplit(" ", 1)[-1]

    def delivered() -> bool:
        got = _delivered(bus, mca.topic)
        return event_id in got and fixed_event in got

    wait_until(delivered, 90, "redriven records delivered")
    record = _delivered(bus, mca.topic)[fixed_event]["record"]
    assert record["id_number"] == expected_hmac(secret, mca.consumer, fixed)
    assert record["region_code"] == good.after["region_code"]


def _id_number(change: Change) -> str | None:
    return (change.after or change.before or {}).get("id_number")


def _backfilled(bus, grant_id: str) -> bool:
    return any(m.key() == grant_id.encode() for m in read_topics(bus.settings, [BACKFILLS]))


def test_who_got_lists_live_and_backfill_shares_of_a_person_with_their_fields(bus):
    s = bus.settings
    env = start_catalog_service(bus)
    bus.start("router")
    bus.start("sink")  # an activation backfills from the central store
    base = grant_records(s)[f"mca-resident-population-{bus.tag}"]
    published = publish(s, demo_changes(bus.tag, 300, seed=61))
    wanted = expected(s, published)[base.grant.topic]
    ids = Counter(_id_number(p.change) for p in published)
    # Created, delivered to mca, and not changed since: the state a backfill sends.
    person = next(
        p.change
        for p in published
        if p.event_id in wanted and p.change.op == "c" and ids[_id_number(p.change)] == 1
    )
    x = person.after["id_number"]
    wait_drained_router(bus)

    # A grant activated now that keeps the ID number in clear: X reaches it by backfill ...
    masking = {k: v for k, v in base.grant.masking.items() if k != "id_number"}
    late = base.model_copy(
        update={
            "grant": base.grant.model_copy(
                update={
                    "id": f"late-{bus.tag}",
                    "consumer": f"late_{bus.tag}",
                    "masking": masking,
                    "l4_clear_reason": "核验身份，经数据资源管理方批准",
                }
            )
        }
    )
    publish_records(s, grants=[late])
    wait_until(lambda: _backfilled(bus, late.grant.id), 90, "backfill of the late grant")
    # ... then by a live change.
    update = Change(person.resource, "u", person.after, person.after, "p:x2", "psb-hukou")
    assert publish(s, [update])
    wait_drained_router(bus)

    stderr = _refused(env, ADMIN_TOKEN, "audit", "who-got", "--id-number", x[:17] + "?")
    assert "not a valid resident ID number" in stderr
    edu = govbus(env, ADMIN_TOKEN, "user", "add", "edu-ledger", "--department", f"edu_{bus.tag}",
                 "--role", "consumer")  # fmt: skip
    assert "403" in _refused(env, edu, "audit", "who-got", "--id-number", x)
    shares = json.loads(govbus(env, ADMIN_TOKEN, "audit", "who-got", "--id-number", x, "--json"))
    got = {(sh["consumer"], sh["grant_id"], sh["kind"]): sh for sh in shares}
    mca, late_id = base.grant, late.grant.id
    assert (late.grant.consumer, late_id, "backfill") in got  # matched in clear
    assert (late.grant.consumer, late_id, "live") in got
    assert (mca.consumer, mca.id, "live") in got  # matched by mca's pseudonym of X
    assert got[(mca.consumer, mca.id, "live")]["fields"] == {
        "id_number": "hmac",
        "name": "partial",
        "gender": "keep",
        "birth_date": "generalize",
        "region_code": "keep",
        "household_type": "keep",
        "updated_at": "keep",
    }
    assert got[(late.grant.consumer, late_id, "backfill")]["fields"]["id_number"] == "keep"
    # The trail is the broker's: other tests' buses share demo people too, under their own
    # consumers (found by their own pseudonyms). On this bus only the resource keyed by X.
    assert {sh["resource"] for sh in shares if sh["consumer"].endswith(bus.tag)} == {
        person.resource
    }
