from __future__ import annotations

import time

from prometheus_client import CollectorRegistry

from services.common.metrics import BusMetrics, observe_ages


def test_event_age_is_observed_per_event_from_kafka_timestamps():
    metrics = BusMetrics(CollectorRegistry())
    now = time.time()
    observe_ages(metrics, "router", [now - 2.0, now - 0.001, None, 0])
    registry = metrics.registry
    count = registry.get_sample_value("govbus_event_age_seconds_count", {"stage": "router"})
    total = registry.get_sample_value("govbus_event_age_seconds_sum", {"stage": "router"})
    assert count == 2  # events without a timestamp are not guessed at
    assert 2.0 <= total < 3.0


def test_metrics_live_on_the_registry_they_are_given():
    first, second = BusMetrics(CollectorRegistry()), BusMetrics(CollectorRegistry())
    first.events_in.labels("router", "psb.resident_population").inc()
    value = second.registry.get_sample_value(
        "govbus_events_in_total", {"stage": "router", "resource": "psb.resident_population"}
    )
    assert value is None
