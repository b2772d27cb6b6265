"""The department page (部门管理) over the in-memory hall: a representative manages its own
department's users and system accounts, with CSRF; others are refused; the authority sees
what representatives did."""

from __future__ import annotations

import re

import pytest

from services.catalog.users import appoint
from tests.unit.hall_client import HallWorld


@pytest.fixture
def world() -> HallWorld:
    world = HallWorld()
    appoint(world.plane.store, world.actor("admin"), "mca-wang", True)
    return world


def test_a_representative_adds_a_user_shown_its_token_once(world):
    b = world.browser("mca-wang")
    r = b.get("/department")
    assert r.status_code == 303 and r.headers["location"].endswith("/department/mca")
    b.get("/department/mca")
    r = b.post("/department/mca/users", {"name": "mca-liu", "role": "consumer"})
    assert r.status_code == 200, r.text
    token = re.search(r'id="token-once">.*?<code>([^<]+)</code>', r.text).group(1)
    assert world.plane.store.token_holder(token)[0].department == "mca"
    assert 'id="user-mca-liu"' in b.get("/department/mca").text
    assert 'id="token-once"' not in b.get("/department/mca").text  # shown once


def test_a_representative_is_refused_another_department_and_a_post_without_csrf(world):
    b = world.browser("mca-wang")
    assert b.get("/department/psb").status_code == 403
    b.get("/department/mca")
    r = b.post("/department/psb/users", {"name": "psb-x", "role": "provider"})
    assert r.status_code == 403 and "represents mca" in r.text
    r = b.post("/department/mca/users", {"name": "mca-x", "role": "consumer"}, csrf=False)
    assert r.status_code == 403
    assert "mca-x" not in {u.user for u in world.plane.store.users()}


def test_a_plain_user_has_no_department_page_nor_menu_entry(world):
    b = world.browser("psb-li")
    assert "/department" not in b.get("/catalog").text
    assert b.get("/department").status_code == 403
    assert "/hall/department" in world.browser("mca-wang").get("/catalog").text


def test_system_accounts_added_rotated_removed_and_the_authority_sees_it(world):
    b = world.browser("mca-wang")
    b.get("/department/mca")
    assert b.post("/department/mca/accounts", {"name": "etl"}).status_code == 200
    r = b.post("/department/mca/accounts/etl/rotate")
    assert r.status_code == 200 and 'id="account-etl"' in r.text
    assert b.post("/department/mca/accounts/etl/remove").status_code == 200
    admin = world.browser("admin")
    page = admin.get("/department/mca").text
    oversight = page.split('id="oversight"')[1]
    assert oversight.count("mca-wang") == 3 and "dept.mca.etl" in oversight
    assert "mca-wang" in admin.get("/department").text
