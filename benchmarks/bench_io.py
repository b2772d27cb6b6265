"""Load the bench's events once, replay their bytes into a lane, count a lane's outputs."""

from __future__ import annotations

import time
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from services.common.kafka_clients import make_producer
from services.common.metrics import BusMetrics
from services.common.settings import Settings
from services.common.topic_reader import end_offsets, read_range
from services.ingest.demo_data import DemoFeed
from services.ingest.feed import build_publisher
from services.ingest.publisher import Change

Event = tuple[bytes, bytes]  # key, value: one source record's bytes


def load_events(settings: Settings, resource_id: str, topic: str, n: int) -> list[Event]:
    """``n`` realistic resident-population changes through the one publisher path, then their
    bytes as they are on ``topic``."""
    producer = make_producer(settings)
    publisher = build_publisher(settings, BusMetrics(CollectorRegistry()), producer)
    sent = 0
    for c in DemoFeed(seed=42).changes(n * 3):
        if not c.resource.endswith("resident_population"):
            continue
        publisher.publish(Change(resource_id, c.op, c.before, c.after, c.position, c.system))
        producer.poll(0)
        sent += 1
        if sent == n:
            break
    assert producer.flush(120) == 0
    return [(m.key(), m.value()) for m in read_range(settings, {}, end_offsets(settings, [topic]))]


def fill(settings: Settings, topic: str, events: list[Event]) -> None:
    """The events' bytes onto ``topic``, as fast as the producer takes them."""
    producer = make_producer(settings, **{"linger.ms": 20})
    for key, value in events:
        while True:
            try:
                producer.produce(topic, value, key)
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(120) == 0


@dataclass(frozen=True)
class Outputs:
    count: int
    seconds: float  # first to last output record, by the broker's timestamps

    @property
    def per_s(self) -> float:
        return self.count / max(self.seconds, 0.001)


def wait_for_outputs(settings: Settings, topics: list[str], expected: int, timeout_s: float):
    """Until ``topics`` hold ``expected`` records together; their end offsets."""
    deadline = time.monotonic() + timeout_s
    while True:
        ends = end_offsets(settings, topics)
        if sum(ends.values()) >= expected:
            return ends
        if time.monotonic() > deadline:
            raise TimeoutError(f"{topics}: {sum(ends.values())} of {expected} after {timeout_s}s")
        time.sleep(0.5)


def outputs(settings: Settings, topics: list[str], expected: int, timeout_s: float) -> Outputs:
    """The outputs on ``topics`` once there are ``expected``, and the time they span."""
    ends = wait_for_outputs(settings, topics, expected, timeout_s)
    first = last = None
    seen = 0
    for m in read_range(settings, {}, ends):
        ts = m.timestamp()[1]
        first = ts if first is None else min(first, ts)
        last = ts if last is None else max(last, ts)
        seen += 1
    return Outputs(seen, (last - first) / 1000.0)
