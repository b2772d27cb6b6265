"""The catalog service secured, as a real process with secrets of its own (no demo mode):
confluent-kafka's registry client needs credentials and the right to write, tokens rotate and
expire, preview is no pseudonym oracle, and import and export paths stay in their directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from services.common.catalog import CatalogEntry, Grant
from services.common.plan import compile_plan, plan_delivery
from services.common.topics import value_subject
from tests.integration.conftest import Bus, free_port, new_bus, wait_until
from tests.unit.fixtures import resident

ADMIN = "test-authority-token"
MASK_SECRET = "integration-mask-secret"
REGISTRY_PASSWORD = "integration-registry-password"
PREVIEWS_PER_MINUTE = 3
RECORD = {"type": "record", "name": "Probe", "fields": [{"name": "n", "type": "int"}]}


@dataclass
class Catalog:
    """A catalog-service process and what it takes to talk to it."""

    bus: Bus
    url: str
    tokens: dict[str, str]

    @property
    def tag(self) -> str:
        return self.bus.tag

    def api(self, who: str, method: str, path: str, **kw) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[who]}"}
        return httpx.request(method, f"{self.url}/api{path}", headers=headers, timeout=10, **kw)

    def add_user(self, name: str, department: str, role: str) -> str:
        body = {"name": name, "department": f"{department}_{self.tag}", "role": role}
        r = self.api("admin", "post", "/users", json=body)
        assert r.status_code == 201, r.text
        self.tokens[name] = r.json()["token"]
        return self.tokens[name]

    def registry(self, who: str | None, secret: str | None = None) -> SchemaRegistryClient:
        config = {"url": self.url}
        if who is not None:
            config["basic.auth.user.info"] = f"{who}:{secret or self.tokens[who]}"
        return SchemaRegistryClient(config)

    def cli(self, who: str, *args: str) -> subprocess.CompletedProcess:
        env = {**self.bus.processes.env, "GOVBUS_TOKEN": self.tokens[who]}
        return subprocess.run(
            [sys.executable, "-m", "services.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )


def start_catalog(bootstrap: str, tmp_path: Path, **extra: str) -> Catalog:
    port = free_port()
    url = f"http://127.0.0.1:{port}"  # the service's own registry, not the session's
    bus = new_bus(
        bootstrap,
        url,
        tmp_path,
        demo_mode="0",
        mask_secret=MASK_SECRET,
        registry_password=REGISTRY_PASSWORD,
        registry_port=str(port),
        api_url=f"{url}/api",
        authority_token=ADMIN,
        preview_rate=f"{PREVIEWS_PER_MINUTE}/minute",
        **extra,
    )
    bus.processes.start("catalog-service")
    catalog = Catalog(bus, url, {"admin": ADMIN})

    def up() -> bool:
        bus.processes.check_alive()
        return catalog.api("admin", "get", "/whoami").status_code == 200

    wait_until(up, 60, "catalog service")
    return catalog


@pytest.fixture(scope="module")
def catalog(kafka_bootstrap, tmp_path_factory) -> Iterator[Catalog]:
    started = start_catalog(kafka_bootstrap, tmp_path_factory.mktemp("secured"))
    started.add_user("psb-li", "psb", "provider")
    started.add_user("mca-wang", "mca", "consumer")
    yield started
    started.bus.processes.stop()


def _status(call) -> int:
    with pytest.raises(SchemaRegistryError) as refused:
        call()
    return refused.value.http_status_code


def test_a_service_with_the_public_demo_secrets_refuses_to_start_naming_them(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOVBUS_")}
    env["GOVBUS_DATA_DIR"] = str(tmp_path)
    for service in ("catalog-service", "router"):
        done = subprocess.run(
            [sys.executable, "-m", "services.cli", service],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 2, done.stderr
        assert "GOVBUS_MASK_SECRET" in done.stderr and "GOVBUS_DEMO_MODE" in done.stderr
    assert not (tmp_path / "authority.token").exists()


def test_the_registry_admits_confluent_clients_by_credentials_and_rights(catalog):
    own = value_subject(f"gov.psb_{catalog.tag}.probe")
    others = value_subject(f"gov.samr_{catalog.tag}.probe")
    probe = Schema(json.dumps(RECORD), "AVRO")
    assert _status(lambda: catalog.registry(None).get_subjects()) == 401
    assert _status(lambda: catalog.registry("psb-li", "wrong").get_subjects()) == 401
    provider = catalog.registry("psb-li")
    assert provider.register_schema(own, probe) >= 1
    assert _status(lambda: provider.register_schema(others, probe)) == 403
    assert _status(lambda: provider.set_compatibility(level="NONE")) == 403
    assert _status(lambda: provider.delete_subject(others)) == 403

    consumer = catalog.registry("mca-wang")
    imported = value_subject(f"gov.psb_{catalog.tag}.resident_population")
    assert {own, imported} <= set(consumer.get_subjects())
    assert _status(lambda: consumer.register_schema(own, probe)) == 403
    assert _status(lambda: consumer.delete_subject(own)) == 403

    service = catalog.registry("govbus", REGISTRY_PASSWORD)
    assert service.register_schema(others, probe) >= 1
    assert catalog.registry("admin").set_compatibility(subject_name=others, level="FULL")

    # confluent-kafka's own Avro serde: the provider writes, the consumer reads.
    ctx = SerializationContext(f"gov.psb_{catalog.tag}.probe", MessageField.VALUE)
    conf = {"auto.register.schemas": False, "use.latest.version": True}
    data = AvroSerializer(provider, json.dumps(RECORD), conf=conf)({"n": 7}, ctx)
    assert AvroDeserializer(catalog.registry("mca-wang"))(data, ctx) == {"n": 7}


def test_a_rotated_token_stops_working_on_the_api_and_the_registry(catalog):
    old = catalog.add_user("psb-rotating", "psb", "provider")
    done = catalog.cli("psb-rotating", "user", "rotate-token", "psb-rotating")
    assert done.returncode == 0, done.stderr
    new = done.stdout.strip()
    assert new and new != old
    assert _status(lambda: catalog.registry("psb-rotating", old).get_subjects()) == 401
    catalog.tokens["psb-rotating"] = old
    assert catalog.api("psb-rotating", "get", "/whoami").status_code == 401
    catalog.tokens["psb-rotating"] = new
    assert catalog.api("psb-rotating", "get", "/whoami").json()["user"] == "psb-rotating"
    assert catalog.registry("psb-rotating").get_subjects()
    other = catalog.cli("psb-rotating", "user", "rotate-token", "mca-wang")
    assert other.returncode == 1 and "403" in other.stderr


def test_a_token_expires_after_its_configured_lifetime(kafka_bootstrap, tmp_path):
    lifetime_s = 30
    short = start_catalog(kafka_bootstrap, tmp_path, token_ttl_days=str(lifetime_s / 86400))
    try:
        short.add_user("psb-brief", "psb", "provider")
        assert short.api("psb-brief", "get", "/whoami").status_code == 200

        def refused() -> bool:
            r = short.api("psb-brief", "get", "/whoami")
            return r.status_code == 401 and "expired" in r.json()["detail"]

        wait_until(refused, lifetime_s + 30, "the token's expiry")
        r = short.registry("psb-brief")
        assert _status(lambda: r.get_subjects()) == 401
    finally:
        short.bus.processes.stop()


def test_preview_pseudonyms_match_no_delivery_and_previews_are_rate_limited(catalog):
    grant_id = f"mca-resident-population-{catalog.tag}"
    grant = Grant.model_validate(catalog.api("admin", "get", f"/grants/{grant_id}").json()["grant"])
    resource = catalog.api("admin", "get", f"/resources/{grant.resource}").json()
    sample = resident()
    # What the consumer receives for this record: the router's plan, with the real secret.
    plan = compile_plan(
        grant,
        CatalogEntry.model_validate(resource["entry"]),
        resource["value_schema"],
        MASK_SECRET.encode(),
    )
    event = {"before": None, "after": sample, "op": "c", "event_id": "e", "ts_ms": 0}
    delivered = plan_delivery(plan, event)
    assert delivered is not None
    real = delivered.value["record"]["id_number"]

    previews = [
        catalog.api("mca-wang", "post", f"/grants/{grant_id}/preview", json={"samples": [sample]})
        for _ in range(PREVIEWS_PER_MINUTE + 1)
    ]
    assert [r.status_code for r in previews] == [200] * PREVIEWS_PER_MINUTE + [429]
    shown = [r.json()[0]["id_number"] for r in previews[:-1]]
    assert real not in shown and sample["id_number"] not in shown
    assert len(set(shown)) == len(shown)  # a new key every call: nothing to join on
    assert int(previews[-1].headers["Retry-After"]) >= 1


def test_paths_in_import_and_export_stay_inside_their_directory(catalog, tmp_path):
    resource_id = f"psb_{catalog.tag}.resident_population"
    found = catalog.api("admin", "get", f"/resources/{resource_id}").json()
    entry = {**found["entry"], "schema_file": "../../../tmp/escaped.avsc"}
    r = catalog.api("admin", "put", f"/resources/{resource_id}", json={"entry": entry})
    assert r.status_code == 422 and "schema_file" in r.json()["detail"]
    files = {"catalog/x.yaml": "departments: {}\n", "schemas/../../escaped.avsc": "{}"}
    r = catalog.api("admin", "post", "/catalog/import", json={"files": files})
    assert r.status_code in (403, 409, 422), r.text

    exported = tmp_path / "export"
    done = catalog.cli("admin", "catalog", "export", str(exported))
    assert done.returncode == 0, done.stderr
    resources = exported / "catalog" / "resources.yaml"
    edited = yaml.safe_load(resources.read_text(encoding="utf-8"))
    edited["resources"][0]["schema_file"] = "../../../../etc/passwd"
    resources.write_text(yaml.safe_dump(edited, allow_unicode=True), encoding="utf-8")
    done = catalog.cli("admin", "catalog", "import", str(exported))
    assert done.returncode == 1 and "schema_file" in done.stderr and "climbs out" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]
