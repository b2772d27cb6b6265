"""The lag exporter: consumer lag of the bus's groups per topic, computed at each scrape."""

from __future__ import annotations

import logging
import signal
import threading

from confluent_kafka import KafkaException
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily

from services.common.kafka_clients import make_admin
from services.common.lag import topic_lags
from services.common.metrics import serve_metrics
from services.common.settings import Settings, load_settings

log = logging.getLogger("govbus.lag")


class LagCollector:
    """A Prometheus collector: scraping it asks Kafka, so the figure is never stale."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._admin = make_admin(settings)
        self._groups = {"router": settings.router_group, "sink": settings.sink_group}

    def collect(self):
        lag = GaugeMetricFamily(
            "govbus_consumer_lag",
            "Messages not yet committed by a consumer group, per topic",
            labels=["service", "group", "topic"],
        )
        up = GaugeMetricFamily("govbus_lag_exporter_up", "1 when Kafka answered this scrape")
        ok = 1
        for service, group in self._groups.items():
            try:
                # A short timeout: both groups must fit in one scrape even when Kafka is down.
                lags = topic_lags(self._admin, group, self._settings.source_pattern, timeout_s=4)
            except KafkaException as exc:
                log.warning("lag of %s: %s", group, exc)
                ok = 0
                continue
            for topic, value in sorted(lags.items()):
                lag.add_metric([service, group, topic], value)
        up.add_metric([], ok)
        yield lag
        yield up


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s lag %(levelname)s %(message)s")
    settings = load_settings()
    registry = CollectorRegistry()
    registry.register(LagCollector(settings))
    port = serve_metrics(registry, settings.lag_metrics_port)
    log.info("lag exporter on :%d", port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
