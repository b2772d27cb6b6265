"""Browser tests of the data hall: Debian's chromium, headless, driven by Playwright.

Each test gets the catalog service of its own bus (the integration fixtures: real Kafka,
real processes) and pages in a fresh browser context. Every request a page makes is
recorded; a test fails if any went to another origin or if the browser reported a
Content-Security-Policy violation. Screenshots go to .govbus/browser/; with
GOVBUS_README_SCREENSHOTS=1 the named README ones go to docs/screenshots/ too.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from services.common.settings import REPO_ROOT
from tests.integration.conftest import (  # noqa: F401 - the integration fixtures, reused
    Bus,
    bus,
    kafka_bootstrap,
    registry_url,
)
from tests.integration.test_control_plane import ADMIN_TOKEN, start_catalog_service

CHROMIUM = Path(os.environ.get("GOVBUS_CHROMIUM", "/usr/bin/chromium"))
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
OUTPUT = REPO_ROOT / ".govbus" / "browser"
README_SHOTS = REPO_ROOT / "docs" / "screenshots"


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} missing: run 'bash deploy/chromium.sh ensure' (make install does)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        yield b
        b.close()


@dataclass
class Site:
    """The data hall of one test's bus, and the users it made there."""

    bus: Bus
    api: str  # the control API, http://127.0.0.1:<port>/api
    hall: str  # the data hall, http://127.0.0.1:<port>/hall
    tokens: dict[str, str] = field(default_factory=lambda: {"admin": ADMIN_TOKEN})

    @property
    def origin(self) -> str:
        parts = urlsplit(self.hall)
        return f"{parts.scheme}://{parts.netloc}"

    def dept(self, code: str) -> str:
        """A demo department's code in this bus (tagged)."""
        return f"{code}_{self.bus.tag}"

    def add_user(self, name: str, dept: str, role: str) -> str:
        r = httpx.post(
            f"{self.api}/users",
            json={"name": name, "department": self.dept(dept), "role": role},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=10,
        )
        assert r.status_code == 201, r.text
        self.tokens[name] = r.json()["token"]
        return self.tokens[name]


@pytest.fixture
def site(bus: Bus) -> Site:  # noqa: F811 - the integration fixture, imported above
    env = start_catalog_service(bus)
    api = env["GOVBUS_API_URL"]
    return Site(bus, api, api.removesuffix("/api") + "/hall")


class Pages:
    """Opens pages for users, each in its own browser context, watching what they load."""

    def __init__(self, browser: Browser, site: Site, test_name: str) -> None:
        self.browser = browser
        self.site = site
        self.test_name = test_name
        self.requests: list[str] = []
        self.csp_errors: list[str] = []
        self._contexts = []

    def open(self, user: str | None = None) -> Page:
        context = self.browser.new_context(locale="zh-CN", viewport={"width": 1280, "height": 900})
        self._contexts.append(context)
        page = context.new_page()
        page.on("request", lambda req: self.requests.append(req.url))
        page.on(
            "console",
            lambda msg: (
                self.csp_errors.append(msg.text) if "Content Security Policy" in msg.text else None
            ),
        )
        if user is not None:
            self.login(page, self.site.tokens[user])
        return page

    def login(self, page: Page, token: str) -> None:
        page.goto(f"{self.site.hall}/login")
        page.fill("input[name=token]", token)
        page.click("#login-submit")
        page.wait_for_url(f"{self.site.hall}/catalog")

    def shot(self, page: Page, name: str, readme: bool = False) -> Path:
        """A full-page screenshot; ``readme``: one the README shows."""
        path = OUTPUT / self.test_name / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(path), full_page=True)
        if readme and os.environ.get("GOVBUS_README_SCREENSHOTS") == "1":
            README_SHOTS.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, README_SHOTS / f"{name}.png")
        return path

    def foreign(self) -> list[str]:
        """Requests that went anywhere but the hall's own origin."""
        own = self.site.origin
        return [u for u in self.requests if not (u.startswith(own + "/") or u.startswith("data:"))]

    def close(self) -> None:
        for context in self._contexts:
            context.close()


@pytest.fixture
def pages(browser: Browser, site: Site, request: pytest.FixtureRequest) -> Iterator[Pages]:
    p = Pages(browser, site, request.node.name)
    yield p
    p.close()
    assert p.requests, "the test loaded no page"
    assert p.foreign() == [], f"requests to another origin: {p.foreign()}"
    assert p.csp_errors == [], f"Content-Security-Policy violations: {p.csp_errors}"
