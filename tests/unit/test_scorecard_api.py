"""The scorecard read from real stores: /api/scorecard for the authority and ops only, and the
same figures as govbus_scorecard_* series."""

from __future__ import annotations

import datetime as dt

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import create_engine

from services.catalog.scorecard_api import scorecard_router
from services.catalog.scorecard_sources import DeadLetterTally, compute
from services.catalog.scorecard_watch import ScorecardWatch
from tests.store_rows import create, store_change
from tests.unit.fixtures import resident
from tests.unit.test_control_api import RESIDENTS, Api


@pytest.fixture
def scored(store_url: str):
    api = Api()
    central = create_engine(store_url)
    tables = create(central, api.plane.store.resource(RESIDENTS).record())
    now_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    store_change(central, tables, "c", resident(), 0, 0, ts_ms=now_ms)
    watch = ScorecardWatch(
        lambda now: compute(api.plane.store, central, None, DeadLetterTally(), now)
    )
    api.client.app.include_router(scorecard_router(watch))
    yield api, watch
    central.dispose()


def test_only_the_authority_and_ops_read_the_scorecard(scored):
    api, _ = scored
    for who in ("mca-wang", "psb-li"):
        r = api.call(who, "get", "/scorecard")
        assert r.status_code == 403 and "authority or ops" in r.json()["detail"]
    assert api.call(None, "get", "/scorecard").status_code == 401
    for who in ("admin", "ops-sun"):
        assert api.call(who, "get", "/scorecard").status_code == 200


def test_the_scorecard_counts_what_reached_the_central_store(scored):
    api, _ = scored
    scores = {
        (s["department"], s["category"]): s
        for s in api.call("admin", "get", "/scorecard").json()["scores"]
    }
    psb = scores[("psb", "government")]
    assert (psb["aggregated"], psb["resources"], psb["fresh"], psb["meets_target"]) == (
        1,
        1,
        1,
        True,
    )
    samr = scores[("samr", "government")]
    assert (samr["aggregated"], samr["meets_target"]) == (0, False)
    province = scores[("*", "government")]
    assert province["aggregated"] == 1 and province["resources"] >= 3
    assert psb["active_shares"] == sum(
        1 for c in api.plane.store.cases(resource=RESIDENTS) if c.grant.is_live(dt.date.today())
    )


def test_the_same_figures_are_prometheus_series(scored):
    _, watch = scored
    registry = CollectorRegistry()
    registry.register(watch)
    assert b"govbus_scorecard_below_target" in generate_latest(registry)  # declared, no samples
    watch.refresh()
    text = generate_latest(registry).decode()
    assert 'govbus_scorecard_below_target{category="government",department="samr"} 1.0' in text
    assert 'govbus_scorecard_below_target{category="government",department="psb"} 0.0' in text
    assert 'govbus_scorecard_aggregation_ratio{category="government",department="psb"} 1.0' in text
    assert "govbus_scorecard_updated_timestamp_seconds " in text
    assert "govbus_scorecard_dead_letter_ratio{" not in text  # Kafka not read: nothing offered
