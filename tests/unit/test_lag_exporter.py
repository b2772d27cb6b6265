"""The lag exporter: honest about Kafka not answering, a fresh client after a failure, and the
topics of the live catalog."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException
from prometheus_client import CollectorRegistry

from services.common.catalog_feed import CatalogRecord
from services.common.feed import Unreadable
from services.common.lag import lags_from
from services.common.schemas import value_schema
from services.common.settings import Settings
from services.ops import lag_exporter
from services.ops.lag_exporter import CatalogTopics, LagCollector
from tests.unit.fixtures import SCHEMAS, QueuedFollower, catalog

SETTINGS = Settings(router_group="r", sink_group="s")


def test_lag_counts_from_the_commit_or_from_the_start_when_never_committed():
    ends = {("t", 0): 10, ("t", 1): 5, ("u", 0): 8}
    starts = {("t", 0): 0, ("t", 1): 2, ("u", 0): 3}
    committed = {("t", 0): 7, ("t", 1): -1001}  # -1001: no offset committed
    assert lags_from(committed, starts, ends) == {"t": 3 + 3, "u": 5}


class Admins:
    """Admin clients handed out by number; the lag function answers per client."""

    def __init__(self, failing: set[int]) -> None:
        self.made = 0
        self.failing = failing

    def new(self, _settings) -> int:
        self.made += 1
        return self.made

    def lags(self, admin, groups, accept, timeout_s):
        if admin in self.failing:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT))
        return {g: {t: 4 for t in ("gov.a.x", "gov.b.y") if accept(t)} for g in groups}


def scrape(registry: CollectorRegistry) -> dict[tuple, float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in registry.collect()
        for s in family.samples
    }


def test_a_failed_scrape_says_down_and_the_next_one_uses_a_new_client(monkeypatch):
    admins = Admins(failing={1})  # the first client times out for good, as after a restart
    monkeypatch.setattr(lag_exporter, "groups_lags", admins.lags)
    registry = CollectorRegistry()
    registry.register(LagCollector(SETTINGS, lambda: {"gov.a.x"}, admins.new))
    assert admins.made == 0  # registering asks Kafka nothing

    first = scrape(registry)
    assert first == {("govbus_lag_exporter_up", ()): 0}  # no stale or made-up lag
    second = scrape(registry)
    assert admins.made == 2
    assert second[("govbus_lag_exporter_up", ())] == 1
    lag = {k: v for k, v in second.items() if k[0] == "govbus_consumer_lag"}
    assert lag == {
        ("govbus_consumer_lag", (("group", g), ("service", svc), ("topic", "gov.a.x"))): 4
        for svc, g in (("router", "r"), ("sink", "s"))
    }
    scrape(registry)
    assert admins.made == 2  # a client that answers is kept


def test_topics_follow_the_catalog_within_the_source_pattern():
    follower = QueuedFollower()
    topics = CatalogTopics(follower, r"^gov\.(psb|samr)\..+")
    records = {
        rid: CatalogRecord(resource=e, value_schema=value_schema(e, SCHEMAS), schema_version=1)
        for rid, e in catalog().items()
    }
    follower.queued.update(records)
    assert topics() == {r.topic for r in records.values() if r.resource.provider in ("psb", "samr")}
    psb = next(rid for rid in records if rid.startswith("psb."))
    # An unreadable record stops the resource, not the watch on its topic's lag.
    follower.queued[psb] = Unreadable(psb, 3, "bad")
    assert records[psb].topic in topics()
    follower.queued[psb] = None  # removed from the catalog
    assert records[psb].topic not in topics()
