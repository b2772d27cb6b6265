"""Client security settings, their Java rendering, and what a department account may do."""

from __future__ import annotations

import os
import stat

import pytest
from confluent_kafka.admin import AclOperation, ResourceType
from sqlalchemy import create_engine, text

from services.catalog import kafka_accounts
from services.catalog.control_store import ControlStore
from services.catalog.departments import put_department
from services.catalog.kafka_account_sync import account_secret
from services.catalog.kafka_acls import (
    account_name,
    account_password,
    department_acls,
    system_name_problem,
    system_of,
)
from services.catalog.system_accounts import (
    add_account,
    list_accounts,
    remove_account,
    rotate_account,
)
from services.catalog.workflow import Actor, Conflict, Forbidden, NotFound, Refused, Role
from services.common.catalog import Department
from services.common.kafka_security import java_client_properties, write_java_client_properties
from services.common.settings import ConfigError, Settings


def secured(tmp_path, **values) -> Settings:
    password_file = tmp_path / "service.password"
    password_file.write_text("s3cret\n", encoding="utf-8")
    return Settings(kafka_password_file=password_file, data_dir=tmp_path / "data", **values)


def test_every_client_config_carries_the_service_principal_from_the_password_file(tmp_path):
    config = secured(tmp_path, kafka_bootstrap="kafka:9092").kafka_config(**{"group.id": "g"})
    assert config == {
        "bootstrap.servers": "kafka:9092",
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "govbus",
        "sasl.password": "s3cret",
        "group.id": "g",
    }


def test_a_password_in_the_environment_wins_and_tls_adds_the_ca(tmp_path):
    settings = secured(
        tmp_path,
        kafka_password="given",
        kafka_security_protocol="SASL_SSL",
        kafka_ssl_ca_location=tmp_path / "ca.pem",
    )
    security = settings.kafka_security()
    assert security["sasl.password"] == "given"
    assert security["ssl.ca.location"] == str(tmp_path / "ca.pem")
    assert "given" not in repr(settings)


def test_a_missing_password_file_is_refused_naming_the_setting(tmp_path):
    settings = Settings(kafka_password_file=tmp_path / "absent")
    with pytest.raises(ConfigError, match="GOVBUS_KAFKA_PASSWORD_FILE"):
        settings.kafka_config()


def test_plaintext_clusters_get_no_sasl_keys(tmp_path):
    settings = Settings(kafka_security_protocol="PLAINTEXT", kafka_password_file=tmp_path / "x")
    assert settings.kafka_config() == {
        "bootstrap.servers": "localhost:9092",
        "security.protocol": "PLAINTEXT",
    }


def test_java_properties_say_the_same_as_the_librdkafka_config(tmp_path):
    settings = secured(tmp_path, kafka_password='pa"ss\\')
    props = java_client_properties(settings)
    assert props["security.protocol"] == "SASL_PLAINTEXT"
    assert props["sasl.mechanism"] == "SCRAM-SHA-512"
    assert props["sasl.jaas.config"] == (
        "org.apache.kafka.common.security.scram.ScramLoginModule required"
        ' username="govbus" password="pa\\"ss\\\\";'
    )
    dept = java_client_properties(settings, "dept.edu", "pw")
    assert 'username="dept.edu" password="pw"' in dept["sasl.jaas.config"]


def test_the_properties_file_is_private_from_its_creation(tmp_path):
    old = os.umask(0)  # even where files are created world-readable by default
    try:
        path = write_java_client_properties(secured(tmp_path), tmp_path / "client.properties")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text(encoding="utf-8")
    assert "bootstrap.servers=localhost:9092\n" in text
    assert 'password="s3cret";' in text


def test_the_account_secret_is_generated_once_into_a_private_file(tmp_path):
    settings = Settings(data_dir=tmp_path)
    old = os.umask(0)
    try:
        first = account_secret(settings)
    finally:
        os.umask(old)
    assert account_secret(settings) == first and len(first) >= 32
    path = tmp_path / "kafka-accounts.secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert account_secret(Settings(data_dir=tmp_path, kafka_account_secret="set")) == b"set"


def test_department_passwords_are_derived_per_account_and_secret():
    name = account_name("edu")
    assert account_password(b"a", name) == account_password(b"a", name)
    assert account_password(b"a", name) != account_password(b"b", name)
    assert account_password(b"a", name) != account_password(b"a", account_name("psb"))


