"""The data hall in a real browser: login, the layout, the language toggle, the headers."""

from __future__ import annotations

import re

from playwright.sync_api import expect


def test_login_catalog_language_toggle_and_logout(site, pages):
    site.add_user("edu-chen", "edu", "consumer")
    page = pages.open()
    response = page.goto(f"{site.hall}/catalog")
    assert response is not None
    page.wait_for_url(f"{site.hall}/login")
    csp = response.headers.get("content-security-policy", "")
    assert "default-src 'self'" in csp, csp
    pages.shot(page, "login", readme=True)

    page.fill("input[name=token]", "forged-token")
    page.click("#login-submit")
    expect(page.locator("#login-error")).to_contain_text("unknown")

    pages.login(page, site.tokens["edu-chen"])
    expect(page.locator("h1")).to_have_text("数据资源目录")
    expect(page.locator("#whoami")).to_contain_text("edu-chen")
    # The consumer's menu has no inbox: that is the provider's and the authority's.
    expect(page.locator("header nav a")).to_have_count(2)
    expect(page.locator("#resources tbody tr").first).to_be_visible()
    pages.shot(page, "catalog", readme=True)

    page.click("#lang-toggle")
    expect(page.locator("h1")).to_have_text("Data resource catalog")
    pages.shot(page, "catalog-en")
    page.click("#lang-toggle")
    expect(page.locator("h1")).to_have_text("数据资源目录")

    page.click("#logout")
    page.wait_for_url(re.compile(r".*/hall/login$"))
    page.goto(f"{site.hall}/catalog")
    page.wait_for_url(f"{site.hall}/login")
