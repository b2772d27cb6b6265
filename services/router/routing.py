"""Route one raw change event: decode once, then plan, mask and encode it for every live grant.

Nothing here touches Kafka; the outcome is the outputs to produce, or a dead letter for the
event. A grant that fails on an event (masking, a missing field, encoding) costs only its own
delivery: that one is dead-lettered naming the grant, and every other grant gets the event.
Each event is read with its resource's current envelope schema as the reader schema, so any
change the registry accepts (a field added or removed, int widened to long, an enum symbol
added) reads old and new events alike.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from services.common.catalog import CatalogEntry, Grant
from services.common.catalog_feed import CatalogRecord
from services.common.dead_letter import DeadLetter, masked_change
from services.common.plan import Delivery, DeliveryPlan, compile_plan
from services.common.schemas import OPS, envelope_schema
from services.common.serde import AvroCodec, DecodeError, Encoder, ReaderSchema
from services.common.topics import key_subject, parse_source_topic, value_subject
from services.router.fused import Fused, fuse

STAGE = "router"


class RawMessage(NamedTuple):
    """One consumed record (a tuple: built per event, where a frozen dataclass costs 1 µs)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True)
class Output:
    plan: DeliveryPlan
    key: bytes
    value: bytes
    event_id: str
    record_key: dict[str, Any]  # as delivered (masked): what the audit trail names


@dataclass(frozen=True)
class Route:
    plan: DeliveryPlan
    encode_key: Encoder
    encode_value: Encoder
    deliver: Fused  # plan_delivery and both encoders in one step, for the data path's thread


@dataclass
class Source:
    """A resource the router reads: its catalog record, reader schema and routes."""

    record: CatalogRecord
    reader: ReaderSchema  # the record's current envelope schema: every event is read with it
    routes: list[Route] = field(default_factory=list)


