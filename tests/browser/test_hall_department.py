"""部门管理 in a real browser: a department's chief representative adds a user of the
department (its token shown once, and working) and is refused another department's page."""

from __future__ import annotations

import httpx
from playwright.sync_api import expect

from tests.integration.test_control_plane import ADMIN_TOKEN


def test_a_representative_adds_a_user_and_is_refused_another_department(site, pages):
    site.add_user("mca-wang", "mca", "consumer")
    r = httpx.put(
        f"{site.api}/users/mca-wang/representative",
        json={"representative": True},
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    mca, psb = site.dept("mca"), site.dept("psb")

    page = pages.open("mca-wang")
    page.click("header nav a[href$='/department']")
    page.wait_for_url(f"{site.hall}/department/{mca}")
    page.fill("#add-user input[name=name]", "mca-liu")
    page.select_option("#add-user select[name=role]", "consumer")
    page.click("#add-user button")
    expect(page.locator("#token-once")).to_contain_text("mca-liu")
    expect(page.locator("#user-mca-liu")).to_be_visible()
    pages.shot(page, "department", readme=True)
    token = page.locator("#token-once code").inner_text()
    me = httpx.get(f"{site.api}/whoami", headers={"Authorization": f"Bearer {token}"}, timeout=10)
    assert me.json()["department"] == mca and me.json()["role"] == "consumer"

    response = page.goto(f"{site.hall}/department/{psb}")
    assert response is not None and response.status == 403
    expect(page.locator("main")).to_contain_text(f"represents {mca}")
