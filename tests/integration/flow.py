"""What the integration tests do on a bus: publish changes, wait, and read what came out."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import Message
from prometheus_client import CollectorRegistry

from services.common import catalog_feed, grant_feed
from services.common.audit import verify_chains
from services.common.catalog_feed import CatalogRecord
from services.common.feed import read_feed
from services.common.grant_feed import GrantRecord, for_sources
from services.common.kafka_clients import make_producer
from services.common.lag import wait_caught_up
from services.common.metrics import BusMetrics
from services.common.plan import DeliveryPlan, expected_deliveries, live_plans
from services.common.registry_client import make_registry_client
from services.common.serde import AvroCodec
from services.common.settings import Settings
from services.common.topic_reader import end_offsets, read_range
from services.common.topics import AUDIT, BACKFILLS, CATALOG, GRANTS
from services.ingest.demo_data import DemoFeed
from services.ingest.feed import build_publisher
from services.ingest.publisher import Change


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


def _publish_with(publisher, producer, changes: Iterable[Change]) -> list[Published]:
    out = []
    for change in changes:
        event_id = publisher.publish(change)
        if event_id is not None:
            out.append(Published(event_id, change))
        producer.poll(0)
    assert producer.flush(60) == 0
    return out


def publish(settings: Settings, changes: Iterable[Change]) -> list[Published]:
    producer = make_producer(settings)
    publisher = build_publisher(settings, BusMetrics(CollectorRegistry()), producer)
    return _publish_with(publisher, producer, changes)


class Feeder(threading.Thread):
    """Publishes changes in the background, a chunk at a time at a steady pace, until stopped.

    Each chunk is acknowledged before the next, so ``published`` is what Kafka has.
    """

    def __init__(
        self, settings: Settings, changes: list[Change], chunk: int = 10, pause_s: float = 0.1
    ) -> None:
        super().__init__(name="feeder", daemon=True)
        self._settings = settings
        self._changes = changes
        self._chunk = chunk
        self._pause_s = pause_s
        self._halt = threading.Event()
        self._error: BaseException | None = None
        self.published: list[Published] = []

    def run(self) -> None:
        try:
            producer = make_producer(self._settings)
            publisher = build_publisher(self._settings, BusMetrics(CollectorRegistry()), producer)
            for i in range(0, len(self._changes), self._chunk):
                if self._halt.is_set():
                    return
                chunk = self._changes[i : i + self._chunk]
                self.published += _publish_with(publisher, producer, chunk)
                time.sleep(self._pause_s)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread by finish()
            self._error = exc

    def finish(self, stop: bool = False, timeout_s: float = 120.0) -> list[Published]:
        """Wait until every change is published (or, with ``stop``, the current chunk is)."""
        if stop:
            self._halt.set()
        self.join(timeout_s)
        assert not self.is_alive(), "feeder did not finish"
        if self._error is not None:
            raise self._error
        return self.published


def grant_records(settings: Settings) -> dict[str, GrantRecord]:
    """The latest record of every grant on the test's own resources, from govbus.grants."""
    found = read_feed(settings, GRANTS, grant_feed.decode).values()
    readable = [r for r in found if isinstance(r, GrantRecord)]
    return for_sources(readable, settings.source_pattern)


def catalog_records(settings: Settings) -> dict[str, CatalogRecord]:
    """The latest readable record of every resource, by resource id, from govbus.catalog."""
    found = read_feed(settings, CATALOG, catalog_feed.decode)
    return {rid: r for rid, r in found.items() if isinstance(r, CatalogRecord)}


def plans(settings: Settings) -> list[DeliveryPlan]:
    """The plans the router compiles: grants joined with the catalog's current records."""
    secret = settings.mask_secret.get_secret_value().encode()
    return live_plans(
        grant_records(settings).values(), catalog_records(settings), secret, dt.date.today()
    )


def fed_plans(settings: Settings, published: list[Published]) -> list[DeliveryPlan]:
    """The plans of grants on resources these changes went to: the tests' feed is the
    government one, so the demo's grants on the utilities' bills get nothing from it."""
    fed = {p.change.resource for p in published}
    return [plan for plan in plans(settings) if plan.grant.resource in fed]


def expected(settings: Settings, published: list[Published]) -> dict[str, set[str]]:
    """Per delivery topic, the events it should hold."""
    pairs = [(p.event_id, p.change) for p in published]
    return expected_deliveries(fed_plans(settings, published), pairs)


def wait_drained(settings: Settings, timeout_s: float = 120.0) -> None:
    wait_caught_up(settings, (settings.router_group, settings.sink_group), timeout_s)


def read_topics(settings: Settings, topics: list[str]) -> list[Message]:
    return list(read_range(settings, {}, end_offsets(settings, topics)))


def decode_all(settings: Settings, messages: list[Message]) -> list[tuple[dict, dict]]:
    codec = AvroCodec(make_registry_client(settings))
    return [(codec.decode(m.key()), codec.decode(m.value())) for m in messages]


def verified_audit(settings: Settings) -> list[dict]:
    """The whole audit trail, each record of it on a chain that verifies with the audit key."""
    messages = read_topics(settings, [AUDIT])
    raw = [((m.topic(), m.partition(), m.offset()), m.value()) for m in messages]
    report = verify_chains(raw, settings.audit_key.get_secret_value().encode())
    assert report.ok, [str(b) for b in report.breaks]
    return [json.loads(m.value()) for m in messages]


def backfill_completion(settings: Settings, backfill_id: str) -> dict | None:
    """A backfill's partitions recorded done on ``govbus.backfills``, merged: every seam and
    the total delivered (None when no partition is done)."""
    latest = {m.key(): m.value() for m in read_topics(settings, [BACKFILLS])}
    done = [json.loads(v) for v in latest.values() if v is not None]
    done = [d for d in done if d["backfill_id"] == backfill_id and d["done"]]
    if not done:
        return None
    return {
        "seam": {p: off for d in done for p, off in d["seam"].items()},
        "delivered": sum(d["delivered"] for d in done),
        "dead_lettered": sum(d["dead_lettered"] for d in done),
    }
