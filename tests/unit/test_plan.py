from __future__ import annotations

import datetime as dt

import pytest

from services.common.catalog_feed import CatalogRecord
from services.common.grant_feed import GrantRecord
from services.common.plan import compile_plan, live_plans, plan_delivery
from services.common.schemas import value_schema
from tests.unit.fixtures import RESIDENTS, SCHEMAS, catalog, envelope, grant, resident

SECRET = b"unit-test-master-secret"


def plan_for(grant_id: str, **changes):
    g = grant(grant_id, **changes)
    entry = catalog()[g.resource]
    return compile_plan(g, entry, value_schema(entry, SCHEMAS), SECRET)


def test_projection_and_masking_follow_the_grant():
    plan = plan_for("mca-resident-population")
    row = resident()
    out = plan_delivery(plan, envelope("c", after=row))
    record = out.value["record"]
    assert set(record) == set(plan.grant.fields)
    assert "address" not in record and "phone" not in record
    assert record["id_number"] != row["id_number"] and len(record["id_number"]) == 32
    assert record["name"] == "王**"
    assert record["birth_date"] == "1986-05"
    assert record["region_code"] == "340104"
    assert out.key == {"id_number": record["id_number"]}
    assert out.value["grant_id"] == "mca-resident-population"


def test_hmac_differs_between_consumers_of_the_same_record():
    row = resident(birth_date="2015-03-02")
    a = plan_delivery(plan_for("mca-resident-population"), envelope("c", after=row))
    b = plan_delivery(plan_for("edu-resident-population"), envelope("c", after=row))
    assert a.key["id_number"] != b.key["id_number"]


def test_row_filter_holds_back_other_regions():
    plan = plan_for("mca-resident-population")
    assert plan_delivery(plan, envelope("c", after=resident(region_code="340202"))) is None


@pytest.mark.parametrize(
    ("before_region", "after_region", "expected_op"),
    [
        ("340104", "340202", "d"),  # leaves the consumer's view: it must forget the row
        ("340202", "340104", "c"),  # enters the view: it is new to the consumer
        ("340104", "340111", "u"),
    ],
)
def test_updates_crossing_the_filter(before_region, after_region, expected_op):
    plan = plan_for("mca-resident-population")
    event = envelope(
        "u", before=resident(region_code=before_region), after=resident(region_code=after_region)
    )
    out = plan_delivery(plan, event)
    assert out is not None and out.value["op"] == expected_op


def test_delete_delivers_the_masked_before_image():
    plan = plan_for("mca-resident-population")
    out = plan_delivery(plan, envelope("d", before=resident()))
    assert out.value["op"] == "d"
    assert out.value["record"]["name"] == "王**"


def test_plan_schemas_are_valid_avro():
    from fastavro import parse_schema

    for grant_id in ("mca-resident-population", "edu-resident-population", "tax-social-insurance"):
        plan = plan_for(grant_id)
        parse_schema(plan.value_schema)
        parse_schema(plan.key_schema)


def test_masked_counts_per_record():
    plan = plan_for("mca-resident-population")
    assert plan.masked_per_record == {"hmac": 1, "partial": 1, "generalize": 1}


def test_resource_is_the_one_granted():
    assert grant("mca-resident-population").resource == RESIDENTS


def _record(schema=None) -> CatalogRecord:
    entry = catalog()[RESIDENTS]
    return CatalogRecord(
        resource=entry, value_schema=schema or value_schema(entry, SCHEMAS), schema_version=1
    )


def test_a_kept_field_keeps_its_default_in_the_delivery_schema():
    schema = value_schema(catalog()[RESIDENTS], SCHEMAS)
    for f in schema["fields"]:
        if f["name"] == "gender":  # kept by mca
            f["default"] = "U"
        if f["name"] == "name":  # partially masked by mca: its output is not the input type
            f["default"] = ""
    plan = compile_plan(grant("mca-resident-population"), catalog()[RESIDENTS], schema, SECRET)
    record = plan.value_schema["fields"][-1]["type"][1]
    fields = {f["name"]: f for f in record["fields"]}
    assert fields["gender"]["default"] == "U"
    assert "default" not in fields["name"]


def test_live_plans_join_grants_with_the_catalog_and_skip_unknown_resources():
    mca = GrantRecord(grant=grant("mca-resident-population"), activation=1)
    tax = GrantRecord(grant=grant("tax-enterprise-registration"), activation=1)
    plans = live_plans([mca, tax], {RESIDENTS: _record()}, SECRET, dt.date(2026, 11, 26))
    assert [p.grant.id for p in plans] == ["mca-resident-population"]
