"""Who may use the registry: HTTP basic auth against the control plane's users and the bus's
service user; providers write only their own subjects; reads need a signed-in principal."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from fastapi.testclient import TestClient

from services.catalog.control_store import ControlStore, users
from services.catalog.registry_api import create_registry_app
from services.catalog.registry_auth import subject_provider, user_login, write_refusal
from services.catalog.registry_store import SchemaRegistryStore
from services.catalog.workflow import Actor, Role
from services.common.settings import Settings

SETTINGS = Settings(registry_password="unit-service-password")
OWN = "gov.psb.resident_population-value"
OTHERS = "gov.samr.enterprise_registration-key"
SCHEMA = {"schema": json.dumps({"type": "record", "name": "R", "fields": []})}


def actor(role: str, department: str = "psb") -> Actor:
    return Actor(user=f"{department}-{role}", department=department, role=Role(role))


@pytest.mark.parametrize(
    ("subject", "provider"),
    [
        (OWN, "psb"),
        ("gov.psb.resident_population-key", "psb"),
        ("deliver.mca.resident_population-value", None),
        ("gov.psb-value", None),
        ("gov.psb.resident_population", None),
    ],
)
def test_subject_provider(subject, provider):
    assert subject_provider(subject) == provider


def test_write_rights():
    assert write_refusal(actor("authority", "authority"), OTHERS) is None
    assert write_refusal(actor("authority", "authority"), None) is None
    assert write_refusal(actor("provider"), OWN) is None
    assert "gov.psb.<resource>" in (write_refusal(actor("provider"), OTHERS) or "")
    assert write_refusal(actor("provider"), "deliver.psb.x-value") is not None
    assert "global config" in (write_refusal(actor("provider"), None) or "")
    assert write_refusal(actor("consumer"), OWN) is not None
    assert write_refusal(actor("ops"), OWN) is not None


class Registry:
    def __init__(self) -> None:
        self.store = ControlStore("sqlite://")
        self.tokens: dict[str, str] = {}
        with self.store.transaction() as conn:
            for name, dept, role in (
                ("admin", "authority", Role.AUTHORITY),
                ("psb-li", "psb", Role.PROVIDER),
                ("mca-wang", "mca", Role.CONSUMER),
            ):
                self.tokens[name] = self.store.add_user(conn, name, dept, role).token
        self.tokens[SETTINGS.registry_user] = SETTINGS.registry_password.get_secret_value()
        schemas = SchemaRegistryStore("sqlite://")
        self.client = TestClient(create_registry_app(schemas, user_login(SETTINGS, self.store)))

    def call(self, who: str | None, method: str, path: str, **kw):
        auth = (who, self.tokens[who]) if who else None
        return self.client.request(method, path, auth=auth, **kw)


@pytest.fixture
def registry() -> Registry:
    return Registry()


def test_without_credentials_only_liveness_answers(registry):
    assert registry.call(None, "get", "/healthz").status_code == 200
    for method, path in (
        ("get", "/subjects"),
        ("post", f"/subjects/{OWN}/versions"),
        ("put", "/config"),
        ("delete", f"/subjects/{OWN}"),
    ):
        r = registry.call(None, method, path, json={"compatibility": "NONE", **SCHEMA})
        assert r.status_code == 401, (method, path, r.text)
        assert r.json()["error_code"] == 40101 and "basic auth" in r.json()["message"]
        assert r.headers["www-authenticate"].startswith("Basic")


def test_a_wrong_token_or_another_users_token_is_refused(registry):
    wrong = registry.client.get("/subjects", auth=("psb-li", "not-the-token"))
    assert wrong.status_code == 401 and "unknown" in wrong.json()["message"]
    borrowed = registry.client.get("/subjects", auth=("admin", registry.tokens["psb-li"]))
    assert borrowed.status_code == 401 and "not 'admin'" in borrowed.json()["message"]
    service = registry.client.get("/subjects", auth=(SETTINGS.registry_user, "guess"))
    assert service.status_code == 401


def test_a_provider_writes_its_own_subjects_only(registry):
    assert registry.call("psb-li", "post", f"/subjects/{OWN}/versions", json=SCHEMA).is_success
    level = {"compatibility": "FULL"}
    assert registry.call("psb-li", "put", f"/config/{OWN}", json=level).is_success
    for method, path in (
        ("post", f"/subjects/{OTHERS}/versions"),
        ("put", f"/config/{OTHERS}"),
        ("delete", f"/subjects/{OTHERS}"),
        ("put", "/config"),
        ("delete", "/config"),
    ):
        r = registry.call("psb-li", method, path, json={**level, **SCHEMA})
        assert r.status_code == 403, (method, path, r.text)
        assert r.json()["error_code"] == 40301 and "psb-li" in r.json()["message"]


def test_a_consumer_reads_but_writes_nothing(registry):
    registry.call("psb-li", "post", f"/subjects/{OWN}/versions", json=SCHEMA)
    assert registry.call("mca-wang", "get", "/subjects").json() == [OWN]
    assert registry.call("mca-wang", "post", f"/subjects/{OWN}", json=SCHEMA).is_success
    r = registry.call("mca-wang", "delete", f"/subjects/{OWN}")
    assert r.status_code == 403 and "consumer" in r.json()["message"]


def test_the_authority_and_the_service_user_write_anything(registry):
    for who in ("admin", SETTINGS.registry_user):
        subject = f"deliver.mca.x_{who}-value"
        assert registry.call(who, "post", f"/subjects/{subject}/versions", json=SCHEMA).is_success
        assert registry.call(who, "put", "/config", json={"compatibility": "FULL"}).is_success


def test_an_expired_token_gets_401_saying_so(registry):
    past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    with registry.store.transaction() as conn:
        conn.execute(users.update().where(users.c.name == "psb-li").values(token_expires_at=past))
    r = registry.call("psb-li", "get", "/subjects")
    assert r.status_code == 401 and "expired" in r.json()["message"]
    assert registry.call("mca-wang", "get", "/subjects").status_code == 200
