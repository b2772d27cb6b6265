"""Load the bench's events once, replay their bytes into a lane, count a lane's outputs."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from services.common.kafka_clients import make_producer
from services.common.metrics import BusMetrics
from services.common.registry_client import make_registry_client
from services.common.serde import AvroCodec
from services.common.settings import Settings
from services.common.topic_reader import end_offsets, read_range
from services.ingest.demo_data import DemoFeed
from services.ingest.feed import build_publisher
from services.ingest.publisher import Change

Event = tuple[bytes, bytes]  # key, value: one source record's bytes
ID_LENGTH = 36  # a uuid4 string, as the publisher writes event ids
DISTINCT = 20_000  # changes put through the publisher; the rest are copies with new ids


@dataclass(frozen=True)
class Template:
    """One source record, split around its event id."""

    key: bytes
    head: bytes
    tail: bytes

    def with_id(self, event_id: bytes) -> bytes:
        return self.head + event_id + self.tail


def templates(codec: AvroCodec, events: list[Event]) -> list[Template]:
    out = []
    for key, value in events:
        event_id = codec.decode(value)["event_id"].encode()
        assert len(event_id) == ID_LENGTH and value.count(event_id) == 1
        at = value.index(event_id)
        out.append(Template(key, value[:at], value[at + ID_LENGTH :]))
    return out


def load_events(settings: Settings, resource_id: str, topic: str, n: int) -> list[Event]:
    """``n`` realistic resident-population changes: up to ``DISTINCT`` through the one publisher
    path (it validates each, so it is slow), read back from ``topic``, then as many copies of
    their bytes with fresh event ids as it takes to make ``n``."""
    producer = make_producer(settings)
    publisher = build_publisher(settings, BusMetrics(CollectorRegistry()), producer)
    sent = 0
    for c in DemoFeed(seed=42).changes(min(n, DISTINCT) * 3):
        if not c.resource.endswith("resident_population"):
            continue
        publisher.publish(Change(resource_id, c.op, c.before, c.after, c.position, c.system))
        producer.poll(0)
        sent += 1
        if sent == min(n, DISTINCT):
            break
    assert producer.flush(120) == 0
    ends = end_offsets(settings, [topic])
    events = [(m.key(), m.value()) for m in read_range(settings, {}, ends)]
    if n > len(events):
        source = templates(AvroCodec(make_registry_client(settings)), events)
        copies = (source[i % len(source)] for i in range(n - len(events)))
        events += [(t.key, t.with_id(str(uuid.uuid4()).encode())) for t in copies]
    return events


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


def _no_check() -> None:
    pass


def wait_for_outputs(
    settings: Settings,
    topics: list[str],
    expected: int,
    timeout_s: float,
    alive: Callable[[], None] = _no_check,
):
    """Until ``topics`` hold ``expected`` records together (``alive`` raises if the process
    writing them died); their end offsets."""
    deadline = time.monotonic() + timeout_s
    while True:
        alive()
        ends = end_offsets(settings, topics)
        if sum(ends.values()) >= expected:
            return ends
        if time.monotonic() > deadline:
            raise TimeoutError(f"{topics}: {sum(ends.values())} of {expected} after {timeout_s}s")
        time.sleep(0.5)


def outputs(
    settings: Settings,
    topics: list[str],
    expected: int,
    timeout_s: float,
    alive: Callable[[], None] = _no_check,
) -> Outputs:
    """The outputs on ``topics`` once there are ``expected``, and the time they span."""
    ends = wait_for_outputs(settings, topics, expected, timeout_s, alive)
    first = last = None
    seen = 0
    for m in read_range(settings, {}, ends):
        ts = m.timestamp()[1]
        first = ts if first is None else min(first, ts)
        last = ts if last is None else max(last, ts)
        seen += 1
    return Outputs(seen, (last - first) / 1000.0)
