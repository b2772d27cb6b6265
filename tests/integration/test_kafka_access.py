"""Department identities on the real, secured broker, with real confluent-kafka clients.

The control store adds departments; the account sync gives each its SCRAM credentials and
ACLs; each department then connects with the configuration the control plane hands out and
can do what its ACLs say, and nothing else.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from fastapi.testclient import TestClient

from services.catalog.control_api import create_control_app
from services.catalog.control_plane import ControlPlane
from services.catalog.control_store import ControlStore
from services.catalog.departments import put_department, remove_department
from services.catalog.departments_api import departments_router
from services.catalog.kafka_account_sync import KafkaAccountSync
from services.catalog.kafka_acls import account_name, acls_of, department_acls
from services.catalog.registry_store import SchemaRegistryStore
from services.catalog.system_accounts import add_account
from services.catalog.users import add_user, bootstrap_authority
from services.catalog.workflow import Actor, Calendar, Role
from services.common.catalog import Department
from services.common.kafka_clients import (
    delivery_topic_spec,
    ensure_topics,
    make_admin,
    source_topic_spec,
)
from services.common.kafka_security import write_java_client_properties
from services.common.settings import REPO_ROOT, Settings
from services.common.topics import DLQ, delivery_topic, source_topic
from tests.integration.conftest import wait_until
from tests.integration.test_control_plane import ADMIN_TOKEN, govbus, start_catalog_service

AUTHORITY = Actor(user="admin", department="authority", role=Role.AUTHORITY)
# The broker's jars (kafka-clients among them), where deploy/kafka/kafka.sh keeps them.
KAFKA_LIBS = os.environ.get("GOVBUS_KAFKA_LIBS", str(REPO_ROOT / ".govbus" / "kafka" / "libs"))
LIST_TOPICS = Path(__file__).parent / "java" / "ListTopics.java"


@dataclass
class Access:
    settings: Settings
    plane: ControlPlane
    sync: KafkaAccountSync
    provider: str
    consumer: str
    other: str  # another provider and consumer

    def config(self, department: str, **extra: object) -> dict:
        return {**self.sync.client_config(department), **extra}


@pytest.fixture
def access(kafka_bootstrap: str, tmp_path: Path) -> Iterator[Access]:
    tag = uuid.uuid4().hex[:8]
    settings = Settings(kafka_bootstrap=kafka_bootstrap, data_dir=tmp_path / "data")
    store = ControlStore(f"sqlite:///{tmp_path / 'control.db'}")
    registry = SchemaRegistryStore(f"sqlite:///{tmp_path / 'registry.db'}")
    plane = ControlPlane(store, registry, Calendar(), REPO_ROOT / "schemas" / "avro", b"k" * 32)
    provider, consumer, other = f"prov_{tag}", f"cons_{tag}", f"other_{tag}"
    for code in (provider, consumer, other):
        put_department(store, AUTHORITY, code, Department(name_zh=code, name_en=code))
    specs = [source_topic_spec(source_topic(d, "res"), settings) for d in (provider, other)]
    specs += [delivery_topic_spec(delivery_topic(d, "res"), settings) for d in (consumer, other)]
    ensure_topics(make_admin(settings), specs)
    sync = KafkaAccountSync(store, settings)
    assert sync.apply_owed() == 3
    yield Access(settings, plane, sync, provider, consumer, other)
    store.close()
    registry.close()


def as_the_bus(settings: Settings, topic: str, value: bytes) -> None:
    """Produce one record as the bus's own services do (the topics are compacted: keyed)."""
    assert produce(settings.kafka_config(), topic, value) is None


def produce(config: dict, topic: str, value: bytes) -> KafkaError | None:
    """Produce one record; the delivery error, or None once the broker has it."""
    outcome: list[KafkaError | None] = []
    producer = Producer({**config, "message.timeout.ms": 10_000})
    producer.produce(topic, value, b"key", on_delivery=lambda err, _m: outcome.append(err))
    producer.flush(15)
    assert outcome, f"no delivery report for {topic}"
    return outcome[0]


