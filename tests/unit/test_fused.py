"""The fused step is plan_delivery plus the route's encoders, byte for byte, on the demo data."""

from __future__ import annotations

import datetime as dt

import pytest

from services.common.catalog_feed import CatalogRecord
from services.common.plan import plan_delivery
from services.common.schemas import envelope_schema, source_schema, value_schema
from services.common.topics import value_subject
from services.ingest.demo_data import DemoFeed
from services.ingest.feed import to_change
from services.ingest.publisher import make_envelope
from services.router.routing import GRANT_FAILURES, RawMessage, Router
from tests.unit.fixtures import SCHEMAS, catalog, codec, grants, resident

TODAY = dt.date(2026, 11, 26)
SECRET = b"unit-test-master-secret"


def _router():
    c = codec()
    router = Router(c, SECRET, source_schema(SCHEMAS))
    encoders = {}
    for entry in catalog().values():
        schema = value_schema(entry, SCHEMAS)
        router.set_resource(CatalogRecord(resource=entry, value_schema=schema, schema_version=1))
        full = envelope_schema(schema, source_schema(SCHEMAS))
        encoders[entry.resource_id] = c.encoder(value_subject(entry.topic), full)
    for g in grants():
        router.add_grant(g)
    return router, encoders


def _reference(route, event):
    """What the data path delivered before it was fused: the pure plan, then both encoders."""
    try:
        d = plan_delivery(route.plan, event)
        return None if d is None else (route.encode_key(d.key), route.encode_value(d.value), d.key)
    except GRANT_FAILURES as exc:
        return type(exc)


def _fused(route, event):
    try:
        return route.deliver(event)
    except GRANT_FAILURES as exc:
        return type(exc)


def test_fused_bytes_equal_plan_delivery_and_encoders_on_the_demo_data():
    router, encoders = _router()
    entries = {e.resource_id: e for e in catalog().values()}
    routes = router.live_routes(TODAY)
    feed = DemoFeed(seed=7, invalid_rate=0.05)
    compared, delivered = 0, 0
    for i, demo in enumerate(feed.changes(3000)):
        change = to_change(demo)
        entry = entries[change.resource]
        data = encoders[change.resource](make_envelope(change, entry, 1_764_000_000_000, f"e{i}"))
        event = router.decode_event(RawMessage(entry.topic, 0, i, b"k", data))
        assert isinstance(event, dict), event
        for route in routes[entry.topic]:
            expected = _reference(route, event)
            assert _fused(route, event) == expected, (route.plan.grant.id, change)
            compared += 1
            delivered += isinstance(expected, tuple)
    # Every resource, grant and outcome was exercised: deliveries, filtered rows, deletes.
    assert compared > 3000 and 0 < delivered < compared


@pytest.mark.parametrize(
    ("op", "before", "after"),
    [
        ("u", resident(household_type="其他"), resident()),  # enters mca's filter: a create
        ("u", resident(), resident(household_type="其他")),  # leaves it: a delete
        ("d", resident(), None),
        ("u", resident(birth_date="2015年3月2日"), resident()),  # mca cannot mask the before
    ],
)
def test_fused_follows_plan_delivery_across_the_filter(op, before, after):
    router, _ = _router()
    event = {"before": before, "after": after, "op": op, "event_id": "e", "ts_ms": 1}
    for route in router.live_routes(TODAY)["gov.psb.resident_population"]:
        assert _fused(route, event) == _reference(route, event)
