"""Compatibility modes: which evolutions each mode lets through, and what a refusal says."""

from __future__ import annotations

import json

import pytest

from services.catalog.compatibility import MODES, check, details

ID = {"name": "id_card", "type": "string"}
AGE = {"name": "age", "type": "int"}
PHONE = {"name": "phone", "type": "string"}
PHONE_DEFAULT = {**PHONE, "default": ""}
KIND = {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B", "C"]}}
KIND_AB = {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}}


def resident(*fields: dict) -> str:
    return json.dumps({"type": "record", "name": "Resident", "fields": list(fields)})


def with_age(age_type: str) -> str:
    return resident(ID, {**AGE, "type": age_type})


V1 = resident(ID, AGE)


def rules(mode: str, new: str, *previous: str) -> list[tuple[str, str | None]]:
    found = check(mode, new, dict(enumerate(previous, start=1)))
    return [(i.rule, i.field) for i in found]


# (mode, old, new, expected (rule, field) list); [] means compatible.
EVOLUTIONS = [
    ("BACKWARD", V1, resident(ID, AGE, PHONE_DEFAULT), []),
    ("BACKWARD", V1, resident(ID, AGE, PHONE), [("READER_FIELD_MISSING_DEFAULT_VALUE", "phone")]),
    ("BACKWARD", V1, resident(ID), []),
    ("BACKWARD", with_age("int"), with_age("long"), []),
    ("BACKWARD", with_age("long"), with_age("int"), [("TYPE_MISMATCH", "age")]),
    ("BACKWARD", resident(KIND), resident(KIND_AB), [("MISSING_ENUM_SYMBOLS", "kind")]),
    ("FORWARD", V1, resident(ID, AGE, PHONE), []),
    ("FORWARD", V1, resident(ID), [("READER_FIELD_MISSING_DEFAULT_VALUE", "age")]),
    ("FORWARD", resident(ID, PHONE_DEFAULT), resident(ID), []),
    ("FORWARD", with_age("int"), with_age("long"), [("TYPE_MISMATCH", "age")]),
    ("FORWARD", resident(KIND), resident(KIND_AB), []),
    ("FORWARD", resident(KIND_AB), resident(KIND), [("MISSING_ENUM_SYMBOLS", "kind")]),
    ("FULL", V1, resident(ID, AGE, PHONE_DEFAULT), []),
    ("FULL", V1, resident(ID, AGE, PHONE), [("READER_FIELD_MISSING_DEFAULT_VALUE", "phone")]),
    ("FULL", V1, resident(ID), [("READER_FIELD_MISSING_DEFAULT_VALUE", "age")]),
    ("FULL", resident(ID, PHONE_DEFAULT), resident(ID), []),
    ("FULL", with_age("int"), with_age("long"), [("TYPE_MISMATCH", "age")]),
    ("NONE", with_age("long"), with_age("int"), []),
    ("NONE", V1, resident(ID, AGE, PHONE), []),
]


@pytest.mark.parametrize(("mode", "old", "new", "expected"), EVOLUTIONS)
def test_each_mode_lets_compatible_evolutions_through_and_names_what_breaks(
    mode: str, old: str, new: str, expected: list
) -> None:
    assert rules(mode, new, old) == expected
    # A transitive mode agrees with its plain one when there is a single earlier version.
    transitive = mode if mode == "NONE" else f"{mode}_TRANSITIVE"
    assert rules(transitive, new, old) == expected


@pytest.mark.parametrize(
    ("mode", "v1", "v2", "new", "field"),
    [
        # v2 gave phone a default, the new one takes it away: v1 data has no phone.
        ("BACKWARD", V1, resident(ID, AGE, PHONE_DEFAULT), resident(ID, AGE, PHONE), "phone"),
        # v2 gave phone a default, the new one drops it: v1 readers need a phone.
        ("FORWARD", resident(ID, PHONE), resident(ID, PHONE_DEFAULT), resident(ID), "phone"),
        ("FULL", V1, resident(ID, AGE, PHONE_DEFAULT), resident(ID, AGE, PHONE), "phone"),
    ],
)
def test_transitive_catches_a_break_with_version_1_that_plain_mode_lets_through(
    mode: str, v1: str, v2: str, new: str, field: str
) -> None:
    assert rules(mode, v2, v1) == []
    assert rules(mode, new, v1, v2) == []
    found = check(f"{mode}_TRANSITIVE", new, {1: v1, 2: v2})
    assert [(i.rule, i.field, i.old_version) for i in found] == [
        ("READER_FIELD_MISSING_DEFAULT_VALUE", field, 1)
    ]


