"""Ingest follows govbus.catalog on the real broker: one running publisher takes a resource the
control plane adds, with its topic made on the way, and stops one whose record it cannot read."""

from __future__ import annotations

from confluent_kafka import Producer
from prometheus_client import CollectorRegistry

from services.common import catalog_feed
from services.common.catalog_feed import CatalogRecord
from services.common.dead_letter import header_map
from services.common.kafka_clients import make_producer
from services.common.metrics import BusMetrics
from services.common.registry_client import make_registry_client
from services.common.serde import AvroCodec
from services.common.topic_reader import end_offsets, read_range
from services.common.topics import CATALOG, DLQ
from services.ingest.demo_data import RESIDENTS, DemoFeed
from services.ingest.feed import build_publisher
from services.ingest.publisher import Change
from tests.integration.conftest import wait_until
from tests.integration.seed import file_records


def _produce(settings, key: str, value: bytes) -> None:
    # Straight onto the feed, as the outbox relay does: no topic is made for the resource.
    producer = Producer(settings.kafka_config())
    producer.produce(CATALOG, value, key.encode())
    assert producer.flush(30) == 0


def _dead_letters(settings, start, key: str) -> list[dict[str, str]]:
    end = end_offsets(settings, [DLQ])
    return [
        header_map(m.headers()) for m in read_range(settings, start, end) if m.key() == key.encode()
    ]


def test_a_running_publisher_follows_resources_added_and_blocked(bus):
    s = bus.settings
    tag = bus.tag
    base = next(r for r in file_records(s)[0] if r.resource_id == f"psb_{tag}.resident_population")
    added = CatalogRecord(
        resource=base.resource.model_copy(update={"code": "floating_population"}),
        value_schema={**base.value_schema, "name": "FloatingPopulation"},
        schema_version=1,
    )
    rows = [
        c.after for c in DemoFeed(seed=81).changes(300) if c.resource == RESIDENTS and c.op == "c"
    ]
    change = Change(added.resource_id, "c", None, rows[0], "p:1", "psb-hukou")
    producer = make_producer(s)
    publisher = build_publisher(s, BusMetrics(CollectorRegistry()), producer)
    dlq_start = end_offsets(s, [DLQ])
    try:
        assert publisher.publish(change) is None  # unknown yet: dead-lettered, not dropped
        _produce(s, added.resource_id, catalog_feed.encode(added))
        wait_until(
            lambda: publisher.refresh() is not None and added.topic in publisher.topics(),
            30,
            "the publisher to see the new resource",
        )
        event_id = publisher.publish(Change(added.resource_id, "c", None, rows[1], "p:2", "s"))
        assert event_id is not None
        assert producer.flush(30) == 0  # the topic exists: the broker makes none by itself

        _produce(s, added.resource_id, b'{"resource": "from a newer control plane"}')
        wait_until(
            lambda: publisher.refresh() is not None and added.topic not in publisher.topics(),
            30,
            "the publisher to block the resource",
        )
        assert publisher.publish(Change(added.resource_id, "c", None, rows[2], "p:3", "s")) is None
        assert producer.flush(30) == 0
    finally:
        publisher.close()

    codec = AvroCodec(make_registry_client(s))
    on_topic = [codec.decode(m.value()) for m in read_range(s, {}, end_offsets(s, [added.topic]))]
    assert [e["event_id"] for e in on_topic] == [event_id]
    assert on_topic[0]["after"] == rows[1]
    reasons = [h["govbus.reason"] for h in _dead_letters(s, dlq_start, added.resource_id)]
    assert reasons == ["unknown_resource", "catalog_unreadable"]
