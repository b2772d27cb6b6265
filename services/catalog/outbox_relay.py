"""The outbox relay: a thread that publishes what the control store owes the bus, in order.

It reads the outbox in seq order, produces each batch with an idempotent producer, waits for
Kafka's acknowledgement and only then forgets the batch. While Kafka is away it retries with
a bounded backoff; requests never wait on it (they may ask ``wait_published`` for a moment),
and the store's lock is taken only to forget acknowledged rows, never across Kafka.

Before the first record of a resource reaches ``govbus.catalog`` its source topic is created
(the broker does not create topics), so a provider can publish as soon as followers know it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from confluent_kafka import KafkaError, Producer

from services.catalog.control_store import ControlStore
from services.catalog.outbox import OutboxRow
from services.catalog.retry_loop import RetryLoop
from services.common.kafka_clients import (
    bus_topic_specs,
    ensure_topics,
    make_admin,
    make_producer,
    source_topic_spec,
)
from services.common.settings import Settings
from services.common.topics import CATALOG, source_topic

log = logging.getLogger("govbus.outbox")

BATCH = 500
IDLE_POLL_S = 1.0  # a missed wake-up costs at most this long
DELIVERY_TIMEOUT_MS = 30_000  # a batch not acknowledged by then is produced again
ADMIN_TIMEOUT_S = 10.0


class PublishFailed(RuntimeError):
    pass


class OutboxRelay:
    """Publishes the outbox of ``store``; ``prepare`` runs once Kafka first answers."""

    def __init__(
        self,
        store: ControlStore,
        settings: Settings,
        prepare: Callable[[], object] = lambda: None,
    ) -> None:
        self._store = store
        self._settings = settings
        self._prepare = prepare
        self._prepared = False
        self._ensured: set[str] = set()
        self._producer: Producer | None = None
        self._published = 0  # every seq up to this one is acknowledged by Kafka
        self._progress = threading.Condition()
        self._loop = RetryLoop(
            "outbox-relay", self._round, self._failed, IDLE_POLL_S, finish=self._drop_producer
        )
        self.failures = 0  # rounds that failed (Kafka away or refusing)

    # -- what other threads call ------------------------------------------------------------
    def start(self) -> OutboxRelay:
        self._loop.start()
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        self._loop.stop(timeout_s)

    def notify(self) -> None:
        """A change was committed: publish it now rather than at the next poll."""
        self._loop.notify()

    @property
    def published_seq(self) -> int:
        with self._progress:
            return self._published

    def wait_published(self, seq: int, timeout_s: float) -> bool:
        """True once every record up to ``seq`` is on the bus; False after ``timeout_s``."""
        self._loop.notify()
        with self._progress:
            return self._progress.wait_for(lambda: self._published >= seq, timeout_s)

    # -- the relay thread -------------------------------------------------------------------
    def _failed(self, exc: Exception, backoff_s: float) -> None:
        self.failures += 1
        log.warning("outbox not published (%s); retrying in %.1f s", exc, backoff_s)
        self._drop_producer()

    def _round(self) -> bool:
        """Publish the next batch; False when nothing is owed."""
        if not self._prepared:
            ensure_topics(
                make_admin(self._settings), bus_topic_specs(self._settings), ADMIN_TIMEOUT_S
            )
            self._prepare()
            self._prepared = True
        rows = self._store.outbox_pending(self.published_seq, BATCH)
        if not rows:
            return False
        self._ensure_source_topics(rows)
        self._produce(rows)
        self._store.mark_published(rows[-1].seq)
        with self._progress:
            self._published = rows[-1].seq
            self._progress.notify_all()
        log.debug("published outbox through seq %d", rows[-1].seq)
        return True

    def _ensure_source_topics(self, rows: list[OutboxRow]) -> None:
        wanted = {
            source_topic(*r.key.split(".", 1)) for r in rows if r.topic == CATALOG and "." in r.key
        } - self._ensured
        if wanted:
            specs = [source_topic_spec(t, self._settings) for t in sorted(wanted)]
            ensure_topics(make_admin(self._settings), specs, ADMIN_TIMEOUT_S)
            self._ensured |= wanted

    def _produce(self, rows: list[OutboxRow]) -> None:
        if self._producer is None:
            self._producer = make_producer(
                self._settings,
                **{
                    "linger.ms": 0,
                    "delivery.timeout.ms": DELIVERY_TIMEOUT_MS,
                    "reconnect.backoff.max.ms": 1000,
                },
            )
        producer = self._producer
        errors: list[KafkaError] = []

        def acked(err: KafkaError | None, _msg: object) -> None:
            if err is not None:
                errors.append(err)

        for row in rows:
            producer.produce(row.topic, row.value, row.key.encode(), on_delivery=acked)
        # In slices, so a stop is seen; librdkafka gives up on its own after the timeout.
        while producer.flush(1.0) > 0:
            if self._loop.stopping:
                raise PublishFailed("stopping with records unacknowledged")
        if errors:
            raise PublishFailed(f"{len(errors)} of {len(rows)} records refused: {errors[0]}")

    def _drop_producer(self) -> None:
        # Whatever the old producer still holds is purged, so it can never land after the
        # batch is produced again (which would put an older state last on the topic).
        if self._producer is not None:
            self._producer.purge()
            self._producer.flush(0)
            self._producer = None
