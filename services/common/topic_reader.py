"""Read a bounded range of a topic (from given offsets up to the current end): demo and tests."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from services.common.settings import Settings

Offsets = dict[tuple[str, int], int]
_LEADER_MOVING = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
}


def _probe(settings: Settings) -> Consumer:
    return Consumer(
        settings.kafka_config(
            **{"group.id": f"govbus-reader-{uuid.uuid4()}", "enable.auto.commit": False}
        )
    )


def topic_names(settings: Settings, timeout_s: float = 10.0) -> list[str]:
    """Every topic on the cluster."""
    consumer = _probe(settings)
    try:
        return sorted(consumer.list_topics(timeout=timeout_s).topics)
    finally:
        consumer.close()


def end_offsets(settings: Settings, topics: list[str], timeout_s: float = 10.0) -> Offsets:
    consumer = _probe(settings)
    try:
        metadata = consumer.list_topics(timeout=timeout_s).topics
        out = {}
        for name in topics:
            if name not in metadata:
                continue
            for p in metadata[name].partitions:
                out[(name, p)] = _high_watermark(consumer, TopicPartition(name, p), timeout_s)
        return out
    finally:
        consumer.close()


def _high_watermark(consumer: Consumer, tp: TopicPartition, timeout_s: float) -> int:
    # A topic created a moment ago may still be moving its leader in: retry until the deadline.
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return consumer.get_watermark_offsets(tp, timeout=timeout_s)[1]
        except KafkaException as exc:
            if exc.args[0].code() not in _LEADER_MOVING or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


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
            messages = consumer.consume(500, 0.5)
            for msg in messages:
                if msg.error():
                    continue
                tp = (msg.topic(), msg.partition())
                if tp not in todo or msg.offset() >= todo[tp]:
                    continue
                yield msg
                if msg.offset() + 1 >= todo[tp]:
                    del todo[tp]
            if not messages:
                # Compaction may have removed the last records below the end: the position
                # then passes the end without a message at end - 1.
                for p in consumer.position([TopicPartition(t, n) for (t, n) in todo]):
                    if p.offset >= todo.get((p.topic, p.partition), 2**63):
                        del todo[(p.topic, p.partition)]
    finally:
        consumer.close()
