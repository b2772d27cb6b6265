"""A column added to a CDC adapter's source table: the decision and the wider resource."""

from __future__ import annotations

import json

import pytest

from services.catalog.catalog_edit import check_schema_fields
from services.catalog.compatibility import check
from services.common.catalog import Sensitivity
from services.ingest.adapters.debezium import DebeziumAdapter
from services.ingest.adapters.debezium_mapping import Incompatible, NewColumns, to_change
from services.ingest.adapters.debezium_schema_change import (
    SourceColumn,
    Widening,
    debezium_avro_type,
    widen,
)
from services.ingest.publisher import Change
from tests.unit import test_debezium_adapter as base
from tests.unit.test_debezium_adapter import ADAPTER, debezium, row

record = base.record  # the samr enterprise resource of deploy/catalog, as a fixture


@pytest.mark.parametrize(
    ("data_type", "precision", "avro"),
    [
        ("text", None, "string"),
        ("character varying", None, "string"),
        ("uuid", None, "string"),
        ("jsonb", None, "string"),
        ("smallint", None, "int"),
        ("integer", None, "int"),
        ("bigint", None, "long"),
        ("boolean", None, "boolean"),
        ("real", None, "float"),
        ("double precision", None, "double"),
        ("numeric", None, "double"),  # decimal.handling.mode=double
        ("date", None, "int"),  # days since the epoch
        ("timestamp with time zone", 6, "string"),  # ZonedTimestamp
        ("timestamp without time zone", 6, "long"),  # MicroTimestamp
        ("timestamp without time zone", 3, "long"),  # Timestamp (ms)
        ("time without time zone", 3, "int"),  # Time (ms)
        ("time without time zone", 6, "long"),  # MicroTime
        ("interval", None, "long"),  # MicroDuration
    ],
)
def test_a_source_type_maps_to_the_avro_type_of_debeziums_json(data_type, precision, avro):
    mapped = debezium_avro_type(SourceColumn("c", data_type, precision))
    assert mapped is not None and mapped[0] == avro


def test_the_unit_of_a_temporal_value_follows_its_precision():
    millis = debezium_avro_type(SourceColumn("c", "timestamp without time zone", 3))
    micros = debezium_avro_type(SourceColumn("c", "timestamp without time zone", 6))
    assert millis is not None and "milliseconds" in millis[1]
    assert micros is not None and "microseconds" in micros[1]


@pytest.mark.parametrize("data_type", ["bytea", "ARRAY", "USER-DEFINED", "bit", "tsvector"])
def test_a_type_without_a_mapping_is_none(data_type):
    assert debezium_avro_type(SourceColumn("c", data_type)) is None


def test_a_new_column_asks_for_a_wider_resource_when_the_adapter_takes_every_column(record):
    adapter = DebeziumAdapter.model_validate(ADAPTER)
    change = debezium("u", before=row(), after=row(capital_currency="CNY"))
    outcome = to_change({"uscc": "K"}, change, adapter, record.resource, record.value_schema)
    assert outcome == NewColumns("qydj.enterprise", ("capital_currency",))


def test_with_an_explicit_column_list_a_new_column_is_left_out(record):
    columns = [f for f in record.resource.fields if f != "address"]
    adapter = DebeziumAdapter.model_validate({**ADAPTER, "columns": columns})
    change = debezium("c", after=row(capital_currency="CNY"))
    outcome = to_change({"uscc": "K"}, change, adapter, record.resource, record.value_schema)
    assert isinstance(outcome, Change) and "capital_currency" not in outcome.after


def test_the_wider_resource_takes_the_held_change_with_its_new_value(record):
    adapter = DebeziumAdapter.model_validate(ADAPTER)
    columns = [
        SourceColumn("capital_currency", "character varying"),
        SourceColumn("staff", "integer"),
    ]
    wider = widen(record.resource, record.value_schema, adapter, columns)
    assert isinstance(wider, Widening)
    assert check_schema_fields(wider.entry, wider.value_schema) == []
    added = {f["name"]: f for f in wider.value_schema["fields"][-2:]}
    assert added["capital_currency"]["type"] == ["null", "string"]
    assert added["staff"]["type"] == ["null", "int"]
    assert all(f["default"] is None for f in added.values())
    # Conservative until the provider reviews it: a grant cannot take it in clear unasked.
    assert wider.entry.fields["staff"].sensitivity is Sensitivity.L4
    assert "qydj.enterprise.staff" in wider.entry.fields["staff"].description
    # Backward compatible: the registry's rule takes it after the resource's schema.
    old, new = json.dumps(record.value_schema), json.dumps(wider.value_schema)
    assert check("BACKWARD", new, {1: old}) == []
    # After ADD COLUMN every row has it, the row before an update too (NULL until set).
    before = row(capital_currency=None, staff=None)
    change = debezium("u", before=before, after=row(capital_currency="CNY", staff=12))
    taken = to_change({"uscc": "K"}, change, adapter, wider.entry, wider.value_schema)
    assert isinstance(taken, Change)
    assert taken.after["capital_currency"] == "CNY" and taken.after["staff"] == 12
    assert taken.before["staff"] is None


def test_a_column_that_cannot_be_added_halts_naming_table_column_and_type(record):
    adapter = DebeziumAdapter.model_validate(ADAPTER)
    blob = widen(record.resource, record.value_schema, adapter, [SourceColumn("scan", "bytea")])
    assert isinstance(blob, Incompatible)
    assert "qydj.enterprise" in str(blob) and "scan" in str(blob) and "bytea" in str(blob)
    odd = widen(record.resource, record.value_schema, adapter, [SourceColumn("Käse", "text")])
    assert isinstance(odd, Incompatible) and odd.column == "Käse"
