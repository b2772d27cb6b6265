"""Consumer-group lag: how far each group is behind the end of the topics it reads."""

from __future__ import annotations

import re

from confluent_kafka import Consumer, TopicPartition

from services.common.settings import Settings


def group_lag(settings: Settings, group: str, topic_pattern: str, timeout_s: float = 10.0) -> int:
    """Messages not yet committed by ``group`` on topics matching ``topic_pattern``."""
    # A consumer carrying the group's id reads its committed offsets without joining it.
    probe = Consumer(settings.kafka_config(**{"group.id": group, "enable.auto.commit": False}))
    try:
        pattern = re.compile(topic_pattern)
        metadata = probe.list_topics(timeout=timeout_s)
        partitions = [
            TopicPartition(name, p)
            for name, topic in metadata.topics.items()
            if pattern.match(name)
            for p in topic.partitions
        ]
        if not partitions:
            return 0
        lag = 0
        for tp in probe.committed(partitions, timeout=timeout_s):
            low, high = probe.get_watermark_offsets(tp, timeout=timeout_s)
            position = tp.offset if tp.offset >= 0 else low
            lag += max(0, high - position)
        return lag
    finally:
        probe.close()
