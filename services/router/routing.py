"""Route one raw change event: decode once, then plan, mask and encode it for every live grant.

Nothing here touches Kafka; the outcome is either the outputs to produce or a dead letter.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from services.common.catalog import CatalogEntry, Grant
from services.common.dead_letter import DeadLetter
from services.common.plan import Delivery, DeliveryPlan, compile_plan, plan_delivery
from services.common.schemas import OPS
from services.common.serde import AvroCodec, DecodeError, EncodeError, Encoder
from services.common.topics import key_subject, parse_source_topic, value_subject

STAGE = "router"


@dataclass(frozen=True)
class RawMessage:
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


class Router:
    """Routes for every catalog resource; grants are added, replaced and removed as they change.

    Not thread-safe: the router process changes grants only between batches.
    """

    def __init__(self, catalog: Iterable[CatalogEntry], codec: AvroCodec) -> None:
        self._codec = codec
        self._entries: dict[str, CatalogEntry] = {}
        self._routes: dict[str, list[Route]] = {}
        self._topic_of_grant: dict[str, str] = {}  # grant id -> source topic of its route
        for entry in catalog:
            self.add_entry(entry)

    def add_entry(self, entry: CatalogEntry) -> None:
        """Make ``entry``'s topic a valid source (or update its entry); its routes stay."""
        self._entries[entry.topic] = entry
        self._routes.setdefault(entry.topic, [])

    def add_grant(
        self,
        grant: Grant,
        value_schema: dict[str, Any],
        master_secret: bytes,
        entry: CatalogEntry | None = None,
    ) -> Route:
        """Route ``grant`` with the resource's ``value_schema``; replaces a route of the same id.

        ``entry`` (the resource as the grant's record names it) is added to the catalog first.
        """
        if entry is not None:
            self.add_entry(entry)
        entry = next((e for e in self._entries.values() if e.resource_id == grant.resource), None)
        if entry is None:
            raise KeyError(f"grant {grant.id}: no catalog entry for {grant.resource}")
        plan = compile_plan(grant, entry, value_schema, master_secret)
        route = Route(
            plan,
            self._codec.encoder(key_subject(plan.topic), plan.key_schema),
            self._codec.encoder(value_subject(plan.topic), plan.value_schema),
        )
        self.remove_grant(grant.id)
        self._routes[entry.topic].append(route)
        self._topic_of_grant[grant.id] = entry.topic
        return route

    def remove_grant(self, grant_id: str) -> Route | None:
        """Stop routing for ``grant_id``; the removed route, or None when there was none."""
        topic = self._topic_of_grant.pop(grant_id, None)
        if topic is None:
            return None
        routes = self._routes[topic]
        found = next(r for r in routes if r.plan.grant.id == grant_id)
        routes.remove(found)
        return found

    def route_of(self, grant_id: str) -> Route | None:
        topic = self._topic_of_grant.get(grant_id)
        if topic is None:
            return None
        return next(r for r in self._routes[topic] if r.plan.grant.id == grant_id)

    def grants(self) -> list[Grant]:
        return [r.plan.grant for routes in self._routes.values() for r in routes]

    def source_topic_of(self, grant_id: str) -> str | None:
        return self._topic_of_grant.get(grant_id)

    def live_plans(self, today: dt.date) -> dict[str, list[DeliveryPlan]]:
        """Live plans per source topic."""
        return {
            topic: [r.plan for r in routes if r.plan.grant.is_live(today)]
            for topic, routes in self._routes.items()
        }

    def resource_of(self, topic: str) -> str:
        entry = self._entries.get(topic)
        return entry.resource_id if entry else "unknown"

    def decode_event(self, msg: RawMessage) -> dict[str, Any] | DeadLetter:
        """The change event of a message on a known topic, or why it is a dead letter."""
        entry = self._entries.get(msg.topic)
        if entry is None:
            named = parse_source_topic(msg.topic)
            return self._dead(msg, "unknown_resource", f"no catalog entry for {named or msg.topic}")
        try:
            event = self._codec.decode(msg.value)
        except DecodeError as exc:
            return self._dead(msg, exc.reason, exc.detail)
        problem = _envelope_problem(event, entry)
        if problem:
            return self._dead(msg, "invalid_envelope", problem)
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

    def route(self, msg: RawMessage, today: dt.date) -> list[Output] | DeadLetter:
        event = self.decode_event(msg)
        if isinstance(event, DeadLetter):
            return event
        outputs = []
        for route in self._routes[msg.topic]:
            if not route.plan.grant.is_live(today):
                continue
            try:
                delivery = plan_delivery(route.plan, event)
                if delivery is not None:
                    outputs.append(self.output(route, delivery))
            except KeyError as exc:
                return self._dead(msg, "missing_field", f"record lacks field {exc}")
            except (ValueError, EncodeError) as exc:  # MaskingError is a ValueError
                return self._dead(msg, "masking_failed", f"grant {route.plan.grant.id}: {exc}")
        return outputs

    @staticmethod
    def _dead(msg: RawMessage, reason: str, detail: str) -> DeadLetter:
        return DeadLetter(
            STAGE, reason, detail, msg.key, msg.value, msg.topic, msg.partition, msg.offset
        )


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
