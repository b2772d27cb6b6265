"""The outbox relay against a real broker: records reach the control topics in the order the
store committed them, a new resource's source topic exists before its catalog record, and
with the broker away changes are stored at once and published when it is back."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
from confluent_kafka.admin import AdminClient

from services.common import catalog_feed, grant_feed
from services.common.feed import read_feed
from services.common.settings import Settings
from services.common.topic_reader import end_offsets, read_range
from services.common.topics import CATALOG, GRANTS, key_subject, value_subject
from services.launcher import ProcessGroup
from tests.integration.brokers import PrivateBroker
from tests.integration.conftest import _tagged_config, free_port, wait_until
from tests.integration.seed import file_records, publish_records

ADMIN = "test-authority-token"


class CatalogService:
    """The catalog-service process of one test, on its own catalog (tagged codes) and stores."""

    def __init__(self, tmp_path: Path, bootstrap: str) -> None:
        self.tag = uuid.uuid4().hex[:8]
        _tagged_config(self.tag, tmp_path / "config")
        port = free_port()
        self.values = {
            "kafka_bootstrap": bootstrap,
            "data_dir": str(tmp_path / "data"),
            "catalog_dir": str(tmp_path / "config" / "catalog"),
            "grants_dir": str(tmp_path / "config" / "grants"),
            "registry_port": str(port),
            "registry_url": f"http://127.0.0.1:{port}",
            "api_url": f"http://127.0.0.1:{port}/api",
            "authority_token": ADMIN,
            "demo_mode": "1",
        }
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("GOVBUS_")}
        self.env.update({f"GOVBUS_{k.upper()}": v for k, v in self.values.items()})
        self.settings = Settings(**self.values)
        self.url = f"http://127.0.0.1:{port}"
        self.processes = ProcessGroup(tmp_path / "logs", self.env)

    def start(self) -> CatalogService:
        self.processes.start("catalog-service")

        def up() -> bool:
            self.processes.check_alive()
            return self.call(ADMIN, "get", "/whoami").status_code == 200

        wait_until(up, 60, "catalog service")
        return self

    def call(self, token: str, method: str, path: str, **kw) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"}
        return httpx.request(method, f"{self.url}/api{path}", headers=headers, timeout=10, **kw)

    def cli(self, token: str, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "services.cli", *args],
            env={**self.env, "GOVBUS_TOKEN": token},
            capture_output=True,
            text=True,
            timeout=60,
        )

    def user(self, name: str, department: str, role: str) -> str:
        body = {"name": name, "department": f"{department}_{self.tag}", "role": role}
        r = self.call(ADMIN, "post", "/users", json=body)
        assert r.status_code == 201, r.text
        return r.json()["token"]

    def request(self, consumer_token: str) -> dict:
        """A grant request of the test's education department; the API's answer."""
        body = {
            "resource": f"hrss_{self.tag}.social_insurance_enrolment",
            "purpose": "教师社保缴纳核验",
            "legal_basis": "《教师法》第二十五条",
            "fields": ["enrolment_id", "insurance_type", "status", "region_code"],
            "valid_from": str(dt.date.today()),
            "valid_until": str(dt.date.today() + dt.timedelta(days=30)),
        }
        r = self.call(consumer_token, "post", "/grants", json=body)
        assert r.status_code == 201, r.text
        return r.json()

    def grant_on_topic(self, grant_id: str):
        return read_feed(self.settings, GRANTS, grant_feed.decode).get(grant_id)


@pytest.fixture
def service(kafka_bootstrap: str, tmp_path: Path):
    svc = CatalogService(tmp_path, kafka_bootstrap).start()
    yield svc
    svc.processes.stop()


def test_records_reach_the_topics_in_commit_order_with_source_topics_first(service):
    # The first start imported the tagged catalog: every resource is on govbus.catalog, and
    # its source topic exists (the broker creates none by itself).
    resources = {
        f"{p}_{service.tag}.{c}"
        for p, c in (
            ("psb", "resident_population"),
            ("samr", "enterprise_registration"),
            ("hrss", "social_insurance_enrolment"),
        )
    }

    def catalog_published() -> bool:
        feed = read_feed(service.settings, CATALOG, catalog_feed.decode)
        return resources <= set(feed)

    wait_until(catalog_published, 30, "the imported catalog on govbus.catalog")
    topics = AdminClient(service.settings.kafka_config()).list_topics(timeout=10).topics
    assert {f"gov.{rid}" for rid in resources} <= set(topics)

    hrss = service.user("hrss-liu", "hrss", "provider")
    edu = service.user("edu-chen", "edu", "consumer")
    gid = service.request(edu)["grant"]["id"]
    answers = [
        service.call(hrss, "post", f"/grants/{gid}/approve", json={}),
        service.call(ADMIN, "post", f"/grants/{gid}/activate", json={}),
        service.call(ADMIN, "post", f"/grants/{gid}/revoke", json={"reason": "核验结束"}),
    ]
    assert [a.json()["publication"] for a in answers] == ["published"] * 3, answers[-1].text
    # Every state of the grant, in the order it was committed, and nothing else.
    states = [
        grant_feed.decode(m.value()).grant.state for m in _grant_messages(service.settings, gid)
    ]
    assert states == ["requested", "approved", "active", "revoked"]


def _grant_messages(settings: Settings, grant_id: str) -> list:
    end = end_offsets(settings, [GRANTS])
    return [m for m in read_range(settings, {}, end) if m.key() == grant_id.encode()]


def test_catalog_put_creates_a_resource_with_its_topic_and_registry_subjects(service, tmp_path):
    hrss = service.user("hrss-liu", "hrss", "provider")
    rid = f"hrss_{service.tag}.social_insurance_enrolment"
    current = service.call(ADMIN, "get", f"/resources/{rid}").json()
    entry = {**current["entry"], "code": "pension_payment", "name_en": "pension payments"}
    body = {"entry": entry, "value_schema": current["value_schema"]}
    new_id, topic = f"hrss_{service.tag}.pension_payment", f"gov.hrss_{service.tag}.pension_payment"
    path = tmp_path / "resource.json"
    path.write_text(json.dumps(body, ensure_ascii=False), encoding="utf-8")

    done = service.cli(hrss, "catalog", "put", new_id, "--file", str(path))
    assert done.returncode == 0, done.stderr
    # The broker is up: published at once, or (under load) within moments of the answer.
    wait_until(
        lambda: new_id in read_feed(service.settings, CATALOG, catalog_feed.decode),
        30,
        "the new resource on govbus.catalog",
    )
    topics = AdminClient(service.settings.kafka_config()).list_topics(timeout=10).topics
    assert topic in topics and len(topics[topic].partitions) == service.settings.topic_partitions
    auth = ("govbus", service.settings.registry_password.get_secret_value())
    subjects = httpx.get(f"{service.url}/subjects", auth=auth, timeout=5).json()
    assert {key_subject(topic), value_subject(topic)} <= set(subjects)
    record = read_feed(service.settings, CATALOG, catalog_feed.decode)[new_id]
    assert record.schema_version == 1 and record.topic == topic


def test_with_the_broker_stopped_a_change_is_stored_at_once_and_published_when_it_is_back(
    tmp_path,
):
    with PrivateBroker(tmp_path / "kafka") as broker:
        service = CatalogService(tmp_path, broker.bootstrap).start()
        try:
            hrss = service.user("hrss-liu", "hrss", "provider")
            edu = service.user("edu-chen", "edu", "consumer")
            gid = service.request(edu)["grant"]["id"]
            assert service.call(hrss, "post", f"/grants/{gid}/approve", json={}).status_code == 200
            wait_until(
                lambda: (
                    getattr(service.grant_on_topic(gid), "grant", None) is not None
                    and service.grant_on_topic(gid).grant.state == "approved"
                ),
                30,
                "the approval on govbus.grants",
            )

            broker.stop()
            started = time.monotonic()
            r = service.call(ADMIN, "post", f"/grants/{gid}/activate", json={})
            took = time.monotonic() - started
            assert r.status_code == 200 and r.json()["grant"]["state"] == "active", r.text
            assert r.json()["publication"] == "pending"
            assert took < 1.0, f"activate answered after {took:.2f}s with the broker away"
            # The command says so too.
            other = service.request(edu)["grant"]["id"]
            done = service.cli(hrss, "grant", "approve", other)
            assert done.returncode == 0, done.stderr
            assert done.stdout.strip() == f"{other} approved"
            assert "stored; waiting for Kafka to publish it" in done.stderr

            broker.start()
            wait_until(
                lambda: service.grant_on_topic(gid).grant.state == "active",
                60,
                "the activation on govbus.grants once the broker is back",
            )
            record = service.grant_on_topic(gid)
            assert record.activation == 1
            assert service.grant_on_topic(other).grant.state == "approved"
            r = service.call(ADMIN, "post", f"/grants/{other}/activate", json={})
            assert r.json()["publication"] == "published", r.text
        finally:
            service.processes.stop()


def test_a_grant_only_the_topic_knows_is_published_as_revoked_at_start(kafka_bootstrap, tmp_path):
    service = CatalogService(tmp_path, kafka_bootstrap)
    _, grants = file_records(service.settings)
    known = grants[0]
    stray = known.model_copy(
        update={"grant": known.grant.model_copy(update={"id": f"stray-{service.tag}"})}
    )
    publish_records(service.settings, grants=[stray])
    assert service.grant_on_topic(stray.grant.id).grant.state == "active"
    service.start()
    try:
        wait_until(
            lambda: service.grant_on_topic(stray.grant.id).grant.state == "revoked",
            30,
            "the stray grant revoked on govbus.grants",
        )
        assert service.grant_on_topic(known.grant.id).grant.state == "active"
    finally:
        service.processes.stop()


def test_the_catalog_service_starts_and_takes_changes_with_no_broker_at_all(tmp_path):
    nobody = f"localhost:{free_port()}"  # nothing listens there
    service = CatalogService(tmp_path, nobody).start()
    try:
        edu = service.user("edu-chen", "edu", "consumer")
        started = time.monotonic()
        answer = service.request(edu)
        assert time.monotonic() - started < 1.0
        assert answer["publication"] == "pending"
    finally:
        service.processes.stop()
