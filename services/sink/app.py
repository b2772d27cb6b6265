"""The central-store sink process: every valid change of every resource, stored once.

It follows the catalog live (``govbus.catalog``): a new resource gets its tables, a new schema
version its columns, between two batches and without a restart, and each event is read with
its resource's current schema. At least once, in a fixed order per batch: dead letters
acknowledged, then the batch and the partitions' next offsets written in one transaction,
then the offsets committed. A record that cannot be stored (see validate.py, an unknown or
blocked resource, bytes that do not decode) goes to ``govbus.dlq`` with stage ``sink`` and
its reason; none is dropped with its offset committed.
"""

from __future__ import annotations

import logging
import re
import signal
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from prometheus_client import CollectorRegistry
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from services.common import catalog_feed
from services.common.catalog_feed import CatalogRecord, CatalogView
from services.common.dead_letter import DeadLetter, masked_change, produce_dead_letter
from services.common.feed import FeedFollower
from services.common.kafka_clients import make_consumer, make_producer
from services.common.metrics import BusMetrics, observe_ages, serve_metrics
from services.common.registry_client import make_registry_client
from services.common.schemas import envelope_schema, source_schema
from services.common.serde import AvroCodec, DecodeError, ReaderSchema
from services.common.settings import Settings, load_service_settings
from services.common.topics import CATALOG, parse_source_topic, source_topic
from services.sink.central_store import CentralStore, StoredChange
from services.sink.validate import Poison, stored_change

log = logging.getLogger("govbus.sink")
STAGE = "sink"
CATCH_UP_S = 10.0  # how long an event of an unknown topic waits for the catalog to catch up


