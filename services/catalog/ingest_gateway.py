"""HTTP push: a provider's batch of changes, published through the one publisher path.

The catalog service serves requests on a thread pool; the gateway's producer and publisher
are used by one request at a time (a lock), and a batch is answered only after Kafka
acknowledged its accepted changes and the dead letters of its rejected ones. The publisher is
built on the first push, so the service still starts and answers with Kafka away.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry

from services.common.kafka_clients import make_producer
from services.common.metrics import BusMetrics
from services.common.settings import Settings
from services.ingest.adapters.output import AdapterMetrics, AdapterOutput, NotAcknowledged
from services.ingest.feed import build_publisher
from services.ingest.publisher import Change, ChangePublisher
from services.ingest.validation import Problem

log = logging.getLogger("govbus.catalog.ingest")
CATALOG_WAIT_S = 15.0
PARTS = ("op", "before", "after", "position", "source_ts_ms")


class IngestUnavailable(RuntimeError):
    """Kafka did not take the batch; the client retries it (same positions, same ids)."""


class UnknownResource(LookupError):
    pass


@dataclass(frozen=True)
class PushResult:
    event_ids: list[str]
    rejected: list[dict[str, Any]]  # {"index", "reason", "detail"}


def to_change(resource: str, system: str, batch_id: str, index: int, item: Any) -> Change | Problem:
    """One pushed item as a change; its position is the client's, else its place in the batch."""
    if not isinstance(item, dict):
        return Problem("invalid_envelope", f"expected an object, got {type(item).__name__}")
    unknown = sorted(set(item) - set(PARTS))
    if unknown:
        return Problem("invalid_envelope", f"unknown keys {unknown}; a change has {list(PARTS)}")
    position = item.get("position")
    ts = item.get("source_ts_ms")
    if (
        position is not None
        and not isinstance(position, str)
        or (ts is not None and not isinstance(ts, int))
    ):
        return Problem("invalid_envelope", "position must be text and source_ts_ms an integer")
    return Change(
        resource,
        str(item.get("op", "")),
        item.get("before"),
        item.get("after"),
        position or f"http:{batch_id}:{index}",
        system,
        ts,
    )


class IngestGateway:
    def __init__(self, settings: Settings, registry: CollectorRegistry) -> None:
        self._settings = settings
        self._metrics = AdapterMetrics(registry)
        self._bus_metrics = BusMetrics(registry)
        self._lock = threading.Lock()
        self._producer = None
        self._publisher: ChangePublisher | None = None

    def _ready(self) -> ChangePublisher:
        if self._publisher is None:
            producer = make_producer(self._settings)
            try:
                self._publisher = build_publisher(
                    self._settings, self._bus_metrics, producer, CATALOG_WAIT_S
                )
            except Exception as exc:  # noqa: BLE001 - Kafka away: the client retries later
                raise IngestUnavailable(f"the bus cannot take changes now: {exc}") from exc
            self._producer = producer
        return self._publisher

    def push(self, department: str, user: str, resource: str, items: list[Any]) -> PushResult:
        with self._lock:
            publisher = self._ready()
            if publisher.record(resource) is None:
                raise UnknownResource(f"no resource {resource} in the catalog")
            batch_id = hashlib.sha256(
                json.dumps(items, sort_keys=True, ensure_ascii=False, default=str).encode()
            ).hexdigest()[:16]
            changes: list[tuple[int, Change]] = []
            rejects: list[tuple[int, tuple[Change, Problem]]] = []
            for i, item in enumerate(items):
                change = to_change(resource, f"http:{user}", batch_id, i, item)
                if isinstance(change, Problem):
                    stub = Change(resource, "?", None, None, f"http:{batch_id}:{i}", f"http:{user}")
                    rejects.append((i, (stub, change)))
                else:
                    changes.append((i, change))
            output = AdapterOutput(f"http-{department}", publisher, self._producer, self._metrics)
            order = [i for i, _ in changes] + [i for i, _ in rejects]
            try:
                result = output.send([c for _, c in changes], [r for _, r in rejects])
            except NotAcknowledged as exc:
                raise IngestUnavailable(str(exc)) from exc
            output.succeeded()
        return PushResult(
            [result.event_ids[j] for j in sorted(result.event_ids)],
            sorted(
                (
                    {"index": order[r.index], "reason": r.reason, "detail": r.detail}
                    for r in result.rejected
                ),
                key=lambda r: r["index"],
            ),
        )

    def close(self) -> None:
        with self._lock:
            if self._publisher is not None:
                self._publisher.close()
                self._producer.flush(10)
