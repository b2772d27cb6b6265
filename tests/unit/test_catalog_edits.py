"""Catalog edits through the API: outbox records, schema versions, registry subjects, and the
live grants they suspend. The store and the registry are real (in-memory SQLite)."""

from __future__ import annotations

import copy

import pytest

from services.common import catalog_feed
from services.common.topics import CATALOG, key_subject, value_subject
from tests.unit.test_control_api import RESIDENTS, Api, request_body

TOPIC = "gov.psb.resident_population"


@pytest.fixture
def api() -> Api:
    return Api()


def owed(api: Api) -> list[tuple[str, str]]:
    """(topic, key) of every record the store owes the bus, in order."""
    return [(r.topic, r.key) for r in api.plane.store.outbox_pending(0, 100_000)]


def resource(api: Api) -> dict:
    body = api.call("admin", "get", f"/resources/{RESIDENTS}").json()
    return {"entry": body["entry"], "value_schema": body["value_schema"]}


def put(api: Api, body: dict, who: str = "psb-li"):
    rid = f"{body['entry']['provider']}.{body['entry']['code']}"
    return api.call(who, "put", f"/resources/{rid}", json=body)


def grant_state(api: Api, grant_id: str) -> str:
    return api.call("admin", "get", f"/grants/{grant_id}").json()["grant"]["state"]


def with_field(body: dict, name: str, avro_type, sensitivity: str = "L2", **extra) -> dict:
    body = copy.deepcopy(body)
    body["value_schema"]["fields"].append({"name": name, "type": avro_type, **extra})
    body["entry"]["fields"][name] = {"sensitivity": sensitivity, "description": name}
    return body


def without_field(body: dict, name: str) -> dict:
    body = copy.deepcopy(body)
    body["value_schema"]["fields"] = [
        f for f in body["value_schema"]["fields"] if f["name"] != name
    ]
    del body["entry"]["fields"][name]
    return body


def test_an_edit_commits_with_its_outbox_record_and_a_new_schema_bumps_the_version(api):
    before = owed(api)
    r = put(api, resource(api))  # no change of schema: same version, owed again all the same
    assert r.status_code == 200 and r.json()["schema_version"] == 1, r.text
    assert r.json()["publication"] == "pending"  # no relay here: stored, not yet published
    assert owed(api) == [*before, (CATALOG, RESIDENTS)]

    added = with_field(resource(api), "email", ["null", "string"], default=None)
    r = put(api, added)
    assert r.status_code == 200 and r.json()["schema_version"] == 2, r.text
    last = api.plane.store.outbox_pending(0, 100_000)[-1]
    record = catalog_feed.decode(last.value)
    assert record.schema_version == 2 and "email" in record.resource.fields
    # The registry has the new key and envelope versions of the resource's subjects.
    assert api.registry.versions(value_subject(TOPIC)) == [1, 2]
    assert api.registry.versions(key_subject(TOPIC)) == [1]  # the key did not change


def test_a_new_resource_gets_its_registry_subjects(api):
    body = resource(api)
    body["entry"] = {**body["entry"], "code": "resident_population_v2"}
    r = api.call("psb-li", "put", "/resources/psb.resident_population_v2", json=body)
    assert r.status_code == 200 and r.json()["schema_version"] == 1, r.text
    topic = "gov.psb.resident_population_v2"
    assert api.registry.versions(key_subject(topic)) == [1]
    assert api.registry.versions(value_subject(topic)) == [1]
    assert owed(api)[-1] == (CATALOG, "psb.resident_population_v2")


def test_an_incompatible_schema_is_refused_with_the_rule_and_nothing_is_written(api):
    before, versions = owed(api), api.registry.versions(value_subject(TOPIC))
    body = with_field(resource(api), "email", "string")  # no default: old events lack it
    r = put(api, body)
    assert r.status_code == 409, r.text
    assert "READER_FIELD_MISSING_DEFAULT_VALUE" in r.json()["detail"]
    assert "BACKWARD" in r.json()["detail"]
    assert owed(api) == before
    assert api.registry.versions(value_subject(TOPIC)) == versions
    assert "email" not in resource(api)["entry"]["fields"]


def test_a_change_of_the_key_is_refused(api):
    before = owed(api)
    body = resource(api)
    body["entry"]["key_fields"] = ["id_number", "name"]
    r = put(api, body)
    assert r.status_code == 422 and "key_fields" in r.json()["detail"], r.text
    body = resource(api)
    for f in body["value_schema"]["fields"]:
        if f["name"] == "id_number":
            f["type"] = ["null", "string"]
            f["default"] = None
    r = put(api, body)
    assert r.status_code == 422 and "key field id_number" in r.json()["detail"], r.text
    assert owed(api) == before


