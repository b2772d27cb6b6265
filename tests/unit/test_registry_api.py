"""The registry REST API: status codes, Confluent JSON shapes and error bodies."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from httpx import Response

from services.catalog.registry_api import REGISTRY_MEDIA_TYPE, create_registry_app
from services.catalog.registry_auth import service_login
from services.catalog.registry_store import SchemaRegistryStore
from services.common.settings import Settings

SUBJECT = "gov.psb.resident_population-value"
HEADERS = {"Content-Type": REGISTRY_MEDIA_TYPE}
PERSON = {
    "type": "record",
    "name": "Resident",
    "namespace": "gov.psb",
    "fields": [{"name": "id_card", "type": "string"}, {"name": "age", "type": "int"}],
}
PERSON_V2 = {
    **PERSON,
    "fields": [*PERSON["fields"], {"name": "region", "type": ["null", "string"], "default": None}],
}


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[Callable[[], TestClient]]:
    """Factory: a TestClient on a fresh app over one sqlite file per test."""
    stores: list[SchemaRegistryStore] = []

    def make() -> TestClient:
        stores.append(SchemaRegistryStore(f"sqlite:///{tmp_path / 'registry' / 'reg.db'}"))
        settings = Settings(registry_password="unit-registry-password")
        client = TestClient(create_registry_app(stores[-1], service_login(settings)))
        client.auth = (settings.registry_user, "unit-registry-password")
        return client

    yield make
    for store in stores:
        store.close()


@pytest.fixture
def client(make_client: Callable[[], TestClient]) -> TestClient:
    return make_client()


def register(client: TestClient, subject: str, schema: object, **extra: object) -> dict:
    body = json.dumps({"schema": json.dumps(schema), **extra})
    response = client.post(f"/subjects/{subject}/versions", content=body, headers=HEADERS)
    assert response.status_code == 200, response.text
    return response.json()


def assert_error(response, status: int, error_code: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(REGISTRY_MEDIA_TYPE)
    body = response.json()
    assert body["error_code"] == error_code
    assert isinstance(body["message"], str) and body["message"]


def test_register_returns_id_and_version_in_registry_media_type(client: TestClient) -> None:
    response = client.post(
        f"/subjects/{SUBJECT}/versions?normalize=False",
        content=json.dumps({"schema": json.dumps(PERSON), "schemaType": "AVRO", "references": []}),
        headers=HEADERS,
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(REGISTRY_MEDIA_TYPE)
    body = response.json()
    assert (body["id"], body["subject"], body["version"]) == (1, SUBJECT, 1)
    assert isinstance(body["guid"], str)


def test_plain_json_content_type_is_accepted_too(client: TestClient) -> None:
    response = client.post(f"/subjects/{SUBJECT}/versions", json={"schema": '"string"'})
    assert response.status_code == 200
    assert response.json()["id"] == 1


def test_same_schema_is_one_id_across_subjects_and_one_version_per_subject(
    client: TestClient,
) -> None:
    first = register(client, SUBJECT, PERSON)
    reordered = {"fields": PERSON["fields"], "namespace": "gov.psb", "name": "Resident"}
    again = register(client, SUBJECT, {"type": "record", **reordered})
    other = register(client, "gov.psb.resident_population-key", PERSON)
    assert (again["id"], again["version"]) == (first["id"], first["version"])
    assert (other["id"], other["version"]) == (first["id"], 1)
    subjects = client.get(f"/schemas/ids/{first['id']}/subjects").json()
    assert subjects == ["gov.psb.resident_population-key", SUBJECT]
    versions = client.get(f"/schemas/ids/{first['id']}/versions").json()
    assert {"subject": SUBJECT, "version": 1} in versions and len(versions) == 2


def test_a_default_is_part_of_schema_identity(client: TestClient) -> None:
    with_default = {**PERSON, "fields": [{"name": "age", "type": "int", "default": 0}]}
    without = {**PERSON, "fields": [{"name": "age", "type": "int"}]}
    assert register(client, SUBJECT, with_default)["id"] != register(client, SUBJECT, without)["id"]


def test_versions_latest_and_raw_schema(client: TestClient) -> None:
    register(client, SUBJECT, PERSON)
    second = register(client, SUBJECT, PERSON_V2)
    assert second["version"] == 2
    assert client.get(f"/subjects/{SUBJECT}/versions").json() == [1, 2]
    latest = client.get(f"/subjects/{SUBJECT}/versions/latest").json()
    assert latest["version"] == 2 and latest["id"] == second["id"]
    assert json.loads(latest["schema"]) == PERSON_V2
    assert "schemaType" not in latest  # Confluent omits it for AVRO
    assert client.get(f"/subjects/{SUBJECT}/versions/-1").json()["version"] == 2
    assert json.loads(client.get(f"/subjects/{SUBJECT}/versions/1").json()["schema"]) == PERSON
    raw = client.get(f"/subjects/{SUBJECT}/versions/1/schema")
    assert raw.status_code == 200 and raw.json() == PERSON


def test_schema_by_id_ignores_subject_and_format_params(client: TestClient) -> None:
    schema_id = register(client, SUBJECT, PERSON)["id"]
    response = client.get(f"/schemas/ids/{schema_id}?subject={SUBJECT}&format=resolved&x=1")
    assert response.status_code == 200
    assert json.loads(response.json()["schema"]) == PERSON
    guid = response.json()["guid"]
    assert client.get(f"/schemas/guids/{guid}").json()["id"] == schema_id
    assert client.get(f"/schemas/ids/{schema_id}/schema").json() == PERSON


def test_lookup_finds_the_version_and_tolerates_capitalised_booleans(client: TestClient) -> None:
    registered = register(client, SUBJECT, PERSON)
    response = client.post(
        f"/subjects/{SUBJECT}?normalize=False&deleted=False",
        content=json.dumps({"schema": json.dumps(PERSON)}),
        headers=HEADERS,
    )
    assert response.status_code == 200
    body = response.json()
    assert (body["subject"], body["version"], body["id"]) == (SUBJECT, 1, registered["id"])


def test_lookup_errors(client: TestClient) -> None:
    register(client, SUBJECT, PERSON)
    unknown_subject = client.post("/subjects/nope", json={"schema": json.dumps(PERSON)})
    assert_error(unknown_subject, 404, 40401)
    unknown_schema = client.post(f"/subjects/{SUBJECT}", json={"schema": json.dumps(PERSON_V2)})
    assert_error(unknown_schema, 404, 40403)


@pytest.mark.parametrize(
    ("path", "status", "error_code"),
    [
        ("/subjects/nope/versions", 404, 40401),
        ("/subjects/nope/versions/latest", 404, 40401),
        (f"/subjects/{SUBJECT}/versions/7", 404, 40402),
        (f"/subjects/{SUBJECT}/versions/0", 422, 42202),
        (f"/subjects/{SUBJECT}/versions/first", 422, 42202),
        ("/schemas/ids/99", 404, 40403),
        ("/schemas/ids/99/subjects", 404, 40403),
        ("/schemas/ids/99/versions", 404, 40403),
        ("/no/such/route", 404, 404),
    ],
)
def test_not_found_and_invalid_version_errors(
    client: TestClient, path: str, status: int, error_code: int
) -> None:
    register(client, SUBJECT, PERSON)
    assert_error(client.get(path), status, error_code)


@pytest.mark.parametrize(
    "body",
    [
        {
            "schema": json.dumps(
                {**PERSON, "fields": [{"name": "a", "type": "int", "default": "x"}]}
            )
        },
        {"schema": "{not json"},
        {"schema": '{"type": "recrod", "name": "R", "fields": []}'},
        {"schema": '{"type": "string"}', "schemaType": "PROTOBUF"},
        {"schema": '"string"', "references": [{"name": "a", "subject": "b", "version": 1}]},
    ],
)
def test_invalid_schema_is_42201(client: TestClient, body: dict) -> None:
    response = client.post(f"/subjects/{SUBJECT}/versions", json=body)
    assert_error(response, 422, 42201)


def test_missing_schema_field_is_a_422_in_registry_shape(client: TestClient) -> None:
    response = client.post(f"/subjects/{SUBJECT}/versions", json={"schemaType": "AVRO"})
    assert_error(response, 422, 422)


def test_subjects_prefix_and_pagination(client: TestClient) -> None:
    for subject in ("gov.a-value", "gov.b-value", "deliver.c-value"):
        register(client, subject, PERSON)
    assert client.get("/subjects").json() == ["deliver.c-value", "gov.a-value", "gov.b-value"]
    assert client.get("/subjects?subjectPrefix=gov.").json() == ["gov.a-value", "gov.b-value"]
    assert client.get("/subjects?offset=1&limit=1").json() == ["gov.a-value"]
    assert client.get("/subjects?deleted=False&deleted_only=False&limit=-1").status_code == 200


def test_soft_then_permanent_delete(client: TestClient) -> None:
    first = register(client, SUBJECT, PERSON)
    assert_error(client.delete(f"/subjects/{SUBJECT}?permanent=true"), 404, 40405)
    assert client.delete(f"/subjects/{SUBJECT}").json() == [1]
    assert_error(client.delete(f"/subjects/{SUBJECT}"), 404, 40404)
    assert client.get("/subjects").json() == []
    assert client.get("/subjects?deleted=true").json() == [SUBJECT]
    assert_error(client.get(f"/subjects/{SUBJECT}/versions/1"), 404, 40401)
    assert client.get(f"/subjects/{SUBJECT}/versions/1?deleted=true").json()["id"] == first["id"]
    assert client.get(f"/schemas/ids/{first['id']}").status_code == 200
    assert client.delete(f"/subjects/{SUBJECT}?permanent=true").json() == [1]
    assert client.get("/subjects?deleted=true").json() == []
    assert_error(client.delete(f"/subjects/{SUBJECT}"), 404, 40401)


def test_reregistering_after_soft_delete_continues_version_numbers(client: TestClient) -> None:
    first = register(client, SUBJECT, PERSON)
    client.delete(f"/subjects/{SUBJECT}")
    again = register(client, SUBJECT, PERSON)
    assert (again["id"], again["version"]) == (first["id"], 2)


def test_delete_one_version(client: TestClient) -> None:
    register(client, SUBJECT, PERSON)
    register(client, SUBJECT, PERSON_V2)
    assert client.delete(f"/subjects/{SUBJECT}/versions/latest").json() == 2
    assert client.get(f"/subjects/{SUBJECT}/versions").json() == [1]
    assert client.get(f"/subjects/{SUBJECT}/versions?deleted=true").json() == [1, 2]
    assert client.delete(f"/subjects/{SUBJECT}/versions/2?permanent=true").json() == 2
    assert client.get(f"/subjects/{SUBJECT}/versions?deleted=true").json() == [1]


def test_compatibility_config_global_and_per_subject(client: TestClient) -> None:
    assert client.get("/config").json() == {"compatibilityLevel": "BACKWARD"}
    assert client.get(f"/config/{SUBJECT}").json() == {"compatibilityLevel": "BACKWARD"}
    put = client.put("/config", content='{"compatibility": "full"}', headers=HEADERS)
    assert put.json() == {"compatibility": "FULL"}
    assert client.get(f"/config/{SUBJECT}").json() == {"compatibilityLevel": "FULL"}
    put = client.put(f"/config/{SUBJECT}", json={"compatibilityLevel": "NONE"})
    assert put.json() == {"compatibility": "NONE"}
    assert client.get(f"/config/{SUBJECT}").json() == {"compatibilityLevel": "NONE"}
    assert client.get("/config").json() == {"compatibilityLevel": "FULL"}
    assert client.delete(f"/config/{SUBJECT}").json() == {"compatibilityLevel": "NONE"}
    assert_error(client.delete(f"/config/{SUBJECT}"), 404, 40408)
    assert_error(client.put("/config", json={"compatibility": "SOMETIMES"}), 422, 42203)
    assert_error(client.put("/config", json={}), 422, 42203)


def test_config_survives_a_restart(make_client: Callable[[], TestClient]) -> None:
    make_client().put(f"/config/{SUBJECT}", json={"compatibility": "FORWARD"})
    assert make_client().get(f"/config/{SUBJECT}").json() == {"compatibilityLevel": "FORWARD"}


def test_schema_types_health_and_root(client: TestClient) -> None:
    assert client.get("/schemas/types").json() == ["AVRO"]
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/").json() == {}


def test_concurrent_registrations_get_distinct_versions(tmp_path: Path) -> None:
    store = SchemaRegistryStore(f"sqlite:///{tmp_path / 'reg.db'}")
    store.set_compatibility("NONE", SUBJECT)  # the renamed records are not evolutions
    schemas = [json.dumps({**PERSON, "name": f"R{i}"}) for i in range(16)]
    try:
        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(lambda s: store.register(SUBJECT, s), schemas))
    finally:
        store.close()
    assert sorted(version for _, version in results) == list(range(1, 17))
    assert len({schema_id for schema_id, _ in results}) == 16


PERSON_PHONE = {**PERSON, "fields": [*PERSON["fields"], {"name": "phone", "type": "string"}]}
REGION = {"name": "region", "type": "string"}
# Backward-compatible with REGION_DEFAULTED (it has region), not with PERSON (it has none).
REGION_DEFAULTED = {**PERSON, "fields": [*PERSON["fields"], {**REGION, "default": ""}]}
REGION_REQUIRED = {**PERSON, "fields": [*PERSON["fields"], REGION]}


def post_schema(client: TestClient, path: str, schema: object) -> Response:
    return client.post(path, content=json.dumps({"schema": json.dumps(schema)}), headers=HEADERS)


def test_incompatible_schema_is_409_naming_field_and_rule(client: TestClient) -> None:
    register(client, SUBJECT, PERSON)
    response = post_schema(client, f"/subjects/{SUBJECT}/versions", PERSON_PHONE)
    assert_error(response, 409, 409)
    message = response.json()["message"]
    assert message.startswith(
        f'Schema being registered is incompatible with an earlier schema for subject "{SUBJECT}"'
    )
    assert "READER_FIELD_MISSING_DEFAULT_VALUE" in message and "'phone'" in message
    assert "{oldSchemaVersion: 1}" in message and "{compatibility: 'BACKWARD'}" in message
    # Nothing of the refused schema is kept.
    assert client.get(f"/subjects/{SUBJECT}/versions").json() == [1]
    assert_error(client.get("/schemas/ids/2"), 404, 40403)


def test_subject_level_overrides_global_and_none_checks_nothing(client: TestClient) -> None:
    register(client, SUBJECT, PERSON)
    client.put("/config", json={"compatibility": "NONE"})
    client.put(f"/config/{SUBJECT}", json={"compatibility": "FORWARD"})
    assert register(client, SUBJECT, PERSON_PHONE)["version"] == 2  # forward-compatible
    dropped_age = {**PERSON, "fields": PERSON["fields"][:1]}
    refused = post_schema(client, f"/subjects/{SUBJECT}/versions", dropped_age)
    assert_error(refused, 409, 409)
    assert "'age'" in refused.json()["message"]
    client.delete(f"/config/{SUBJECT}")
    assert register(client, SUBJECT, dropped_age)["version"] == 3  # global NONE


def test_registering_an_existing_schema_again_skips_the_check(client: TestClient) -> None:
    first = register(client, SUBJECT, PERSON)
    client.put(f"/config/{SUBJECT}", json={"compatibility": "NONE"})
    register(client, SUBJECT, {**PERSON, "fields": [{"name": "other", "type": "long"}]})
    client.put(f"/config/{SUBJECT}", json={"compatibility": "FULL_TRANSITIVE"})
    again = register(client, SUBJECT, PERSON)
    assert (again["id"], again["version"]) == (first["id"], 1)


def test_deleted_versions_are_not_checked_against(client: TestClient) -> None:
    register(client, SUBJECT, PERSON)
    register(client, SUBJECT, REGION_DEFAULTED)
    check_all = f"/compatibility/subjects/{SUBJECT}/versions"
    assert post_schema(client, check_all, REGION_REQUIRED).json() == {"is_compatible": True}
    assert client.delete(f"/subjects/{SUBJECT}/versions/2").json() == 2
    assert_error(post_schema(client, f"/subjects/{SUBJECT}/versions", REGION_REQUIRED), 409, 409)


def test_compatibility_endpoint_against_latest_a_version_or_all(client: TestClient) -> None:
    base = f"/compatibility/subjects/{SUBJECT}/versions"
    assert post_schema(client, f"{base}/latest", PERSON_PHONE).json() == {"is_compatible": True}
    register(client, SUBJECT, PERSON)
    register(client, SUBJECT, PERSON_V2)
    assert post_schema(client, f"{base}/latest", PERSON_V2).json() == {"is_compatible": True}
    refused = post_schema(client, f"{base}/1?verbose=True&normalize=False", PERSON_PHONE).json()
    assert refused["is_compatible"] is False
    assert "READER_FIELD_MISSING_DEFAULT_VALUE" in refused["messages"][0]
    assert "'phone'" in refused["messages"][0]
    ok = post_schema(client, f"{base}/latest?verbose=true", PERSON_V2).json()
    assert ok == {"is_compatible": True, "messages": []}
    assert_error(post_schema(client, f"{base}/9", PERSON), 404, 40402)
    assert_error(post_schema(client, "/compatibility/subjects/nope/versions/1", PERSON), 404, 40401)
    assert_error(post_schema(client, f"{base}/latest", {"type": "nope"}), 422, 42201)


def test_compatibility_endpoint_for_all_versions_follows_transitivity(client: TestClient) -> None:
    base = f"/compatibility/subjects/{SUBJECT}/versions"
    register(client, SUBJECT, PERSON)
    register(client, SUBJECT, REGION_DEFAULTED)
    assert post_schema(client, base, REGION_REQUIRED).json() == {"is_compatible": True}
    client.put(f"/config/{SUBJECT}", json={"compatibility": "BACKWARD_TRANSITIVE"})
    assert post_schema(client, base, REGION_REQUIRED).json() == {"is_compatible": False}
    # Against one named version only that version counts, whatever the mode.
    assert post_schema(client, f"{base}/2", REGION_REQUIRED).json() == {"is_compatible": True}
