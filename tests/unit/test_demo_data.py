"""The demo feed: schema-exact, valid and consistent identifiers, coherent live state."""

from __future__ import annotations

import datetime
import json
import re
from collections import Counter
from pathlib import Path

import pytest
from fastavro import parse_schema
from fastavro.validation import validate

from services.common.idnumbers import credit_code_valid, gender_of, resident_id_valid
from services.ingest.demo_data import (
    ENROLMENTS,
    ENTERPRISES,
    KEY_FIELD,
    RESIDENTS,
    RESOURCES,
    SYSTEM,
    Change,
    DemoFeed,
    org_code_check_char,
)
from services.ingest.demo_vocab import EMPLOYEE_INSURANCE, REGIONS, RESIDENT_PENSION

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas" / "avro"
SCHEMA_FILES = {
    RESIDENTS: "gov.psb.resident_population.avsc",
    ENTERPRISES: "gov.samr.enterprise_registration.avsc",
    ENROLMENTS: "gov.hrss.social_insurance_enrolment.avsc",
}
REGION_CODES = {r.code for r in REGIONS}
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
N = 12_000


@pytest.fixture(scope="module")
def changes() -> list[Change]:
    return list(DemoFeed(seed=42).changes(N))


def _parsed(resource: str):
    schema = json.loads((SCHEMAS / SCHEMA_FILES[resource]).read_text(encoding="utf-8"))
    return parse_schema(schema)


def _records(changes: list[Change], resource: str | None = None):
    for c in changes:
        if resource is None or c.resource == resource:
            yield from (r for r in (c.before, c.after) if r is not None)


def _is_date(s: str) -> bool:
    if not DATE.fullmatch(s):
        return False
    datetime.date.fromisoformat(s)
    return True


def test_records_validate_against_the_avro_schemas(changes):
    for resource in RESOURCES:
        parsed = _parsed(resource)
        names = [f["name"] for f in parsed["fields"]]
        count = 0
        for record in _records(changes, resource):
            assert list(record) == names  # exactly the schema's fields, no extra ones
            validate(record, parsed, raise_errors=True)
            count += 1
        assert count > 1000


def test_change_shape(changes):
    for c in changes:
        assert c.resource in RESOURCES
        assert c.system == SYSTEM[c.resource]
        assert c.op in ("c", "u", "d")
        assert (c.before is None) == (c.op == "c")
        assert (c.after is None) == (c.op == "d")


def test_positions_increase_per_resource(changes):
    last: dict[str, int] = {}
    for c in changes:
        system, _kind, number = c.position.split(":")
        assert system == c.system
        assert len(number) == 10
        assert int(number) > last.get(c.resource, 0)
        last[c.resource] = int(number)


def test_resident_ids_valid_and_consistent(changes):
    seen: set[str] = set()
    for c in changes:
        if c.resource != RESIDENTS or c.after is None:
            continue
        r = c.after
        assert resident_id_valid(r["id_number"]), r
        assert gender_of(r["id_number"]) == r["gender"]
        assert r["id_number"][6:14] == r["birth_date"].replace("-", "")
        assert r["id_number"][:6] in REGION_CODES
        if r["id_number"] not in seen:  # first registration: where born; later moves change it
            assert r["id_number"][:6] == r["region_code"]
            seen.add(r["id_number"])
        assert r["region_code"] in REGION_CODES
        assert r["address"].startswith("安徽省")
        assert r["household_type"] in ("城镇", "农村")
        assert r["phone"] is None or re.fullmatch(r"1[3589]\d{9}", r["phone"])
        assert 2 <= len(r["name"]) <= 4


def _gb11714_check(body: str) -> str:
    """Independent check of the organisation code (GB 11714) check character."""
    weights = (3, 7, 9, 10, 5, 8, 4, 2)
    values = [int(ch) if ch.isdigit() else ord(ch) - 55 for ch in body]
    c9 = 11 - sum(v * w for v, w in zip(values, weights, strict=True)) % 11
    return {10: "X", 11: "0"}.get(c9, str(c9))