def first_poll(config: dict, topic: str, group: str) -> tuple[bytes | None, KafkaError | None]:
    """The first record (or error) a consumer in ``group`` gets from ``topic``."""
    consumer = Consumer({**config, "group.id": group, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    try:
        for _ in range(60):
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                return None, msg.error()
            return msg.value(), None
        return None, None
    finally:
        consumer.close()


def metadata_answered(config: dict) -> bool:
    try:
        AdminClient({**config, "log_level": 0}).list_topics(timeout=5)
    except KafkaException:
        return False
    return True


def test_a_client_without_valid_credentials_is_refused(access):
    bootstrap = access.settings.kafka_bootstrap
    assert not metadata_answered({"bootstrap.servers": bootstrap})  # PLAINTEXT, no SASL
    wrong = access.config(access.consumer, **{"sasl.password": "not-the-password"})
    assert not metadata_answered(wrong)
    assert metadata_answered(access.config(access.consumer))


def test_a_consumer_reads_its_own_deliveries_and_nothing_else(access):
    as_the_bus(access.settings, delivery_topic(access.consumer, "res"), b"mine")
    as_the_bus(access.settings, delivery_topic(access.other, "res"), b"theirs")
    config = access.config(access.consumer)
    group = f"{access.consumer}.reader"
    value, error = first_poll(config, delivery_topic(access.consumer, "res"), group)
    assert (value, error) == (b"mine", None)
    for topic in (delivery_topic(access.other, "res"), source_topic(access.provider, "res"), DLQ):
        _, error = first_poll(config, topic, f"{access.consumer}.snoop")
        assert error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, topic
    # Its groups live under its own prefix: another name is refused.
    _, error = first_poll(config, delivery_topic(access.consumer, "res"), "reader")
    assert error is not None and error.code() == KafkaError.GROUP_AUTHORIZATION_FAILED


def test_a_provider_writes_its_own_source_topics_only(access):
    config = access.config(access.provider)
    assert produce(config, source_topic(access.provider, "res"), b"ok") is None
    for topic in (source_topic(access.other, "res"), delivery_topic(access.consumer, "res")):
        error = produce(config, topic, b"forged")
        assert error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, topic
    # ... and reads nothing raw, its own topics included.
    _, error = first_poll(config, source_topic(access.provider, "res"), f"{access.provider}.g")
    assert error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_a_removed_department_can_no_longer_connect_and_its_acls_are_gone(access):
    config = access.config(access.consumer)
    assert metadata_answered(config)
    remove_department(access.plane.store, AUTHORITY, access.consumer)
    assert access.sync.owed() == 1  # owed to Kafka, not applied within the request
    assert access.sync.apply_owed() == 1
    assert not metadata_answered(config)
    admin = make_admin(access.settings)
    left = admin.describe_acls(acls_of(account_name(access.consumer)), request_timeout=10)
    assert left.result() == []
    assert metadata_answered(access.config(access.other))  # the others are untouched


def test_acls_no_department_should_have_are_removed_at_start(access):
    admin = make_admin(access.settings)
    name = account_name(access.consumer)
    # Kafka holds more than the store says: ACLs granted by hand.
    foreign = department_acls(name, access.other)
    for future in admin.create_acls(list(foreign), request_timeout=10).values():
        future.result()
    restarted = KafkaAccountSync(access.plane.store, access.settings)
    restarted.apply_owed()
    present = admin.describe_acls(acls_of(name), request_timeout=10).result()
    assert set(present) == department_acls(name, access.consumer)


def test_the_department_config_from_the_api_reads_avro_deliveries(access, registry_url):
    store = access.plane.store
    bootstrap_authority(store, ADMIN_TOKEN)
    reader = add_user(store, AUTHORITY, "cons-reader", access.consumer, Role.CONSUMER).token
    stranger = add_user(store, AUTHORITY, "other-reader", access.other, Role.CONSUMER).token
    app = create_control_app(access.plane)
    app.include_router(departments_router(access.sync))
    api = TestClient(app)
    path = f"/departments/{access.consumer}/kafka-config"
    refused = api.get(path, headers={"Authorization": f"Bearer {stranger}"})
    assert refused.status_code == 403 and access.consumer in refused.json()["detail"]
    answer = api.get(path, headers={"Authorization": f"Bearer {reader}"})
    assert answer.status_code == 200
    config = answer.json()
    assert set(config) == {
        "bootstrap.servers",
        "security.protocol",
        "sasl.mechanism",
        "sasl.username",
        "sasl.password",
    }
    assert config == api.get(path, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}).json()

    topic = delivery_topic(access.consumer, "res")
    schema = json.dumps(
        {"type": "record", "name": "Delivery", "fields": [{"name": "n", "type": "long"}]}
    )
    # This registry signs in the bus alone; a department's own registry sign-in (user:token)
    # is tested against the catalog service in test_security.
    auth = access.settings.registry_auth
    registry = SchemaRegistryClient({"url": registry_url, "basic.auth.user.info": auth})
    value = AvroSerializer(registry, schema)(
        {"n": 42}, SerializationContext(topic, MessageField.VALUE)
    )
    as_the_bus(access.settings, topic, value)

    consumer = Consumer(
        {**config, "group.id": f"{access.consumer}.avro", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    decode = AvroDeserializer(registry)
    got: list[dict] = []

    def read() -> bool:
        msg = consumer.poll(0.5)
        if msg is not None and not msg.error():
            got.append(decode(msg.value(), SerializationContext(topic, MessageField.VALUE)))
        return bool(got)

    try:
        wait_until(read, 30, "the avro delivery")
    finally:
        consumer.close()
    assert got == [{"n": 42}]


def test_the_catalog_service_opens_and_closes_a_departments_kafka_access(bus):
    env = start_catalog_service(bus)
    code = f"newdept_{bus.tag}"
    added = govbus(
        env, ADMIN_TOKEN, "department", "add", code, "--name-zh", "新", "--name-en", "New"
    )
    assert f"dept.{code}" in added
    config = json.loads(govbus(env, ADMIN_TOKEN, "kafka-config", "--department", code))
    assert config["sasl.username"] == f"dept.{code}"
    wait_until(lambda: metadata_answered(config), 30, "the new department's account")
    # The departments imported at the first start have theirs as well.
    imported = f"edu_{bus.tag}"
    edu = json.loads(govbus(env, ADMIN_TOKEN, "kafka-config", "--department", imported))
    wait_until(lambda: metadata_answered(edu), 30, "an imported department's account")

    # A system account through the CLI: added, listed, rotated, each config working in turn.
    added = govbus(env, ADMIN_TOKEN, "department", "account", "add", code, "etl")
    assert f"dept.{code}.etl" in added
    listed = govbus(env, ADMIN_TOKEN, "department", "account", "list", code)
    assert listed.split()[:2] == ["etl", f"dept.{code}.etl"]
    etl_args = ("kafka-config", "--department", code, "--account", "etl")
    etl = json.loads(govbus(env, ADMIN_TOKEN, *etl_args))
    assert etl["sasl.username"] == f"dept.{code}.etl"
    wait_until(lambda: metadata_answered(etl), 30, "the system account")
    govbus(env, ADMIN_TOKEN, "department", "account", "rotate", code, "etl")
    rotated = json.loads(govbus(env, ADMIN_TOKEN, *etl_args))
    wait_until(lambda: not metadata_answered(etl), 30, "the rotated-out password refused")
    assert metadata_answered(rotated)

    govbus(env, ADMIN_TOKEN, "department", "remove", code)
    wait_until(lambda: not metadata_answered(config), 30, "the removed account refused")
    wait_until(lambda: not metadata_answered(rotated), 30, "its system account refused")
    assert metadata_answered(edu)


def test_java_clients_connect_with_the_rendered_properties_and_see_their_own_topics(
    access, tmp_path
):
    # What a Kafka Connect worker or Kafka's CLI tools (--command-config) are given.
    name = account_name(access.consumer)
    password = access.config(access.consumer)["sasl.password"]
    props = write_java_client_properties(access.settings, tmp_path / "c.properties", name, password)
    listed = subprocess.run(
        ["java", "-cp", f"{KAFKA_LIBS}/*", str(LIST_TOPICS), str(props)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr[-2000:]
    # Kafka lists only the topics the principal may describe: its own deliveries.
    assert listed.stdout.split() == [delivery_topic(access.consumer, "res")]


def test_system_accounts_connect_as_their_department_and_come_and_go_through_the_api(access):
    store = access.plane.store
    bootstrap_authority(store, ADMIN_TOKEN)
    own = add_user(store, AUTHORITY, "cons-ops", access.consumer, Role.CONSUMER).token
    provider_user = add_user(store, AUTHORITY, "prov-ops", access.provider, Role.PROVIDER).token
    stranger = add_user(store, AUTHORITY, "other-ops", access.other, Role.CONSUMER).token
    app = create_control_app(access.plane)
    app.include_router(departments_router(access.sync))
    api = TestClient(app)

    def call(method: str, path: str, token: str, **kw):
        return api.request(method, path, headers={"Authorization": f"Bearer {token}"}, **kw)

    base = f"/departments/{access.consumer}/accounts"
    # Another department's user may neither add, list nor read the consumer's accounts.
    refused = call("POST", base, stranger, json={"name": "etl"})
    assert refused.status_code == 403 and access.consumer in refused.json()["detail"]
    assert call("POST", base, own, json={"name": "etl.x"}).status_code == 422
    made = call("POST", base, own, json={"name": "warehouse"})
    assert made.status_code == 201, made.text
    assert made.json()["principal"] == f"dept.{access.consumer}.warehouse"
    assert call("POST", base, own, json={"name": "warehouse"}).status_code == 409
    assert call("GET", base, stranger).status_code == 403
    assert [a["name"] for a in call("GET", base, ADMIN_TOKEN).json()] == ["warehouse"]
    config_path = f"/departments/{access.consumer}/kafka-config?account=warehouse"
    assert call("GET", config_path, stranger).status_code == 403
    missing = call("GET", f"/departments/{access.consumer}/kafka-config?account=nope", own)
    assert missing.status_code == 404
    config = call("GET", config_path, own).json()
    assert config["sasl.username"] == f"dept.{access.consumer}.warehouse"
    assert config["sasl.password"] != access.config(access.consumer)["sasl.password"]
    assert access.sync.apply_owed() == 1

    # It may do what its department may, and nothing more.
    as_the_bus(access.settings, delivery_topic(access.consumer, "res"), b"mine")
    group = f"{access.consumer}.warehouse"
    assert first_poll(config, delivery_topic(access.consumer, "res"), group) == (b"mine", None)
    _, error = first_poll(config, delivery_topic(access.other, "res"), group)
    assert error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    prov_base = f"/departments/{access.provider}/accounts"
    assert call("POST", prov_base, provider_user, json={"name": "etl"}).status_code == 201
    assert access.sync.apply_owed() == 1
    etl = call("GET", f"/departments/{access.provider}/kafka-config?account=etl", ADMIN_TOKEN)
    assert produce(etl.json(), source_topic(access.provider, "res"), b"ok") is None
    error = produce(etl.json(), source_topic(access.other, "res"), b"forged")
    assert error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED

    # A rotation replaces the password: the old one stops working once applied.
    rotated = call("POST", f"{base}/warehouse/rotate", own)
    assert rotated.status_code == 200 and rotated.json()["generation"] == 1
    assert call("POST", f"{base}/warehouse/rotate", stranger).status_code == 403
    new_config = call("GET", config_path, own).json()
    assert new_config["sasl.password"] != config["sasl.password"]
    assert access.sync.apply_owed() == 1
    assert not metadata_answered(config)
    assert metadata_answered(new_config)

    # A removed account stops working; the department's own account does not.
    assert call("DELETE", f"{base}/warehouse", stranger).status_code == 403
    assert call("DELETE", f"{base}/warehouse", own).status_code == 204
    assert call("DELETE", f"{base}/warehouse", own).status_code == 404
    assert access.sync.apply_owed() == 1
    assert not metadata_answered(new_config)
    admin = make_admin(access.settings)
    gone = admin.describe_acls(acls_of(f"dept.{access.consumer}.warehouse"), request_timeout=10)
    assert gone.result() == []
    assert metadata_answered(access.config(access.consumer))


def test_removing_a_department_removes_its_system_accounts(access):
    store = access.plane.store
    add_account(store, AUTHORITY, access.consumer, "reader")
    assert access.sync.apply_owed() == 1
    config = access.sync.client_config(access.consumer, "reader")
    assert metadata_answered(config)
    remove_department(store, AUTHORITY, access.consumer)
    assert access.sync.apply_owed() == 2
    assert not metadata_answered(config)
