"""Ingest: valid changes become change events; anything else is dead-lettered with its reason.

The publisher follows the catalog: resources, schemas and field checks are whatever the live
catalog says now, not what it said at start-up.
"""

from __future__ import annotations

import json
from functools import partial

from nacl.public import PrivateKey
from prometheus_client import CollectorRegistry

from services.common.authority_seal import seal, unseal
from services.common.catalog import FieldSpec, Sensitivity
from services.common.catalog_feed import CatalogRecord, CatalogView
from services.common.dead_letter import header_map
from services.common.feed import Unreadable
from services.common.idnumbers import find_resident_ids
from services.common.metrics import BusMetrics
from services.common.schemas import source_schema, value_schema
from services.common.topics import DLQ
from services.ingest.publisher import Change, ChangePublisher
from tests.unit.fixtures import RESIDENTS, SCHEMAS, QueuedFollower, catalog, codec, resident

AUTHORITY = PrivateKey.generate()


class RecordingProducer:
    """Stands in for the confluent-kafka producer: keeps what would have been sent."""

    def __init__(self) -> None:
        self.sent: list[dict] = []

    def produce(self, topic, value=None, key=None, headers=None, on_delivery=None):
        self.sent.append({"topic": topic, "value": value, "key": key, "headers": headers})

    def poll(self, _timeout):
        return 0


def records() -> list[CatalogRecord]:
    return [
        CatalogRecord(resource=e, value_schema=value_schema(e, SCHEMAS), schema_version=1)
        for e in catalog().values()
    ]


def residents_record() -> CatalogRecord:
    return next(r for r in records() if r.resource_id == RESIDENTS)


def publisher(max_bytes: int = 1_000_000, follower=None):
    producer = RecordingProducer()
    c = codec()
    prepared: list[str] = []
    metrics = BusMetrics(CollectorRegistry())
    pub = ChangePublisher(
        CatalogView(records()),
        c,
        producer,
        source_schema(SCHEMAS),
        metrics,
        max_bytes,
        follower=follower,
        prepare_topic=prepared.append,
        seal_original=partial(seal, AUTHORITY.public_key),
    )
    pub.prepared = prepared  # type: ignore[attr-defined]
    pub.metrics = metrics  # type: ignore[attr-defined]
    return pub, producer, c


def create(resource: str = RESIDENTS, **fields) -> Change:
    return Change(resource, "c", None, resident(**fields), "psb-hukou:lsn:1", "psb-hukou")


def test_valid_change_becomes_an_envelope_on_its_topic():
    pub, producer, c = publisher()
    event_id = pub.publish(create())
    assert event_id
    [sent] = producer.sent
    assert sent["topic"] == "gov.psb.resident_population"
    envelope = c.decode(sent["value"])
    assert envelope["event_id"] == event_id and envelope["op"] == "c"
    assert envelope["after"] == resident() and envelope["before"] is None
    assert envelope["source"]["provider"] == "psb"
    assert c.decode(sent["key"]) == {"id_number": resident()["id_number"]}
    assert pub.prepared == ["gov.psb.resident_population"]  # its topic, made sure of once


def _dead_letter(producer) -> tuple[dict[str, str], dict]:
    [sent] = producer.sent
    assert sent["topic"] == DLQ
    return header_map(sent["headers"]), json.loads(sent["value"])


def _wrong_check_digit(id_number: str) -> str:
    return id_number[:17] + ("1" if id_number[17] != "1" else "2")


def _masked_id(id_number: str) -> str:
    return id_number[:6] + "*" * 8 + id_number[-4:]


def test_invalid_id_number_is_dead_lettered_masked_with_the_original_sealed():
    pub, producer, _ = publisher()
    bad = _wrong_check_digit(resident()["id_number"])
    change = create(id_number=bad)
    assert pub.publish(change) is None
    headers, body = _dead_letter(producer)
    assert headers["govbus.stage"] == "ingest" and headers["govbus.reason"] == "invalid_id_number"
    assert bad not in headers["govbus.detail"]
    # The masked view names every field; L3/L4 values are masked, L1/L2 kept ...
    record = body["record"]
    assert set(record["after"]) == set(resident())
    assert record["after"]["id_number"] == _masked_id(bad)
    assert record["after"]["name"] == "***" and record["after"]["birth_date"] == "***"
    assert record["after"]["gender"] == resident()["gender"]  # L2
    assert bad[6:14] not in json.dumps(body)
    assert body["resource"] == RESIDENTS and record["op"] == "c" and record["before"] is None
    assert (record["system"], record["position"]) == ("psb-hukou", "psb-hukou:lsn:1")
    assert body["source"] is None  # it never reached a source topic ...
    # ... so the original travels sealed: the authority's private key opens it whole.
    assert json.loads(unseal(AUTHORITY, body["sealed"])) == json.loads(
        json.dumps(change.__dict__, ensure_ascii=False)
    )


def test_no_clear_id_number_on_either_side_of_an_update():
    pub, producer, _ = publisher()
    good = resident()
    bad = _wrong_check_digit(good["id_number"])
    pub.publish(Change(RESIDENTS, "u", good, resident(id_number=bad), "p", "psb-hukou"))
    headers, body = _dead_letter(producer)
    assert headers["govbus.reason"] == "invalid_id_number"
    assert body["record"]["before"]["id_number"] == _masked_id(good["id_number"])
    assert body["record"]["after"]["id_number"] == _masked_id(bad)
    assert find_resident_ids(json.dumps(body)) == []
    assert find_resident_ids(producer.sent[0]["key"]) == []