class Router:
    """Routes per source topic, from the live catalog; grants are added, replaced and removed.

    Not thread-safe: one thread (the data path) changes it, between batches.
    """

    def __init__(
        self, codec: AvroCodec, master_secret: bytes, source_block: dict[str, Any]
    ) -> None:
        self._codec = codec
        self._secret = master_secret
        self._source_block = source_block  # the envelope's ``source`` schema (source.avsc)
        self._sources: dict[str, Source] = {}
        self._blocked: dict[str, str] = {}  # source topic -> why its catalog record is unreadable
        self._topic_of_grant: dict[str, str] = {}  # grant id -> source topic of its route

    def set_resource(self, record: CatalogRecord) -> None:
        """Read ``record``'s topic with its current schema; routes stay until recompiled."""
        reader = ReaderSchema(envelope_schema(record.value_schema, self._source_block))
        self._blocked.pop(record.topic, None)
        found = self._sources.get(record.topic)
        routes = found.routes if found else []
        self._sources[record.topic] = Source(record, reader, routes)

    def remove_resource(self, topic: str, unreadable: str | None = None) -> list[str]:
        """Stop reading ``topic`` (its events become dead letters); the grant ids unrouted.

        ``unreadable``: why its catalog record cannot be read (blocked until it can).
        """
        source = self._sources.pop(topic, None)
        if unreadable is not None:
            self._blocked[topic] = unreadable
        else:
            self._blocked.pop(topic, None)
        removed = [r.plan.grant.id for r in source.routes] if source else []
        for grant_id in removed:
            del self._topic_of_grant[grant_id]
        return removed

    def record_of(self, topic: str) -> CatalogRecord | None:
        source = self._sources.get(topic)
        return source.record if source else None

    def add_grant(self, grant: Grant) -> Route:
        """Route ``grant`` with its resource's current schema; replaces a route of the same id.

        KeyError when the resource is not in the catalog (yet); ValueError when the grant
        cannot be compiled on it (a key field gone, a row filter on a removed field ...).
        """
        source = next(
            (s for s in self._sources.values() if s.record.resource_id == grant.resource), None
        )
        if source is None:
            raise KeyError(f"grant {grant.id}: no catalog record for {grant.resource}")
        entry = source.record.resource
        plan = compile_plan(grant, entry, source.record.value_schema, self._secret)
        encode_key = self._codec.encoder(key_subject(plan.topic), plan.key_schema)
        encode_value = self._codec.encoder(value_subject(plan.topic), plan.value_schema)
        route = Route(plan, encode_key, encode_value, fuse(plan, encode_key, encode_value))
        self.remove_grant(grant.id)
        source.routes.append(route)
        self._topic_of_grant[grant.id] = entry.topic
        return route

    def remove_grant(self, grant_id: str) -> Route | None:
        """Stop routing for ``grant_id``; the removed route, or None when there was none."""
        topic = self._topic_of_grant.pop(grant_id, None)
        if topic is None:
            return None
        routes = self._sources[topic].routes
        found = next(r for r in routes if r.plan.grant.id == grant_id)
        routes.remove(found)
        return found

    def route_of(self, grant_id: str) -> Route | None:
        topic = self._topic_of_grant.get(grant_id)
        if topic is None:
            return None
        return next(r for r in self._sources[topic].routes if r.plan.grant.id == grant_id)

    def grants(self) -> list[Grant]:
        return [r.plan.grant for s in self._sources.values() for r in s.routes]

    def source_topic_of(self, grant_id: str) -> str | None:
        return self._topic_of_grant.get(grant_id)

    def live_plans(self, today: dt.date) -> dict[str, list[DeliveryPlan]]:
        """Live plans per source topic."""
        return {
            topic: [r.plan for r in s.routes if r.plan.grant.is_live(today)]
            for topic, s in self._sources.items()
        }

    def live_routes(self, today: dt.date) -> dict[str, list[Route]]:
        """Live routes per source topic: resolved once per batch, not per event."""
        return {
            topic: [r for r in s.routes if r.plan.grant.is_live(today)]
            for topic, s in self._sources.items()
        }

    def resource_of(self, topic: str) -> str:
        source = self._sources.get(topic)
        return source.record.resource_id if source else "unknown"

    def decode_event(self, msg: RawMessage) -> dict[str, Any] | DeadLetter:
        """The change event of a message, read with its resource's current schema, or why it
        is a dead letter."""
        source = self._sources.get(msg.topic)
        if source is None:
            blocked = self._blocked.get(msg.topic)
            if blocked is not None:
                return self._dead(
                    msg, "catalog_unreadable", f"catalog record unreadable: {blocked}"
                )
            named = parse_source_topic(msg.topic)
            return self._dead(msg, "unknown_resource", f"no catalog entry for {named or msg.topic}")
        try:
            event = self._codec.decode(msg.value, source.reader)
        except DecodeError as exc:
            return self._dead(msg, exc.reason, exc.detail, source.record.resource_id)
        entry = source.record.resource
        problem = _envelope_problem(event, entry)
        if problem:
            view = masked_change(event, entry) if isinstance(event, dict) else None
            return self._dead(msg, "invalid_envelope", problem, entry.resource_id, view)
        return event

    @staticmethod
    def output(route: Route, delivery: Delivery) -> Output:
        """Encode one delivery for its route."""
        return Output(
            route.plan,
            route.encode_key(delivery.key),
            route.encode_value(delivery.value),
            delivery.value["event_id"],
            delivery.key,
        )

    def route(self, msg: RawMessage, today: dt.date) -> list[Output | DeadLetter] | DeadLetter:
        event = self.decode_event(msg)
        if isinstance(event, DeadLetter):
            return event
        return self.route_event(msg, event, today)

    def route_event(
        self, msg: RawMessage, event: dict[str, Any], today: dt.date
    ) -> list[Output | DeadLetter]:
        """The outputs of a decoded event for every live grant on its topic, and a dead letter
        for each grant that failed on it. (The data path runs the same steps inline.)"""
        outputs: list[Output | DeadLetter] = []
        for route in self._sources[msg.topic].routes:
            if not route.plan.grant.is_live(today):
                continue
            try:
                done = route.deliver(event)
            except GRANT_FAILURES as exc:
                entry = self._sources[msg.topic].record.resource
                outputs.append(grant_dead_letter(msg, route.plan, exc, event, entry))
                continue
            if done is not None:
                key, value, record_key = done
                outputs.append(Output(route.plan, key, value, event["event_id"], record_key))
        return outputs

    @staticmethod
    def _dead(
        msg: RawMessage,
        reason: str,
        detail: str,
        resource: str | None = None,
        view: dict[str, Any] | None = None,
    ) -> DeadLetter:
        """A dead letter referring to the event at its source position (its bytes stay there)."""
        return DeadLetter(
            STAGE, reason, detail, msg.topic, msg.partition, msg.offset,
            resource=resource, record=view,
        )  # fmt: skip


# What one grant's delivery can raise; MaskingError and EncodeError are ValueErrors.
GRANT_FAILURES = (KeyError, ValueError)


def grant_dead_letter(
    msg: RawMessage,
    plan: DeliveryPlan,
    exc: Exception,
    event: Mapping[str, Any],
    entry: CatalogEntry | None,
) -> DeadLetter:
    """The dead letter of one grant's delivery of ``msg``: its source position, the grant named
    in the headers and the detail, and the event masked, so the provider or the authority can
    mend it for that grant."""
    g = plan.grant.id
    if isinstance(exc, KeyError):
        reason, detail = "missing_field", f"grant {g}: record lacks field {exc}"
    else:
        reason, detail = "masking_failed", f"grant {g}: {exc}"
    return DeadLetter(
        STAGE, reason, detail, msg.topic, msg.partition, msg.offset, g,
        resource=plan.grant.resource, record=masked_change(event, entry),
    )  # fmt: skip


def _envelope_problem(event: Any, entry: CatalogEntry) -> str | None:
    if not isinstance(event, dict) or "op" not in event or "source" not in event:
        return "not a change-event envelope"
    if event["op"] not in OPS:
        return f"op {event['op']!r} is not one of {OPS}"
    if event["source"].get("resource") != entry.code:
        return f"source.resource {event['source'].get('resource')!r} != topic's {entry.code!r}"
    needed = "before" if event["op"] == "d" else "after"
    if event[needed] is None:
        return f"op {event['op']!r} without '{needed}'"
    return None
