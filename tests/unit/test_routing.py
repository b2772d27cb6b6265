from __future__ import annotations

import datetime as dt
import struct

import pytest

from services.common.catalog_feed import CatalogRecord
from services.common.dead_letter import DeadLetter
from services.common.masking import MaskSpec
from services.common.schemas import envelope_schema, source_schema, value_schema
from services.common.topics import value_subject
from services.router.routing import RawMessage, Router
from tests.unit.fixtures import (
    RESIDENTS,
    SCHEMAS,
    catalog,
    codec,
    envelope,
    grant,
    grants,
    resident,
)

TODAY = dt.date(2026, 11, 26)
TOPIC = "gov.psb.resident_population"
SECRET = b"unit-test-master-secret"
HMAC = MaskSpec(method="hmac")


def resource_record(entry, schema=None, version=1) -> CatalogRecord:
    schema = schema if schema is not None else value_schema(entry, SCHEMAS)
    return CatalogRecord(resource=entry, value_schema=schema, schema_version=version)


def make_router():
    c = codec()
    router = Router(c, SECRET, source_schema(SCHEMAS))
    for entry in catalog().values():
        router.set_resource(resource_record(entry))
    for g in grants():
        router.add_grant(g)
    entry = catalog()[RESIDENTS]
    encode = c.encoder(
        value_subject(TOPIC), envelope_schema(value_schema(entry, SCHEMAS), source_schema(SCHEMAS))
    )
    return router, c, encode


def msg(value, topic=TOPIC, offset=5):
    return RawMessage(topic, 1, offset, b"k", value)


def test_one_event_fans_out_to_each_live_grant():
    router, c, encode = make_router()
    outputs = router.route(msg(encode(envelope("c", after=resident()))), TODAY)
    # Born 1986 in Hefei: civil affairs gets it, education (born after 2012 only) does not.
    assert [o.plan.topic for o in outputs] == ["deliver.mca.resident_population"]
    child = resident(birth_date="2015-03-02")
    outputs = router.route(msg(encode(envelope("c", after=child))), TODAY)
    assert sorted(o.plan.topic for o in outputs) == [
        "deliver.edu.resident_population",
        "deliver.mca.resident_population",
    ]
    for out in outputs:
        value = c.decode(out.value)
        assert value["record"]["id_number"] != resident()["id_number"]


def test_expired_grant_stops_delivering():
    router, _, encode = make_router()
    later = dt.date(2030, 1, 1)
    assert router.route(msg(encode(envelope("c", after=resident()))), later) == []


def _reason(result) -> str:
    assert isinstance(result, DeadLetter)
    assert (result.partition, result.offset) == (1, 5)
    return result.reason


def test_garbage_bytes_are_dead_lettered_with_where_they_came_from():
    router, _, _ = make_router()
    result = router.route(msg(b"\x00garbage"), TODAY)
    assert _reason(result) in ("unknown_schema_id", "malformed_avro")
    letter = router.route(msg(b"plain text"), TODAY)
    assert _reason(letter) == "not_avro"
    headers = dict(letter.headers())
    assert headers["govbus.source.topic"] == TOPIC.encode()
    assert headers["govbus.source.offset"] == b"5"
    assert headers["govbus.stage"] == b"router"


def test_unknown_schema_id_is_dead_lettered():
    router, _, _ = make_router()
    result = router.route(msg(struct.pack(">bI", 0, 424242) + b"\x02"), TODAY)
    assert _reason(result) == "unknown_schema_id"


def test_unknown_resource_is_dead_lettered():
    router, _, encode = make_router()
    result = router.route(msg(encode(envelope("c", after=resident())), "gov.psb.nothing"), TODAY)
    assert _reason(result) == "unknown_resource"


def test_envelope_for_another_resource_is_dead_lettered():
    router, _, encode = make_router()
    wrong = envelope("c", after=resident(), resource="enterprise_registration")
    assert _reason(router.route(msg(encode(wrong)), TODAY)) == "invalid_envelope"


def test_truncated_avro_is_dead_lettered():
    router, _, encode = make_router()
    data = encode(envelope("c", after=resident()))
    assert _reason(router.route(msg(data[:20]), TODAY)) == "malformed_avro"


def _topics(outputs) -> list[str]:
    return sorted(o.plan.topic for o in outputs)


def test_a_grant_is_replaced_by_new_terms_and_removed():
    router, c, encode = make_router()
    child = encode(envelope("c", after=resident(birth_date="2015-03-02")))
    mca = grant("mca-resident-population")
    narrower = mca.model_copy(
        update={"fields": ("id_number", "region_code"), "masking": {"id_number": HMAC}}
    )
    router.add_grant(narrower)
    outputs = router.route(msg(child), TODAY)
    assert _topics(outputs) == [
        "deliver.edu.resident_population",
        "deliver.mca.resident_population",
    ]  # replaced, not doubled
    (mca_out,) = [o for o in outputs if o.plan.grant.id == mca.id]
    assert set(c.decode(mca_out.value)["record"]) == {"id_number", "region_code"}

    assert router.remove_grant(mca.id).plan.grant == narrower
    assert router.remove_grant(mca.id) is None
    assert router.route_of(mca.id) is None
    assert _topics(router.route(msg(child), TODAY)) == ["deliver.edu.resident_population"]
    assert mca.id not in {g.id for g in router.grants()}