def test_wrong_type_is_a_schema_mismatch():
    pub, producer, _ = publisher()
    assert pub.publish(create(updated_at="yesterday")) is None
    headers, body = _dead_letter(producer)
    assert headers["govbus.reason"] == "schema_mismatch"
    assert body["record"]["after"]["updated_at"] == "yesterday"  # L1: shown, to mend it


def test_unknown_resource_and_missing_after():
    pub, producer, _ = publisher()
    pub.publish(Change("psb.nothing", "c", None, resident(), "p", "s"))
    pub.publish(Change(RESIDENTS, "u", resident(), None, "p", "s"))
    reasons = [header_map(s["headers"])["govbus.reason"] for s in producer.sent]
    assert reasons == ["unknown_resource", "invalid_envelope"]


def test_oversized_event_is_dead_lettered():
    pub, producer, _ = publisher(max_bytes=200)
    assert pub.publish(create()) is None
    assert _dead_letter(producer)[0]["govbus.reason"] == "oversized"


def test_a_resource_added_to_the_catalog_is_published_without_a_restart():
    follower = QueuedFollower()
    pub, producer, c = publisher(follower=follower)
    base = residents_record()
    entry = base.resource.model_copy(update={"code": "floating_population"})
    schema = {**base.value_schema, "name": "FloatingPopulation"}
    new = CatalogRecord(resource=entry, value_schema=schema, schema_version=1)
    change = create(resource=new.resource_id)
    assert pub.publish(change) is None  # not in the catalog yet

    follower.queued[new.resource_id] = new
    event_id = pub.publish(change)
    assert event_id
    sent = producer.sent[-1]
    assert sent["topic"] == "gov.psb.floating_population" == new.topic
    assert c.decode(sent["value"])["after"] == resident()
    assert header_map(producer.sent[0]["headers"])["govbus.reason"] == "unknown_resource"
    assert new.topic in pub.prepared


def test_validation_follows_the_current_schema_of_a_resource():
    follower = QueuedFollower()
    pub, producer, c = publisher(follower=follower)
    noted = create(informant_note="moved in 2025")
    assert pub.publish(noted) is None  # the field is not in the resource yet
    assert _dead_letter(producer)[0]["govbus.reason"] == "schema_mismatch"

    base = residents_record()
    schema = json.loads(json.dumps(base.value_schema))
    schema["fields"].append({"name": "informant_note", "type": "string", "default": ""})
    spec = FieldSpec(sensitivity=Sensitivity.L2, description="informant's note")
    entry = base.resource.model_copy(
        update={"fields": {**base.resource.fields, "informant_note": spec}}
    )
    follower.queued[RESIDENTS] = CatalogRecord(
        resource=entry, value_schema=schema, schema_version=2
    )
    assert pub.publish(noted)
    assert c.decode(producer.sent[-1]["value"])["after"]["informant_note"] == "moved in 2025"
    assert pub.publish(create())  # a record without it gets the default
    assert c.decode(producer.sent[-1]["value"])["after"]["informant_note"] == ""


def test_id_checks_follow_the_catalog():
    follower = QueuedFollower()
    pub, producer, _ = publisher(follower=follower)
    base = residents_record()
    unchecked = base.resource.fields["id_number"].model_copy(update={"format": None})
    entry = base.resource.model_copy(
        update={"fields": {**base.resource.fields, "id_number": unchecked}}
    )
    follower.queued[RESIDENTS] = base.model_copy(update={"resource": entry, "schema_version": 2})
    # The catalog no longer declares the field a resident ID: the check no longer applies.
    assert pub.publish(create(id_number=_wrong_check_digit(resident()["id_number"])))
    assert producer.sent[-1]["topic"] == base.topic


def test_an_unreadable_catalog_record_stops_its_resource_until_a_readable_one_comes():
    follower = QueuedFollower()
    pub, producer, _ = publisher(follower=follower)
    assert pub.publish(create())
    follower.queued[RESIDENTS] = Unreadable(RESIDENTS, 7, "ValidationError: new field kind")
    assert pub.publish(create()) is None
    last = header_map(producer.sent[-1]["headers"])
    assert producer.sent[-1]["topic"] == DLQ and last["govbus.reason"] == "catalog_unreadable"
    body = json.loads(producer.sent[-1]["value"])
    # Without a readable catalog record nothing says which fields are open: all are masked.
    assert set(body["record"]["after"].values()) == {"***"}
    assert json.loads(unseal(AUTHORITY, body["sealed"]))["after"] == resident()
    counted = pub.metrics.registry.get_sample_value(
        "govbus_feed_unreadable_total", {"topic": "govbus.catalog"}
    )
    assert counted == 1

    follower.queued[RESIDENTS] = residents_record()
    assert pub.publish(create())
    assert producer.sent[-1]["topic"] == residents_record().topic


def test_a_resource_removed_from_the_catalog_is_unknown():
    follower = QueuedFollower()
    pub, producer, _ = publisher(follower=follower)
    follower.queued[RESIDENTS] = None
    assert pub.publish(create()) is None
    assert header_map(producer.sent[-1]["headers"])["govbus.reason"] == "unknown_resource"