def test_org_code_check_char():
    assert org_code_check_char("D2143569") == "X"  # the standard's worked example D2143569-X
    for body in ("69799800", "MA2N0ABC", "12345678", "MA2XY1QW"):
        assert org_code_check_char(body) == _gb11714_check(body)
    with pytest.raises(ValueError):
        org_code_check_char("1234567")


def test_enterprises_valid(changes):
    for r in _records(changes, ENTERPRISES):
        code = r["credit_code"]
        assert credit_code_valid(code), code
        assert code[0] == "9" and code[1] in "13"
        assert code[1] == ("3" if r["enterprise_type"] == "农民专业合作社" else "1")
        assert code[2:4] == "34"
        assert code[16] == _gb11714_check(code[8:16])
        assert resident_id_valid(r["legal_rep_id_number"])
        assert r["status"] in ("存续", "吊销", "注销")
        assert re.fullmatch(r"[A-T]\d{2}", r["industry_code"])
        assert r["registered_capital"] > 0
        assert _is_date(r["established_date"])
        assert r["region_code"] in REGION_CODES


def test_enrolments_join_residents_and_enterprises(changes):
    residents: dict[str, dict] = {}
    enterprises: set[str] = set()
    seen_ids: set[str] = set()
    for c in changes:
        if c.resource == RESIDENTS and c.after is not None:
            residents[c.after["id_number"]] = c.after
        elif c.resource == ENTERPRISES and c.op == "c":
            enterprises.add(c.after["credit_code"])
        elif c.resource == ENROLMENTS and c.after is not None:
            r = c.after
            assert re.fullmatch(r"AH\d{14}", r["enrolment_id"])
            if c.op == "c":
                assert r["enrolment_id"] not in seen_ids
                seen_ids.add(r["enrolment_id"])
            assert r["id_number"] in residents
            assert r["name"] == residents[r["id_number"]]["name"]
            assert resident_id_valid(r["id_number"])
            if r["insurance_type"] == RESIDENT_PENSION:
                assert r["employer_credit_code"] is None
                assert r["monthly_base"] == 0.0
            else:
                assert r["insurance_type"] in EMPLOYEE_INSURANCE
                assert r["employer_credit_code"] in enterprises
                assert 4000.0 <= r["monthly_base"] <= 30000.0
                assert round(r["monthly_base"], 2) == r["monthly_base"]
            assert r["status"] in ("参保缴费", "暂停缴费", "终止参保")
            assert _is_date(r["start_date"])
            assert r["start_date"] > residents[r["id_number"]]["birth_date"]
            assert r["start_date"] <= "2024-06-03"
    assert len(seen_ids) > 1000


def test_updates_and_deletes_follow_the_live_state(changes):
    live = {r: {} for r in RESOURCES}
    deleted = {r: set() for r in RESOURCES}
    recreated = 0
    for c in changes:
        state = live[c.resource]
        key_field = KEY_FIELD[c.resource]
        if c.op == "c":
            key = c.after[key_field]
            assert key not in state
            recreated += key in deleted[c.resource]
            state[key] = c.after
            continue
        key = c.before[key_field]
        assert key in state, f"{c.op} of a key that is not live: {key}"
        assert c.before == state[key]
        if c.op == "u":
            assert c.after[key_field] == key
            assert c.after["updated_at"] > c.before["updated_at"]
            changed = {f for f in c.after if c.after[f] != c.before[f]} - {"updated_at"}
            assert changed, "an update changes something"
            state[key] = c.after
        else:
            del state[key]
            deleted[c.resource].add(key)
    assert recreated >= 1  # rare, but present in 12k changes


def test_final_states_are_not_updated(changes):
    final = {ENTERPRISES: "注销", ENROLMENTS: "终止参保"}
    for c in changes:
        if c.op == "u" and c.resource in final:
            assert c.before["status"] != final[c.resource]
            if c.before["status"] == "吊销":
                assert c.after["status"] == "注销"


