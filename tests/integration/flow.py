"""What the integration tests do on a bus: publish changes, wait, and read what came out."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import KafkaException, Message
from prometheus_client import CollectorRegistry

from services.common.config_files import live_grants, load_catalog, load_grants
from services.common.kafka_clients import make_producer
from services.common.lag import group_lag
from services.common.metrics import BusMetrics
from services.common.registry_client import make_registry_client
from services.common.schemas import value_schema
from services.common.serde import AvroCodec
from services.common.settings import Settings
from services.common.topic_reader import end_offsets, read_range
from services.ingest.demo_data import DemoFeed
from services.ingest.feed import build_publisher
from services.ingest.publisher import Change
from services.router.plan import DeliveryPlan, compile_plan, plan_delivery


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


def plans(settings: Settings) -> list[DeliveryPlan]:
    catalog = load_catalog(settings.catalog_dir, settings.schemas_dir)
    secret = settings.mask_secret.get_secret_value().encode()
    return [
        compile_plan(
            g, catalog[g.resource], value_schema(catalog[g.resource], settings.schemas_dir), secret
        )
        for g in live_grants(load_grants(settings.grants_dir, catalog), dt.date.today())
    ]


def expected_deliveries(settings: Settings, published: list[Published]) -> dict[str, set[str]]:
    expected: dict[str, set[str]] = {}
    for plan in plans(settings):
        ids = expected.setdefault(plan.topic, set())
        for p in published:
            if p.change.resource != plan.grant.resource:
                continue
            event = {
                "before": p.change.before,
                "after": p.change.after,
                "op": p.change.op,
                "event_id": p.event_id,
                "ts_ms": 0,
            }
            if plan_delivery(plan, event) is not None:
                ids.add(p.event_id)
    return expected


def wait_drained(settings: Settings, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    lags: list[int] = []
    while time.monotonic() < deadline:
        try:
            lags = [
                group_lag(settings, g, settings.source_pattern)
                for g in (settings.router_group, settings.sink_group)
            ]
        except KafkaException:  # group coordinator still loading: ask again
            lags = [-1]
        if not any(lags):
            return
        time.sleep(0.3)
    raise TimeoutError(f"router/sink lag still {lags} after {timeout_s}s")


def read_topics(settings: Settings, topics: list[str]) -> list[Message]:
    return list(read_range(settings, {}, end_offsets(settings, topics)))


def decode_all(settings: Settings, messages: list[Message]) -> list[tuple[dict, dict]]:
    codec = AvroCodec(make_registry_client(settings))
    return [(codec.decode(m.key()), codec.decode(m.value())) for m in messages]
