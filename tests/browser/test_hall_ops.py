"""The operations pages in a real browser, on a real bus: the flow updating in place over
server-sent events, dead letters and the authority's redrive, the audit search, chain
verification and citizen ledger, the scorecard; and each refused to the roles it is not for."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from playwright.sync_api import expect

from services.common.audit import AuditChain, share_record
from services.common.dead_letter import DeadLetter, produce_dead_letter
from services.common.idnumbers import make_resident_id
from services.common.kafka_clients import (
    bus_topic_specs,
    ensure_topics,
    make_admin,
    make_producer,
    source_topic_spec,
)
from services.common.topics import AUDIT, source_topic
from services.ingest.demo_data import DEFAULT_START_MS, DemoFeed
from services.ingest.demo_utilities import MixedFeed
from tests.browser.conftest import Pages, Site
from tests.integration.conftest import Bus, bus, free_port, wait_until  # noqa: F401 - fixture
from tests.integration.flow import Feeder, tagged
from tests.integration.test_control_plane import start_catalog_service

OPS_PAGES = ("flow", "deadletters", "audit", "scorecard")


def _produce(settings, topic: str, value: bytes, key: bytes) -> tuple[int, int]:
    """(partition, offset) of the record once Kafka acknowledged it."""
    producer = make_producer(settings)
    at = []
    producer.produce(
        topic, value, key, on_delivery=lambda err, msg: at.append((msg.partition(), msg.offset()))
    )
    assert producer.flush(30) == 0
    return at[0]


def test_roles_see_only_their_operations_pages(site, pages):
    site.add_user("edu-chen", "edu", "consumer")
    site.add_user("psb-li", "psb", "provider")
    site.add_user("ops-sun", "dsj", "ops")
    for user in ("edu-chen", "psb-li"):
        page = pages.open(user)
        expect(page.locator("header nav a[href$='/scorecard']")).to_have_count(0)
        for name in OPS_PAGES:
            response = page.goto(f"{site.hall}/{name}")
            assert response is not None and response.status == 403, (user, name)
            expect(page.locator("main")).to_contain_text("authority or ops")
    pages.shot(page, "ops-refused")
    page = pages.open("ops-sun")
    expect(page.locator("header nav a[href$='/scorecard']")).to_have_count(1)
    response = page.goto(f"{site.hall}/audit/ledger")
    assert response is not None and response.status == 403  # the authority's alone


@pytest.fixture
def busy_site(bus: Bus) -> Site:  # noqa: F811 - the integration fixture
    """The site with its scorecard computed every 2 s; a router, sink and lag exporter running."""
    bus.processes.env["GOVBUS_SCORECARD_INTERVAL_S"] = "2"
    bus.processes.env["GOVBUS_LAG_METRICS_PORT"] = str(free_port())
    env = start_catalog_service(bus)
    bus.start("router")
    bus.start("sink")
    bus.processes.start("lag-exporter")
    api = env["GOVBUS_API_URL"]
    return Site(bus, api, api.removesuffix("/api") + "/hall")


def test_flow_updates_in_place_and_the_scorecard_meets_the_targets(busy_site, browser, request):
    site = busy_site
    changes = [
        tagged(c, site.bus.tag)
        for c in MixedFeed(DemoFeed(seed=5), 5, DEFAULT_START_MS).changes(3000)
    ]
    feeder = Feeder(site.bus.settings, changes, chunk=20, pause_s=0.2)
    feeder.start()
    pages = Pages(browser, site, request.node.name)
    try:
        page = pages.open("admin")
        page.goto(f"{site.hall}/flow")
        expect(page.locator("h1")).to_have_text("运行监测")
        status = page.locator("#flow-status")
        expect(status).to_contain_text("实时更新于", timeout=20_000)
        # Rows appear and their rates move without the page being loaded again.
        rate = page.locator("#flow-resources tbody tr td:nth-child(2)").first
        expect(rate).to_have_text(re.compile(r"^[1-9]\d*(\.\d)?"), timeout=60_000)
        expect(page.locator("#flow-consumers tbody tr").first).to_be_visible()
        lag = page.locator("#flow-lag")
        expect(lag).to_contain_text(site.bus.settings.router_group, timeout=30_000)
        assert page.evaluate("performance.getEntriesByType('navigation').length") == 1
        pages.shot(page, "flow", readme=True)

        feeder.finish()
        province = page.locator("#score-social tr[data-department='*']")

        def bills_stored() -> bool:  # the sink stores them, the scorecard counts every 2 s
            page.goto(f"{site.hall}/scorecard")
            return "(2/3)" in province.inner_text()

        wait_until(bills_stored, 90, "the water and power bills in the scorecard")
        expect(page.locator("h1")).to_have_text("数据归集考核")
        expect(province.locator(".tag.state-active")).to_have_count(1)  # 2/3 meets 60 %
        government = page.locator("#score-government tr[data-department='*']")
        expect(government).to_contain_text("(3/3)")
        expect(government).to_contain_text("0.00 %")  # changes offered, read from Kafka: none dead
        gas = page.locator(f"#score-social tr[data-department='{site.dept('gas')}']")
        expect(gas).to_contain_text("未达标")  # catalogued, never connected
        pages.shot(page, "scorecard", readme=True)
    finally:
        feeder.finish(stop=True)
        pages.close()
    assert pages.foreign() == [] and pages.csp_errors == []


def test_dead_letters_list_and_the_authority_redrives(site, pages):
    settings = site.bus.settings
    topic = source_topic(site.dept("psb"), "resident_population")
    ensure_topics(
        make_admin(settings), [*bus_topic_specs(settings), source_topic_spec(topic, settings)]
    )
    partition, offset = _produce(settings, topic, b"not an avro record", b"k")
    resource = f"{site.dept('psb')}.resident_population"
    producer = make_producer(settings)
    letter = DeadLetter(
        "router", "not_avro", "the value is not Confluent-framed Avro", topic, partition, offset,
        resource=resource,
        record={"op": "c", "before": None, "after": {"id_number": "340104********1234"}},
    )  # fmt: skip
    produce_dead_letter(producer, letter)
    assert producer.flush(30) == 0

    site.add_user("ops-sun", "dsj", "ops")
    page = pages.open("ops-sun")
    page.goto(f"{site.hall}/deadletters?resource={resource}")
    expect(page.locator("#dlq-letters tbody tr")).to_have_count(1)
    expect(page.locator("#dlq-letters")).to_contain_text("not_avro")
    expect(page.locator("#dlq-letters button.redrive")).to_have_count(0)  # ops reads only

    page = pages.open("admin")
    page.goto(f"{site.hall}/deadletters?resource={resource}")
    expect(page.locator("#dlq-counts")).to_contain_text("not_avro")
    expect(page.locator("#dlq-letters")).to_contain_text("id_number=340104********1234")
    pages.shot(page, "deadletters", readme=True)
    page.locator("#dlq-letters button.redrive").click()
    expect(page.locator("#redrive-done")).to_contain_text(
        f"re-produced {topic}[{partition}]@{offset}"
    )


def test_audit_search_verification_and_citizen_ledger(site, pages):
    settings = site.bus.settings
    ensure_topics(make_admin(settings), bus_topic_specs(settings))
    person = make_resident_id("340104", dt.date(2003, 3, 7), 17)
    consumer = site.dept("mca")
    grant = f"mca-resident-population-{site.bus.tag}"
    chain = AuditChain(settings.audit_key.get_secret_value().encode())
    record = share_record(
        grant, consumer, f"{site.dept('psb')}.resident_population",
        [("e-1", {"id_number": person})], int(dt.datetime.now(dt.UTC).timestamp() * 1000),
        fields={"id_number": "keep", "name": "partial"},
    )  # fmt: skip
    _produce(settings, AUDIT, json.dumps(chain.seal(record)).encode(), grant.encode())

    page = pages.open("admin")
    page.goto(f"{site.hall}/audit")
    expect(page.locator("#chain-verdict")).to_contain_text("尚未校验")
    page.fill("input[name=consumer]", consumer)
    page.click("#audit-search")
    expect(page.locator("#audit-records tbody tr")).to_have_count(1)
    expect(page.locator("#audit-records")).to_contain_text(grant)
    page.click("#verify-now")

    def verified() -> bool:
        page.goto(f"{site.hall}/audit?consumer={consumer}")
        return "UTC" in page.locator("#chain-verdict").inner_text()

    wait_until(verified, 120, "the audit chains verified")
    pages.shot(page, "audit", readme=True)

    page.click("#ledger-link")
    page.fill("input[name=id_number]", person)
    page.click("#ledger-submit")
    expect(page.locator("#ledger-shares tbody tr")).to_have_count(1)
    expect(page.locator("#ledger-shares")).to_contain_text(grant)
    expect(page.locator("#ledger-about")).to_contain_text("340104********")
    assert person not in page.url and person not in page.content()
    pages.shot(page, "ledger")