def test_a_department_may_write_its_sources_and_read_its_deliveries_only():
    acls = department_acls(account_name("ps"), "ps")
    assert {a.principal for a in acls} == {"User:dept.ps"}
    by_kind = {(a.restype, a.name, a.operation) for a in acls}
    assert by_kind == {
        (ResourceType.TOPIC, "gov.ps.", AclOperation.WRITE),
        (ResourceType.TOPIC, "gov.ps.", AclOperation.DESCRIBE),
        (ResourceType.TOPIC, "deliver.ps.", AclOperation.READ),
        (ResourceType.TOPIC, "deliver.ps.", AclOperation.DESCRIBE),
        (ResourceType.GROUP, "ps.", AclOperation.READ),
        (ResourceType.GROUP, "ps.", AclOperation.DESCRIBE),
    }
    # The prefixes end with a dot: department "ps" gets nothing of "psb".
    assert not any("psb".startswith(a.name) for a in acls)


def test_system_accounts_are_principals_under_their_department():
    assert account_name("ps", "etl") == "dept.ps.etl"
    assert system_of("dept.ps.etl", "ps") == "etl"
    assert system_of("dept.ps", "ps") is None
    acls = department_acls(account_name("ps", "etl"), "ps")
    assert {a.principal for a in acls} == {"User:dept.ps.etl"}
    assert {a.name for a in acls} == {"gov.ps.", "deliver.ps.", "ps."}


@pytest.mark.parametrize("bad", ["", "Etl", "etl.x", "1etl", "a" * 33, "etl/x", "etl x"])
def test_a_system_account_name_holds_no_dot_or_other_surprise(bad):
    # Without a dot, dept.<code>.<name> can never be another department's principal.
    assert system_name_problem(bad) is not None
    assert system_name_problem("etl_host-2") is None


def test_a_rotation_derives_a_new_password_and_generation_zero_keeps_the_old_one():
    name = account_name("edu", "etl")
    first = account_password(b"a", name)
    assert account_password(b"a", name, 0) == first
    assert len({first, account_password(b"a", name, 1), account_password(b"a", name, 2)}) == 3


def test_accounts_owed_in_the_store_follow_adds_removals_and_rotations(tmp_path):
    store = ControlStore(f"sqlite:///{tmp_path / 'control.db'}")
    authority = Actor(user="admin", department="authority", role=Role.AUTHORITY)
    put_department(store, authority, "edu", Department(name_zh="教育", name_en="Education"))
    put_department(store, authority, "psb", Department(name_zh="公安", name_en="Police"))
    own = Actor(user="u", department="edu", role=Role.CONSUMER)
    stranger = Actor(user="s", department="psb", role=Role.PROVIDER)
    assert add_account(store, own, "edu", "etl") == "dept.edu.etl"
    with pytest.raises(Forbidden):
        add_account(store, stranger, "edu", "etl2")
    with pytest.raises(Forbidden):
        list_accounts(store, stranger, "edu")
    with pytest.raises(Conflict):
        add_account(store, authority, "edu", "etl")
    with pytest.raises(Refused):
        add_account(store, own, "edu", "etl.x")
    with pytest.raises(NotFound):
        add_account(store, authority, "nope", "etl")
    assert rotate_account(store, own, "edu", "etl") == 1
    assert list_accounts(store, own, "edu") == [
        {"name": "etl", "principal": "dept.edu.etl", "generation": 1}
    ]
    # Renaming the department keeps the system account and its rotated password.
    put_department(store, authority, "edu", Department(name_zh="教育", name_en="Edu"))
    assert list_accounts(store, authority, "edu")[0]["generation"] == 1
    remove_account(store, own, "edu", "etl")
    assert list_accounts(store, own, "edu") == []
    with pytest.raises(NotFound):
        rotate_account(store, own, "edu", "etl")
    with store.reading() as conn:
        owed = {a.name: a for a in kafka_accounts.pending(conn)}
    assert owed["dept.edu.etl"].removed and owed["dept.edu.etl"].generation == 1
    store.close()


def test_a_store_from_before_rotations_gets_the_generation_column(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE kafka_accounts (name VARCHAR PRIMARY KEY,"
                " department VARCHAR NOT NULL, removed BOOLEAN NOT NULL, applied BOOLEAN NOT NULL)"
            )
        )
        conn.execute(text("INSERT INTO kafka_accounts VALUES ('dept.edu', 'edu', 0, 1)"))
    engine.dispose()
    store = ControlStore(url)
    with store.reading() as conn:
        assert kafka_accounts.find(conn, "dept.edu").generation == 0
    store.close()
