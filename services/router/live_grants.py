"""Join the grant feed with the live catalog into the router's routes.

A grant record names its resource by id only; its plan is compiled with that resource's
current catalog record, and recompiled whenever the record changes (a new schema version).
A grant whose resource is not (yet) in the catalog delivers nothing until it is. A record
that cannot be read, grant or catalog, stops what it governs: that grant, or every grant on
that resource, delivers nothing; it is logged and counted (``govbus_feed_unreadable_total``).

Everything here runs on the data path's thread between batches, never inside one.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable, Iterable, Mapping

from services.common.catalog import GrantState
from services.common.catalog_feed import CatalogRecord
from services.common.feed import Decoded, Unreadable
from services.common.grant_feed import GrantRecord
from services.common.metrics import BusMetrics
from services.common.topics import CATALOG, GRANTS, source_topic
from services.router.routing import Route, Router

log = logging.getLogger("govbus.router.grants")


class GrantSync:
    """The router's routes, kept in step with the catalog and grant feeds."""

    def __init__(
        self,
        source_pattern: str,
        router: Router,
        metrics: BusMetrics,
        ensure_delivery_topics: Callable[[list[str]], None],
    ) -> None:
        self._pattern = re.compile(source_pattern)
        self._router = router
        self._metrics = metrics
        self._ensure_topics = ensure_delivery_topics
        self.records: dict[str, GrantRecord] = {}  # grant id -> latest readable record
        self.unreadable: dict[str, str] = {}  # grant id -> why its record cannot be read

    def apply_catalog(self, changes: Mapping[str, Decoded[CatalogRecord]]) -> None:
        """Resources created, changed, removed or unreadable; their grants are recompiled."""
        changed = set()
        for rid, value in changes.items():
            topic = source_topic(*rid.split(".", 1)) if "." in rid else rid
            if not self._pattern.match(topic):
                continue  # another router's resource
            changed.add(rid)
            if isinstance(value, Unreadable):
                self._metrics.feed_unreadable.labels(CATALOG).inc()
                stopped = self._router.remove_resource(topic, unreadable=value.error)
                log.error(
                    "catalog record of %s unreadable (offset %d): its events are dead-lettered"
                    " and its grants %s deliver nothing: %s",
                    rid,
                    value.offset,
                    stopped,
                    value.error,
                )
            elif value is None:
                stopped = self._router.remove_resource(topic)
                log.warning(
                    "resource %s removed from the catalog; grants stopped: %s", rid, stopped
                )
            else:
                self._router.set_resource(value)
                log.info("resource %s at schema version %d", rid, value.schema_version)
        self._sync(g for g, r in self.records.items() if r.grant.resource in changed)

    def apply_grants(self, changes: Mapping[str, Decoded[GrantRecord]]) -> None:
        """Grant records changed, removed or unreadable; routes follow."""
        affected = set()
        for grant_id, value in changes.items():
            affected.add(grant_id)
            old = self.records.pop(grant_id, None)
            self.unreadable.pop(grant_id, None)
            if old is not None and old.grant.amends:
                affected.add(old.grant.amends)
            if isinstance(value, Unreadable):
                self._metrics.feed_unreadable.labels(GRANTS).inc()
                self.unreadable[grant_id] = value.error
                log.error(
                    "grant record %s unreadable (offset %d): it delivers nothing: %s",
                    grant_id,
                    value.offset,
                    value.error,
                )
            elif value is not None and self._pattern.match(value.source_topic):
                self.records[grant_id] = value
                if value.grant.amends:
                    affected.add(value.grant.amends)
        self._sync(affected)

    def _amended(self, grant_id: str) -> bool:
        return any(
            r.grant.amends == grant_id and r.grant.state is GrantState.ACTIVE
            for r in self.records.values()
        )

    def _sync(self, grant_ids: Iterable[str]) -> None:
        added = []
        for grant_id in sorted(set(grant_ids)):
            record = self.records.get(grant_id)
            if record is None or record.grant.state is not GrantState.ACTIVE:
                if self._router.remove_grant(grant_id) is not None:
                    why = record.grant.state.value if record else "unreadable or removed"
                    log.info("grant %s is %s: delivery stopped", grant_id, why)
                continue
            if self._amended(grant_id):
                if self._router.remove_grant(grant_id) is not None:
                    log.info("grant %s is amended by an active grant: route removed", grant_id)
                continue
            try:
                self._router.add_grant(record.grant)
                added.append(record.grant.topic)
                log.info("grant %s routed", grant_id)
            except KeyError:
                self._router.remove_grant(grant_id)
                log.warning("grant %s waits for %s in the catalog", grant_id, record.grant.resource)
            except ValueError as exc:  # schema rejected, bad plan: never keep old terms
                self._router.remove_grant(grant_id)
                log.error("grant %s cannot be routed, not delivering: %s", grant_id, exc)
        if added:
            self._ensure_topics(sorted(set(added)))

    def pending_backfills(self, today: dt.date) -> list[tuple[GrantRecord, Route]]:
        """Routed grants live today: each activation's backfill is due on every partition
        where it is not done (the data path and the backfill runner know which)."""
        out = []
        for grant_id, record in self.records.items():
            route = self._router.route_of(grant_id)
            if route is not None and record.grant.is_live(today):
                out.append((record, route))
        return out