def test_a_resource_created_later_is_routed_once_the_catalog_has_it():
    router, c, _ = make_router()
    entry = catalog()[RESIDENTS].model_copy(update={"provider": "psbnew"})
    moved = grant("mca-resident-population", id="mca-new", resource=entry.resource_id)
    schema = value_schema(entry, SCHEMAS)
    encode = c.encoder(value_subject(entry.topic), envelope_schema(schema, source_schema(SCHEMAS)))
    event = msg(encode(envelope("c", after=resident())), entry.topic)
    assert _reason(router.route(event, TODAY)) == "unknown_resource"
    with pytest.raises(KeyError):  # a grant on a resource not in the catalog: no route
        router.add_grant(moved)
    router.set_resource(resource_record(entry))
    router.add_grant(moved)
    assert [o.plan.grant.id for o in router.route(event, TODAY)] == ["mca-new"]


def test_an_unreadable_catalog_record_dead_letters_the_topic_and_stops_its_grants():
    router, _, encode = make_router()
    data = encode(envelope("c", after=resident(birth_date="2015-03-02")))
    assert len(router.route(msg(data), TODAY)) == 2
    stopped = router.remove_resource(TOPIC, unreadable="ValidationError: newer format")
    assert sorted(stopped) == ["edu-resident-population", "mca-resident-population"]
    assert _reason(router.route(msg(data), TODAY)) == "catalog_unreadable"
    assert router.route_of("mca-resident-population") is None
    router.set_resource(resource_record(catalog()[RESIDENTS]))  # readable again: no routes yet
    assert router.route(msg(data), TODAY) == []


def test_a_new_field_of_the_providers_schema_is_not_delivered():
    """The resource's schema gained a field: the grant still gets only its own fields."""
    router, c, _ = make_router()
    evolved = value_schema(catalog()[RESIDENTS], SCHEMAS)
    evolved["fields"].append({"name": "note", "type": "string", "default": ""})
    router.set_resource(resource_record(catalog()[RESIDENTS], evolved, 2))
    router.add_grant(grant("mca-resident-population"))
    encode = c.encoder(value_subject(TOPIC), envelope_schema(evolved, source_schema(SCHEMAS)))
    event = envelope("c", after={**resident(), "note": "SECRET-NOTE-42"})
    (out,) = router.route(msg(encode(event)), TODAY)
    assert "note" not in c.decode(out.value)["record"]
    assert b"SECRET-NOTE-42" not in out.value + out.key


def test_old_events_are_read_with_the_current_schema_after_a_field_is_removed():
    """Old events still carry the removed field; new ones lack it: both are delivered."""
    router, c, encode_old = make_router()
    entry = catalog()[RESIDENTS]
    old_schema = value_schema(entry, SCHEMAS)
    removed = {**old_schema, "fields": [f for f in old_schema["fields"] if f["name"] != "gender"]}
    router.set_resource(resource_record(entry, removed, 2))
    router.add_grant(grant("mca-resident-population"))  # recompiled, as GrantSync does
    encode_new = c.encoder(value_subject(TOPIC), envelope_schema(removed, source_schema(SCHEMAS)))
    row = resident()
    assert "gender" in grant("mca-resident-population").fields  # granted, now gone
    new_row = {k: v for k, v in row.items() if k != "gender"}
    for data in (encode_old(envelope("c", after=row)), encode_new(envelope("c", after=new_row))):
        outputs = router.route(msg(data), TODAY)
        assert not isinstance(outputs, DeadLetter), outputs
        (out,) = [o for o in outputs if o.plan.grant.id == "mca-resident-population"]
        record = c.decode(out.value)["record"]
        assert "gender" not in record and record["region_code"] == "340104"


def test_a_removed_key_field_stops_the_grant():
    router, _, _ = make_router()
    entry = catalog()[RESIDENTS]
    schema = value_schema(entry, SCHEMAS)
    keyless = {**schema, "fields": [f for f in schema["fields"] if f["name"] != "id_number"]}
    router.set_resource(resource_record(entry, keyless, 2))
    with pytest.raises(ValueError, match="id_number"):
        router.add_grant(grant("mca-resident-population"))


def test_one_grants_failure_dead_letters_only_its_own_delivery():
    """mca generalizes birth_date to a year-month and cannot read this date; edu keeps it."""
    router, c, encode = make_router()
    odd = resident(birth_date="2015年3月2日")
    outputs = router.route(msg(encode(envelope("c", after=odd))), TODAY)
    (letter,) = [o for o in outputs if isinstance(o, DeadLetter)]
    (edu,) = [o for o in outputs if not isinstance(o, DeadLetter)]
    assert edu.plan.grant.id == "edu-resident-population"
    assert c.decode(edu.value)["record"]["birth_date"] == "2015年3月2日"
    assert letter.reason == "masking_failed"
    assert "mca-resident-population" in letter.detail
    headers = dict(letter.headers())
    assert headers["govbus.grant"] == b"mca-resident-population"
    assert headers["govbus.source.offset"] == b"5"
