"""Apply grant states from ``govbus.grants`` to the router, and backfill newly active grants.

Everything here runs while no batch is being routed (the router holds its batch gate), so a
grant change never lands in the middle of a batch and the backfill seam is exact.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Iterable

from confluent_kafka import Consumer, TopicPartition

from services.common.catalog import Grant, GrantState
from services.common.dead_letter import DeadLetter
from services.common.grant_feed import GrantRecord, for_sources
from services.common.kafka_clients import delivery_topic_spec, ensure_topics, make_admin
from services.common.serde import EncodeError
from services.common.settings import Settings
from services.common.topic_reader import end_offsets, read_range
from services.common.topics import BACKFILLS
from services.router.backfill import Partition, backfill_deliveries, latest_states, seam
from services.router.forwarder import BatchForwarder
from services.router.routing import RawMessage, Router

log = logging.getLogger("govbus.router.grants")


def completed_backfills(settings: Settings) -> set[str]:
    """Grant ids whose backfill was completed (by any run of the router)."""
    done = set()
    for msg in read_range(settings, {}, end_offsets(settings, [BACKFILLS])):
        if msg.value() is None:
            done.discard(msg.key().decode())
        else:
            done.add(msg.key().decode())
    return done


def committed_offsets(
    settings: Settings, group: str, partitions: Iterable[Partition]
) -> dict[Partition, int]:
    """The group's committed offsets (negative: none); asks the coordinator, joins nothing."""
    consumer = Consumer(settings.kafka_config(**{"group.id": group, "enable.auto.commit": False}))
    try:
        found = consumer.committed([TopicPartition(t, p) for t, p in partitions], timeout=30)
        return {(tp.topic, tp.partition): tp.offset for tp in found}
    finally:
        consumer.close()


class GrantSync:
    """The router's grants, kept in step with the grant records of its sources."""

    def __init__(
        self, settings: Settings, router: Router, forwarder: BatchForwarder, done: set[str]
    ) -> None:
        self._settings = settings
        self._router = router
        self._forwarder = forwarder
        self._secret = settings.mask_secret.get_secret_value().encode()
        self._admin = make_admin(settings)
        self._done = done  # grant ids already backfilled

    def apply(self, records: Iterable[GrantRecord]) -> None:
        """Route active grants (replacing earlier terms and amended grants); drop the rest."""
        mine = list(for_sources(records, self._settings.source_pattern).values())
        # Removals first, so an amended grant's revocation never undoes its successor.
        mine.sort(key=lambda r: r.grant.state is GrantState.ACTIVE)
        added = []
        for record in mine:
            self._router.add_entry(record.resource)  # a resource a grant names is a source
            grant = record.grant
            if grant.state is not GrantState.ACTIVE:
                if self._router.remove_grant(grant.id) is not None:
                    log.info("grant %s is %s: delivery stopped", grant.id, grant.state.value)
                continue
            if self._amended(grant.id):
                log.warning("grant %s is amended by an active grant: not routed", grant.id)
                continue
            if grant.amends and self._router.remove_grant(grant.amends) is not None:
                log.info("grant %s amends %s: the old route is removed", grant.id, grant.amends)
            if self._add(record):
                added.append(grant)
        if added:
            specs = [delivery_topic_spec(g.topic, self._settings) for g in added]
            ensure_topics(self._admin, specs)
            log.info("grants routed: %s", ", ".join(g.id for g in added))

    def _amended(self, grant_id: str) -> bool:
        return any(g.amends == grant_id for g in self._router.grants())

    def _add(self, record: GrantRecord) -> bool:
        grant = record.grant
        try:
            self._router.add_grant(grant, record.value_schema, self._secret, record.resource)
            return True
        except (KeyError, ValueError) as exc:  # no such resource, schema rejected, bad plan
            # New terms that cannot be compiled must not leave the old terms delivering.
            self._router.remove_grant(grant.id)
            log.error("grant %s cannot be routed, not delivering: %s", grant.id, exc)
            return False

    def pending(self, today: dt.date) -> list[Grant]:
        """Live grants not backfilled yet (also one whose validity began since it was added)."""
        return [g for g in self._router.grants() if g.is_live(today) and g.id not in self._done]

    def backfill_pending(self, today: dt.date) -> None:
        for grant in self.pending(today):
            self.backfill(grant)

    def backfill(self, grant: Grant) -> None:
        """Deliver the current state to the grant's topic; record completion once acknowledged.

        At least once: completion is recorded only after every output and audit record is
        acknowledged, so a crash mid-backfill repeats the whole backfill after the restart.
        """
        started = time.monotonic()
        route = self._router.route_of(grant.id)
        topic = self._router.source_topic_of(grant.id)
        partitions = list(end_offsets(self._settings, [topic]))
        committed = committed_offsets(self._settings, self._settings.router_group, partitions)
        upto = seam(partitions, self._forwarder.positions, committed)
        changes = []
        for msg in read_range(self._settings, {}, upto):
            raw = RawMessage(msg.topic(), msg.partition(), msg.offset(), msg.key(), msg.value())
            event = self._router.decode_event(raw)
            if not isinstance(event, DeadLetter):  # dead-lettered when it was routed
                changes.append((msg.key(), event))
        planned = backfill_deliveries(route.plan, latest_states(changes).values())
        outputs = []
        for delivery in planned.deliveries:
            try:
                outputs.append(self._router.output(route, delivery))
            except EncodeError as exc:
                planned.failures.append((delivery.value["event_id"], str(exc)))
        for event_id, why in planned.failures:
            log.error("grant %s: backfill of event %s skipped: %s", grant.id, event_id, why)
        self._forwarder.deliver_backfill(route.plan, outputs)
        completion = {
            "grant_id": grant.id,
            "seam": {f"{t}:{p}": off for (t, p), off in sorted(upto.items())},
            "delivered": len(outputs),
            "ts_ms": int(time.time() * 1000),
        }
        self._forwarder.produce(BACKFILLS, json.dumps(completion).encode(), grant.id.encode())
        self._forwarder.wait_acknowledged()
        self._done.add(grant.id)
        log.info(
            "grant %s backfilled: %d records from %d changes below the seam in %.2fs",
            grant.id,
            len(outputs),
            len(changes),
            time.monotonic() - started,
        )
