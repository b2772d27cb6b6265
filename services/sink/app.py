"""The central-store sink process: every valid change of every resource, stored once.

At least once, in a fixed order: write the batch in one transaction, then commit offsets.
Records the router dead-letters (undecodable, unknown resource) are skipped here and counted.
"""

from __future__ import annotations

import logging
import signal
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from prometheus_client import CollectorRegistry

from services.common.config_files import load_catalog
from services.common.kafka_clients import make_consumer
from services.common.metrics import BusMetrics, observe_ages, serve_metrics
from services.common.registry_client import make_registry_client
from services.common.serde import AvroCodec, DecodeError
from services.common.settings import Settings, load_settings
from services.sink.central_store import CentralStore, StoredChange

log = logging.getLogger("govbus.sink")
STAGE = "sink"


def to_stored_change(msg: Message, resource: str, codec: AvroCodec) -> StoredChange:
    event = codec.decode(msg.value())
    return StoredChange(
        resource=resource,
        event_id=event["event_id"],
        op=event["op"],
        before=event["before"],
        after=event["after"],
        ts_ms=event["ts_ms"],
        source_ts_ms=event["source"]["ts_ms"],
        topic=msg.topic(),
        partition=msg.partition(),
        offset=msg.offset(),
    )


class StoreSink:
    def __init__(
        self, consumer: Consumer, store: CentralStore, codec: AvroCodec, metrics: BusMetrics
    ) -> None:
        self._consumer = consumer
        self._store = store
        self._codec = codec
        self._metrics = metrics
        self._resource_by_topic = {t.entry.topic: rid for rid, t in store.resources.items()}
        self.stopping = False

    def run(self, pattern: str, batch_size: int) -> None:
        self._consumer.subscribe([pattern])
        try:
            while not self.stopping:
                self.step(batch_size, timeout_s=0.5)
        finally:
            self._consumer.close()

    def step(self, batch_size: int, timeout_s: float) -> int:
        messages = self._consumer.consume(batch_size, timeout_s)
        if not messages:
            return 0
        started = time.monotonic()
        changes, positions = [], {}
        for msg in messages:
            if msg.error():
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    log.warning("consume error: %s", msg.error())
                continue
            positions[(msg.topic(), msg.partition())] = msg.offset() + 1
            change = self._decode(msg)
            if change is not None:
                changes.append(change)
        if not positions:
            return 0
        for resource, count in self._store.apply(changes).items():
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

    def _decode(self, msg: Message) -> StoredChange | None:
        resource = self._resource_by_topic.get(msg.topic())
        if resource is None:
            self._metrics.events_in.labels(STAGE, "unknown").inc()
            return None
        self._metrics.events_in.labels(STAGE, resource).inc()
        if msg.value() is None:  # compaction tombstone: nothing to store
            return None
        try:
            return to_stored_change(msg, resource, self._codec)
        except (DecodeError, KeyError, TypeError) as exc:
            # The router dead-letters the same record with its reason; counted here only.
            self._metrics.dead_letters.labels(STAGE, "skipped_undecodable").inc()
            log.debug("skip %s[%d]@%d: %s", msg.topic(), msg.partition(), msg.offset(), exc)
            return None


def build_sink(settings: Settings, metrics: BusMetrics) -> StoreSink:
    catalog = load_catalog(settings.catalog_dir, settings.schemas_dir)
    store = CentralStore(settings.central_store_url, catalog.values(), settings.schemas_dir)
    consumer = make_consumer(settings, settings.sink_group)
    return StoreSink(consumer, store, AvroCodec(make_registry_client(settings)), metrics)


def main() -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per registry call is noise
    logging.basicConfig(level=logging.INFO, format="%(asctime)s sink %(levelname)s %(message)s")
    settings = load_settings()
    metrics = BusMetrics(CollectorRegistry())
    port = serve_metrics(metrics.registry, settings.sink_metrics_port)
    sink = build_sink(settings, metrics)

    def stop(*_):
        sink.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    store = settings.printable_url(settings.central_store_url)
    log.info("central-store sink up: %s, metrics on :%d", store, port)
    sink.run(settings.source_pattern, settings.batch_size)