def test_non_transitive_checks_the_highest_version_given() -> None:
    # Versions need not be contiguous: soft-deleted ones are simply not passed in.
    assert rules("BACKWARD", with_age("int"), with_age("long"), with_age("int")) == []
    found = check("BACKWARD", with_age("int"), {3: with_age("int"), 7: with_age("long")})
    assert [(i.rule, i.old_version) for i in found] == [("TYPE_MISMATCH", 7)]


def test_every_mode_of_the_registry_is_known() -> None:
    assert set(MODES) == {
        *(f"{m}{t}" for m in ("BACKWARD", "FORWARD", "FULL") for t in ("", "_TRANSITIVE")),
        "NONE",
    }
    assert check("BACKWARD", V1, {}) == []


def test_message_names_field_path_rule_and_direction_in_confluent_style() -> None:
    [backward] = check("BACKWARD", resident(ID, AGE, PHONE), {1: V1})
    assert str(backward) == (
        "{errorType:'READER_FIELD_MISSING_DEFAULT_VALUE', description:'The field 'phone' at path "
        "'/fields/2' in the new schema has no default value and is missing in the old schema', "
        "additionalInfo:'phone'}"
    )
    [forward] = check("FORWARD", resident(ID), {4: V1})
    assert "field 'age' at path '/fields/1' in the old schema" in forward.description
    assert details([forward], "FORWARD") == [
        str(forward),
        "{oldSchemaVersion: 4}",
        "{compatibility: 'FORWARD'}",
    ]


def test_several_problems_each_get_their_own_rule_and_field() -> None:
    address = {"type": "record", "name": "Address", "fields": [{"name": "city", "type": "int"}]}
    old = resident(ID, {"name": "address", "type": address}, KIND)
    new_address = {**address, "fields": [{"name": "city", "type": "string"}, PHONE]}
    new = resident({**ID, "type": "int"}, {"name": "address", "type": new_address}, KIND_AB)
    found = check("BACKWARD", new, {1: old})
    assert sorted((i.rule, i.field, i.location) for i in found) == [
        ("MISSING_ENUM_SYMBOLS", "kind", "/fields/2/type/symbols"),
        ("READER_FIELD_MISSING_DEFAULT_VALUE", "address.phone", "/fields/1/type/fields/1"),
        ("TYPE_MISMATCH", "address.city", "/fields/1/type/fields/0/type"),
        ("TYPE_MISMATCH", "id_card", "/fields/0/type"),
    ]


def test_dropping_null_from_a_union_is_reported_at_the_field() -> None:
    # avro's own checker would say "/" here; the registry keeps the field's path.
    nullable = resident(ID, {"name": "region", "type": ["null", "string"], "default": None})
    [found] = check("BACKWARD", resident(ID, {"name": "region", "type": "string"}), {1: nullable})
    assert (found.rule, found.field, found.location) == (
        "TYPE_MISMATCH",
        "region",
        "/fields/1/type",
    )


def test_union_branch_and_type_name_rules() -> None:
    nullable_int = resident({"name": "n", "type": ["null", "int"]})
    nullable_str = resident({"name": "n", "type": ["null", "string"]})
    [branch] = check("BACKWARD", nullable_int, {1: nullable_str})
    assert (branch.rule, branch.field) == ("MISSING_UNION_BRANCH", "n")
    renamed = json.dumps({**json.loads(V1), "name": "Person"})
    [name] = check("BACKWARD", renamed, {1: V1})
    assert (name.rule, name.location) == ("NAME_MISMATCH", "/name")
    assert "NAME_MISMATCH" in str(name) and "Resident" in name.info
