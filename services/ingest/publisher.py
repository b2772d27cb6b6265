"""Publish provider changes as Avro change events; bad ones go to the dead-letter topic."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Producer
from fastavro import parse_schema

from services.common.catalog import CatalogEntry
from services.common.dead_letter import DeadLetter, produce_dead_letter
from services.common.metrics import BusMetrics
from services.common.schemas import envelope_schema, key_schema, source_schema, value_schema
from services.common.serde import AvroCodec, Encoder
from services.common.topics import key_subject, value_subject
from services.ingest.validation import record_problem

STAGE = "ingest"


@dataclass(frozen=True)
class Change:
    """One change in a provider's system, as an adapter saw it."""

    resource: str  # <provider>.<code>
    op: str  # c | u | d | r
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    position: str
    system: str
    source_ts_ms: int | None = None
    snapshot: bool = False


@dataclass(frozen=True)
class ResourceCodec:
    entry: CatalogEntry
    parsed_value: Any
    encode_key: Encoder
    encode_envelope: Encoder


def make_envelope(change: Change, entry: CatalogEntry, now_ms: int, event_id: str) -> dict:
    return {
        "before": change.before,
        "after": change.after,
        "op": change.op,
        "ts_ms": now_ms,
        "source": {
            "provider": entry.provider,
            "resource": entry.code,
            "system": change.system,
            "position": change.position,
            "snapshot": change.snapshot,
            "ts_ms": change.source_ts_ms,
        },
        "event_id": event_id,
    }


def change_problem(change: Change, rc: ResourceCodec) -> tuple[str, str] | None:
    if change.op not in ("c", "u", "d", "r"):
        return "invalid_op", f"op {change.op!r}"
    for part in ("before", "after"):
        record = getattr(change, part)
        needed = (part == "after") == (change.op != "d")
        if record is None and needed:
            return "invalid_envelope", f"op {change.op!r} needs '{part}'"
        if record is not None:
            problem = record_problem(rc.entry, rc.parsed_value, record)
            if problem:
                return problem[0], f"{part}: {problem[1]}"
    return None


class ChangePublisher:
    """Validates, encodes and produces changes; the caller polls/flushes the producer."""

    def __init__(
        self,
        catalog: Mapping[str, CatalogEntry],
        codec: AvroCodec,
        producer: Producer,
        schemas_dir,
        metrics: BusMetrics,
        max_message_bytes: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._producer = producer
        self._metrics = metrics
        self._max_bytes = max_message_bytes
        self._clock = clock
        source = source_schema(schemas_dir)
        self._codecs: dict[str, ResourceCodec] = {}
        for rid, entry in catalog.items():
            value = value_schema(entry, schemas_dir)
            self._codecs[rid] = ResourceCodec(
                entry,
                parse_schema(value),
                codec.encoder(key_subject(entry.topic), key_schema(entry, value)),
                codec.encoder(value_subject(entry.topic), envelope_schema(value, source)),
            )

    def topics(self) -> list[str]:
        return [rc.entry.topic for rc in self._codecs.values()]

    def publish(self, change: Change, on_delivery=None) -> str | None:
        """Queue the change; returns its event id, or None when it was dead-lettered."""
        rc = self._codecs.get(change.resource)
        if rc is None:
            return self._dead(change, "unknown_resource", f"no catalog entry {change.resource}")
        problem = change_problem(change, rc)
        if problem:
            return self._dead(change, *problem)
        event_id = str(uuid.uuid4())
        envelope = make_envelope(change, rc.entry, int(self._clock() * 1000), event_id)
        row = change.after if change.after is not None else change.before
        key = rc.encode_key({k: row[k] for k in rc.entry.key_fields})
        value = rc.encode_envelope(envelope)
        if len(value) + len(key) > self._max_bytes:
            return self._dead(change, "oversized", f"{len(value)} bytes > {self._max_bytes}")
        while True:
            try:
                self._producer.produce(rc.entry.topic, value, key, on_delivery=on_delivery)
                break
            except BufferError:  # local queue full: let librdkafka drain it
                self._producer.poll(0.05)
        self._metrics.events_in.labels(STAGE, change.resource).inc()
        return event_id

    def _dead(self, change: Change, reason: str, detail: str) -> None:
        # No Avro bytes exist yet for a rejected change: the DLQ keeps it as JSON.
        raw = json.dumps(change.__dict__, ensure_ascii=False, default=str).encode()
        letter = DeadLetter(STAGE, reason, detail, change.resource.encode(), raw)
        produce_dead_letter(self._producer, letter)
        self._metrics.dead_letters.labels(STAGE, reason).inc()
        return None
