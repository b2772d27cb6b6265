"""Fakes of the Kafka clients and feed followers the router's data path talks to."""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from confluent_kafka import KafkaError, TopicPartition


class FakeMessage:
    def __init__(self, topic: str, partition: int, offset: int, key: bytes, value: bytes) -> None:
        self._t, self._p, self._o, self._k, self._v = topic, partition, offset, key, value

    def topic(self):
        return self._t

    def partition(self):
        return self._p

    def offset(self):
        return self._o

    def key(self):
        return self._k

    def value(self):
        return self._v

    def error(self):
        return None

    def timestamp(self):
        return (1, 1_764_000_000_000)


Step = list[FakeMessage] | Callable[["FakeConsumer"], list[FakeMessage]]


class FakeConsumer:
    """Hands out scripted batches (or runs a step, e.g. a rebalance), then stops the loop."""

    def __init__(
        self,
        steps: list[Step],
        stop: threading.Event,
        partitions: int = 3,
        assignment: list[tuple[str, int]] = (),
    ) -> None:
        self._steps = list(steps)
        self._stop = stop
        self._partitions = partitions
        self._assignment = list(assignment)  # assigned on subscribe
        self.commits: list[dict[tuple[str, int], int]] = []
        self.callbacks: dict[str, Callable] = {}
        self.closed = False

    def subscribe(self, topics, on_assign=None, on_revoke=None, on_lost=None):
        self.subscribed = topics
        self.callbacks = {"assign": on_assign, "revoke": on_revoke, "lost": on_lost}
        if self._assignment and on_assign is not None:
            self.assign(self._assignment)

    def assign(self, partitions: list[tuple[str, int]]) -> list[FakeMessage]:
        self.callbacks["assign"](self, [TopicPartition(t, p) for t, p in partitions])
        return []

    def consume(self, num_messages=1, timeout=-1):
        if not self._steps:
            self._stop.set()
            return []
        step = self._steps.pop(0)
        return step(self) if callable(step) else step

    def revoke(self, partitions: list[tuple[str, int]]) -> list[FakeMessage]:
        self.callbacks["revoke"](self, [TopicPartition(t, p) for t, p in partitions])
        return []

    def commit(self, offsets=None, asynchronous=True):
        self.commits.append({(tp.topic, tp.partition): tp.offset for tp in offsets})

    def list_topics(self, topic=None, timeout=None):
        meta = SimpleNamespace(partitions={p: None for p in range(self._partitions)})
        return SimpleNamespace(topics={topic: meta})

    def close(self):
        # librdkafka revokes the assignment on close: the loop must not commit there after a
        # failure.
        if self.callbacks.get("revoke"):
            self.callbacks["revoke"](self, [TopicPartition("any", 0)])
        self.closed = True


class FakeProducer:
    """Keeps what is produced; a flush reports an error for each record on ``fail_topics``."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.fail_topics: set[str] = set()
        self._unflushed: list[tuple[str, Callable]] = []

    def produce(self, topic, value=None, key=None, headers=None, on_delivery=None):
        self.sent.append({"topic": topic, "value": value, "key": key, "headers": headers})
        self._unflushed.append((topic, on_delivery))

    def poll(self, _timeout=None):
        return 0

    def flush(self, _timeout=None):
        for topic, callback in self._unflushed:
            if topic in self.fail_topics and callback is not None:
                callback(KafkaError(KafkaError._MSG_TIMED_OUT), None)
        self._unflushed = []
        return 0


class FakeFollower:
    """Hands out scripted change sets, one per call of ``changes``; ``on_catch_up`` runs on
    ``wait_caught_up`` (a record that reached the topic just before)."""

    def __init__(self, changes: list[dict] | None = None) -> None:
        self.script = list(changes or [])
        self.on_catch_up: dict = {}
        self.caught_up = 0

    def changes(self) -> dict:
        return self.script.pop(0) if self.script else {}

    def wait_caught_up(self, timeout_s: float = 60.0) -> None:
        self.caught_up += 1
        if self.on_catch_up:
            self.script.insert(0, self.on_catch_up)
            self.on_catch_up = {}
