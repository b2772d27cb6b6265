"""The operations pages over a real (in-memory) control store and a SQLite central store: who
may see them, the scorecard page, and the flow figures from the processes' metrics."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import create_engine
from starlette.routing import Mount

from services.catalog.scorecard_sources import DeadLetterTally, compute
from services.catalog.scorecard_watch import ScorecardWatch
from services.common.settings import Settings
from services.hall.audit_pages import search
from services.hall.flow_view import Sample, flow_figures, parse_metrics
from services.hall.ops_pages import OPS_ROUTERS
from services.hall.ops_state import Ops, install_ops_pages
from tests.store_rows import create, store_change
from tests.unit.fixtures import RESIDENTS, resident
from tests.unit.hall_client import HallWorld


@pytest.fixture
def world(tmp_path) -> HallWorld:
    world = HallWorld()
    central = create_engine(f"sqlite:///{tmp_path / 'store.db'}")
    tables = create(central, world.plane.store.resource(RESIDENTS).record())
    now_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    store_change(central, tables, "c", resident(), 0, 0, ts_ms=now_ms)
    watch = ScorecardWatch(
        lambda now: compute(world.plane.store, central, None, DeadLetterTally(), now)
    )
    # Nothing listens on these ports: the flow page shows no traffic, quickly.
    settings = Settings(
        router_metrics_port=1, sink_metrics_port=1, ingest_metrics_port=1, lag_metrics_port=1
    )
    hall = next(r.app for r in world.app.routes if isinstance(r, Mount))
    install_ops_pages(hall, Ops(settings, watch), OPS_ROUTERS)
    return world


PAGES = ["/flow", "/flow/stream", "/deadletters", "/audit", "/scorecard", "/audit/ledger"]


@pytest.mark.parametrize("user", ["mca-wang", "psb-li"])
def test_consumers_and_providers_are_refused_every_operations_page(world, user):
    browser = world.browser(user)
    for path in PAGES:
        r = browser.get(path)
        assert r.status_code == 403, path
        assert "authority" in r.text, path
    for path in ("/deadletters/0/redrive", "/audit/verify", "/audit/ledger"):
        assert browser.post(path, {"id_number": "x"}).status_code == 403, path
    menu = browser.get("/catalog").text
    assert "/hall/flow" not in menu and "/hall/scorecard" not in menu


def test_ops_reads_but_may_not_redrive_nor_open_the_ledger(world):
    browser = world.browser("ops-sun")
    assert 'href="/hall/scorecard"' in browser.get("/catalog").text
    assert browser.post("/deadletters/0/redrive").status_code == 403
    assert browser.get("/audit/ledger").status_code == 403
    assert browser.post("/audit/ledger", {"id_number": "x"}).status_code == 403


def test_posts_without_the_csrf_token_are_refused(world):
    browser = world.browser("admin")
    assert browser.post("/deadletters/0/redrive", csrf=False).status_code == 403
    assert browser.post("/audit/ledger", {"id_number": "x"}, csrf=False).status_code == 403


def test_a_bad_id_number_is_a_422_with_the_reason(world):
    browser = world.browser("admin")
    browser.get("/audit/ledger")
    r = browser.post("/audit/ledger", {"id_number": "110101199003070000"})
    assert r.status_code == 422 and "not a valid resident ID number" in r.text
    assert "110101199003070000" not in r.text  # not echoed


def test_the_scorecard_page_shows_targets_and_who_is_below(world):
    browser = world.browser("admin")
    r = browser.get("/scorecard")
    assert r.status_code == 200
    assert 'data-department="psb"' in r.text and 'class=" province"' not in r.text
    below = r.text.split('data-department="samr"')[0].rsplit("<tr", 1)[1]
    assert "below" in below  # samr's enterprises never reached the store
    assert "(1/1)" in r.text  # psb: 1 of 1 resources aggregated
    assert world.browser("ops-sun").get("/scorecard").status_code == 200


def test_the_resource_page_shows_its_freshness(world):
    page = world.browser("mca-wang").get(f"/catalog/{RESIDENTS}")
    assert 'id="freshness" class="problem"' not in page.text
    assert 'id="freshness"' in page.text


def test_the_flow_page_renders_without_traffic(world):
    r = world.browser("admin").get("/flow")
    assert r.status_code == 200 and "flow.js" in r.text
    assert RESIDENTS in r.text  # the freshness table


ROUTER_METRICS = """
# TYPE govbus_events_in counter
govbus_events_in_total{stage="router",resource="psb.a"} 100
govbus_events_in_total{stage="ingest",resource="psb.a"} 999
# TYPE govbus_events_out counter
govbus_events_out_total{consumer="edu",resource="psb.a"} 40
# TYPE govbus_dead_letters counter
govbus_dead_letters_total{stage="router",reason="bad"} 2
"""
SINK_METRICS = """
# TYPE govbus_dead_letters counter
govbus_dead_letters_total{stage="router",reason="bad"} 1
# TYPE govbus_consumer_lag gauge
govbus_consumer_lag{service="sink",group="s",topic="gov.psb.a"} 5
govbus_consumer_lag{service="sink",group="s",topic="gov.psb.b"} 7
"""


def test_flow_figures_are_rates_between_two_samples():
    first = Sample(10.0, parse_metrics([ROUTER_METRICS, SINK_METRICS]))
    later = ROUTER_METRICS.replace("} 100", "} 160").replace("} 40", "} 50")
    second = Sample(12.0, parse_metrics([later, SINK_METRICS]))
    figures = flow_figures(first, second)
    assert figures["resources"] == [{"resource": "psb.a", "total": 160.0, "per_s": 30.0}]
    assert figures["consumers"][0]["per_s"] == 5.0
    assert figures["lag"] == [{"service": "sink", "group": "s", "lag": 12}]
    assert figures["dead"] == [{"stage": "router", "reason": "bad", "total": 3}]
    assert flow_figures(None, first)["resources"][0]["per_s"] == 0.0  # one sample: no rate
    restarted = Sample(14.0, parse_metrics([ROUTER_METRICS.replace("} 100", "} 8")]))
    assert flow_figures(second, restarted)["resources"][0]["per_s"] == 4.0


def test_audit_search_by_grant_consumer_resource_and_time():
    records = [
        {"grant_id": "g1", "consumer": "edu", "resource": "psb.a", "ts_ms": 1000},
        {"grant_id": "g2", "consumer": "mca", "resource": "psb.a", "ts_ms": 2000},
        {"grant_id": "g3", "consumer": "mca", "resource": "samr.b", "ts_ms": 3000},
    ]
    assert [r["grant_id"] for r in search(records, consumer="mca")] == ["g2", "g3"]
    assert [r["grant_id"] for r in search(records, resource="psb.a", grant="g2")] == ["g2"]
    assert [r["grant_id"] for r in search(records, since_ms=2000, until_ms=3000)] == ["g2"]
