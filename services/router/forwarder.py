"""Write a batch's outputs: deliveries, dead letters and audit records, on one producer.

``OutputWriter`` is shared by the data path and a backfill running in its own thread, so it is
thread-safe: confluent-kafka's producer is, and the audit chain's head moves under a lock
together with the produce of the record that extends it, so the chain's order is the log's.
The chain is this writer's own (see ``common/audit.py``): no other process ever extends it.
Delivery reports come only on error (``delivery.report.only.error``); a failure is sticky:
every later ``flush`` raises, so no offset is ever committed past it.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol

from confluent_kafka import KafkaError, Producer

from services.common.audit import AuditChain, share_record
from services.common.dead_letter import DeadLetter, produce_dead_letter
from services.common.metrics import BusMetrics
from services.common.plan import DeliveryPlan
from services.common.topics import AUDIT
from services.router.routing import (
    GRANT_FAILURES,
    STAGE,
    RawMessage,
    Router,
    grant_dead_letter,
)

AUDIT_CHUNK = 500
Share = tuple[str, dict[str, Any]]  # (event id, record key as delivered)


class DeliveryFailed(RuntimeError):
    """Kafka did not take an output: nothing at or after it may be committed."""


class OutputWriter:
    """Produces outputs, dead letters and chained audit records; ``flush`` confirms them all."""

    def __init__(self, producer: Producer, chain: AuditChain, audit_topic: str = AUDIT) -> None:
        self._producer = producer
        self._audit_topic = audit_topic
        self._errors: list[KafkaError] = []
        self._audit_lock = threading.Lock()
        self._chain = chain

    @property
    def chain_id(self) -> str:
        return self._chain.chain

    def _on_delivery(self, err: KafkaError | None, _msg) -> None:
        if err is not None:
            self._errors.append(err)

    def produce(self, topic: str, value: bytes | None, key: bytes | None) -> None:
        """Queue one record; acknowledged by the next ``flush``."""
        while True:
            try:
                self._producer.produce(topic, value, key, on_delivery=self._on_delivery)
                return
            except BufferError:  # local queue full: let librdkafka drain it
                self._producer.poll(0.05)

    def dead_letter(self, letter: DeadLetter) -> None:
        while True:
            try:
                produce_dead_letter(self._producer, letter, self._on_delivery)
                return
            except BufferError:
                self._producer.poll(0.05)

    def audit(self, plan: DeliveryPlan, deliveries: list[Share], kind: str = "live") -> None:
        """Chained audit records of one grant's deliveries (kind "live" or "backfill")."""
        g = plan.grant
        now_ms = int(time.time() * 1000)
        # Chunks keep a record far below the broker's message size, whatever the batch size.
        for i in range(0, len(deliveries), AUDIT_CHUNK):
            chunk = deliveries[i : i + AUDIT_CHUNK]
            body = share_record(
                g.id, g.consumer, g.resource, chunk, now_ms, kind, plan.delivered_fields
            )
            with self._audit_lock:  # seal and produce together: the chain's order is the log's
                record = self._chain.seal(body)
                value = json.dumps(record, ensure_ascii=False).encode()
                # Keyed by chain: one chain, one partition, in order.
                self.produce(self._audit_topic, value, self._chain.chain.encode())

    def poll(self) -> None:
        self._producer.poll(0)

    def flush(self, timeout_s: float = 60.0) -> None:
        """Wait until Kafka acknowledged everything queued; DeliveryFailed on any error."""
        remaining = self._producer.flush(timeout_s)
        if remaining or self._errors:
            raise DeliveryFailed(f"{remaining} undelivered, errors: {self._errors[:3]}")


class KeyGate(Protocol):
    """Serialises one grant's live and backfill records per record key (see backfill)."""

    def live(self, key: bytes, produce: Callable[[], None]) -> None: ...


GateOf = Callable[[str], "KeyGate | None"]


def _no_gate(_grant_id: str) -> KeyGate | None:
    return None


