"""The Debezium adapter's pure parts: worker properties, connector config, change mapping."""

from __future__ import annotations

import stat

import pytest

from services.common.config_files import file_records
from services.common.settings import REPO_ROOT, Settings, load_settings
from services.common.store_tables import source_version
from services.ingest.adapters.config import parse_adapter
from services.ingest.adapters.connect_worker import main as connect_worker_main
from services.ingest.adapters.connect_worker import worker_properties
from services.ingest.adapters.debezium import DebeziumAdapter, connector_config
from services.ingest.adapters.debezium_mapping import Incompatible, to_change
from services.ingest.adapters.provider_tables import change_sql, table_ddl
from services.ingest.publisher import Change, source_event_id
from services.ingest.validation import Problem

DEPLOY = REPO_ROOT / "deploy"
ADAPTER = {
    "kind": "debezium",
    "resource": "samr.enterprise_registration",
    "connection": {"host": "127.0.0.1", "port": 5432, "database": "qydj", "user": "cdc"},
    "table": "qydj.enterprise",
    "key": ["uscc"],
    "renames": {"uscc": "credit_code"},
}


@pytest.fixture(scope="module")
def record():
    resources, _ = file_records(DEPLOY / "catalog", DEPLOY / "grants", REPO_ROOT / "schemas/avro")
    return next(r for r in resources if r.resource_id == "samr.enterprise_registration")


def row(**changes):
    base = {
        "uscc": "91340100MA2N0XYZ1A",
        "name": "合肥某某有限公司",
        "legal_rep_name": "张三",
        "legal_rep_id_number": "340104199001011234",
        "enterprise_type": "有限责任公司",
        "registered_capital": 100.0,
        "established_date": "2020-01-01",
        "region_code": "340100",
        "address": "合肥市",
        "industry_code": "C36",
        "status": "存续",
        "updated_at": 1_780_000_000_000,
    }
    return {**base, **changes}


def debezium(op, before=None, after=None, snapshot="false", lsn=1234, tx=77):
    source = {"lsn": lsn, "txId": tx, "snapshot": snapshot, "ts_ms": 1_780_000_000_123}
    return {"op": op, "before": before, "after": after, "source": {**source, "db": "qydj"}}


def test_sasl_settings_reach_every_client_of_the_worker(tmp_path) -> None:
    password_file = tmp_path / "service.password"
    password_file.write_text('p"w\n', encoding="utf-8")
    settings = Settings(
        kafka_bootstrap="broker:9092", connect_group="cg", kafka_password_file=password_file
    )
    props = worker_properties(settings)
    assert props["config.storage.topic"] == "cg.configs"
    assert props["value.converter"] == "org.apache.kafka.connect.json.JsonConverter"
    jaas = (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        'username="govbus" password="p\\"w";'
    )
    for prefix in ("", "producer.", "consumer.", "admin."):
        assert props[f"{prefix}bootstrap.servers"] == "broker:9092"
        assert props[f"{prefix}security.protocol"] == "SASL_PLAINTEXT"
        assert props[f"{prefix}sasl.mechanism"] == "SCRAM-SHA-512"
        assert props[f"{prefix}sasl.jaas.config"] == jaas


def test_the_worker_file_is_private(tmp_path, monkeypatch) -> None:
    password_file = tmp_path / "service.password"
    password_file.write_text("s3cret\n", encoding="utf-8")
    monkeypatch.setenv("GOVBUS_KAFKA_PASSWORD_FILE", str(password_file))
    load_settings.cache_clear()
    try:
        assert connect_worker_main([str(tmp_path / "worker.properties")]) == 0
    finally:
        load_settings.cache_clear()
    path = tmp_path / "worker.properties"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    lines = path.read_text(encoding="utf-8").splitlines()
    assert any(line.startswith("consumer.sasl.jaas.config=") for line in lines)
    assert any(line.endswith('password="s3cret";') for line in lines)


def test_connector_config_from_an_adapter_file() -> None:
    adapter = parse_adapter("samr-qy", ADAPTER, "samr-qy.yaml")
    config = connector_config("samr-qy", adapter)
    assert config["plugin.name"] == "pgoutput"
    assert config["snapshot.mode"] == "initial"
    assert config["poll.interval.ms"] == "50"
    assert config["slot.name"] == config["publication.name"] == "govbus_samr_qy"
    assert config["message.key.columns"] == "qydj.enterprise:uscc"
    assert config["topic.creation.default.replication.factor"] == "1"


def test_adapter_file_errors_name_the_field() -> None:
    with pytest.raises(Exception, match="table"):
        parse_adapter("x", {**ADAPTER, "table": "NoSchema"}, "x.yaml")


def test_streamed_and_snapshot_changes_get_positions_and_stable_event_ids(record) -> None:
    adapter = DebeziumAdapter.model_validate(ADAPTER)
    schema = record.value_schema
    streamed = to_change(
        {"uscc": "K"}, debezium("c", after=row()), adapter, record.resource, schema
    )
    assert isinstance(streamed, Change)
    assert streamed.after["credit_code"] == "91340100MA2N0XYZ1A"
    assert streamed.position == "lsn:1234:tx:77" and not streamed.snapshot
    replayed = to_change(
        {"uscc": "K"}, debezium("c", after=row()), adapter, record.resource, schema
    )
    later = to_change(
        {"uscc": "K"}, debezium("u", after=row(), lsn=1300), adapter, record.resource, schema
    )
    assert source_event_id(replayed) == source_event_id(streamed) != source_event_id(later)
    snap = to_change(
        {"uscc": "K"}, debezium("r", after=row(), snapshot="true"), adapter, record.resource, schema
    )
    assert snap.snapshot and snap.position.startswith("lsn:1234:snapshot:")
    # A change at the snapshot's own LSN was not in the snapshot: it is the newer version.
    assert source_version(snap.position) < source_version(streamed.position)
    assert source_version(snap.position) < source_version(later.position)


def test_a_type_change_or_a_new_key_halts_naming_table_and_column(record) -> None:
    adapter = DebeziumAdapter.model_validate(ADAPTER)
    schema = record.value_schema
    narrowed = debezium("u", after=row(registered_capital="100"))
    halt = to_change({"uscc": "K"}, narrowed, adapter, record.resource, schema)
    assert isinstance(halt, Incompatible)
    assert "qydj.enterprise" in str(halt) and "registered_capital" in str(halt)
    rekeyed = to_change({"name": "x"}, debezium("c", after=row()), adapter, record.resource, schema)
    assert isinstance(rekeyed, Incompatible) and "credit_code" in rekeyed.column


def test_a_delete_without_the_full_row_is_a_bad_row(record) -> None:
    adapter = DebeziumAdapter.model_validate(ADAPTER)
    partial = debezium("d", before={"uscc": "K"})
    problem = to_change({"uscc": "K"}, partial, adapter, record.resource, record.value_schema)
    assert isinstance(problem, Problem) and "REPLICA IDENTITY FULL" in problem.detail


def test_source_table_sql(record) -> None:
    ddl = table_ddl("qydj.enterprise", record.value_schema, ["credit_code"], {"credit_code": "u"})
    assert '"u" text NOT NULL' in ddl[1] and 'PRIMARY KEY ("u")' in ddl[1]
    assert ddl[2].endswith("REPLICA IDENTITY FULL")
    sql, params = change_sql("a.b", "d", {"credit_code": "K", "name": "n"}, None, ["credit_code"])
    assert sql == 'DELETE FROM "a"."b" WHERE "credit_code" = %(p0)s' and params["p0"] == "K"
