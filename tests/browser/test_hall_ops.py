"""The operations pages in a real browser, on a real bus: the flow updating in place over
server-sent events, dead letters and the authority's redrive, the audit search, chain
verification and citizen ledger, the scorecard; and each refused to the roles it is not for."""

from __future__ import annotations

import datetime as dt
import json
import re

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
from tests.integration.conftest import wait_until

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


def test_flow_updates_in_place_and_the_scorecard_shows_the_targets(site, pages):
    page = pages.open("admin")
    page.goto(f"{site.hall}/flow")
    expect(page.locator("h1")).to_have_text("运行监测")
    status = page.locator("#flow-status")
    expect(status).to_have_attribute(
        "data-updates", re.compile(r"^([2-9]|\d{2,})$"), timeout=20_000
    )
    expect(status).to_contain_text("实时更新于")
    expect(page.locator("#flow-freshness tbody tr").first).to_be_visible()
    pages.shot(page, "flow", readme=True)

    page.goto(f"{site.hall}/scorecard")
    expect(page.locator("h1")).to_have_text("数据归集考核")
    social = page.locator("#score-social tbody tr")
    expect(social.first).to_be_visible()
    gas = page.locator(f"#score-social tr[data-department='{site.dept('gas')}']")
    expect(gas).to_contain_text("未达标")  # nothing of the gas company reached the store
    expect(page.locator("#score-social tr[data-department='*']")).to_contain_text("60 %")
    pages.shot(page, "scorecard", readme=True)


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
