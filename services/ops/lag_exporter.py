"""The lag exporter: consumer lag of the bus's groups per topic, computed at each scrape.

The topics are the source topics of the resources the catalog knows (``govbus.catalog``,
followed live), within the bus's source pattern. A scrape that Kafka does not fully answer
reports ``govbus_lag_exporter_up 0`` and no lag, and the next scrape uses a new admin client:
one kept across a broker restart can go on timing out for good.
"""

from __future__ import annotations

import logging
import re
import signal
import threading
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily

from services.common import catalog_feed
from services.common.catalog_feed import CatalogRecord, CatalogView
from services.common.feed import FeedFollower
from services.common.kafka_clients import make_admin
from services.common.lag import groups_lags
from services.common.metrics import serve_metrics
from services.common.settings import Settings, load_service_settings
from services.common.topics import CATALOG, source_topic

log = logging.getLogger("govbus.lag")

# Each Kafka call of a scrape gets this long; a scrape makes five, and stops at the first
# that fails, so a scrape of a dead broker answers in seconds (Prometheus gives up at 10 s).
CALL_TIMEOUT_S = 2.0


class CatalogTopics:
    """The source topics of the resources in the live catalog, within the source pattern.

    A resource whose catalog record is unreadable keeps its topic here: its events are
    dead-lettered, but the lag of its topic is still there for ops to see.
    """

    def __init__(self, follower: FeedFollower[CatalogRecord], source_pattern: str) -> None:
        self._follower = follower
        self._view = CatalogView()
        self._pattern = re.compile(source_pattern)
        self._lock = threading.Lock()  # scrapes may run in parallel threads

    def __call__(self) -> set[str]:
        with self._lock:
            self._view.apply(self._follower.changes())
            blocked = {source_topic(*rid.split(".", 1)) for rid in self._view.blocked}
            return {t for t in set(self._view.topics()) | blocked if self._pattern.match(t)}


class LagCollector:
    """A Prometheus collector: scraping it asks Kafka, so the figure is never stale."""

    def __init__(
        self,
        settings: Settings,
        topics: Callable[[], Iterable[str]],
        new_admin: Callable[[Settings], object] = make_admin,
        timeout_s: float = CALL_TIMEOUT_S,
    ) -> None:
        self._settings = settings
        self._topics = topics
        self._new_admin = new_admin
        self._timeout_s = timeout_s
        self._admin = None
        self._lock = threading.Lock()
        self._groups = {"router": settings.router_group, "sink": settings.sink_group}

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        lag = GaugeMetricFamily(
            "govbus_consumer_lag",
            "Messages not yet committed by a consumer group, per topic",
            labels=["service", "group", "topic"],
        )
        up = GaugeMetricFamily("govbus_lag_exporter_up", "1 when Kafka answered this scrape")
        return lag, up

    def describe(self):
        # Registering then needs no scrape: names come from here, not from asking Kafka.
        return list(self._families())

    def collect(self):
        lag, up = self._families()
        found = self._scrape()
        for service, group in self._groups.items():
            for topic, value in sorted((found or {}).get(group, {}).items()):
                lag.add_metric([service, group, topic], value)
        up.add_metric([], 0 if found is None else 1)
        yield lag
        yield up

    def _scrape(self) -> dict[str, dict[str, int]] | None:
        """Lag per group and topic, or None when Kafka did not answer all of it."""
        wanted = set(self._topics())
        with self._lock:
            if self._admin is None:
                self._admin = self._new_admin(self._settings)
            try:
                return groups_lags(
                    self._admin, self._groups.values(), wanted.__contains__, self._timeout_s
                )
            except Exception as exc:  # noqa: BLE001 - any failure: report down, retry fresh
                log.warning("Kafka did not answer the lag scrape: %s", exc)
                self._admin = None
                return None


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s lag %(levelname)s %(message)s")
    settings = load_service_settings()
    follower = FeedFollower(settings, CATALOG, catalog_feed.decode).start()
    try:
        follower.wait_caught_up(30)
    except Exception as exc:  # noqa: BLE001 - serve anyway: the topics fill in as it reads
        log.warning("catalog not read to its end at start-up (%s); following it", exc)
    registry = CollectorRegistry()
    registry.register(LagCollector(settings, CatalogTopics(follower, settings.source_pattern)))
    port = serve_metrics(registry, settings.lag_metrics_port)
    log.info("lag exporter on :%d", port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    follower.stop()
