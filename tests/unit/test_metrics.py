from __future__ import annotations

import time

from prometheus_client import CollectorRegistry

from services.common.metrics import BusMetrics, observe_ages, observe_many


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


def test_observe_many_equals_observe_one_by_one():
    bulk, single = BusMetrics(CollectorRegistry()), BusMetrics(CollectorRegistry())
    # On the bounds, between them, below the first and beyond the last.
    amounts = [0.0, 0.01, 0.011, 0.05, 0.3, 0.3, 59.9, 60, 4000.0, 0.0099]
    observe_many(bulk.event_age.labels("router"), amounts)
    for a in amounts:
        single.event_age.labels("router").observe(a)
    samples = [
        [(s.name, s.labels, s.value) for s in m.samples if not s.name.endswith("_created")]
        for m in (list(bulk.event_age.collect())[0], list(single.event_age.collect())[0])
    ]
    assert samples[0] == samples[1]
    assert any(v == len(amounts) for n, _, v in samples[0] if n.endswith("_count"))
