"""The data hall's login, sessions, CSRF protection and response headers."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from services.catalog.workflow import Role
from services.hall import csrf
from services.hall.sessions import COOKIE, SessionStore
from tests.unit.hall_client import HallWorld


@pytest.fixture(scope="module")
def world() -> HallWorld:
    return HallWorld()


def test_pages_need_a_login(world):
    r = world.browser().get("/catalog")
    assert r.status_code == 303 and r.headers["location"] == "/hall/login"


def test_login_with_a_token_sets_a_strict_httponly_cookie_holding_no_token(world):
    b = world.browser()
    b.get("/login")
    r = b.post("/login", {"token": world.tokens["mca-wang"]})
    assert r.status_code == 303, r.text
    cookie = r.headers["set-cookie"]
    assert f"{COOKIE}=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert world.tokens["mca-wang"] not in cookie
    page = b.get("/catalog")
    assert page.status_code == 200 and "mca-wang" in page.text


def test_login_gives_a_new_session_id(world):
    b = world.browser()
    b.get("/login")
    before = b.client.cookies.get(COOKIE)
    b.post("/login", {"token": world.tokens["mca-wang"]})
    assert b.client.cookies.get(COOKIE) not in (None, before)


def test_unknown_and_expired_tokens_are_refused(world):
    b = world.browser()
    assert b.login("forged").status_code == 401
    expired = world.expired_user("late-lin", "mca", Role.CONSUMER)
    r = b.login(expired)
    assert r.status_code == 401 and "expired" in r.text
    assert b.get("/catalog").status_code == 303


def test_logout_ends_the_session(world):
    b = world.browser("edu-chen")
    cookie = b.client.cookies.get(COOKIE)
    assert b.post("/logout").status_code == 303
    b.client.cookies.set(COOKIE, cookie or "", path="/hall")
    assert b.get("/catalog").status_code == 303


@pytest.mark.parametrize(
    "form", [{}, {"csrf_token": "forged"}], ids=["missing-token", "wrong-token"]
)
def test_posts_without_the_sessions_csrf_token_are_refused(world, form):
    b = world.browser("edu-chen")
    r = b.client.post("/hall/logout", data=form)
    assert r.status_code == 403 and "CSRF" in r.text
    assert b.get("/catalog").status_code == 200  # still signed in


def test_a_post_from_another_origin_is_refused_even_with_the_token(world):
    b = world.browser("edu-chen")
    r = b.post("/lang", {"lang": "en"}, headers={"Origin": "https://evil.example"})
    assert r.status_code == 403 and "origin" in r.text


def test_the_login_form_itself_is_csrf_protected(world):
    b = world.browser()
    b.get("/login")
    r = b.post("/login", {"token": world.tokens["mca-wang"]}, csrf=False)
    assert r.status_code == 403


def test_csp_and_hardening_headers_on_pages_and_refusals(world):
    b = world.browser("edu-chen")
    for r in (b.get("/catalog"), b.get("/login"), b.get("/catalog/nope.nothing")):
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp
        assert "unsafe-inline" not in csp and "http" not in csp
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["x-content-type-options"] == "nosniff"


def test_the_language_toggle_switches_to_english_and_back(world):
    b = world.browser("edu-chen")
    assert "数据资源目录" in b.get("/catalog").text
    r = b.post("/lang", {"lang": "en", "back": "/hall/catalog"})
    assert r.status_code == 303 and r.headers["location"] == "/hall/catalog"
    assert "Data resource catalog" in b.get("/catalog").text
    r = b.post("/lang", {"lang": "zh", "back": "https://evil.example/"})
    assert r.headers["location"] == "/hall/"  # never an open redirect
    assert "数据资源目录" in b.get("/catalog").text


def test_sessions_end_after_the_idle_time():
    now = [0.0]
    store = SessionStore(idle_s=60, clock=lambda: now[0])
    s = store.new()
    now[0] = 59
    assert store.get(s.sid) is s
    now[0] = 59 + 61
    assert store.get(s.sid) is None


def test_csrf_check_compares_with_the_sessions_token():
    csrf.check("abc", "abc", None, "http://h")
    with pytest.raises(csrf.CsrfRefused):
        csrf.check("abc", "abd", None, "http://h")
    with pytest.raises(csrf.CsrfRefused):
        csrf.check("abc", "abc", "http://other", "http://h")


def test_vendored_htmx_matches_its_recorded_checksum():
    static = Path(__file__).parents[2] / "services" / "hall" / "static"
    digest = hashlib.sha256((static / "htmx.min.js").read_bytes()).hexdigest()
    assert digest in (static / "VENDORED.md").read_text(encoding="utf-8")


def test_static_files_are_served_by_the_hall(world):
    r = world.browser().get("/static/htmx.min.js")
    assert r.status_code == 200 and "htmx" in r.text[:2000]
