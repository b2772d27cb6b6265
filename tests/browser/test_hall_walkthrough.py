"""The data hall's walk-through in a real browser, on a running bus: a consumer files a
request, the provider approves, the authority activates, and the consumer sees the grant
active and its delivery count rising. Then what each role may not do is refused."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.integration.conftest import wait_until
from tests.integration.flow import demo_changes, publish, wait_drained

FILTER = "region_code startswith '3401'"
FIELDS = ("id_number", "insurance_type", "status", "region_code")


def deliveries(page: Page) -> int:
    count = page.locator("#delivery-count")
    return int(count.get_attribute("data-count") or 0) if count.count() else -1


def file_request(pages, page: Page, resource: str) -> str:
    """The consumer finds the resource by its English name and files a request for it."""
    page.fill("input[name=q]", "social insurance")
    page.click("form[role=search] button")
    expect(page.locator("#resources tbody tr")).to_have_count(1)
    page.click("#resources tbody a")
    expect(page.locator("#compatibility")).not_to_be_empty()
    expect(page.locator("#fields")).to_contain_text("L4")
    pages.shot(page, "resource", readme=True)

    page.click("#request-this")
    page.fill("input[name=purpose]", "教师社保缴纳核验")
    page.fill("input[name=legal_basis]", "《教师法》第二十五条")
    for name in FIELDS:
        page.check(f"#pick-{name}")
    page.fill("#row-filter", "region_code >")  # the error shows as the user types
    expect(page.locator("#filter-problem")).to_be_visible()
    page.fill("#row-filter", FILTER)
    expect(page.locator("#filter-ok")).to_be_visible()
    page.click("#preview-button")
    expect(page.locator("#preview-table")).to_be_visible()
    pages.shot(page, "request-form", readme=True)
    page.click("#submit-request")
    page.wait_for_url(re.compile(r".*/hall/grants/[a-z0-9_-]+$"))
    expect(page.locator("#grant-state")).to_have_attribute("data-state", "requested")
    return page.url.rsplit("/", 1)[1]


def act_in_inbox(pages, page: Page, gid: str, action: str, shot: str) -> None:
    page.goto(f"{pages.site.hall}/inbox")
    expect(page.locator(f"#grant-{gid}")).to_be_visible()
    pages.shot(page, shot, readme=True)
    page.click(f"form[action$='/grants/{gid}/{action}'] button")
    page.wait_for_url(f"{pages.site.hall}/inbox")


def test_request_approve_activate_and_deliveries_rise(site, pages):
    bus = site.bus
    bus.start("router")
    bus.start("sink")
    publish(bus.settings, demo_changes(bus.tag, 300, seed=11))
    wait_drained(bus.settings)
    site.add_user("edu-chen", "edu", "consumer")
    site.add_user("hrss-liu", "hrss", "provider")
    site.add_user("mca-wang", "mca", "consumer")

    consumer = pages.open("edu-chen")
    gid = file_request(pages, consumer, site.dept("hrss") + ".social_insurance_enrolment")

    provider = pages.open("hrss-liu")
    assert (
        provider.context.request.post(
            f"{site.hall}/grants/{gid}/activate", form={"csrf_token": csrf(provider)}
        ).status
        == 403
    )
    act_in_inbox(pages, provider, gid, "approve", "inbox-provider")

    authority = pages.open("admin")
    act_in_inbox(pages, authority, gid, "activate", "inbox-authority")

    consumer.goto(f"{site.hall}/grants/{gid}")
    expect(consumer.locator("#grant-state")).to_have_attribute("data-state", "active")
    wait_until(lambda: deliveries(consumer) > 0, 60, "the backfill's deliveries")
    first = deliveries(consumer)
    publish(bus.settings, demo_changes(bus.tag, 300, seed=12))
    wait_until(lambda: deliveries(consumer) > first, 60, "the delivery count to rise")
    expect(consumer.locator("#timeline li")).to_have_count(3)
    pages.shot(consumer, "grant", readme=True)

    # Another consumer department does not see the grant; a consumer cannot approve.
    other = pages.open("mca-wang")
    response = other.goto(f"{site.hall}/grants/{gid}")
    assert response is not None and response.status == 404
    refused = consumer.context.request.post(
        f"{site.hall}/grants/{gid}/revoke", form={"csrf_token": csrf(consumer), "reason": "x"}
    )
    assert refused.status == 403 and "revoke needs the authority or provider role" in refused.text()
    inbox = consumer.goto(f"{site.hall}/inbox")
    assert inbox is not None and inbox.status == 403
    pages.shot(consumer, "refused")


def csrf(page: Page) -> str:
    return page.locator("input[name=csrf_token]").first.get_attribute("value") or ""


def test_posts_without_the_csrf_token_are_refused(site, pages):
    site.add_user("edu-chen", "edu", "consumer")
    page = pages.open("edu-chen")
    r = page.context.request.post(f"{site.hall}/logout", form={})
    assert r.status == 403 and "CSRF" in r.text()
    r = page.context.request.post(f"{site.hall}/logout", form={"csrf_token": "forged"})
    assert r.status == 403
    page.goto(f"{site.hall}/catalog")
    expect(page.locator("#whoami")).to_contain_text("edu-chen")  # still signed in
