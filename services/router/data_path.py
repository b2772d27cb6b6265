"""The router's data path: a confluent-kafka batch loop, subscribed by pattern.

Concurrency model: one thread, this loop, owns the consumer, the router's routes and the
grant state. It consumes a batch, reads each event once (with its resource's current schema),
routes it and queues every output on the shared ``OutputWriter``. Every few thousand events or
a fraction of a second it checkpoints: one flush confirms every output, dead letter and audit
record below the positions routed, then those offsets are committed. Catalog and grant
changes, which feed followers collect in their own threads, are applied here between batches,
so a change never lands inside a batch and a backfill's seam is exact. The Faust worker around
it (see app.py) runs the process: start, stop, signals, metrics. Nothing is committed past a
failed output: the loop raises, closes the consumer without committing and the worker stops
with a non-zero status.

The subscription is a librdkafka regular expression (the source pattern), with a short
metadata refresh: a ``gov.*`` topic created later is followed within seconds, and its events
are dead-lettered if the catalog does not know the resource.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaException, TopicPartition

from services.common.catalog_feed import CatalogRecord
from services.common.dead_letter import DeadLetter
from services.common.feed import FeedFollower
from services.common.grant_feed import GrantRecord
from services.common.metrics import BusMetrics, observe_ages
from services.common.settings import Settings
from services.router.backfill import seam
from services.router.forwarder import BatchForwarder, KeyGate, OutputWriter
from services.router.live_grants import GrantSync
from services.router.routing import STAGE, RawMessage, Route, Router

log = logging.getLogger("govbus.router")

POLL_S = 0.1
CHECKPOINT_EVENTS = 5000  # flush and commit at least this often ...
CHECKPOINT_S = 0.1  # ... and at least this often once something is pending
METADATA_REFRESH_MS = 1000  # how soon a new source topic is subscribed
# Dead letters that a catalog record not read yet would avoid: read the catalog to its end,
# then read those events again, before any of the batch is produced.
CATALOG_RACE = {"unknown_resource", "schema_resolution", "catalog_unreadable"}
Partition = tuple[str, int]


class Backfills(Protocol):
    def start(self, record: GrantRecord, route: Route, seam: dict[Partition, int]) -> None: ...
    def is_done(self, backfill_id: str, partition: Partition) -> bool: ...
    def catch_up(self) -> None: ...
    def gate(self, grant_id: str) -> KeyGate | None: ...
    def stop_partitions(self, partitions: list[Partition]) -> None: ...
    def stop(self) -> None: ...


def consumer_config(settings: Settings) -> dict[str, Any]:
    return settings.kafka_config(
        **{
            "group.id": settings.router_group,
            "enable.auto.commit": False,  # committed after the flush that confirms the outputs
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "topic.metadata.refresh.interval.ms": METADATA_REFRESH_MS,
            "session.timeout.ms": settings.router_session_timeout_ms,
        }
    )


def subscription(pattern: str) -> str:
    """librdkafka treats a topic name as a regular expression only when it starts with ^."""
    return pattern if pattern.startswith("^") else f"^{pattern}"


class DataPath:
    def __init__(
        self,
        settings: Settings,
        consumer: Consumer,
        router: Router,
        sync: GrantSync,
        writer: OutputWriter,
        metrics: BusMetrics,
        catalog: FeedFollower[CatalogRecord],
        grants: FeedFollower[GrantRecord],
        backfills: Callable[[], Backfills],
        committed: Callable[[list[Partition]], dict[Partition, int]] | None = None,
    ) -> None:
        self._settings = settings
        # The router group's committed offsets, for backfill seams (injected in unit tests).
        self._committed = committed or (lambda parts: committed_offsets(settings, parts))
        self._consumer = consumer
        self._router = router
        self._sync = sync
        self._writer = writer
        self._metrics = metrics
        self.catalog = catalog
        self.grants = grants
        self._make_backfills = backfills
        self.backfills: Backfills | None = None
        self.forwarder = BatchForwarder(router, writer, metrics, self._gate)
        self._pending: dict[Partition, int] = {}  # offsets to commit at the next checkpoint
        self._pending_events = 0
        self._pending_since = 0.0
        self._timestamps: list[float] = []
        self._failed: BaseException | None = None
        # Backfills are per partition, by its owner: what this consumer is assigned, and the
        # (backfill id, partition) jobs started since it was.
        self.assigned: set[Partition] = set()
        self._newly_assigned = False
        self._backfilling: set[tuple[str, Partition]] = set()

    def _gate(self, grant_id: str) -> KeyGate | None:
        return self.backfills.gate(grant_id) if self.backfills else None

    def run(self, stop: threading.Event) -> None:
        """Route until ``stop`` is set; raises (without committing) on any failure."""
        self.backfills = self._make_backfills()
        self._consumer.subscribe(
            [subscription(self._settings.source_pattern)],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        try:
            while not stop.is_set():
                self.between_batches()
                messages = self._consumer.consume(self._settings.batch_size, POLL_S)
                if self._failed is not None:
                    raise self._failed
                batch = []
                for m in messages:
                    error = m.error()
                    if error is not None:
                        if error.fatal():
                            raise KafkaException(error)
                        log.warning("consumer: %s", error)
                        continue
                    batch.append(
                        RawMessage(m.topic(), m.partition(), m.offset(), m.key(), m.value())
                    )
                    ts_ms = m.timestamp()[1]
                    if ts_ms > 0:
                        self._timestamps.append(ts_ms / 1000)
                if batch:
                    self.route(batch)
                if self._pending and (
                    self._pending_events >= CHECKPOINT_EVENTS
                    or time.monotonic() - self._pending_since >= CHECKPOINT_S
                ):
                    self.checkpoint()
            self.checkpoint()
        except BaseException as exc:
            self._failed = exc
            raise
        finally:
            if self.backfills is not None:
                self.backfills.stop()
            self._consumer.close()  # never commits: auto commit is off, on_revoke sees _failed

    def between_batches(self) -> bool:
        """Apply catalog, then grant changes; start the backfills they call for."""
        changed = False
        catalog = self.catalog.changes()
        if catalog:
            self._sync.apply_catalog(catalog)
            changed = True
        grants = self.grants.changes()
        if grants:
            self._sync.apply_grants(grants)
            changed = True
        self._start_backfills()
        return changed

    def _start_backfills(self) -> None:
        """For each routed grant, a backfill of every assigned partition not done or started."""
        if self.backfills is None:
            return
        if self._newly_assigned:
            # Another router may have finished these partitions just before handing them over.
            self.backfills.catch_up()
            self._newly_assigned = False
        today = dt.date.today()
        for record, route in self._sync.pending_backfills(today):
            topic = self._router.source_topic_of(record.grant.id)
            todo = [
                tp
                for tp in sorted(self.assigned)
                if tp[0] == topic
                and (record.backfill_id, tp) not in self._backfilling
                and not self.backfills.is_done(record.backfill_id, tp)
            ]
            if not todo:
                continue
            try:
                at = self._seam(todo)
            except KafkaException as exc:
                # The group coordinator may be busy (a member just died): ask again next round.
                log.warning(
                    "grant %s: seam not known yet (%s); backfill deferred", record.grant.id, exc
                )
                continue
            log.info(
                "grant %s: backfill %s from the seam %s", record.grant.id, record.backfill_id, at
            )
            self._backfilling.update((record.backfill_id, tp) for tp in todo)
            self.backfills.start(record, route, at)

    def _seam(self, partitions: list[Partition]) -> dict[Partition, int]:
        """Per partition: routed here, else the group's committed offset, else the start."""
        routed = self.forwarder.positions
        unrouted = [tp for tp in partitions if tp not in routed]
        committed = self._committed(unrouted) if unrouted else {}
        return seam(partitions, routed, committed)

    def route(self, batch: list[RawMessage]) -> None:
        """Read every event of the batch, route it, queue the outputs; commit comes later."""
        started = time.monotonic()
        decoded = [self._router.decode_event(m) for m in batch]
        if any(isinstance(d, DeadLetter) and d.reason in CATALOG_RACE for d in decoded):
            # A resource or schema version may be on the catalog topic and not read yet.
            self.catalog.wait_caught_up(30)
            if self.between_batches():
                decoded = [self._router.decode_event(m) for m in batch]
        self.forwarder.forward(batch, dt.date.today(), decoded)
        if not self._pending:
            self._pending_since = started
        self._pending.update({(m.topic, m.partition): m.offset + 1 for m in batch})
        self._pending_events += len(batch)
        self._metrics.batch_size.labels(STAGE).observe(len(batch))

    def checkpoint(self) -> None:
        """Flush (every output below the positions confirmed), then commit those positions."""
        if not self._pending:
            return
        self._writer.flush()
        offsets = [TopicPartition(t, p, off) for (t, p), off in self._pending.items()]
        self._consumer.commit(offsets=offsets, asynchronous=False)
        self._metrics.latency.labels(STAGE).observe(time.monotonic() - self._pending_since)
        observe_ages(self._metrics, STAGE, self._timestamps)
        self._pending.clear()
        self._pending_events = 0
        self._timestamps = []

    def _on_assign(self, _consumer, partitions: list[TopicPartition]) -> None:
        log.info("assigned %d partitions", len(partitions))
        self.assigned.update((tp.topic, tp.partition) for tp in partitions)
        self._newly_assigned = True

    def _on_revoke(self, _consumer, partitions: list[TopicPartition]) -> None:
        """Before giving partitions up: stop their backfills, then commit what is acknowledged
        (nothing once failed)."""
        self._stop_backfills(partitions)
        if self._failed is None:
            try:
                self.checkpoint()
            except BaseException as exc:  # raised by the loop after consume returns
                self._failed = exc
        self._forget(partitions)

    def _on_lost(self, _consumer, partitions: list[TopicPartition]) -> None:
        """Partitions taken away without a revoke: their offsets cannot be committed."""
        log.warning(
            "lost %d partitions; their uncommitted events are routed again", len(partitions)
        )
        self._stop_backfills(partitions)
        self._forget(partitions)

    def _stop_backfills(self, partitions: list[TopicPartition]) -> None:
        if self.backfills is not None:
            self.backfills.stop_partitions([(tp.topic, tp.partition) for tp in partitions])

    def _forget(self, partitions: list[TopicPartition]) -> None:
        gone = {(tp.topic, tp.partition) for tp in partitions}
        for tp in gone:
            self._pending.pop(tp, None)
            self.forwarder.positions.pop(tp, None)
        self.assigned -= gone
        self._backfilling = {(b, tp) for b, tp in self._backfilling if tp not in gone}


def committed_offsets(settings: Settings, partitions: list[Partition]) -> dict[Partition, int]:
    """The router group's committed offsets (negative: none), asked by a consumer of its own:
    the data path's consumer may be joining the group, and its requests wait for the join."""
    probe = Consumer(
        settings.kafka_config(**{"group.id": settings.router_group, "enable.auto.commit": False})
    )
    try:
        found = probe.committed([TopicPartition(t, p) for t, p in partitions], timeout=15)
        return {(tp.topic, tp.partition): tp.offset for tp in found}
    finally:
        probe.close()
