"""What every adapter publishes through: the one publisher path, in acknowledged batches.

A batch's changes are queued with ids derived from their source positions, then the producer
is flushed; only when Kafka acknowledged every one of them (dead letters included) does the
batch count, and only then may the adapter move its position past it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from confluent_kafka import Producer
from prometheus_client import CollectorRegistry, Counter, Gauge

from services.common.dead_letter import DeadLetter
from services.ingest.publisher import Change, ChangePublisher, source_event_id
from services.ingest.validation import Problem

ACK_TIMEOUT_S = 60.0


class AdapterMetrics:
    """Per adapter: events published, rejects, and how far it is behind its source."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.published = Counter(
            "govbus_adapter_events_published",
            "Changes an adapter published and Kafka acknowledged",
            ["adapter"],
            registry=registry,
        )
        self.rejected = Counter(
            "govbus_adapter_rejects",
            "Source rows an adapter sent to the dead-letter topic",
            ["adapter", "reason"],
            registry=registry,
        )
        self.lag = Gauge(
            "govbus_adapter_lag_seconds",
            "How far an adapter is behind its source: seconds since its last complete poll"
            " (polling), age of the oldest file waiting (file drop), how long its replication"
            " slot's confirmed position has not moved while it holds WAL (debezium)",
            ["adapter"],
            registry=registry,
        )
        self.files_waiting = Gauge(
            "govbus_adapter_files_waiting",
            "Files dropped and not yet processed",
            ["adapter"],
            registry=registry,
        )
        self.last_success = Gauge(
            "govbus_adapter_last_success_timestamp_seconds",
            "When an adapter last completed a poll, a file or a batch (Unix time)",
            ["adapter"],
            registry=registry,
        )
        self.slot_lag_bytes = Gauge(
            "govbus_cdc_slot_lag_bytes",
            "WAL a CDC adapter's replication slot holds: current WAL position minus its"
            " confirmed position",
            ["adapter"],
            registry=registry,
        )
        self.halted = Gauge(
            "govbus_adapter_halted",
            "1 while the adapter is halted by an incompatible source change",
            ["adapter"],
            registry=registry,
        )
        self.columns_added = Counter(
            "govbus_cdc_columns_added",
            "Source columns a CDC adapter added to its resource (new schema versions)",
            ["adapter"],
            registry=registry,
        )


class NotAcknowledged(RuntimeError):
    """Kafka did not acknowledge a batch: the adapter keeps its position and retries."""


@dataclass(frozen=True)
class Rejected:
    index: int  # the change's place in the batch
    position: str
    reason: str
    detail: str


@dataclass
class BatchResult:
    event_ids: dict[int, str] = field(default_factory=dict)  # batch index -> event id
    rejected: list[Rejected] = field(default_factory=list)


class AdapterOutput:
    def __init__(
        self,
        adapter: str,
        publisher: ChangePublisher,
        producer: Producer,
        metrics: AdapterMetrics,
    ) -> None:
        self.adapter = adapter
        self.publisher = publisher
        self._producer = producer
        self._metrics = metrics

    def send(
        self,
        changes: Sequence[Change],
        rejects: Sequence[tuple[Change, Problem]] = (),
        letters: Sequence[DeadLetter] = (),
    ) -> BatchResult:
        """Publish ``changes`` and dead-letter ``rejects`` (rows the adapter could not make a
        change of) and ``letters`` (source records it could not even read, referenced by their
        place on a topic); returns once Kafka acknowledged all of it. Rejects, then letters,
        are numbered after the changes."""
        errors: list[str] = []

        def on_delivery(err, _msg) -> None:
            if err is not None:
                errors.append(str(err))

        result = BatchResult()
        for i, change in enumerate(changes):
            outcome = self.publisher.submit(change, on_delivery, source_event_id(change))
            if isinstance(outcome, str):
                result.event_ids[i] = outcome
            else:
                result.rejected.append(Rejected(i, change.position, *outcome[:2]))
            self._producer.poll(0)
        for j, (change, problem) in enumerate(rejects, start=len(changes)):
            self.publisher.reject(change, problem)
            result.rejected.append(Rejected(j, change.position, problem.reason, problem.detail))
        for j, letter in enumerate(letters, start=len(changes) + len(rejects)):
            self.publisher.dead_letter(letter, on_delivery)
            result.rejected.append(Rejected(j, letter.key().decode(), letter.reason, letter.detail))
        remaining = self._producer.flush(ACK_TIMEOUT_S)
        if remaining or errors:
            raise NotAcknowledged(
                f"{remaining} changes not acknowledged by Kafka; errors: {errors[:3]}"
            )
        self._metrics.published.labels(self.adapter).inc(len(result.event_ids))
        for r in result.rejected:
            self._metrics.rejected.labels(self.adapter, r.reason).inc()
        return result

    def succeeded(self) -> None:
        self._metrics.last_success.labels(self.adapter).set(time.time())
