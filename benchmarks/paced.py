"""The router at a fixed rate: end-to-end latency and its memory over a long run.

The loaded events are replayed in a loop at ``rate`` events/s. Each replayed event gets a
fresh event id of the same length that begins with its send time in ms, and the source record
is stamped with that same time; the delivery topic stamps each delivery with the broker's
append time. A delivery's latency is the broker's append time less the send time read back
from its event id, i.e. from the source record's timestamp to the moment Kafka acknowledged
the delivery. Latencies go into an HdrHistogram (1 ms to 1 h, 3 significant digits).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil
from bench_io import ID_LENGTH, Template, wait_for_outputs
from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME
from hdrh.histogram import HdrHistogram

from services.common.kafka_clients import make_producer
from services.common.settings import Settings
from services.common.topic_reader import read_range

TICK_S = 0.01
# A delivery's value (plan.py): wire header (5 bytes), op (a one-character string: length
# byte, character), then event_id (length byte 2*36 as an Avro zigzag long, characters).
EVENT_ID_AT = 8
EVENT_ID_LENGTH_BYTE = 2 * ID_LENGTH
SENT_DIGITS = 13


def event_id(sent_ms: int, seq: int) -> bytes:
    return f"{sent_ms:0{SENT_DIGITS}d}-{seq:0{ID_LENGTH - SENT_DIGITS - 1}d}".encode()


def sent_ms_of(delivery_value: bytes) -> int:
    if delivery_value[EVENT_ID_AT - 1] != EVENT_ID_LENGTH_BYTE:
        raise ValueError("not a delivery of a paced event (op or event id length differ)")
    return int(delivery_value[EVENT_ID_AT : EVENT_ID_AT + SENT_DIGITS])


@dataclass
class Soak:
    sent: int = 0
    rss_mb: list[tuple[float, float]] = field(default_factory=list)  # (seconds in, RSS MB)


def replay(
    settings: Settings,
    topic: str,
    source: list[Template],
    rate: float,
    seconds: float,
    pid: int,
    rss_every_s: float = 30.0,
) -> Soak:
    """Send at ``rate`` events/s for ``seconds``, sampling the RSS of process ``pid``."""
    producer = make_producer(settings)
    router = psutil.Process(pid)
    soak = Soak()
    started = time.monotonic()
    next_rss = started
    while (elapsed := time.monotonic() - started) < seconds:
        due = int(rate * (elapsed + TICK_S))
        now_ms = int(time.time() * 1000)
        while soak.sent < due:
            t = source[soak.sent % len(source)]
            value = t.with_id(event_id(now_ms, soak.sent))
            try:
                producer.produce(topic, value, t.key, timestamp=now_ms)
            except BufferError:
                producer.poll(0.01)
                continue
            soak.sent += 1
        producer.poll(0)
        if time.monotonic() >= next_rss:
            soak.rss_mb.append((round(elapsed, 1), router.memory_info().rss / 2**20))
            next_rss += rss_every_s
        # Pacing: wait for the next tick of the schedule, not for a guessed condition.
        time.sleep(max(0.0, started + elapsed + TICK_S - time.monotonic()))
    assert producer.flush(60) == 0
    soak.rss_mb.append((round(time.monotonic() - started, 1), router.memory_info().rss / 2**20))
    return soak


def latencies(
    settings: Settings, topics: list[str], expected: int, alive: Callable[[], None]
) -> HdrHistogram:
    """The latency of every delivery on ``topics`` (once all ``expected`` are there)."""
    ends = wait_for_outputs(settings, topics, expected, 600, alive)
    histogram = HdrHistogram(1, 3_600_000, 3)
    for m in read_range(settings, {}, ends):
        kind, appended_ms = m.timestamp()
        if kind != TIMESTAMP_LOG_APPEND_TIME:
            raise ValueError(f"{m.topic()}: records must carry the broker's append time")
        histogram.record_value(max(0, appended_ms - sent_ms_of(m.value())))
    return histogram
