"""What a BackfillRunner needs from the router, for tests and the backfill benchmark that run one
without the router process: a Router with the grant routed, and an OutputWriter on one producer
with the audit chain (what the router's forwarder offers a backfill)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from services.common.audit import GENESIS, seal, share_record
from services.common.catalog import Grant
from services.common.catalog_feed import CatalogRecord
from services.common.kafka_clients import make_producer
from services.common.plan import DeliveryPlan
from services.common.serde import AvroCodec
from services.common.settings import Settings
from services.common.topics import AUDIT
from services.router.routing import Route, Router

AUDIT_CHUNK = 500


def route_grant(
    settings: Settings, codec: AvroCodec, resources: list[CatalogRecord], grant: Grant
) -> tuple[Router, Route]:
    """A router that knows ``resources``, with ``grant`` routed (the one place these build one)."""
    router = Router([r.resource for r in resources], codec)
    record = next(r for r in resources if r.resource_id == grant.resource)
    secret = settings.mask_secret.get_secret_value().encode()
    return router, router.add_grant(grant, record.value_schema, secret, record.resource)


class ProducerWriter:
    def __init__(self, settings: Settings, audit_topic: str = AUDIT) -> None:
        self._producer = make_producer(settings)
        self._audit_topic = audit_topic
        self._lock = threading.Lock()
        self._head = GENESIS
        self._errors: list[Any] = []

    def _on_delivery(self, err, _msg) -> None:
        if err is not None:
            self._errors.append(err)

    def produce(self, topic: str, value: bytes, key: bytes) -> None:
        while True:
            try:
                self._producer.produce(topic, value, key, on_delivery=self._on_delivery)
                return
            except BufferError:  # local queue full: let librdkafka drain it
                self._producer.poll(0.05)

    def audit(
        self, plan: DeliveryPlan, shares: list[tuple[str, dict[str, Any]]], kind: str
    ) -> None:
        g = plan.grant
        with self._lock:  # one chain: the head moves under the lock
            for i in range(0, len(shares), AUDIT_CHUNK):
                body = share_record(
                    g.id,
                    g.consumer,
                    g.resource,
                    shares[i : i + AUDIT_CHUNK],
                    int(time.time() * 1000),
                    kind,
                )
                record = seal(body, self._head)
                self._head = record["hash"]
                self.produce(
                    self._audit_topic,
                    json.dumps(record, ensure_ascii=False).encode(),
                    g.id.encode(),
                )

    def flush(self, timeout: float) -> None:
        remaining = self._producer.flush(timeout)
        if remaining or self._errors:
            errors, self._errors = self._errors, []
            raise RuntimeError(f"{remaining} undelivered, errors: {errors[:3]}")
