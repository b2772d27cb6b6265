"""The control API's tokens (expiry, rotation) and its preview (a throwaway key, rate-limited)."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient

from services.catalog.control_api import create_control_app
from services.catalog.control_store import users
from services.catalog.users import token_actor
from services.common.catalog import CatalogEntry, Grant
from services.common.plan import compile_plan, plan_delivery
from tests.unit.fixtures import resident
from tests.unit.test_control_api import Api, request_body

NOW = dt.datetime.now(dt.UTC)
MASTER = b"unit-test-master-secret"  # a router's master secret, from which consumer keys come


@pytest.fixture
def api() -> Api:
    return Api()


def _expire(api: Api, name: str, at: dt.datetime) -> None:
    with api.plane.store.transaction() as conn:
        conn.execute(users.update().where(users.c.name == name).values(token_expires_at=at))


def test_a_token_expires_after_its_lifetime(api):
    before = dt.datetime.now(dt.UTC)
    made = api.call(
        "admin", "post", "/users", json={"name": "x", "department": "psb", "role": "provider"}
    )
    after = dt.datetime.now(dt.UTC)
    expires = dt.datetime.fromisoformat(made.json()["expires_at"])
    assert before + dt.timedelta(days=90) <= expires <= after + dt.timedelta(days=90)
    token = made.json()["token"]
    assert token_actor(api.plane.store, token, expires - dt.timedelta(seconds=1)).user == "x"
    _expire(api, "mca-wang", NOW - dt.timedelta(seconds=1))
    r = api.call("mca-wang", "get", "/whoami")
    assert r.status_code == 401 and "expired" in r.json()["detail"]
    assert "rotate-token" in r.json()["detail"]


def test_the_authority_rotates_an_expired_token(api):
    _expire(api, "mca-wang", NOW - dt.timedelta(seconds=1))
    r = api.call("admin", "post", "/users/mca-wang/token")
    assert r.status_code == 200, r.text
    old, api.tokens["mca-wang"] = api.tokens["mca-wang"], r.json()["token"]
    assert api.call("mca-wang", "get", "/whoami").json()["user"] == "mca-wang"
    api.tokens["old"] = old
    assert api.call("old", "get", "/whoami").status_code == 401
    assert (
        api.call("admin", "get", "/changes", params={"object_id": "mca-wang"}).json()[0]["action"]
        == "rotate-token"
    )


def test_a_user_rotates_its_own_token_only(api):
    r = api.call("psb-li", "post", "/users/psb-li/token")
    assert r.status_code == 200
    old, api.tokens["psb-li"] = api.tokens["psb-li"], r.json()["token"]
    assert api.call("psb-li", "get", "/whoami").status_code == 200
    api.tokens["old"] = old
    assert api.call("old", "get", "/whoami").status_code == 401
    other = api.call("psb-li", "post", "/users/mca-wang/token")
    assert other.status_code == 403 and "own token" in other.json()["detail"]
    assert api.call("admin", "post", "/users/nobody/token").status_code == 404


def test_preview_pseudonyms_come_from_a_throwaway_key(api):
    grant = next(c.grant for c in api.plane.store.cases() if c.grant.consumer == "mca")
    sample = resident()
    path = f"/grants/{grant.id}/preview"
    first = api.call("mca-wang", "post", path, json={"samples": [sample]}).json()[0]
    second = api.call("mca-wang", "post", path, json={"samples": [sample]}).json()[0]
    # With the consumer's real key (as the router derives it) the pseudonym would be this:
    res = api.plane.resource(grant.resource)
    real = real_delivery(grant, res.entry, res.value_schema, sample)
    assert first["id_number"] != sample["id_number"]
    assert first["id_number"] != second["id_number"]
    assert real["id_number"] not in (first["id_number"], second["id_number"])
    assert first["name"] == second["name"] == real["name"]  # the rest is masked as delivered


def real_delivery(grant: Grant, entry: CatalogEntry, schema: dict, sample: dict) -> dict:
    plan = compile_plan(grant, entry, schema, MASTER)
    event = {"before": None, "after": sample, "op": "c", "event_id": "e", "ts_ms": 0}
    delivery = plan_delivery(plan, event)
    assert delivery is not None
    return delivery.value["record"]


def test_preview_is_rate_limited_per_user_with_retry_after(api):
    client = TestClient(create_control_app(api.plane, preview_rate="2/minute"))
    body = {"request": request_body(), "samples": [resident()]}

    def preview(who: str):
        headers = {"Authorization": f"Bearer {api.tokens[who]}"}
        return client.post("/grants/preview", json=body, headers=headers)

    assert [preview("mca-wang").status_code for _ in range(2)] == [200, 200]
    refused = preview("mca-wang")
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert "2/minute" in refused.json()["detail"]
    assert preview("edu-chen").status_code == 200  # another user has a window of its own
