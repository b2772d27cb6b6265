"""Kafka client factories and topic provisioning (confluent-kafka / librdkafka)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from services.common import topics
from services.common.settings import Settings

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str] = field(default_factory=dict)


def producer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    # Idempotent producer: retries never duplicate or reorder within a partition.
    return settings.kafka_config(
        **{
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "compression.type": "lz4",
            "message.max.bytes": settings.max_message_bytes,
            **overrides,
        }
    )


def make_producer(settings: Settings, **overrides: Any) -> Producer:
    return Producer(producer_config(settings, **overrides))


def make_consumer(settings: Settings, group: str, **overrides: Any) -> Consumer:
    # Offsets are committed by hand, after outputs are acknowledged (at least once).
    return Consumer(
        settings.kafka_config(
            **{
                "group.id": group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "topic.metadata.refresh.interval.ms": 5000,
                **overrides,
            }
        )
    )


def make_admin(settings: Settings) -> AdminClient:
    return AdminClient(settings.kafka_config())


def source_topic_spec(name: str, settings: Settings) -> TopicSpec:
    # Compacted so the latest state of every key stays; delete bounds tombstone-free growth.
    return TopicSpec(
        name,
        settings.topic_partitions,
        {"cleanup.policy": "compact,delete", "retention.ms": str(30 * DAY_MS)},
    )


def delivery_topic_spec(name: str, settings: Settings) -> TopicSpec:
    return source_topic_spec(name, settings)


def bus_topic_specs(settings: Settings) -> list[TopicSpec]:
    return [
        TopicSpec(topics.DLQ, 1, {"retention.ms": str(30 * DAY_MS)}),
        # Keyed by audit chain (one per router process): routers spread over the partitions.
        TopicSpec(topics.AUDIT, settings.topic_partitions, {"retention.ms": "-1"}),
        TopicSpec(topics.CATALOG, 1, {"cleanup.policy": "compact"}),
        TopicSpec(topics.GRANTS, 1, {"cleanup.policy": "compact"}),
        TopicSpec(topics.BACKFILLS, 1, {"cleanup.policy": "compact"}),
    ]


def ensure_topics(admin: AdminClient, specs: list[TopicSpec], timeout_s: float = 30.0) -> None:
    """Create the topics that do not exist yet; existing ones are left as they are."""
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    by_name = {s.name: s for s in specs if s.name not in existing}  # asking twice is refused
    wanted = [
        NewTopic(s.name, num_partitions=s.partitions, replication_factor=1, config=s.config)
        for s in by_name.values()
    ]
    if not wanted:
        return
    for future in admin.create_topics(wanted, request_timeout=timeout_s).values():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
                raise
    _wait_for_topics(admin, [t.topic for t in wanted], timeout_s)


def _wait_for_topics(admin: AdminClient, names: list[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        metadata = admin.list_topics(timeout=timeout_s).topics
        # Ready means every partition has a leader: fresh topics elect them a moment later.
        if all(
            n in metadata
            and not metadata[n].error
            and all(p.leader >= 0 and not p.error for p in metadata[n].partitions.values())
            for n in names
        ):
            return
        time.sleep(0.1)
    raise TimeoutError(f"topics not ready after {timeout_s}s: {names}")
