"""The ingest bridge: Debezium's change topic of one table -> ``gov.<provider>.<resource>``.

One batch at a time: map each record (``debezium_mapping``), publish it through the one
publisher path (or dead-letter it), flush the producer, and only then commit the offsets.
An incompatible source change halts the adapter before that record: the offsets of what
went before are committed, the consumer leaves its topic, and it comes back from the halting
record once the resource's catalog record changes.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from services.common.catalog_feed import CatalogRecord
from services.common.dead_letter import DeadLetter, produce_dead_letter
from services.common.metrics import BusMetrics
from services.ingest.adapters.debezium import DebeziumAdapter
from services.ingest.adapters.debezium_mapping import Incompatible, to_change
from services.ingest.publisher import STAGE, ChangePublisher
from services.ingest.validation import Problem

log = logging.getLogger("govbus.adapter")


@dataclass
class Halt:
    reason: Incompatible | str
    record: CatalogRecord | None  # the catalog record the halting change did not fit


class DebeziumBridge:
    def __init__(
        self,
        adapter: DebeziumAdapter,
        topic: str,
        publisher: ChangePublisher,
        consumer: Consumer,
        producer: Producer,
        metrics: BusMetrics,
        batch_size: int = 1000,
    ) -> None:
        self.adapter = adapter
        self.topic = topic
        self._publisher = publisher
        self._consumer = consumer
        self._producer = producer
        self._metrics = metrics
        self._batch_size = batch_size
        self.halted: Halt | None = None
        self.last_source_ts_ms: int | None = None
        consumer.subscribe([topic])

    def step(self, timeout_s: float = 0.5) -> int:
        """One batch; returns how many records were taken (published or dead-lettered)."""
        if self.halted is not None:
            self._retry_halted(timeout_s)
            return 0
        messages = self._consumer.consume(self._batch_size, timeout_s)
        failures: list[str] = []

        def delivered(err, _msg) -> None:
            if err is not None:
                failures.append(str(err))

        done: dict[tuple[str, int], int] = {}
        taken = 0
        for msg in messages:
            if msg.error():
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    log.warning("consume error on %s: %s", self.topic, msg.error())
                continue
            halt = self._take(msg, delivered)
            if halt is not None:
                self.halted = halt
                break
            done[(msg.topic(), msg.partition())] = msg.offset() + 1
            taken += 1
        remaining = self._producer.flush(60)
        if remaining or failures:
            # Nothing is committed: a restart replays the batch, the event ids dedupe it.
            raise RuntimeError(f"publish not acknowledged ({remaining} queued): {failures[:3]}")
        if done:
            offsets = [TopicPartition(t, p, o) for (t, p), o in done.items()]
            self._consumer.commit(offsets=offsets, asynchronous=False)
        if self.halted is not None:
            log.error(
                "adapter for %s halted: %s; it resumes when the catalog record changes",
                self.adapter.resource,
                self.halted.reason,
            )
            self._consumer.unsubscribe()  # back from the committed offset on resume
        return taken

    def _take(self, msg: Message, delivered) -> Halt | None:
        record = self._publisher.record(self.adapter.resource)
        if record is None:
            return Halt(f"resource {self.adapter.resource} is not in the catalog", None)
        try:
            key = json.loads(msg.key()) if msg.key() else None
            value = json.loads(msg.value()) if msg.value() else None
        except ValueError as exc:
            self._dead(msg, Problem("not_json", str(exc)[:300]), delivered)
            return None
        outcome = to_change(key, value, self.adapter, record.resource, record.value_schema)
        if isinstance(outcome, Incompatible):
            return Halt(outcome, record)
        if isinstance(outcome, Problem):
            self._dead(msg, outcome, delivered)
        elif outcome is not None:
            self._publisher.publish(outcome, on_delivery=delivered)
            self.last_source_ts_ms = outcome.source_ts_ms
        self._producer.poll(0)
        return None

    def _dead(self, msg: Message, problem: Problem, delivered) -> None:
        letter = DeadLetter(
            STAGE,
            problem.reason,
            problem.detail,
            msg.key(),
            msg.value(),
            msg.topic(),
            msg.partition(),
            msg.offset(),
        )
        produce_dead_letter(self._producer, letter, on_delivery=delivered)
        self._metrics.dead_letters.labels(STAGE, problem.reason).inc()

    def _retry_halted(self, timeout_s: float) -> None:
        assert self.halted is not None
        if self._publisher.record(self.adapter.resource) == self.halted.record:
            self._consumer.poll(timeout_s)  # nothing assigned: only keeps the client serviced
            return
        log.info("catalog record of %s changed: the adapter resumes", self.adapter.resource)
        self.halted = None
        self._consumer.subscribe([self.topic])
