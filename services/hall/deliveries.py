"""How many records a grant's consumer has been delivered: the records on its delivery topic.

Read from the topic's high watermarks (the router writes no transactions, so every offset is
a record); a grant's page polls it, so a consumer watches its count rise. With Kafka away
the count is unknown (None), never an error page.
"""

from __future__ import annotations

import threading

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from services.common.kafka_clients import make_consumer
from services.common.settings import Settings

TIMEOUT_S = 2.0


class DeliveryCounter:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._lock = threading.Lock()  # one client, asked one topic at a time
        self._consumer: Consumer | None = None

    def count(self, topic: str) -> int | None:
        """Records ever written to ``topic`` (0 before it exists), None if Kafka is away."""
        try:
            with self._lock:
                if self._consumer is None:
                    # Never subscribes nor commits: the group id only satisfies the client.
                    self._consumer = make_consumer(self._settings, "govbus-hall-counts")
                meta = self._consumer.list_topics(topic, timeout=TIMEOUT_S).topics.get(topic)
                if meta is None:
                    return 0
                if meta.error is not None:
                    return 0 if meta.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART else None
                return sum(
                    self._consumer.get_watermark_offsets(
                        TopicPartition(topic, p), timeout=TIMEOUT_S
                    )[1]
                    for p in meta.partitions
                )
        except KafkaException:
            return None

    def close(self) -> None:
        with self._lock:
            if self._consumer is not None:
                self._consumer.close()
                self._consumer = None
