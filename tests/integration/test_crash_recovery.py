"""Killing the router and the sink mid-stream loses nothing; the store holds each change once."""

from __future__ import annotations

import signal
import threading
import time

from services.sink.central_store import CentralStore
from tests.integration.conftest import wait_until
from tests.integration.flow import (
    catalog_records,
    decode_all,
    demo_changes,
    expected,
    publish,
    read_topics,
    wait_drained,
)

EVENTS = 3000


def _delivered_count(bus) -> int:
    import httpx

    from services.progress import scrape_totals

    port = bus.settings.router_metrics_port
    try:
        return int(
            scrape_totals(f"http://127.0.0.1:{port}/metrics").get("govbus_events_out_total", 0)
        )
    except httpx.HTTPError:
        return 0


def test_kill_router_and_sink_mid_stream_then_restart(bus):
    s = bus.settings
    changes = demo_changes(bus.tag, EVENTS, seed=21)
    published = publish(s, changes[:100])  # topics and schemas exist before the router starts
    bus.start("router")
    bus.start("sink")
    rest: list = []
    feeder = threading.Thread(target=lambda: rest.extend(publish(s, changes[100:])))
    feeder.start()
    wait_until(lambda: _delivered_count(bus) > 300, 60, "router delivering")
    bus.kill("router", signal.SIGKILL)
    bus.kill("sink", signal.SIGKILL)
    feeder.join(120)
    published += rest
    assert len(published) == EVENTS
    time.sleep(1)
    bus.start("router")
    bus.start("sink")
    wait_drained(s, 180)

    for topic, want in expected(s, published).items():
        got = [v["event_id"] for _, v in decode_all(s, read_topics(s, [topic]))]
        assert want <= set(got), f"{topic}: {len(want - set(got))} deliveries lost"

    catalog = {
        rid: r.resource
        for rid, r in catalog_records(s).items()
        if r.resource.provider.endswith(bus.tag)  # this test's resources only
    }
    store = CentralStore(s.central_store_url, [catalog_records(s)[rid] for rid in catalog])
    counts = store.counts()
    assert sum(c["history"] for c in counts.values()) == EVENTS  # each change exactly once
    for resource in {p.change.resource for p in published}:
        ids = [p.event_id for p in published if p.change.resource == resource]
        assert store.stored_event_ids(resource, ids) == set(ids)
    # The current state is the last change per key, deletes included.
    final: dict[tuple, str] = {}
    for p in published:
        entry = catalog[p.change.resource]
        row = p.change.after or p.change.before
        final[(p.change.resource, tuple(row[k] for k in entry.key_fields))] = p.change.op
    live = sum(1 for op in final.values() if op != "d")
    assert sum(c["live"] for c in counts.values()) == live
