"""The demo provider feed: realistic changes from three departments, published on the bus."""

from __future__ import annotations

import argparse
import logging
import signal
import time

from prometheus_client import CollectorRegistry

from services.common.config_files import load_catalog
from services.common.kafka_clients import (
    ensure_topics,
    make_admin,
    make_producer,
    source_topic_spec,
)
from services.common.metrics import BusMetrics, serve_metrics
from services.common.registry_client import make_registry_client
from services.common.serde import AvroCodec
from services.common.settings import Settings, load_settings
from services.ingest.demo_data import DemoFeed
from services.ingest.publisher import Change, ChangePublisher

log = logging.getLogger("govbus.ingest")


def build_publisher(settings: Settings, metrics: BusMetrics, producer) -> ChangePublisher:
    catalog = load_catalog(settings.catalog_dir, settings.schemas_dir)
    ensure_topics(
        make_admin(settings), [source_topic_spec(e.topic, settings) for e in catalog.values()]
    )
    codec = AvroCodec(make_registry_client(settings))
    return ChangePublisher(
        catalog, codec, producer, settings.schemas_dir, metrics, settings.max_message_bytes
    )


def to_change(demo) -> Change:
    row = demo.after or demo.before
    return Change(
        demo.resource,
        demo.op,
        demo.before,
        demo.after,
        demo.position,
        demo.system,
        source_ts_ms=row["updated_at"],
    )


def run_feed(
    publisher: ChangePublisher,
    producer,
    feed: DemoFeed,
    events: int | None,
    rate: float | None,
    should_stop=lambda: False,
) -> int:
    """Publish ``events`` changes (None: forever) at ``rate`` per second (None: unbounded)."""
    started, sent = time.monotonic(), 0
    while (events is None or sent < events) and not should_stop():
        publisher.publish(to_change(feed.next_change()))
        sent += 1
        producer.poll(0)
        if rate:
            ahead = sent / rate - (time.monotonic() - started)
            if ahead > 0:
                time.sleep(ahead)
    remaining = producer.flush(60)
    if remaining:
        raise RuntimeError(f"{remaining} changes not acknowledged by Kafka")
    return sent


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--events", type=int, default=None, help="stop after N changes")
    parser.add_argument("--rate", type=float, default=200.0, help="changes per second (0: max)")
    parser.add_argument("--seed", type=int, default=None, help="default: the current time")
    parser.add_argument(
        "--invalid-rate", type=float, default=0.01, help="share of creates with a bad ID number"
    )


def main(args: argparse.Namespace) -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per registry call is noise
    logging.basicConfig(level=logging.INFO, format="%(asctime)s ingest %(levelname)s %(message)s")
    settings = load_settings()
    metrics = BusMetrics(CollectorRegistry())
    port = serve_metrics(metrics.registry, settings.ingest_metrics_port)
    producer = make_producer(settings)
    publisher = build_publisher(settings, metrics, producer)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
    seed = args.seed if args.seed is not None else int(time.time())
    log.info("demo feed up: seed %d, %s/s, metrics on :%d", seed, args.rate or "max", port)
    feed = DemoFeed(seed=seed, invalid_rate=args.invalid_rate, start_ms=int(time.time() * 1000))
    sent = run_feed(
        publisher, producer, feed, args.events, args.rate or None, lambda: bool(stopping)
    )
    log.info("demo feed done: %d changes", sent)
