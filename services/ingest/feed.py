"""The demo provider feed: realistic changes from three departments and two utilities (social
data), published on the bus."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import time
import weakref
from functools import partial

from prometheus_client import CollectorRegistry

from services.common import catalog_feed
from services.common.authority_seal import public_key, seal
from services.common.catalog_feed import CatalogView
from services.common.feed import FeedFollower
from services.common.kafka_clients import (
    ensure_topics,
    make_admin,
    make_producer,
    source_topic_spec,
)
from services.common.metrics import BusMetrics, serve_metrics
from services.common.registry_client import make_registry_client
from services.common.schemas import source_schema
from services.common.serde import AvroCodec
from services.common.settings import Settings, load_service_settings
from services.common.topics import CATALOG
from services.ingest.demo_data import DemoFeed
from services.ingest.demo_utilities import DEMO_RESOURCES, MixedFeed, live_feed
from services.ingest.publisher import Change, ChangePublisher

log = logging.getLogger("govbus.ingest")


def build_publisher(
    settings: Settings, metrics: BusMetrics, producer, catalog_timeout_s: float = 60.0
) -> ChangePublisher:
    """A publisher that follows ``govbus.catalog``: read to its end now, then live.

    ``close()`` stops the follower; a publisher dropped without it stops it when collected.
    """
    follower = FeedFollower(settings, CATALOG, catalog_feed.decode).start()
    try:
        follower.wait_caught_up(catalog_timeout_s)
    except TimeoutError:
        follower.stop()
        raise
    admin = make_admin(settings)

    def prepare_topic(topic: str) -> None:
        # The broker does not create topics: a resource new to the catalog gets its own here.
        ensure_topics(admin, [source_topic_spec(topic, settings)])

    publisher = ChangePublisher(
        CatalogView(),
        AvroCodec(make_registry_client(settings)),
        producer,
        source_schema(settings.schemas_dir),
        metrics,
        settings.max_message_bytes,
        follower=follower,
        prepare_topic=prepare_topic,
        seal_original=partial(seal, public_key(settings)),
    )
    publisher.refresh()
    weakref.finalize(publisher, _stop_follower, follower)
    return publisher


def _stop_follower(follower: FeedFollower) -> None:
    # Collected on the follower's own thread, it is told to stop but cannot be joined.
    with contextlib.suppress(RuntimeError):
        follower.stop()


def wait_for_resources(
    publisher: ChangePublisher, resources: tuple[str, ...], timeout_s: float, should_stop
) -> list[str]:
    """Wait until the catalog knows ``resources`` (the control plane may still be publishing
    it); returns those still unknown at the deadline, whose changes will be dead-lettered."""
    deadline = time.monotonic() + timeout_s
    while True:
        publisher.refresh()
        missing = [r for r in resources if r not in publisher.resource_ids()]
        if not missing or time.monotonic() >= deadline or should_stop():
            return missing
        time.sleep(0.2)


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
    feed: DemoFeed | MixedFeed,
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
    parser.add_argument(
        "--sql",
        metavar="URL",
        help="write the changes as SQL into the provider database at URL (Debezium carries them)",
    )


def main(args: argparse.Namespace) -> None:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per registry call is noise
    logging.basicConfig(level=logging.INFO, format="%(asctime)s ingest %(levelname)s %(message)s")
    settings = load_service_settings()
    if args.sql:
        from services.ingest.sql_feed import main as sql_main

        sql_main(args, settings)
        return
    metrics = BusMetrics(CollectorRegistry())
    port = serve_metrics(metrics.registry, settings.ingest_metrics_port)
    producer = make_producer(settings)
    publisher = build_publisher(settings, metrics, producer)
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
    seed = args.seed if args.seed is not None else int(time.time())
    log.info("demo feed up: seed %d, %s/s, metrics on :%d", seed, args.rate or "max", port)
    missing = wait_for_resources(publisher, DEMO_RESOURCES, 60.0, lambda: bool(stopping))
    if missing:
        log.warning("not in the catalog after 60 s (their changes go to the DLQ): %s", missing)
    feed = live_feed(seed, args.invalid_rate)
    sent = run_feed(
        publisher, producer, feed, args.events, args.rate or None, lambda: bool(stopping)
    )
    publisher.close()
    log.info("demo feed done: %d changes", sent)
