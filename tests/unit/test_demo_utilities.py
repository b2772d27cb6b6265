"""The demo's social data: bills of live residents, consistent changes, Hefei's tariffs."""

from __future__ import annotations

from services.common.catalog import Sensitivity
from services.common.idnumbers import resident_id_valid
from services.ingest.demo_data import DEFAULT_START_MS, RESIDENTS, DemoFeed
from services.ingest.demo_utilities import (
    POWER,
    UTILITIES,
    WATER,
    MixedFeed,
    power_amount,
    water_amount,
)
from tests.unit.fixtures import catalog


def test_tariffs_are_tiered():
    assert water_amount(10) == 29.5
    assert water_amount(20) == round(15 * 2.95 + 5 * 3.83, 2)
    assert power_amount(400) == round(180 * 0.5653 + 170 * 0.6153 + 50 * 0.8653, 2)


def test_bills_follow_their_state_and_belong_to_residents():
    feed = MixedFeed(DemoFeed(seed=3), seed=3, start_ms=DEFAULT_START_MS)
    state: dict[str, dict] = {}
    people: dict[str, dict] = {}
    seen = dict.fromkeys(UTILITIES, 0)
    for change in feed.changes(15_000):
        if change.resource == RESIDENTS and change.after:
            people[change.after["id_number"]] = change.after
        if change.resource not in UTILITIES:
            continue
        seen[change.resource] += 1
        key = (change.before or change.after)["bill_id"]
        if change.op == "c":
            assert key not in state, "a bill is issued once"
            holder = change.after["id_number"]
            assert resident_id_valid(holder) and holder in people
            assert change.after["holder_name"] == people[holder]["name"]
            if change.resource == WATER:
                assert change.after["region_code"].startswith("3401")  # Hefei's water company
            state[key] = change.after
        else:
            assert change.before == state[key], "before is the bill as it was"
            if change.op == "u":
                assert state[key]["status"] != "已缴", "a paid bill does not change"
                state[key] = change.after
            else:
                del state[key]
    assert seen[WATER] > 100 and seen[POWER] > 100
    statuses = {b["status"] for b in state.values()}
    assert {"未缴", "已缴", "欠费"} <= statuses


def test_the_feed_is_deterministic_and_leaves_the_government_stream_alone():
    def run(seed):
        return list(MixedFeed(DemoFeed(seed=seed), seed, DEFAULT_START_MS).changes(3000))

    assert run(9) == run(9)
    government = [c for c in run(9) if c.resource not in UTILITIES]
    assert government == list(DemoFeed(seed=9).changes(len(government)))


def test_bills_are_social_data_with_the_id_number_sensitive():
    entries = catalog()
    for resource in (*UTILITIES, "gas.gas_payment"):
        assert entries[resource].category == "social"
        assert entries[resource].fields["id_number"].sensitivity is Sensitivity.L4
