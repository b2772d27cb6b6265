"""The registry served for real by uvicorn, driven by confluent-kafka's own client and Avro serde.

No broker is needed: only HTTP between the client and the registry.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from services.catalog.registry_auth import service_login
from services.catalog.registry_server import build_registry_server
from services.catalog.registry_store import SchemaRegistryStore
from services.common.settings import Settings

TOPIC = "gov.psb.resident_population"
SUBJECT = f"{TOPIC}-value"
RESIDENT = json.dumps(
    {
        "type": "record",
        "name": "Resident",
        "namespace": "gov.psb",
        "fields": [
            {"name": "id_card", "type": "string"},
            {"name": "name", "type": "string"},
            {"name": "age", "type": "int"},
            {"name": "region", "type": ["null", "string"], "default": None},
        ],
    }
)
READY_TIMEOUT_S = 15.0
SERVICE = Settings(registry_password="test-registry-password")

StartRegistry = Callable[[Path], str]


def _wait_until_healthy(url: str, thread: threading.Thread) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if not thread.is_alive():
            raise RuntimeError("registry server thread exited during startup")
        try:
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"registry at {url} not healthy within {READY_TIMEOUT_S}s")


def signed_in(url: str) -> SchemaRegistryClient:
    """confluent-kafka's client, signed in as the bus's service user."""
    return SchemaRegistryClient({"url": url, "basic.auth.user.info": SERVICE.registry_auth})


@pytest.fixture
def start_registry() -> Iterator[StartRegistry]:
    """Factory: serve a registry over a sqlite file on a free port; returns its URL."""
    running = []

    def start(db_file: Path) -> str:
        store = SchemaRegistryStore(f"sqlite:///{db_file}")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))  # the kernel picks a free port; no probe-then-bind race
        login = service_login(SERVICE)
        server = build_registry_server(store, "127.0.0.1", sock.getsockname()[1], login)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        running.append((server, thread, store, sock))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        _wait_until_healthy(url, thread)
        return url

    yield start
    for server, thread, store, sock in running:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        store.close()


@pytest.fixture
def registry_url(start_registry: StartRegistry, tmp_path: Path) -> str:
    return start_registry(tmp_path / "registry.db")


@pytest.fixture
def client(registry_url: str) -> Iterator[SchemaRegistryClient]:
    with signed_in(registry_url) as sr_client:
        yield sr_client


def test_register_then_read_back_by_id_and_latest(
    client: SchemaRegistryClient, registry_url: str
) -> None:
    schema_id = client.register_schema(SUBJECT, Schema(RESIDENT, "AVRO"))
    assert client.register_schema(SUBJECT, Schema(RESIDENT, "AVRO")) == schema_id
    # A fresh client has no cache, so this really asks the registry.
    with signed_in(registry_url) as fresh:
        fetched = fresh.get_schema(schema_id)
        by_subject = fresh.get_schema(schema_id, subject_name=SUBJECT)
        latest = fresh.get_latest_version(SUBJECT)
    assert json.loads(fetched.schema_str) == json.loads(RESIDENT)
    assert fetched.schema_type == "AVRO"
    assert by_subject.schema_str == fetched.schema_str
    assert (latest.subject, latest.version, latest.schema_id) == (SUBJECT, 1, schema_id)
    assert json.loads(latest.schema.schema_str) == json.loads(RESIDENT)


def test_lookup_subjects_and_versions(client: SchemaRegistryClient) -> None:
    schema_id = client.register_schema(SUBJECT, Schema(RESIDENT, "AVRO"))
    assert client.register_schema(f"{TOPIC}-key", Schema(RESIDENT, "AVRO")) == schema_id
    found = client.lookup_schema(SUBJECT, Schema(RESIDENT, "AVRO"))
    assert (found.subject, found.version, found.schema_id) == (SUBJECT, 1, schema_id)
    assert client.get_subjects() == [f"{TOPIC}-key", SUBJECT]
    assert client.get_versions(SUBJECT) == [1]
    assert client.get_version(SUBJECT, 1).schema_id == schema_id
    assert sorted(client.get_subjects_by_schema_id(schema_id)) == [f"{TOPIC}-key", SUBJECT]
    pairs = {(v.subject, v.version) for v in client.get_schema_versions(schema_id)}
    assert pairs == {(SUBJECT, 1), (f"{TOPIC}-key", 1)}
    assert client.get_schema_types() == ["AVRO"]


def test_errors_reach_the_client_with_confluent_codes(client: SchemaRegistryClient) -> None:
    with pytest.raises(SchemaRegistryError) as missing:
        client.get_schema(4242)
    assert (missing.value.http_status_code, missing.value.error_code) == (404, 40403)
    with pytest.raises(SchemaRegistryError) as invalid:
        client.register_schema(SUBJECT, Schema('{"type": "recrod"}', "AVRO"))
    assert (invalid.value.http_status_code, invalid.value.error_code) == (422, 42201)
    with pytest.raises(SchemaRegistryError) as no_subject:
        client.lookup_schema("nobody-value", Schema(RESIDENT, "AVRO"))
    assert no_subject.value.error_code == 40401


def test_compatibility_and_delete(client: SchemaRegistryClient) -> None:
    client.register_schema(SUBJECT, Schema(RESIDENT, "AVRO"))
    assert client.get_compatibility() == "BACKWARD"
    assert client.set_compatibility(SUBJECT, "FULL") == {"compatibility": "FULL"}
    assert client.get_compatibility(SUBJECT) == "FULL"
    assert str(client.get_config(SUBJECT).compatibility_level) == "FULL"
    assert client.delete_subject(SUBJECT) == [1]
    assert client.get_subjects() == []
    assert client.get_subjects(deleted=True) == [SUBJECT]


def test_avro_serde_round_trip(client: SchemaRegistryClient) -> None:
    ctx = SerializationContext(TOPIC, MessageField.VALUE)
    record = {"id_card": "340104199001011234", "name": "张三", "age": 34, "region": "340104"}
    payload = AvroSerializer(client, RESIDENT)(record, ctx)
    schema_id = client.get_latest_version(SUBJECT).schema_id
    assert payload[0] == 0 and int.from_bytes(payload[1:5], "big") == schema_id
    assert AvroDeserializer(client)(payload, ctx) == record
    # Consumers that pin the registered schema use get_latest_version instead of registering.
    pinned = AvroSerializer(
        client, RESIDENT, conf={"auto.register.schemas": False, "use.latest.version": True}
    )
    assert AvroDeserializer(client)(pinned(record, ctx), ctx) == record


def test_ids_survive_a_restart(start_registry: StartRegistry, tmp_path: Path) -> None:
    db_file = tmp_path / "nested" / "registry.db"
    with signed_in(start_registry(db_file)) as first:
        schema_id = first.register_schema(SUBJECT, Schema(RESIDENT, "AVRO"))
        first.set_compatibility(SUBJECT, "NONE")
    store = SchemaRegistryStore(f"sqlite:///{db_file}")
    try:
        assert store.get_version(SUBJECT, "latest").schema.id == schema_id
    finally:
        store.close()
    with signed_in(start_registry(db_file)) as second:
        assert second.register_schema(SUBJECT, Schema(RESIDENT, "AVRO")) == schema_id
        assert second.get_latest_version(SUBJECT).schema_id == schema_id
        assert second.get_compatibility(SUBJECT) == "NONE"


def _resident(*extra: dict, drop: str = "") -> Schema:
    fields = [f for f in json.loads(RESIDENT)["fields"] if f["name"] != drop]
    return Schema(json.dumps({**json.loads(RESIDENT), "fields": [*fields, *extra]}), "AVRO")


PHONE_DEFAULTED = {"name": "phone", "type": ["null", "string"], "default": None}
PHONE_REQUIRED = {"name": "phone", "type": "string"}


def test_compatible_evolution_registers(client: SchemaRegistryClient) -> None:
    subject = "compat-evolves-value"
    first = client.register_schema(subject, _resident())
    second = client.register_schema(subject, _resident(PHONE_DEFAULTED))
    assert second != first
    assert client.get_latest_version(subject).version == 2


def test_incompatible_schema_is_refused_with_409_naming_the_field(
    client: SchemaRegistryClient,
) -> None:
    subject = "compat-refused-value"
    client.register_schema(subject, _resident())
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema(subject, _resident(PHONE_REQUIRED))
    assert (refused.value.http_status_code, refused.value.error_code) == (409, 409)
    assert "'phone'" in refused.value.error_message
    assert "READER_FIELD_MISSING_DEFAULT_VALUE" in refused.value.error_message
    assert client.get_versions(subject) == [1]


def test_full_refuses_a_change_that_is_only_backward_compatible(
    client: SchemaRegistryClient,
) -> None:
    backward_only = _resident(drop="name")  # old readers need "name", which has no default
    plain, full = "compat-backward-value", "compat-full-value"
    for subject in (plain, full):
        client.register_schema(subject, _resident())
    assert client.set_compatibility(full, "FULL") == {"compatibility": "FULL"}
    assert client.register_schema(plain, backward_only) > 0
    with pytest.raises(SchemaRegistryError) as refused:
        client.register_schema(full, backward_only)
    assert (refused.value.http_status_code, refused.value.error_code) == (409, 409)
    assert "'name'" in refused.value.error_message and "old schema" in refused.value.error_message


def test_test_compatibility_answers_true_and_false(client: SchemaRegistryClient) -> None:
    subject = "compat-test-value"
    client.register_schema(subject, _resident())
    assert client.test_compatibility(subject, _resident(PHONE_DEFAULTED)) is True
    assert client.test_compatibility(subject, _resident(PHONE_REQUIRED)) is False
    assert client.test_compatibility(subject, _resident(PHONE_REQUIRED), version=1) is False
    assert client.test_compatibility_all_versions(subject, _resident(drop="age")) is True
    client.set_compatibility(subject, "FORWARD")
    assert client.test_compatibility(subject, _resident(drop="age"), verbose=True) is False


CODE_DEFAULTED = {"name": "code", "type": "string", "default": ""}
CODE_REQUIRED = {"name": "code", "type": "string"}
# Evolutions from the resident schema: (history after the first version, the last one).
EVOLUTIONS = {
    "add_with_default": ([], _resident(PHONE_DEFAULTED)),
    "add_required": ([], _resident(PHONE_REQUIRED)),
    "drop_required": ([], _resident(drop="name")),
    # Fine against version 2 (which has the field), not against version 1 (which lacks it).
    "require_after_default": ([_resident(CODE_DEFAULTED)], _resident(CODE_REQUIRED)),
}
ACCEPTED = {  # mode -> evolutions it lets through
    "NONE": set(EVOLUTIONS),
    "BACKWARD": {"add_with_default", "drop_required", "require_after_default"},
    "BACKWARD_TRANSITIVE": {"add_with_default", "drop_required"},
    "FORWARD": {"add_with_default", "add_required", "require_after_default"},
    "FORWARD_TRANSITIVE": {"add_with_default", "add_required", "require_after_default"},
    "FULL": {"add_with_default", "require_after_default"},
    "FULL_TRANSITIVE": {"add_with_default"},
}


@pytest.mark.parametrize("mode", sorted(ACCEPTED))
def test_each_mode_accepts_and_refuses_evolutions_through_the_confluent_client(
    client: SchemaRegistryClient, mode: str
) -> None:
    for name, (history, last) in EVOLUTIONS.items():
        subject = f"modes-{mode.lower()}-{name}-value"
        client.register_schema(subject, _resident())
        client.set_compatibility(subject, mode)
        for schema in history:
            client.register_schema(subject, schema)
        expected = name in ACCEPTED[mode]
        if not history:  # test_compatibility checks against one version (latest), as Confluent
            assert client.test_compatibility(subject, last) is expected, (mode, name)
        if expected:
            assert client.register_schema(subject, last) > 0
        else:
            with pytest.raises(SchemaRegistryError) as refused:
                client.register_schema(subject, last)
            assert refused.value.http_status_code == 409, (mode, name)
