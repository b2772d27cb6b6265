"""Every process outlives a broker restart: the broker goes away under a running bus and
comes back on the same port and data, and every process's metrics answer truly afterwards.

These tests stop the broker, so they run on a private one of their own, never the shared one.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from services.common.catalog_feed import CatalogRecord
from services.common.kafka_clients import make_producer
from services.common.lag import wait_caught_up
from services.common.metrics import BusMetrics
from services.common.settings import Settings
from services.ingest.demo_data import DemoFeed
from services.ingest.feed import build_publisher
from services.ingest.publisher import Change
from services.progress import scrape_totals
from tests.integration.brokers import PrivateBroker
from tests.integration.conftest import Bus, free_port, new_bus, wait_until
from tests.integration.seed import file_records, publish_file_feeds, publish_records

# The scrape of a dead broker must still answer, and in less than Prometheus's 10 s timeout.
SCRAPE_BOUND_S = 10.0


@pytest.fixture(scope="module")
def broker(tmp_path_factory) -> Iterator[PrivateBroker]:
    with PrivateBroker(tmp_path_factory.mktemp("kafka")) as b:
        yield b


@pytest.fixture
def private_bus(broker: PrivateBroker, registry_url: str, tmp_path: Path) -> Iterator[Bus]:
    """The integration ``bus`` fixture, on the private broker, with a lag exporter's port."""
    bus = new_bus(broker.bootstrap, registry_url, tmp_path, lag_metrics_port=str(free_port()))
    publish_file_feeds(bus.settings)
    yield bus
    bus.processes.stop()
    shutil.rmtree(tmp_path / "data", ignore_errors=True)


def tagged_changes(tag: str, n: int, seed: int) -> list[Change]:
    out = []
    for c in DemoFeed(seed=seed).changes(n):
        provider, code = c.resource.split(".")
        out.append(
            Change(f"{provider}_{tag}.{code}", c.op, c.before, c.after, c.position, c.system)
        )
    return out


def publish_counted(settings: Settings, changes: list[Change]) -> dict[str, int]:
    """Publish through ingest; returns the changes Kafka acknowledged, per source topic."""
    producer = make_producer(settings)
    publisher = build_publisher(settings, BusMetrics(CollectorRegistry()), producer)
    counts: dict[str, int] = {}
    try:
        for change in changes:
            if publisher.publish(change) is not None:
                topic = "gov.{}.{}".format(*change.resource.split("."))
                counts[topic] = counts.get(topic, 0) + 1
            producer.poll(0)
        assert producer.flush(60) == 0
    finally:
        publisher.close()
    return counts