def test_not_shared_suspends_the_live_grants_at_once_with_why(api):
    body = resource(api)
    body["entry"]["share_type"] = "not_shared"
    before = len(owed(api))
    r = put(api, body)
    assert r.status_code == 200, r.text
    for gid in ("mca-resident-population", "edu-resident-population"):
        assert grant_state(api, gid) == "suspended"
        entry = api.call("admin", "get", f"/grants/{gid}/history").json()[0]
        assert entry["action"] == "suspend" and entry["actor"] == "psb-li"
        assert "not shared" in entry["after"]["reason"]
    assert grant_state(api, "tax-enterprise-registration") == "active"  # another resource
    # The suspensions are owed before the catalog record, in the same commit.
    assert owed(api)[before:] == [
        ("govbus.grants", "edu-resident-population"),
        ("govbus.grants", "mca-resident-population"),
        (CATALOG, RESIDENTS),
    ]
    suspended = [r for r in api.published if r.grant.id == "mca-resident-population"][-1]
    assert suspended.grant.state == "suspended"

    # The authority may not activate it while the resource is not shared ...
    r = api.call("admin", "post", "/grants/mca-resident-population/activate", json={})
    assert r.status_code == 409 and "not shared" in r.json()["detail"]
    # ... and may once it is shared again: a new activation, so a new backfill.
    body["entry"]["share_type"] = "conditional"
    assert put(api, body).status_code == 200
    r = api.call("admin", "post", "/grants/mca-resident-population/activate", json={})
    assert r.status_code == 200 and r.json()["grant"]["state"] == "active", r.text
    assert r.json()["activations"] == 2
    assert api.published[-1].activation == 2
    assert api.published[-1].backfill_id == "mca-resident-population@2"
    # Or revoke it.
    r = api.call("psb-li", "post", "/grants/edu-resident-population/revoke", json={"reason": "x"})
    assert r.status_code == 200 and r.json()["grant"]["state"] == "revoked"


def test_a_field_raised_to_l4_suspends_only_grants_keeping_it_in_clear(api):
    body = resource(api)
    body["entry"]["fields"]["gender"]["sensitivity"] = "L4"  # mca keeps it, edu has it not
    r = put(api, body)
    assert r.status_code == 200, r.text
    assert grant_state(api, "mca-resident-population") == "suspended"
    assert grant_state(api, "edu-resident-population") == "active"
    why = api.call("admin", "get", "/grants/mca-resident-population").json()["reason"]
    assert "gender is now L4" in why
    r = api.call("admin", "post", "/grants/mca-resident-population/activate", json={})
    assert r.status_code == 409 and "gender" in r.json()["detail"]


def test_a_removed_field_does_not_suspend_but_a_filter_on_it_does(api):
    r = put(api, without_field(resource(api), "address"))  # edu has it, redacted
    assert r.status_code == 200, r.text
    assert grant_state(api, "edu-resident-population") == "active"
    assert grant_state(api, "mca-resident-population") == "active"
    r = put(api, without_field(resource(api), "household_type"))  # in mca's row filter
    assert r.status_code == 200, r.text
    assert grant_state(api, "mca-resident-population") == "suspended"
    assert grant_state(api, "edu-resident-population") == "active"
    why = api.call("admin", "get", "/grants/mca-resident-population").json()["reason"]
    assert "row_filter" in why and "household_type" in why


def test_suspend_is_not_a_step_anyone_asks_for(api):
    r = api.call("admin", "post", "/grants/mca-resident-population/suspend", json={"reason": "x"})
    assert r.status_code == 403 and "catalog edit" in r.json()["detail"]
    assert grant_state(api, "mca-resident-population") == "active"


@pytest.mark.parametrize(
    ("path", "method", "body", "field"),
    [
        ("/grants", "post", request_body(purpose="核" * 1_000_000), "purpose"),
        ("/grants", "post", request_body(legal_basis="法" * 5000), "legal_basis"),
        ("/grants", "post", request_body(row_filter="x" * 5000), "row_filter"),
        ("/grants", "post", request_body(l4_clear_reason="因" * 5000), "l4_clear_reason"),
        (
            "/grants/mca-resident-population/revoke",
            "post",
            {"reason": "因" * 1_000_000},
            "reason",
        ),
        ("/users", "post", {"name": "a" * 500, "department": "psb", "role": "ops"}, "name"),
    ],
)
def test_an_oversized_text_field_gets_422_naming_it(api, path, method, body, field):
    who = "mca-wang" if path == "/grants" else "admin"
    before = owed(api)
    r = api.call(who, method, path, json=body)
    assert r.status_code == 422 and field in r.json()["detail"], r.text[:300]
    assert owed(api) == before


def test_oversized_catalog_texts_and_schemas_get_422_naming_them(api):
    body = resource(api)
    body["entry"]["fields"]["name"]["description"] = "名" * 100_000
    r = put(api, body)
    assert r.status_code == 422 and "description" in r.json()["detail"], r.text[:300]
    body = resource(api)
    body["entry"]["name_zh"] = "人" * 100_000
    r = put(api, body)
    assert r.status_code == 422 and "name_zh" in r.json()["detail"], r.text[:300]
    body = with_field(resource(api), "blob", ["null", "string"], default=None, doc="d" * 300_000)
    r = put(api, body)
    assert r.status_code == 422 and "value_schema" in r.json()["detail"], r.text[:300]
