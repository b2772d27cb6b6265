"""Ingest: valid changes become change events; anything else is dead-lettered with its reason."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from services.common.dead_letter import header_map
from services.common.metrics import BusMetrics
from services.common.topics import DLQ
from services.ingest.publisher import Change, ChangePublisher
from tests.unit.fixtures import RESIDENTS, SCHEMAS, catalog, codec, resident


class RecordingProducer:
    """Stands in for the confluent-kafka producer: keeps what would have been sent."""

    def __init__(self) -> None:
        self.sent: list[dict] = []

    def produce(self, topic, value=None, key=None, headers=None, on_delivery=None):
        self.sent.append({"topic": topic, "value": value, "key": key, "headers": headers})

    def poll(self, _timeout):
        return 0


def publisher(max_bytes: int = 1_000_000):
    producer = RecordingProducer()
    c = codec()
    pub = ChangePublisher(
        catalog(), c, producer, SCHEMAS, BusMetrics(CollectorRegistry()), max_bytes
    )
    return pub, producer, c


def create(**fields) -> Change:
    return Change(RESIDENTS, "c", None, resident(**fields), "psb-hukou:lsn:1", "psb-hukou")


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


def _reason(producer) -> dict[str, str]:
    [sent] = producer.sent
    assert sent["topic"] == DLQ
    return header_map(sent["headers"])


def test_invalid_id_number_is_dead_lettered_without_echoing_it():
    pub, producer, _ = publisher()
    bad = resident()["id_number"][:17] + ("1" if resident()["id_number"][17] != "1" else "2")
    assert pub.publish(create(id_number=bad)) is None
    headers = _reason(producer)
    assert headers["govbus.stage"] == "ingest" and headers["govbus.reason"] == "invalid_id_number"
    assert bad not in headers["govbus.detail"]


def test_wrong_type_is_a_schema_mismatch():
    pub, producer, _ = publisher()
    assert pub.publish(create(updated_at="yesterday")) is None
    assert _reason(producer)["govbus.reason"] == "schema_mismatch"


def test_unknown_resource_and_missing_after():
    pub, producer, _ = publisher()
    pub.publish(Change("psb.nothing", "c", None, resident(), "p", "s"))
    pub.publish(Change(RESIDENTS, "u", resident(), None, "p", "s"))
    reasons = [header_map(s["headers"])["govbus.reason"] for s in producer.sent]
    assert reasons == ["unknown_resource", "invalid_envelope"]


def test_oversized_event_is_dead_lettered():
    pub, producer, _ = publisher(max_bytes=200)
    assert pub.publish(create()) is None
    assert _reason(producer)["govbus.reason"] == "oversized"