def test_mix_of_resources_and_ops(changes):
    resources = Counter(c.resource for c in changes)
    assert 0.45 < resources[RESIDENTS] / N < 0.6
    assert 0.18 < resources[ENTERPRISES] / N < 0.3
    assert 0.18 < resources[ENROLMENTS] / N < 0.3
    early = Counter(c.op for c in changes[:300])
    assert early["c"] / 300 > 0.85
    late = Counter(c.op for c in changes[3000:])
    total = N - 3000
    assert 0.58 < late["c"] / total < 0.72
    assert 0.2 < late["u"] / total < 0.34
    assert 0.04 < late["d"] / total < 0.12
    statuses = Counter(r["status"] for r in _records(changes, ENTERPRISES))
    assert statuses["吊销"] and statuses["注销"]
    statuses = Counter(r["status"] for r in _records(changes, ENROLMENTS))
    assert statuses["暂停缴费"] and statuses["终止参保"]


def test_population_realism(changes):
    people = [c.after for c in changes if c.resource == RESIDENTS and c.op == "c"]
    hefei = sum(p["region_code"].startswith("3401") for p in people) / len(people)
    assert 0.3 < hefei < 0.55
    post_2012 = sum(p["birth_date"] >= "2012-09-01" for p in people) / len(people)
    assert 0.05 < post_2012 < 0.2
    years = [int(p["birth_date"][:4]) for p in people]
    assert min(years) >= 2024 - 96 and max(years) <= 2024
    assert any(p["name"][:2] in ("欧阳", "司马", "诸葛", "上官") for p in people)
    ethnicities = Counter(p["ethnicity"] for p in people)
    assert ethnicities.most_common(1)[0][0] == "汉族"
    assert ethnicities["回族"] > 0
    assert 0.03 < sum(p["phone"] is None for p in people) / len(people) < 0.35
    rural = sum(p["household_type"] == "农村" for p in people) / len(people)
    assert 0.1 < rural < 0.6


def test_deterministic_per_seed():
    a = list(DemoFeed(seed=7).changes(3000))
    b = list(DemoFeed(seed=7).changes(3000))
    c = list(DemoFeed(seed=8).changes(3000))
    assert a == b
    assert a != c


def test_returned_records_do_not_alias_the_live_state():
    feed = DemoFeed(seed=1)
    first = feed.next_change()
    first.after["name"] = "篡改"
    live = feed.live_records(first.resource)
    assert live[first.after[KEY_FIELD[first.resource]]]["name"] != "篡改"


def _identifier_ok(c: Change) -> bool:
    r = c.after
    if c.resource == ENTERPRISES:
        return credit_code_valid(r["credit_code"])
    return resident_id_valid(r["id_number"])


def test_invalid_rate_makes_invalid_creates_that_never_come_back():
    rate = 0.1
    creates = invalid = 0
    bad_keys: set[tuple[str, str]] = set()
    for c in DemoFeed(seed=3, invalid_rate=rate).changes(15_000):
        if c.op == "c":
            creates += 1
            validate(c.after, _parsed(c.resource), raise_errors=True)  # still well formed
            if not _identifier_ok(c):
                invalid += 1
                bad_keys.add((c.resource, c.after[KEY_FIELD[c.resource]]))
        else:
            assert (c.resource, c.before[KEY_FIELD[c.resource]]) not in bad_keys
    assert abs(invalid / creates - rate) < 0.02


def test_no_invalid_identifiers_by_default(changes):
    assert all(_identifier_ok(c) for c in changes if c.op == "c")


def test_max_live_bounds_the_state():
    feed = DemoFeed(seed=5, max_live=300)
    for _ in feed.changes(6000):
        pass
    for resource in RESOURCES:
        assert len(feed.live_records(resource)) < 400


def test_start_ms_moves_the_clock():
    start = 1_780_000_000_000
    c = DemoFeed(seed=1, start_ms=start).next_change()
    assert start < c.after["updated_at"] < start + 2000
