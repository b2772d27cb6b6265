"""Read a bounded range of a topic (from given offsets up to the current end): demo and tests."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

from confluent_kafka import Consumer, Message, TopicPartition

from services.common.settings import Settings

Offsets = dict[tuple[str, int], int]


def _probe(settings: Settings) -> Consumer:
    return Consumer(
        settings.kafka_config(
            **{"group.id": f"govbus-reader-{uuid.uuid4()}", "enable.auto.commit": False}
        )
    )


def end_offsets(settings: Settings, topics: list[str], timeout_s: float = 10.0) -> Offsets:
    consumer = _probe(settings)
    try:
        metadata = consumer.list_topics(timeout=timeout_s).topics
        out = {}
        for name in topics:
            if name not in metadata:
                continue
            for p in metadata[name].partitions:
                out[(name, p)] = consumer.get_watermark_offsets(
                    TopicPartition(name, p), timeout=timeout_s
                )[1]
        return out
    finally:
        consumer.close()


def read_range(
    settings: Settings, start: Offsets, end: Offsets, timeout_s: float = 60.0
) -> Iterator[Message]:
    """Every message from ``start`` (0 where missing) up to ``end`` on end's partitions."""
    todo = {tp: off for tp, off in end.items() if off > start.get(tp, 0)}
    if not todo:
        return
    consumer = _probe(settings)
    try:
        consumer.assign([TopicPartition(t, p, start.get((t, p), 0)) for (t, p) in todo])
        deadline = time.monotonic() + timeout_s
        while todo:
            if time.monotonic() > deadline:
                raise TimeoutError(f"partitions not read to the end: {sorted(todo)}")
            for msg in consumer.consume(500, 0.5):
                if msg.error():
                    continue
                tp = (msg.topic(), msg.partition())
                if tp not in todo or msg.offset() >= todo[tp]:
                    continue
                yield msg
                if msg.offset() + 1 >= todo[tp]:
                    del todo[tp]
    finally:
        consumer.close()
