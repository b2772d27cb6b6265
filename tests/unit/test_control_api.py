"""The control-plane API over a real (in-memory SQLite) store; what it owes the bus is read
from the store's outbox (no relay runs here, so every change's publication is pending)."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient

from services.catalog.control_api import create_control_app
from services.catalog.control_plane import ControlPlane
from services.catalog.control_store import ControlStore
from services.catalog.convergence import owe_everything, revoke_strays
from services.catalog.registry_store import SchemaRegistryStore
from services.catalog.users import bootstrap_authority
from services.catalog.workflow import SYSTEM, Calendar
from services.common import grant_feed
from services.common.catalog import GrantState
from services.common.grant_feed import GrantRecord
from services.common.settings import REPO_ROOT
from services.common.topics import GRANTS
from tests.unit.fixtures import SCHEMAS, resident

RESIDENTS = "psb.resident_population"
ENTERPRISES = "samr.enterprise_registration"
TODAY = dt.date.today()


class Api:
    def __init__(self) -> None:
        store = ControlStore("sqlite://")
        self.registry = SchemaRegistryStore("sqlite://")
        self.plane = ControlPlane(store, self.registry, Calendar(), SCHEMAS)
        deploy = REPO_ROOT / "deploy"
        self.plane.import_folder(SYSTEM, deploy / "catalog", deploy / "grants", SCHEMAS)
        self.client = TestClient(create_control_app(self.plane))
        self.tokens = {"admin": bootstrap_authority(store, None)}
        for name, dept, role in (
            ("psb-li", "psb", "provider"),
            ("samr-zhao", "samr", "provider"),
            ("mca-wang", "mca", "consumer"),
            ("edu-chen", "edu", "consumer"),
            ("ops-sun", "dsj", "ops"),
        ):
            body = {"name": name, "department": dept, "role": role}
            r = self.call("admin", "post", "/users", json=body)
            assert r.status_code == 201, r.text
            self.tokens[name] = r.json()["token"]

    def call(self, who: str | None, method: str, path: str, **kw):
        headers = {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}
        return getattr(self.client, method)(path, headers=headers, **kw)

    @property
    def published(self) -> list[GrantRecord]:
        """The grant records owed to govbus.grants, in the order the relay publishes them."""
        rows = self.plane.store.outbox_pending(0, 100_000)
        return [grant_feed.decode(r.value) for r in rows if r.topic == GRANTS]


def request_body(resource: str = RESIDENTS, **changes) -> dict:
    body = {
        "resource": resource,
        "purpose": "最低生活保障资格核查",
        "legal_basis": "《社会救助暂行办法》第十一条",
        "fields": ["id_number", "name", "region_code", "household_type"],
        "valid_from": str(TODAY),
        "valid_until": str(TODAY + dt.timedelta(days=365)),
    }
    return {**body, **changes}


@pytest.fixture
def api() -> Api:
    return Api()


def test_calls_without_a_valid_token_get_401_with_a_message(api):
    r = api.call(None, "get", "/resources")
    assert r.status_code == 401 and "Bearer" in r.json()["detail"]
    r = api.client.get("/resources", headers={"Authorization": "Bearer forged"})
    assert r.status_code == 401 and "unknown" in r.json()["detail"]


def test_conditional_request_goes_provider_then_authority_then_active(api):
    r = api.call("mca-wang", "post", "/grants", json=request_body())
    assert r.status_code == 201, r.text
    case = r.json()
    gid = case["grant"]["id"]
    assert case["grant"]["state"] == "requested" and case["grant"]["consumer"] == "mca"
    # Masking defaults follow sensitivity: the L4 key is hmac-masked, the L3 name redacted.
    assert case["grant"]["masking"]["id_number"]["method"] == "hmac"
    assert case["grant"]["masking"]["name"]["method"] == "redact"
    assert case["grant"]["masking"]["region_code"]["method"] == "keep"
    assert dt.date.fromisoformat(case["step_due"]) > TODAY

    assert api.call("psb-li", "post", f"/grants/{gid}/approve", json={}).json()["grant"][
        "state"
    ] == ("approved")
    r = api.call("admin", "post", f"/grants/{gid}/activate", json={})
    assert r.status_code == 200 and r.json()["grant"]["state"] == "active"
    assert [p.grant.state for p in api.published[-3:]] == [
        GrantState.REQUESTED,
        GrantState.APPROVED,
        GrantState.ACTIVE,
    ]
    r = api.call("psb-li", "post", f"/grants/{gid}/revoke", json={"reason": "purpose ended"})
    assert r.json()["grant"]["state"] == "revoked" and api.published[-1].grant.state == "revoked"
    history = api.call("admin", "get", f"/grants/{gid}/history").json()
    assert [h["action"] for h in history] == ["revoke", "activate", "approve", "request"]
    assert [h["actor"] for h in history] == ["psb-li", "admin", "psb-li", "mca-wang"]
    assert history[0]["before"]["grant"]["state"] == "active"
    assert history[0]["after"]["grant"]["state"] == "revoked"


def test_unconditional_skips_the_provider_and_not_shared_is_refused_with_reason(api):
    body = request_body(ENTERPRISES, fields=["credit_code", "name"])
    r = api.call("mca-wang", "post", "/grants", json=body)
    assert r.status_code == 201 and r.json()["grant"]["state"] == "approved", r.text

    resource = api.call("admin", "get", f"/resources/{RESIDENTS}").json()
    resource["entry"]["share_type"] = "not_shared"
    r = api.call("psb-li", "put", f"/resources/{RESIDENTS}", json=resource)
    assert r.status_code == 200, r.text
    r = api.call("mca-wang", "post", "/grants", json=request_body())
    assert r.status_code == 422 and "not shared" in r.json()["detail"]


@pytest.mark.parametrize(
    ("who", "action", "status", "words"),
    [
        ("mca-wang", "approve", 403, "provider role"),  # a consumer cannot approve
        ("samr-zhao", "approve", 403, "psb provides"),  # not the provider of this resource
        ("ops-sun", "approve", 403, "read-only"),
        ("admin", "activate", 409, "needs it approved"),  # wrong state: not approved yet
        ("psb-li", "reject", 422, "needs a reason"),
        ("edu-chen", "approve", 403, "may not act on grants of mca"),
    ],
)
def test_forbidden_steps_get_4xx_with_a_message_and_change_nothing(api, who, action, status, words):
    gid = api.call("mca-wang", "post", "/grants", json=request_body()).json()["grant"]["id"]
    published = len(api.published)
    r = api.call(who, "post", f"/grants/{gid}/{action}", json={})
    assert r.status_code == status and words in r.json()["detail"], r.text
    assert api.call("admin", "get", f"/grants/{gid}").json()["grant"]["state"] == "requested"
    assert len(api.published) == published


def test_an_l4_field_in_clear_needs_a_reason_and_the_authority_approves_it(api):
    clear = {"id_number": {"method": "keep"}}
    r = api.call("mca-wang", "post", "/grants", json=request_body(masking=clear))
    assert r.status_code == 422 and "L4" in r.json()["detail"]
    body = request_body(masking=clear, l4_clear_reason="低保核查需比对身份证号，经省数据局批准")
    gid = api.call("mca-wang", "post", "/grants", json=body).json()["grant"]["id"]
    api.call("psb-li", "post", f"/grants/{gid}/approve", json={})
    case = api.call("admin", "post", f"/grants/{gid}/activate", json={}).json()
    assert case["l4_clear_approved_by"] == "admin"


def test_consumers_see_only_their_own_grants_providers_those_on_their_resources(api):
    api.call("mca-wang", "post", "/grants", json=request_body())
    mine = api.call("mca-wang", "get", "/grants").json()
    assert mine and {c["grant"]["consumer"] for c in mine} == {"mca"}
    theirs = api.call("psb-li", "get", "/grants").json()
    assert theirs and {c["grant"]["resource"].split(".")[0] for c in theirs} == {"psb"}
    other = next(
        c for c in api.call("admin", "get", "/grants").json() if c["grant"]["consumer"] != "mca"
    )
    assert api.call("mca-wang", "get", f"/grants/{other['grant']['id']}").status_code == 404


def test_preview_shows_masked_records_and_stores_nothing(api):
    rows = [resident(), resident(region_code="340202")]
    body = {"request": request_body(row_filter="region_code startswith '3401'"), "samples": rows}
    before = len(api.call("admin", "get", "/grants").json())
    r = api.call("mca-wang", "post", "/grants/preview", json=body)
    assert r.status_code == 200, r.text
    shown, filtered = r.json()
    assert filtered is None
    assert shown["name"] != rows[0]["name"] and shown["id_number"] != rows[0]["id_number"]
    assert set(shown) == {"id_number", "name", "region_code", "household_type"}
    assert len(api.call("admin", "get", "/grants").json()) == before


def test_ops_reads_but_cannot_change_anything(api):
    assert api.call("ops-sun", "get", "/changes").status_code == 200
    assert api.call("ops-sun", "get", "/grants").status_code == 200
    r = api.call(
        "ops-sun", "post", "/users", json={"name": "x", "department": "psb", "role": "ops"}
    )
    assert r.status_code == 403
    resource = api.call("ops-sun", "get", f"/resources/{RESIDENTS}").json()
    assert api.call("ops-sun", "put", f"/resources/{RESIDENTS}", json=resource).status_code == 403
    assert api.call("mca-wang", "get", "/changes").status_code == 403


def test_catalog_export_then_import_round_trips_and_bad_files_name_the_field(api):
    files = api.call("admin", "get", "/catalog/export").json()["files"]
    assert {"catalog/resources.yaml", "catalog/departments.yaml", "grants/grants.yaml"} <= set(
        files
    )
    r = api.call("admin", "post", "/catalog/import", json={"files": files})
    shipped = len(api.plane.store.resources())
    assert r.status_code == 200 and r.json()["resources"] == shipped, r.text
    broken = files["catalog/resources.yaml"].replace(
        "share_type: conditional", "share_type: maybe", 1
    )
    r = api.call(
        "admin",
        "post",
        "/catalog/import",
        json={"files": {**files, "catalog/resources.yaml": broken}},
    )
    assert r.status_code == 422
    assert "share_type" in r.json()["detail"] and "resource_population" not in r.json()["detail"]
    assert "resources.yaml" in r.json()["detail"]
    assert api.call("psb-li", "post", "/catalog/import", json={"files": files}).status_code == 403


def test_overdue_lists_steps_past_their_due_date(api):
    late = Api()
    late.plane.calendar = Calendar(provider_days=1)
    late.plane._clock = lambda: dt.datetime.now(dt.UTC) - dt.timedelta(days=10)
    gid = late.call("mca-wang", "post", "/grants", json=request_body()).json()["grant"]["id"]
    listed = late.call("admin", "get", "/grants/overdue").json()
    assert [c["grant"]["id"] for c in listed] == [gid]
    assert api.call("admin", "get", "/grants/overdue").json() == []


def test_bad_request_bodies_get_422_naming_the_field(api):
    r = api.call("mca-wang", "post", "/grants", json=request_body(fields=[]))
    assert r.status_code == 422 and "fields" in r.json()["detail"]
    r = api.call("mca-wang", "post", "/grants", json=request_body(row_filter="__import__('os')"))
    assert r.status_code == 422 and "row_filter" in r.json()["detail"]


def test_restart_owes_the_store_and_revokes_grants_only_the_topic_knows(api):
    ours = api.plane.store.cases()[0]
    record = GrantRecord(grant=ours.grant, activation=1)
    stray = record.model_copy(update={"grant": ours.grant.model_copy(update={"id": "stray-1"})})
    elsewhere = record.model_copy(
        update={"grant": ours.grant.model_copy(update={"id": "other-1", "resource": "x.y"})}
    )
    owed_before = len(api.published)
    store, now = api.plane.store, dt.datetime.now(dt.UTC)
    assert owe_everything(store, now) == len(store.cases()) + len(store.resources())
    on_topic = {"stray-1": stray, "other-1": elsewhere, ours.grant.id: record}
    assert revoke_strays(store, on_topic, now) == ["stray-1"]
    fresh = api.published[owed_before:]
    states = {r.grant.id: r.grant.state for r in fresh}
    assert states["stray-1"] is GrantState.REVOKED
    assert "other-1" not in states  # another catalog's grant is not ours to revoke
    assert states[ours.grant.id] is ours.grant.state  # what the store says, not the topic
    assert len(states) == len(api.plane.store.cases()) + 1


def test_expiry_closes_grants_whose_validity_ended_and_owes_it_to_the_bus(api):
    live = {c.grant.id for c in api.plane.store.cases(state="active")}
    owed_before = len(api.published)
    assert api.plane.expire_due() == []  # nothing has ended yet
    api.plane._clock = lambda: dt.datetime.now(dt.UTC) + dt.timedelta(days=3 * 365)
    closed = api.plane.expire_due()
    assert {c.grant.id for c in closed} == live
    fresh = api.published[owed_before:]
    assert {r.grant.id for r in fresh if r.grant.state is GrantState.EXPIRED} == live
    history = api.call("admin", "get", f"/grants/{closed[0].grant.id}/history").json()
    assert history[0]["action"] == "expire" and history[0]["actor"] == "system"


def test_a_removed_user_s_token_stops_working(api):
    assert api.call("mca-wang", "get", "/whoami").status_code == 200
    assert api.call("psb-li", "delete", "/users/mca-wang").status_code == 403
    assert api.call("admin", "delete", "/users/mca-wang").status_code == 204
    assert api.call("mca-wang", "get", "/whoami").status_code == 401
    assert api.call("admin", "delete", "/users/mca-wang").status_code == 404
    assert api.call("admin", "get", "/changes?object_id=mca-wang").json()[0]["action"] == "remove"
