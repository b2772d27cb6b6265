"""What the integration tests do on a bus: publish changes, wait, and read what came out."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import Message
from prometheus_client import CollectorRegistry

from services.common.grant_feed import GrantRecord, for_sources, read_grants
from services.common.kafka_clients import make_producer
from services.common.lag import wait_caught_up
from services.common.metrics import BusMetrics
from services.common.registry_client import make_registry_client
from services.common.serde import AvroCodec
from services.common.settings import Settings
from services.common.topic_reader import end_offsets, read_range
from services.ingest.demo_data import DemoFeed
from services.ingest.feed import build_publisher
from services.ingest.publisher import Change
from services.router.plan import DeliveryPlan, expected_deliveries, live_plans


@dataclass(frozen=True)
class Published:
    event_id: str
    change: Change


def tagged(change, tag: str) -> Change:
    """A demo change moved onto the test's own providers."""
    provider, code = change.resource.split(".")
    return Change(
        f"{provider}_{tag}.{code}",
        change.op,
        change.before,
        change.after,
        change.position,
        change.system,
    )


def demo_changes(tag: str, n: int, seed: int = 7) -> list[Change]:
    return [tagged(c, tag) for c in DemoFeed(seed=seed).changes(n)]


def publish(settings: Settings, changes: Iterable[Change]) -> list[Published]:
    producer = make_producer(settings)
    publisher = build_publisher(settings, BusMetrics(CollectorRegistry()), producer)
    out = []
    for change in changes:
        event_id = publisher.publish(change)
        if event_id is not None:
            out.append(Published(event_id, change))
        producer.poll(0)
    assert producer.flush(60) == 0
    return out


def grant_records(settings: Settings) -> dict[str, GrantRecord]:
    """The latest record of every grant on the test's own resources, from govbus.grants."""
    return for_sources(read_grants(settings).values(), settings.source_pattern)


def plans(settings: Settings) -> list[DeliveryPlan]:
    secret = settings.mask_secret.get_secret_value().encode()
    return live_plans(grant_records(settings).values(), secret, dt.date.today())


def expected(settings: Settings, published: list[Published]) -> dict[str, set[str]]:
    return expected_deliveries(plans(settings), [(p.event_id, p.change) for p in published])


def wait_drained(settings: Settings, timeout_s: float = 120.0) -> None:
    wait_caught_up(settings, (settings.router_group, settings.sink_group), timeout_s)


def read_topics(settings: Settings, topics: list[str]) -> list[Message]:
    return list(read_range(settings, {}, end_offsets(settings, topics)))


def decode_all(settings: Settings, messages: list[Message]) -> list[tuple[dict, dict]]:
    codec = AvroCodec(make_registry_client(settings))
    return [(codec.decode(m.key()), codec.decode(m.value())) for m in messages]
