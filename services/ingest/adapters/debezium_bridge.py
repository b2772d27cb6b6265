"""The ingest bridge: Debezium's change topic of one table -> ``gov.<provider>.<resource>``.

One batch at a time: map each record (``debezium_mapping``), send the batch through the
adapters' one output (``AdapterOutput``: the publisher path, event ids from source positions,
dead letters, Kafka's acknowledgement), and only then commit the offsets. An incompatible
source change halts the adapter before that record: the offsets of what went before are
committed, the consumer leaves its topic, and it comes back from the halting record once the
resource's catalog record changes.

A record with columns the resource lacks (the table gained them) is held the same way: the
widener registers the wider resource with the control plane, and the adapter resumes from
that record once the new catalog record has arrived; a refusal halts it as above.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from services.common.catalog_feed import CatalogRecord
from services.common.dead_letter import DeadLetter
from services.ingest.adapters.debezium import DebeziumAdapter
from services.ingest.adapters.debezium_mapping import Incompatible, NewColumns, to_change
from services.ingest.adapters.debezium_widen import RETRY_S, ColumnWidener, Unreachable
from services.ingest.adapters.output import AdapterOutput
from services.ingest.publisher import STAGE, Change
from services.ingest.validation import Problem

# How long a batch waits to fill. Below batch_size/BATCH_WAIT_S rows/s every batch waits the
# whole time, so this is the bridge's own latency on a quiet table (0.5 s made it more than
# half of commit-to-delivery in `make bench-cdc`); at higher rates batches fill first.
BATCH_WAIT_S = 0.05
log = logging.getLogger("govbus.adapter")


@dataclass
class Halt:
    reason: Incompatible | str
    record: CatalogRecord | None  # the catalog record the halting change did not fit
    held: bool = False  # waiting for a catalog change the adapter asked for: no fault
    retry_at: float | None = None  # monotonic time to try the record again regardless


@dataclass
class Batch:
    changes: list[Change] = field(default_factory=list)
    letters: list[DeadLetter] = field(default_factory=list)
    done: dict[tuple[str, int], int] = field(default_factory=dict)  # next offset per partition
    halt: Halt | None = None


class DebeziumBridge:
    def __init__(
        self,
        adapter: DebeziumAdapter,
        topic: str,
        output: AdapterOutput,
        consumer: Consumer,
        batch_size: int = 1000,
        widener: ColumnWidener | None = None,
    ) -> None:
        self.adapter = adapter
        self._widener = widener
        self.topic = topic
        self._output = output
        self._consumer = consumer
        self._batch_size = batch_size
        self.halted: Halt | None = None
        consumer.subscribe([topic])

    def step(self, timeout_s: float = BATCH_WAIT_S) -> int:
        """One batch; returns how many records were taken (published or dead-lettered).
        ``NotAcknowledged``: nothing is committed, a restart replays the batch and the event
        ids let the sink recognise what it already has."""
        if self.halted is not None:
            self._retry_halted(timeout_s)
            return 0
        batch = self._map(self._consumer.consume(self._batch_size, timeout_s))
        self._output.send(batch.changes, letters=batch.letters)
        if batch.done:
            offsets = [TopicPartition(t, p, o) for (t, p), o in batch.done.items()]
            self._consumer.commit(offsets=offsets, asynchronous=False)
        self._output.succeeded()
        if batch.halt is not None:
            self.halted = batch.halt
            if not batch.halt.held:
                log.error(
                    "adapter for %s halted: %s; it resumes when the catalog record changes",
                    self.adapter.resource,
                    batch.halt.reason,
                )
            self._consumer.unsubscribe()  # back from the committed offset on resume
        return len(batch.changes) + len(batch.letters)

    def _map(self, messages: list[Message]) -> Batch:
        """The batch's changes and dead letters, up to the first record that halts it."""
        batch = Batch()
        for msg in messages:
            if msg.error():
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    log.warning("consume error on %s: %s", self.topic, msg.error())
                continue
            outcome = self._change_of(msg)
            if isinstance(outcome, Halt):
                batch.halt = outcome
                break
            if isinstance(outcome, Problem):
                batch.letters.append(self._letter(msg, outcome))
            elif outcome is not None:
                batch.changes.append(outcome)
            batch.done[(msg.topic(), msg.partition())] = msg.offset() + 1
        return batch

    def _change_of(self, msg: Message) -> Change | Problem | Halt | None:
        record = self._output.publisher.record(self.adapter.resource)
        if record is None:
            return Halt(f"resource {self.adapter.resource} is not in the catalog", None)
        try:
            key = json.loads(msg.key()) if msg.key() else None
            value = json.loads(msg.value()) if msg.value() else None
        except ValueError as exc:
            return Problem("not_json", str(exc)[:300])
        outcome = to_change(key, value, self.adapter, record.resource, record.value_schema)
        if isinstance(outcome, NewColumns):
            return self._widen(outcome, record)
        return Halt(outcome, record) if isinstance(outcome, Incompatible) else outcome

    def _widen(self, added: NewColumns, record: CatalogRecord) -> Halt:
        """Hold the record while the control plane widens the resource for its new columns."""
        if self._widener is None:
            detail = "not in the resource; this bridge does not add columns"
            return Halt(Incompatible(added.table, ",".join(added.columns), detail), record)
        outcome = self._widener.widen(added, record)
        if isinstance(outcome, Incompatible):
            return Halt(outcome, record)
        if isinstance(outcome, Unreachable):
            log.warning("table %s: new columns wait: %s", added.table, outcome.detail)
            return Halt(outcome.detail, record, held=True, retry_at=time.monotonic() + RETRY_S)
        return Halt(f"schema version {outcome.schema_version} registered", record, held=True)

    def _letter(self, msg: Message, problem: Problem) -> DeadLetter:
        # The record stays on Debezium's topic; the letter references it, with no data of it.
        return DeadLetter(
            STAGE,
            problem.reason,
            problem.detail,
            msg.topic(),
            msg.partition(),
            msg.offset(),
            resource=self.adapter.resource,
        )

    def _retry_halted(self, timeout_s: float) -> None:
        assert self.halted is not None
        record = self._output.publisher.record(self.adapter.resource)
        retry_at = self.halted.retry_at
        if record == self.halted.record and (retry_at is None or time.monotonic() < retry_at):
            self._consumer.poll(timeout_s)  # nothing assigned: only keeps the client serviced
            return
        why = "new catalog record" if record != self.halted.record else "retry"
        version = record.schema_version if record else None
        resource = self.adapter.resource
        log.info("%s of %s at schema version %s: the adapter resumes", why, resource, version)
        self.halted = None
        self._consumer.subscribe([self.topic])