class StoreSink:
    def __init__(
        self,
        consumer: Consumer,
        producer: Producer,
        store: CentralStore,
        codec: AvroCodec,
        catalog: FeedFollower[CatalogRecord],
        source: dict,
        metrics: BusMetrics,
        pattern: str,
    ) -> None:
        self._consumer = consumer
        self._producer = producer
        self._store = store
        self._codec = codec
        self._catalog = catalog
        self._source = source
        self._metrics = metrics
        self._pattern = re.compile(pattern)  # the source topics this sink stores
        self.view = CatalogView()
        self._readers: dict[str, ReaderSchema] = {}
        self._writers: dict[str, set[int]] = {}  # writer schema ids seen per resource
        self._broken: dict[str, str] = {}  # resource id -> why its tables cannot follow it
        self._caught_up = False  # the catalog was read to its end during this batch
        self.stopping = False

    @property
    def store(self) -> CentralStore:
        return self._store

    def subscribe(self) -> None:
        self._consumer.subscribe([self._pattern.pattern])

    def close(self) -> None:
        self._consumer.close()
        self._catalog.stop()
        self._store.close()

    def run(self, batch_size: int) -> None:
        self.subscribe()
        try:
            while not self.stopping:
                self.step(batch_size, timeout_s=0.5)
        finally:
            self.close()

    def follow_catalog(self) -> list[str]:
        """Apply what came on ``govbus.catalog``: tables created or altered, readers rebuilt."""
        changed = self.view.apply(self._catalog.changes())
        for rid in changed:
            self._readers.pop(rid, None)
            self._broken.pop(rid, None)
            record = self.view.get(rid)
            if record is None:
                names = rid.split(".", 1)
                topic = source_topic(*names) if len(names) == 2 else rid
                if rid in self.view.blocked and self._pattern.match(topic):
                    log.error("resource %s blocked: %s", rid, self.view.blocked[rid])
                continue
            if not self._pattern.match(record.topic):
                continue  # not a topic this sink reads: no tables for it
            try:
                self._store.ensure(record)
            except OperationalError:
                raise  # the database is away: stop, and start again from the last commit
            except SQLAlchemyError as exc:
                self._broken[rid] = f"{type(exc).__name__}: {exc}"[:500]
                log.error("store tables of %s cannot follow it: %s", rid, exc)
                continue
            schema = envelope_schema(record.value_schema, self._source)
            self._readers[rid] = ReaderSchema(schema)
            log.info("resource %s at schema version %d", rid, record.schema_version)
        return changed

    def step(self, batch_size: int, timeout_s: float) -> int:
        self.follow_catalog()
        self._caught_up = False
        messages = self._consumer.consume(batch_size, timeout_s)
        if not messages:
            return 0
        started = time.monotonic()
        changes: list[StoredChange] = []
        letters: list[DeadLetter] = []
        positions: dict[tuple[str, int], int] = {}
        for msg in messages:
            if msg.error():
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    log.warning("consume error: %s", msg.error())
                continue
            positions[(msg.topic(), msg.partition())] = msg.offset() + 1
            if msg.value() is None:  # a compaction tombstone carries no change
                continue
            try:
                changes.append(self._change(msg))
            except Poison as bad:
                letters.append(
                    DeadLetter(
                        STAGE, bad.reason, bad.detail, msg.topic(), msg.partition(), msg.offset(),
                        resource=bad.resource, record=bad.view,
                    )
                )  # fmt: skip
        if not positions:
            return 0
        self._dead_letter(letters)
        for resource, count in self._store.apply(changes, positions).items():
            self._metrics.store_writes.labels(resource).inc(count)
        # Commit exactly what this batch stored: the next offset of each partition read.
        offsets = [TopicPartition(t, p, o) for (t, p), o in positions.items()]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as exc:
            # A rebalance can refuse the commit; the batch is stored, and re-reading it after
            # the rebalance adds nothing (idempotent store), so carry on.
            log.warning("commit of %d partitions refused: %s", len(offsets), exc)
        self._metrics.latency.labels(STAGE).observe(time.monotonic() - started)
        stamps = [m.timestamp()[1] / 1000 for m in messages if not m.error()]
        observe_ages(self._metrics, STAGE, stamps)
        self._metrics.batch_size.labels(STAGE).observe(len(messages))
        return len(messages)

    def _catch_up(self) -> None:
        """Read the catalog to its end now (once a batch): a resource's record, or its new
        schema version, is on ``govbus.catalog`` before the first event that needs it, but
        our follower may not have read it yet."""
        if not self._caught_up:
            self._caught_up = True
            self._catalog.wait_caught_up(CATCH_UP_S)
            self.follow_catalog()

    def _record(self, topic: str) -> CatalogRecord:
        record = self.view.by_topic(topic)
        if record is None:
            self._catch_up()
            record = self.view.by_topic(topic)
        if record is None:
            names = parse_source_topic(topic)
            rid = f"{names[0]}.{names[1]}" if names else topic
            if rid in self.view.blocked:
                raise Poison("catalog_unreadable", f"{rid}: {self.view.blocked[rid]}")
            raise Poison("unknown_resource", f"no catalog record has topic {topic}")
        broken = self._broken.get(record.resource_id)
        if broken is not None:
            raise Poison("store_table", broken)
        return record

    def _change(self, msg: Message) -> StoredChange:
        try:
            writer = self._codec.schema_id_of(msg.value())
            record = self._record(msg.topic())
            seen = self._writers.setdefault(record.resource_id, set())
            if writer not in seen:
                # A writer schema new to us may be a version our view has not read yet:
                # read with an older reader, a new field would be lost, a widened one fail.
                self._catch_up()
                record = self._record(msg.topic())
                seen.add(writer)
            rid = record.resource_id
            self._metrics.events_in.labels(STAGE, rid).inc()
            event = self._codec.decode(msg.value(), self._readers[rid])
        except DecodeError as exc:
            raise Poison(exc.reason, exc.detail) from exc
        try:
            return stored_change(event, record, msg.topic(), msg.partition(), msg.offset())
        except Poison as bad:
            bad.resource, bad.view = rid, masked_change(event, record.resource)
            raise

    def _dead_letter(self, letters: list[DeadLetter]) -> None:
        """Produce the batch's dead letters and wait for Kafka to acknowledge every one."""
        if not letters:
            return
        failed: list[str] = []

        def delivered(err, _msg) -> None:
            if err is not None:
                failed.append(str(err))

        for letter in letters:
            produce_dead_letter(self._producer, letter, on_delivery=delivered)
            self._metrics.dead_letters.labels(STAGE, letter.reason).inc()
            log.warning(
                "dead letter %s[%d]@%d: %s: %s",
                letter.topic, letter.partition, letter.offset, letter.reason, letter.detail,
            )  # fmt: skip
        if self._producer.flush(30) or failed:
            # Nothing is committed: the batch is read again after a restart.
            raise RuntimeError(f"dead letters not acknowledged: {failed or 'flush timed out'}")


def build_sink(settings: Settings, metrics: BusMetrics) -> StoreSink:
    catalog = FeedFollower(settings, CATALOG, catalog_feed.decode).start()
    catalog.wait_caught_up(60)
    store = CentralStore(settings.central_store_url)
    sink = StoreSink(
        make_consumer(settings, settings.sink_group),
        make_producer(settings),
        store,
        AvroCodec(make_registry_client(settings)),
        catalog,
        source_schema(settings.schemas_dir),
        metrics,
        settings.source_pattern,
    )
    sink.follow_catalog()
    return sink


def main() -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per registry call is noise
    logging.basicConfig(level=logging.INFO, format="%(asctime)s sink %(levelname)s %(message)s")
    settings = load_service_settings()
    metrics = BusMetrics(CollectorRegistry())
    port = serve_metrics(metrics.registry, settings.sink_metrics_port)
    sink = build_sink(settings, metrics)

    def stop(*_):
        sink.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    store = settings.printable_url(settings.central_store_url)
    log.info("central-store sink up: %s, metrics on :%d", store, port)
    sink.run(settings.batch_size)
