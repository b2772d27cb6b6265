"""Publish provider changes as Avro change events; bad ones go to the dead-letter topic.

Resources, their value schemas and their field formats come from the live catalog
(``govbus.catalog``): changes of it are applied between publishes, so a resource added or
evolved through the control plane is validated and published with its current schema
without a restart.
"""

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
from services.common.catalog_feed import CatalogRecord, CatalogView
from services.common.dead_letter import DeadLetter, masked_change, produce_dead_letter
from services.common.feed import Decoded, FeedFollower, Unreadable
from services.common.metrics import BusMetrics
from services.common.schemas import envelope_schema, key_schema
from services.common.serde import AvroCodec, EncodeError, Encoder
from services.common.topics import CATALOG, key_subject, value_subject
from services.ingest.validation import Problem, record_problem

STAGE = "ingest"
EVENT_ID_NAMESPACE = uuid.UUID("6f1c4c57-2d1e-4d0e-9a57-3f6b1b0c9e21")


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
    """What publishing one resource needs, built from one version of its catalog record."""

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


def change_problem(change: Change, rc: ResourceCodec) -> Problem | None:
    if change.op not in ("c", "u", "d", "r"):
        return Problem("invalid_op", f"op {change.op!r}")
    for part in ("before", "after"):
        record = getattr(change, part)
        needed = (part == "after") == (change.op != "d")
        if record is None and needed:
            return Problem("invalid_envelope", f"op {change.op!r} needs '{part}'")
        if record is not None:
            problem = record_problem(rc.entry, rc.parsed_value, record)
            if problem:
                return problem._replace(detail=f"{part}: {problem.detail}")
    return None


def dead_letter_of(
    change: Change, entry: CatalogEntry | None, problem: Problem, seal: Callable[[bytes], str]
) -> DeadLetter:
    """The dead letter of a rejected change. It never reached a source topic, so its original
    travels sealed to the authority's key, for a redrive; what anyone reading the DLQ sees is
    the masked view, with the change's system and position for the provider to find it."""
    original = json.dumps(change.__dict__, ensure_ascii=False, default=str).encode()
    view = {**masked_change(change.__dict__, entry), "system": change.system}
    view["position"] = change.position
    return DeadLetter(
        STAGE,
        problem.reason,
        problem.detail,
        resource=change.resource,
        record=view,
        sealed=seal(original),
    )


def build_codec(record: CatalogRecord, codec: AvroCodec, source: dict[str, Any]) -> ResourceCodec:
    """Register the resource's key and envelope schemas (idempotent) and build its encoders."""
    entry, value = record.resource, record.value_schema
    return ResourceCodec(
        entry,
        parse_schema(value),
        codec.encoder(key_subject(entry.topic), key_schema(entry, value)),
        codec.encoder(value_subject(entry.topic), envelope_schema(value, source)),
    )


