"""Forward a batch: route every event, produce outputs and dead letters, await Kafka's acks."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections import Counter

from confluent_kafka import KafkaError, Producer

from services.common.audit import GENESIS, seal, share_record
from services.common.dead_letter import DeadLetter, produce_dead_letter
from services.common.metrics import BusMetrics
from services.common.plan import DeliveryPlan
from services.common.topics import AUDIT
from services.router.routing import STAGE, Output, RawMessage, Router

AUDIT_CHUNK = 500


class BatchForwarder:
    """Routes a batch, produces every output, and waits until Kafka acknowledged them all."""

    def __init__(
        self, router: Router, producer: Producer, metrics: BusMetrics, audit_head: str = GENESIS
    ) -> None:
        self._router = router
        self._producer = producer
        self.metrics = metrics
        self._errors: list[KafkaError] = []
        self._audit_head = audit_head  # hash of the last audit record written
        # Per source (topic, partition): the next offset after the last message routed. The
        # seam of a backfill (see backfill.py).
        self.positions: dict[tuple[str, int], int] = {}

    def _on_delivery(self, err: KafkaError | None, _msg) -> None:
        if err is not None:
            self._errors.append(err)

    def forward(self, batch: list[RawMessage], today: dt.date) -> None:
        seen: Counter[str] = Counter()
        routed: Counter[str] = Counter()
        dead: Counter[str] = Counter()
        delivered: Counter[DeliveryPlan] = Counter()
        shares: dict[DeliveryPlan, list[tuple[str, dict]]] = {}
        for msg in batch:
            seen[msg.topic] += 1
            self.positions[(msg.topic, msg.partition)] = msg.offset + 1
            result = self._router.route(msg, today)
            if isinstance(result, DeadLetter):
                produce_dead_letter(self._producer, result, self._on_delivery)
                dead[result.reason] += 1
                continue
            routed[msg.topic] += 1
            for out in result:
                self._produce(out.plan.topic, out.value, out.key)
                delivered[out.plan] += 1
                shares.setdefault(out.plan, []).append((out.event_id, out.record_key))
        self._audit(shares)
        self._count(today, seen, routed, dead, delivered)

    def deliver_backfill(self, plan: DeliveryPlan, outputs: list[Output]) -> None:
        """Produce a grant's backfill and its audit records (kind "backfill"); await the acks."""
        for out in outputs:
            self._produce(out.plan.topic, out.value, out.key)
        self._audit({plan: [(o.event_id, o.record_key) for o in outputs]}, kind="backfill")
        self.metrics.events_out.labels(plan.grant.consumer, plan.grant.resource).inc(len(outputs))
        self.wait_acknowledged()

    def produce(self, topic: str, value: bytes, key: bytes) -> None:
        """Queue one record with the batch's producer; acknowledged by ``wait_acknowledged``."""
        self._produce(topic, value, key)

    def _audit(self, shares: dict[DeliveryPlan, list[tuple[str, dict]]], kind="live") -> None:
        """One chained audit record per grant and batch, acknowledged with the batch."""
        now_ms = int(time.time() * 1000)
        for plan, deliveries in shares.items():
            g = plan.grant
            # Chunks keep a record far below the broker's message size, whatever the batch size.
            for i in range(0, len(deliveries), AUDIT_CHUNK):
                chunk = deliveries[i : i + AUDIT_CHUNK]
                body = share_record(g.id, g.consumer, g.resource, chunk, now_ms, kind)
                record = seal(body, self._audit_head)
                self._audit_head = record["hash"]
                self._produce(AUDIT, json.dumps(record, ensure_ascii=False).encode(), g.id.encode())

    def _count(self, today, seen: Counter, routed: Counter, dead: Counter, delivered: Counter):
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
                # Every routed event either reached a live grant or its row filter held it back.
                held_back = routed[topic] - delivered[plan]
                if held_back:
                    m.filtered_out.labels(plan.grant.consumer, plan.grant.resource).inc(held_back)

    def _produce(self, topic: str, value: bytes, key: bytes) -> None:
        while True:
            try:
                self._producer.produce(topic, value, key, on_delivery=self._on_delivery)
                return
            except BufferError:  # local queue full: let librdkafka drain it
                self._producer.poll(0.05)

    def wait_acknowledged(self, timeout_s: float = 60.0) -> None:
        remaining = self._producer.flush(timeout_s)
        if remaining or self._errors:
            errors, self._errors = self._errors, []
            raise RuntimeError(f"{remaining} undelivered, errors: {errors[:3]}")
