"""A department's chief representative (首席代表): the rule, and the API that follows it."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text

from services.catalog.control_store import ControlStore
from services.catalog.stewardship import account_problem, resource_problem, user_problem
from services.catalog.workflow import Actor, Role
from tests.unit.test_control_api import RESIDENTS, Api

ADMIN = Actor(user="admin", department="authority", role=Role.AUTHORITY)
REP = Actor(user="psb-rep", department="psb", role=Role.CONSUMER, representative=True)
PLAIN = Actor(user="psb-li", department="psb", role=Role.PROVIDER)


def test_the_authority_manages_any_user():
    assert user_problem(ADMIN, "edu", Role.AUTHORITY, True) is None


def test_a_representative_manages_its_own_departments_staff_only():
    assert user_problem(REP, "psb", Role.PROVIDER, False) is None
    assert user_problem(REP, "psb", Role.CONSUMER, False) is None
    assert "users of edu" in user_problem(REP, "edu", Role.PROVIDER, False)
    assert "authority users" in user_problem(REP, "psb", Role.AUTHORITY, False)
    assert "ops users" in user_problem(REP, "psb", Role.OPS, False)
    assert "authority only" in user_problem(REP, "psb", Role.PROVIDER, True)


def test_a_plain_user_manages_no_users():
    assert "chief representative" in user_problem(PLAIN, "psb", Role.CONSUMER, False)


def test_resources_the_authority_any_a_provider_or_representative_its_departments():
    assert resource_problem(ADMIN, "edu") is None
    assert resource_problem(PLAIN, "psb") is None
    assert resource_problem(REP, "psb") is None  # a consumer, but the representative
    assert "resources of edu" in resource_problem(REP, "edu")
    consumer = Actor(user="psb-x", department="psb", role=Role.CONSUMER)
    assert "only the authority or a provider" in resource_problem(consumer, "psb")


def test_system_accounts_the_authority_and_the_departments_own_users():
    assert account_problem(ADMIN, "edu") is None
    assert account_problem(REP, "psb") is None
    assert "Kafka access of edu" in account_problem(REP, "edu")


@pytest.fixture
def api() -> Api:
    api = Api()
    body = {"name": "psb-rep", "department": "psb", "role": "consumer", "representative": True}
    r = api.call("admin", "post", "/users", json=body)
    assert r.status_code == 201, r.text
    api.tokens["psb-rep"] = r.json()["token"]
    return api


def add(api: Api, who: str, name: str, department: str, role: str = "provider", **kw):
    body = {"name": name, "department": department, "role": role, **kw}
    return api.call(who, "post", "/users", json=body)


def test_a_representative_adds_rotates_and_removes_its_departments_users(api):
    r = add(api, "psb-rep", "psb-new", "psb")
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    me = api.client.get("/whoami", headers={"Authorization": f"Bearer {token}"}).json()
    assert me["department"] == "psb" and me["representative"] is False
    assert api.call("psb-rep", "post", "/users/psb-new/token").status_code == 200
    listed = {u["user"] for u in api.call("psb-rep", "get", "/users").json()}
    assert "psb-new" in listed and "mca-wang" not in listed
    assert api.call("psb-rep", "delete", "/users/psb-new").status_code == 204
    changes = api.call("admin", "get", "/changes").json()
    mine = [(c["action"], c["object_id"]) for c in changes if c["actor"] == "psb-rep"]
    assert mine == [("remove", "psb-new"), ("rotate-token", "psb-new"), ("issue-token", "psb-new")]


def test_a_representative_is_refused_other_departments_authority_users_and_representatives(api):
    r = add(api, "psb-rep", "edu-new", "edu")
    assert r.status_code == 403 and "users of edu" in r.json()["detail"]
    r = add(api, "psb-rep", "boss", "psb", "authority")
    assert r.status_code == 403 and "authority users" in r.json()["detail"]
    r = add(api, "psb-rep", "psb-rep2", "psb", representative=True)
    assert r.status_code == 403 and "authority only" in r.json()["detail"]
    r = api.call("psb-rep", "delete", "/users/mca-wang")
    assert r.status_code == 403 and "users of mca" in r.json()["detail"]
    r = api.call("psb-rep", "post", "/users/admin/token")
    assert r.status_code == 403
    # Re-issuing a name replaces that user: not another department's under a new department.
    assert add(api, "psb-rep", "mca-wang", "psb").status_code == 403


def test_a_plain_provider_manages_no_users_and_appoints_no_one(api):
    r = add(api, "psb-li", "psb-new", "psb")
    assert r.status_code == 403 and "chief representative" in r.json()["detail"]
    r = api.call("psb-li", "delete", "/users/mca-wang")
    assert r.status_code == 403
    r = api.call("psb-rep", "put", "/users/psb-li/representative", json={"representative": True})
    assert r.status_code == 403 and "the authority appoints" in r.json()["detail"]


def test_the_authority_appoints_and_dismisses_a_representative(api):
    r = api.call("admin", "put", "/users/psb-li/representative", json={"representative": True})
    assert r.status_code == 200 and r.json()["representative"] is True
    assert add(api, "psb-li", "psb-new", "psb").status_code == 201
    api.call("admin", "put", "/users/psb-li/representative", json={"representative": False})
    assert add(api, "psb-li", "psb-new2", "psb").status_code == 403
    r = api.call("admin", "put", "/users/ops-sun/representative", json={"representative": True})
    assert r.status_code == 422


def test_a_consumer_representative_edits_its_departments_resources_only(api):
    api.call("admin", "put", "/users/mca-wang/representative", json={"representative": True})
    entry = api.call("admin", "get", f"/resources/{RESIDENTS}").json()["entry"]
    r = api.call("mca-wang", "put", f"/resources/{RESIDENTS}", json={"entry": entry})
    assert r.status_code == 403 and "resources of psb" in r.json()["detail"]
    r = api.call("psb-rep", "put", f"/resources/{RESIDENTS}", json={"entry": entry})
    assert r.status_code == 200, r.text


def test_a_store_made_before_representatives_gains_the_column(store_url):
    url = store_url  # SQLite and PostgreSQL
    store = ControlStore(url)
    with store.transaction() as conn:
        store.add_user(conn, "li", "psb", Role.PROVIDER)
    store.close()
    engine = create_engine(url)
    with engine.begin() as conn:  # as an older version made it
        conn.execute(text("ALTER TABLE users DROP COLUMN representative"))
    engine.dispose()
    store = ControlStore(url)
    assert [(u.user, u.representative) for u in store.users()] == [("li", False)]
    store.close()