def scrape_lag(settings: Settings) -> tuple[float | None, dict[tuple[str, str], float]]:
    """(govbus_lag_exporter_up, {(service, topic): lag}) from the lag exporter, timed."""
    url = f"http://127.0.0.1:{settings.lag_metrics_port}/metrics"
    text = httpx.get(url, timeout=SCRAPE_BOUND_S).text
    up, lags = None, {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "govbus_lag_exporter_up":
                up = s.value
            elif s.name == "govbus_consumer_lag":
                lags[(s.labels["service"], s.labels["topic"])] = s.value
    return up, lags


def start_lag_exporter(bus: Bus) -> None:
    bus.processes.start("lag-exporter")

    def answers() -> bool:
        bus.processes.check_alive()
        return scrape_lag(bus.settings)[0] == 1

    wait_until(answers, 60, "lag exporter")


def lags_are(settings: Settings, want: dict[tuple[str, str], float]) -> bool:
    """The exporter is up and reports ``want``; other catalog topics (the demo's resources
    nobody published to here) may be reported too, with nothing behind."""
    up, lags = scrape_lag(settings)
    others = {k: v for k, v in lags.items() if k not in want}
    return up == 1 and {k: lags.get(k) for k in want} == want and not any(others.values())


def wanted_lags(counts: dict[str, int]) -> dict[tuple[str, str], float]:
    # Neither group has committed anything: every message of a topic is lag.
    return {(svc, t): float(n) for svc in ("router", "sink") for t, n in counts.items()}


def test_the_lag_exporter_answers_again_after_a_broker_restart(private_bus: Bus, broker):
    s = private_bus.settings
    counts = publish_counted(s, tagged_changes(private_bus.tag, 60, seed=61))
    assert len(counts) == 3
    start_lag_exporter(private_bus)
    wait_until(lambda: lags_are(s, wanted_lags(counts)), 30, "lags before the restart")

    broker.stop()
    began = time.monotonic()
    up, lags = scrape_lag(s)
    took = time.monotonic() - began
    print(f"\nscrape with the broker down answered in {took:.2f}s")
    assert (up, lags) == (0, {})  # down, and no stale figure passed off as current
    assert took < SCRAPE_BOUND_S

    broker.start()
    restarted = time.monotonic()
    wait_until(lambda: lags_are(s, wanted_lags(counts)), 60, "lags after the restart")
    print(f"lag exporter answered again {time.monotonic() - restarted:.2f}s after the restart")
    private_bus.processes.check_alive()

    # A resource the control plane adds later is published (its topic made by ingest) and its
    # lag reported, with no restart of either process.
    resources = file_records(s)[0]
    first = next(r for r in resources if r.resource.provider.startswith("psb"))
    entry = first.resource.model_copy(update={"code": "floating_population"})
    added = CatalogRecord(
        resource=entry,
        value_schema={**first.value_schema, "name": "FloatingPopulation"},
        schema_version=1,
    )
    publish_records(s, [added])
    moved = [
        Change(added.resource_id, c.op, c.before, c.after, c.position, c.system)
        for c in tagged_changes(private_bus.tag, 200, seed=62)
        if c.resource == first.resource_id
    ]
    more = publish_counted(s, moved)
    assert more == {added.topic: len(moved)}
    wait_until(lambda: lags_are(s, wanted_lags({**counts, **more})), 30, "the new topic's lag")


def metric_totals(port: int) -> dict[str, float]:
    return scrape_totals(f"http://127.0.0.1:{port}/metrics")


def test_every_process_outlives_a_broker_restart_under_a_running_feed(private_bus: Bus, broker):
    from services.sink.central_store import CentralStore
    from tests.integration.flow import (
        Feeder,
        catalog_records,
        decode_all,
        expected,
        read_topics,
    )

    s = private_bus.settings
    private_bus.start("router")
    private_bus.start("sink")
    start_lag_exporter(private_bus)
    # About 40 s of feed, so it runs before, across and after the outage.
    feeder = Feeder(s, tagged_changes(private_bus.tag, 2000, seed=71), chunk=10, pause_s=0.2)
    feeder.start()
    router_port, sink_port = s.router_metrics_port, s.sink_metrics_port
    wait_until(
        lambda: (
            metric_totals(router_port).get("govbus_events_in_total", 0) > 100
            and metric_totals(sink_port).get("govbus_store_changes_total", 0) > 100
        ),
        60,
        "router and sink counting",
    )

    fed_before = len(feeder.published)
    broker.stop()  # the feed goes on into the producer's queue; the bus waits for Kafka
    wait_until(lambda: scrape_lag(s)[0] == 0, 30, "the lag exporter to see the outage")
    during = metric_totals(router_port), metric_totals(sink_port)
    assert during[0] and during[1], "router and sink must answer while Kafka is away"
    broker.start()
    published = feeder.finish(timeout_s=240)
    assert len(published) > fed_before, "the feed must go on after the outage"
    # Every group catches up, and no process died of the outage (checked at every tick).
    groups = (s.router_group, s.sink_group)
    wait_caught_up(s, groups, 180, private_bus.processes.check_alive)

    # Router and sink kept counting past the outage, every change at least once.
    router, sink = metric_totals(router_port), metric_totals(sink_port)
    assert router["govbus_events_in_total"] >= len(published) > during[0]["govbus_events_in_total"]
    assert sink["govbus_store_changes_total"] >= len(published)

    # Nothing lost: every change is in the central store, every delivery on its topic.
    store = CentralStore(s.central_store_url, catalog_records(s).values())
    try:
        for resource in {p.change.resource for p in published}:
            ids = [p.event_id for p in published if p.change.resource == resource]
            assert store.stored_event_ids(resource, ids) == set(ids), resource
    finally:
        store.close()
    deliveries = {t: want for t, want in expected(s, published).items() if want}
    assert len(deliveries) >= 3  # the grants on what this feed publishes (not the utilities')
    for topic, want in deliveries.items():
        got = {v["event_id"] for _, v in decode_all(s, read_topics(s, [topic]))}
        assert got == want, f"{topic}: missing {len(want - got)}"

    # The lag exporter answers with real figures: up, every source topic, nothing behind.
    topics = {"gov.{}.{}".format(*p.change.resource.split(".")) for p in published}
    drained = {(svc, t): 0.0 for svc in ("router", "sink") for t in topics}
    wait_until(lambda: lags_are(s, drained), 30, "lag exporter figures after the restart")
