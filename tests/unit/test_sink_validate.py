"""What the sink refuses to store, and why: each poison record gets its own reason."""

from __future__ import annotations

import pytest

from services.common.catalog_feed import CatalogRecord
from services.common.schemas import value_schema
from services.common.store_tables import source_version
from services.sink.validate import Poison, stored_change
from tests.unit.fixtures import RESIDENTS, SCHEMAS, catalog, envelope, resident

TOPIC = "gov.psb.resident_population"


def record() -> CatalogRecord:
    entry = catalog()[RESIDENTS]
    return CatalogRecord(
        resource=entry, value_schema=value_schema(entry, SCHEMAS), schema_version=1
    )


def reason(event: dict) -> str:
    with pytest.raises(Poison) as caught:
        stored_change(event, record(), TOPIC, 0, 5)
    return caught.value.reason


def test_a_good_change_is_stored_with_its_source_version_and_kafka_position():
    event = envelope("u", resident(), resident(name="新名"))
    event["source"]["position"] = "psb-hukou:lsn:0000001234"
    change = stored_change(event, record(), TOPIC, 2, 41)
    assert change.version == source_version("psb-hukou:lsn:1234")
    assert (change.resource, change.topic, change.partition, change.offset) == (
        RESIDENTS, TOPIC, 2, 41,
    )  # fmt: skip
    assert change.row["name"] == "新名" and change.event_id == event["event_id"]


@pytest.mark.parametrize(
    ("event", "why"),
    [
        (envelope("d", None, None), "delete_without_before"),
        (envelope("u", resident(), None), "missing_after"),
        (envelope("c", None, None), "missing_after"),
        (envelope("x", None, resident()), "invalid_op"),
        (envelope("c", None, resident(id_number=None)), "missing_key"),
        (envelope("u", resident(), resident(id_number="340104198605170000")), "key_changed"),
        (envelope("c", None, resident(), resource="enterprise_registration"), "wrong_resource"),
    ],
)
def test_poison_records_are_refused_with_their_reason(event, why):
    assert reason(event) == why


def test_a_position_beyond_any_order_is_refused():
    event = envelope("c", None, resident())
    event["source"]["position"] = "lsn:" + "9" * 120
    assert reason(event) == "bad_position"