class ChangePublisher:
    """Validates, encodes and produces changes; the caller polls/flushes the producer.

    ``catalog`` is the live view; with a ``follower`` its changes are applied before each
    publish. A resource's codec is built on its first change after each catalog change, and
    ``prepare_topic`` (e.g. create the source topic) runs then too. ``seal_original`` seals a
    rejected change for its dead letter (``authority_seal.seal`` with the authority's key).
    """

    def __init__(
        self,
        catalog: CatalogView,
        codec: AvroCodec,
        producer: Producer,
        source: dict[str, Any],
        metrics: BusMetrics,
        max_message_bytes: int,
        clock: Callable[[], float] = time.time,
        follower: FeedFollower[CatalogRecord] | None = None,
        prepare_topic: Callable[[str], None] = lambda _topic: None,
        *,
        seal_original: Callable[[bytes], str],
    ) -> None:
        self._view = catalog
        self._codec = codec
        self._producer = producer
        self._source = source
        self._metrics = metrics
        self._max_bytes = max_message_bytes
        self._clock = clock
        self._follower = follower
        self._prepare_topic = prepare_topic
        self._seal = seal_original
        self._codecs: dict[str, ResourceCodec] = {}

    def apply(self, changes: Mapping[str, Decoded[CatalogRecord]]) -> list[str]:
        """Take catalog changes keyed by resource id; their codecs are rebuilt on next use."""
        changed = self._view.apply(changes)
        for rid in changed:
            self._codecs.pop(rid, None)
        unreadable = sum(isinstance(v, Unreadable) for v in changes.values())
        if unreadable:  # logged by the follower; counted here, where it stops a resource
            self._metrics.feed_unreadable.labels(CATALOG).inc(unreadable)
        return changed

    def refresh(self) -> list[str]:
        """Apply what the catalog follower read since the last call."""
        if self._follower is None:
            return []
        changes = self._follower.changes()
        return self.apply(changes) if changes else []

    def close(self) -> None:
        if self._follower is not None:
            self._follower.stop()

    def topics(self) -> list[str]:
        return self._view.topics()

    def resource_ids(self) -> list[str]:
        return [r.resource_id for r in self._view.records()]

    def record(self, resource_id: str) -> CatalogRecord | None:
        """The resource's current catalog record (adapters map and convert source rows by it)."""
        self.refresh()
        return self._view.get(resource_id)

    def publish(self, change: Change, on_delivery=None, event_id: str | None = None) -> str | None:
        """Queue the change; returns its event id, or None when it was dead-lettered."""
        outcome = self.submit(change, on_delivery, event_id)
        return outcome if isinstance(outcome, str) else None

    def submit(
        self, change: Change, on_delivery=None, event_id: str | None = None
    ) -> str | Problem:
        """Queue the change: its event id (``event_id``, else a new one), or the problem it was
        dead-lettered for."""
        self.refresh()
        rc = self._codecs.get(change.resource)
        if rc is None:
            rc = self._codec_for(change)
            if isinstance(rc, Problem):
                return self.reject(change, rc)
        problem = change_problem(change, rc)
        if problem:
            return self.reject(change, problem, rc.entry)
        event_id = event_id or str(uuid.uuid4())
        envelope = make_envelope(change, rc.entry, int(self._clock() * 1000), event_id)
        row = change.after if change.after is not None else change.before
        try:
            key = rc.encode_key({k: row[k] for k in rc.entry.key_fields})
            value = rc.encode_envelope(envelope)
        except EncodeError as exc:
            return self.reject(change, Problem(exc.reason, exc.detail[:500]), rc.entry)
        if len(value) + len(key) > self._max_bytes:
            problem = Problem("oversized", f"{len(value)} bytes > {self._max_bytes}")
            return self.reject(change, problem, rc.entry)
        while True:
            try:
                self._producer.produce(rc.entry.topic, value, key, on_delivery=on_delivery)
                break
            except BufferError:  # local queue full: let librdkafka drain it
                self._producer.poll(0.05)
        self._metrics.events_in.labels(STAGE, change.resource).inc()
        return event_id

    def _codec_for(self, change: Change) -> ResourceCodec | Problem:
        rid = change.resource
        record = self._view.get(rid)
        if record is None:
            if rid in self._view.blocked:
                # Fail closed: the catalog says something about this resource we cannot read.
                return Problem("catalog_unreadable", f"catalog record of {rid} is unreadable")
            return Problem("unknown_resource", f"no catalog entry {rid}")
        try:
            rc = build_codec(record, self._codec, self._source)
        except EncodeError as exc:  # the registry refused the schema: nothing can be encoded
            return Problem(exc.reason, exc.detail[:500])
        self._prepare_topic(record.topic)
        self._codecs[rid] = rc
        return rc

    def reject(
        self, change: Change, problem: Problem, entry: CatalogEntry | None = None
    ) -> Problem:
        """Dead-letter the change with the problem's reason; adapters reject what they cannot
        even turn into a change (a row without its key, an unknown op) here too."""
        if entry is None:
            record = self._view.get(change.resource)
            entry = record.resource if record is not None else None
        self.dead_letter(dead_letter_of(change, entry, problem, self._seal))
        return problem

    def dead_letter(self, letter: DeadLetter, on_delivery=None) -> None:
        """Queue a dead letter and count it: a rejected change's, or that of a source record
        an adapter could not read (which references the record's place on its topic)."""
        produce_dead_letter(self._producer, letter, on_delivery)
        self._metrics.dead_letters.labels(STAGE, letter.reason).inc()


def source_event_id(change: Change) -> str:
    """An event id derived from the change's place in its source, so a replay of the same
    source position carries the same id and the sink recognises it."""
    return str(
        uuid.uuid5(EVENT_ID_NAMESPACE, f"{change.resource}|{change.system}|{change.position}")
    )