class BatchForwarder:
    """Routes a batch and queues every output on the writer; the caller flushes and commits."""

    def __init__(
        self, router: Router, writer: OutputWriter, metrics: BusMetrics, gate_of: GateOf = _no_gate
    ) -> None:
        self._router = router
        self._writer = writer
        self.metrics = metrics
        self._gate_of = gate_of
        # Per source (topic, partition): the next offset after the last message routed. The
        # seam of a backfill.
        self.positions: dict[tuple[str, int], int] = {}

    def forward(
        self,
        batch: list[RawMessage],
        today: dt.date,
        decoded: list[dict[str, Any] | DeadLetter] | None = None,
    ) -> None:
        """Route ``batch`` (``decoded``: its events, if already read) and queue the outputs."""
        if decoded is None:
            decoded = [self._router.decode_event(m) for m in batch]
        seen = Counter(m.topic for m in batch)
        dead_in: Counter[str] = Counter()  # per source topic
        dead: Counter[str] = Counter()  # per reason
        failed: Counter[DeliveryPlan] = Counter()
        routes_of = self._router.live_routes(today)  # resolved once per batch
        # Per live route: its plan, fused step, delivery topic, backfill gate and audit shares.
        lanes = {
            topic: [
                (r.plan, r.deliver, r.plan.topic, self._gate_of(r.plan.grant.id), [])
                for r in routes
            ]
            for topic, routes in routes_of.items()
        }
        produce = self._writer.produce
        for msg, event in zip(batch, decoded, strict=True):
            topic = msg.topic
            if isinstance(event, DeadLetter):
                self._writer.dead_letter(event)
                dead[event.reason] += 1
                dead_in[topic] += 1
                continue
            event_id = event["event_id"]
            for plan, deliver, out_topic, gate, shares in lanes.get(topic, ()):
                try:
                    done = deliver(event)
                except GRANT_FAILURES as exc:  # this grant's delivery only; the others go on
                    record = self._router.record_of(topic)
                    entry = record.resource if record is not None else None
                    letter = grant_dead_letter(msg, plan, exc, event, entry)
                    self._writer.dead_letter(letter)
                    dead[letter.reason] += 1
                    failed[plan] += 1
                    continue
                if done is None:  # held back by the row filter
                    continue
                key, value, record_key = done
                if gate is None:
                    produce(out_topic, value, key)
                else:
                    # A backfill of this grant is running: the gate orders this key's live
                    # record after the key's snapshot (keyed by the key as delivered).
                    gate.live(key, partial(produce, out_topic, value, key))
                shares.append((event_id, record_key))
        # The batch is in log order: the last message of each partition sets its position.
        self.positions.update({(m.topic, m.partition): m.offset + 1 for m in batch})
        routed = seen - dead_in
        delivered: Counter[DeliveryPlan] = Counter()
        for topic_lanes in lanes.values():
            for plan, _, _, _, shares in topic_lanes:
                if shares:
                    delivered[plan] = len(shares)
                    self._writer.audit(plan, shares)
        self._writer.poll()
        self._count(today, seen, routed, dead, delivered, failed)

    def _count(
        self,
        today: dt.date,
        seen: Counter,
        routed: Counter,
        dead: Counter,
        delivered: Counter,
        failed: Counter,
    ) -> None:
        # Counted once per batch: label lookups per record would cost more than the routing.
        m = self.metrics
        for topic, n in seen.items():
            m.events_in.labels(STAGE, self._router.resource_of(topic)).inc(n)
        for reason, n in dead.items():
            m.dead_letters.labels(STAGE, reason).inc(n)
        for plan, n in delivered.items():
            m.events_out.labels(plan.grant.consumer, plan.grant.resource).inc(n)
            for method, count in plan.masked_per_record.items():
                m.masked_fields.labels(method).inc(count * n)
        for topic, plans in self._router.live_plans(today).items():
            resource = self._router.resource_of(topic)
            m.grants_live.labels(resource).set(len(plans))
            for plan in plans:
                # Every routed event reached a live grant, was dead-lettered for it, or its row
                # filter held it back.
                held_back = routed[topic] - delivered[plan] - failed[plan]
                if held_back:
                    m.filtered_out.labels(plan.grant.consumer, plan.grant.resource).inc(held_back)
