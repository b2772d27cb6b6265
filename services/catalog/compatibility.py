"""Schema evolution rules of the registry: which earlier versions a new schema is checked
against, in which direction, per Confluent compatibility mode.

Whether one schema can read data written with another is decided by Apache Avro's own
checker (avro.compatibility); this module picks the reader/writer pairs and turns the
checker's results into Confluent-style messages that name the field and the rule.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Literal

import avro.schema
from avro.compatibility import (
    ReaderWriterCompatibilityChecker,
    SchemaCompatibilityResult,
    SchemaCompatibilityType,
)
from avro.errors import AvroException

from services.catalog.registry_errors import InvalidSchemaError

Role = Literal["new", "old"]

# Mode -> (which schema is the reader in each check, whether every version is checked).
# BACKWARD: the new schema reads old data; FORWARD: old readers read new data; FULL: both.
MODES: dict[str, tuple[tuple[Role, ...], bool]] = {
    "BACKWARD": (("new",), False),
    "BACKWARD_TRANSITIVE": (("new",), True),
    "FORWARD": (("old",), False),
    "FORWARD_TRANSITIVE": (("old",), True),
    "FULL": (("new", "old"), False),
    "FULL_TRANSITIVE": (("new", "old"), True),
    "NONE": ((), False),
}

_SUFFIX_RULES = {
    "name": "NAME_MISMATCH",
    "size": "FIXED_SIZE_MISMATCH",
    "symbols": "MISSING_ENUM_SYMBOLS",
}

# Confluent's wording, naming the field too: {where} is "field 'address.city' at path '/...'".
_DESCRIPTIONS = {
    "READER_FIELD_MISSING_DEFAULT_VALUE": "The {where} in the {reader} schema has no default value "
    "and is missing in the {writer} schema",
    "TYPE_MISMATCH": "The type of {where} in the {reader} schema "
    "does not match the {writer} schema",
    "NAME_MISMATCH": "The type name of {where} has changed",
    "MISSING_ENUM_SYMBOLS": "The {reader} schema is missing enum symbols of {where} "
    "in the {writer} schema",
    "MISSING_UNION_BRANCH": "The {reader} schema is missing a union branch of {where} "
    "in the {writer} schema",
    "FIXED_SIZE_MISMATCH": "The size of the fixed type of {where} in the {reader} schema "
    "does not match the {writer} schema",
}


@dataclass(frozen=True)
class Incompatibility:
    """One way the reader schema cannot read what the writer schema writes."""

    rule: str  # Avro's incompatibility type, upper-cased as Confluent prints it
    location: str  # path in the reader schema, e.g. /fields/3 or /fields/0/type/symbols
    field: str | None  # dotted name of the field at that path, e.g. address.city
    reader: Role  # which schema the path points into
    old_version: int
    info: str  # Avro's own detail (field, symbols, types) where it can be told apart

    @property
    def description(self) -> str:
        reader, writer = self.reader, "old" if self.reader == "new" else "new"
        what = f"field '{self.field}'" if self.field else "the schema"
        where = f"{what} at path '{self.location}'"
        template = _DESCRIPTIONS.get(self.rule, "{rule} {where} in the {reader} schema")
        return template.format(rule=self.rule, where=where, reader=reader, writer=writer)

    def __str__(self) -> str:
        return (
            f"{{errorType:'{self.rule}', description:'{self.description}', "
            f"additionalInfo:'{self.info}'}}"
        )


def check(mode: str, new: str, previous: Mapping[int, str]) -> list[Incompatibility]:
    """What stops `new` from evolving the live versions `previous` (version -> schema) under
    `mode`; an empty list means compatible. Non-transitive modes look at the latest only."""
    readers, transitive = MODES[mode]
    versions = sorted(previous) if transitive else sorted(previous)[-1:]
    new_schema = _parse(new)
    found: list[Incompatibility] = []
    for version in versions:
        old_schema = _parse(previous[version])
        for reader in readers:
            pair = (new_schema, old_schema) if reader == "new" else (old_schema, new_schema)
            result = _Checker().get_compatibility(*pair)
            found += _incompatibilities(result, pair[0], reader, version)
    return found


def details(found: Sequence[Incompatibility], mode: str) -> list[str]:
    """Confluent's `details` / verbose `messages`: each problem, the versions, the mode."""
    versions = sorted({i.old_version for i in found})
    return [
        *(str(i) for i in found),
        *(f"{{oldSchemaVersion: {v}}}" for v in versions),
        f"{{compatibility: '{mode}'}}",
    ]


class _Checker(ReaderWriterCompatibilityChecker):
    """Avro's checker, except that checks under a union keep their location.

    avro 1.12's Python port restarts the location at "/" when it checks the branches of a
    writer union (Java fixed that in AVRO-3612), so a field that lost its "null" branch was
    reported at "/" rather than at the field.
    """

    def __init__(self) -> None:
        super().__init__()
        self._at: list[list[str]] = []

    def get_compatibility(
        self,
        reader: avro.schema.Schema,
        writer: avro.schema.Schema,
        reference_token: str = "/",
        location: list[str] | None = None,
    ) -> SchemaCompatibilityResult:
        if location is None and self._at:
            *location, reference_token = self._at[-1]
        return super().get_compatibility(reader, writer, reference_token, location)

    def calculate_compatibility(
        self, reader: avro.schema.Schema, writer: avro.schema.Schema, location: list[str]
    ) -> SchemaCompatibilityResult:
        self._at.append(location)
        try:
            return super().calculate_compatibility(reader, writer, location)
        finally:
            self._at.pop()


def _parse(schema_str: str) -> avro.schema.Schema:
    try:
        return avro.schema.parse(schema_str)
    except (AvroException, json.JSONDecodeError) as exc:
        raise InvalidSchemaError(f"Invalid schema: {exc}") from exc


def _incompatibilities(
    result: SchemaCompatibilityResult, reader: avro.schema.Schema, role: Role, version: int
) -> list[Incompatibility]:
    if result.compatibility is not SchemaCompatibilityType.incompatible:
        return []
    # Avro merges locations and messages into sets, and adds a bare "/" while merging.
    locations = sorted(result.locations - {"/"}) or ["/"]
    kinds = {r.name.upper() for r in result.incompatibilities}
    only_kind = kinds.pop() if len(kinds) == 1 else None
    found = []
    for location in locations:
        parts = [p for p in location.split("/") if p]
        field, node = _walk(reader, parts)
        rule = only_kind or _rule_at(parts, node)
        one_message = len(result.messages) == 1 and len(locations) == 1
        info = next(iter(result.messages)) if one_message else (field or "").rpartition(".")[2]
        found.append(Incompatibility(rule, location, field, role, version, info))
    return found


def _walk(schema: avro.schema.Schema, parts: list[str]) -> tuple[str | None, object]:
    """The dotted field name a checker path passes through, and the schema node it ends at."""
    names: list[str] = []
    node: object = schema
    for before, part in pairwise(["", *parts]):
        if before == "fields" and isinstance(node, avro.schema.RecordSchema):
            if part.isdigit() and int(part) < len(node.fields):
                names.append(node.fields[int(part)].name)
                node = node.fields[int(part)].type
        elif part in ("items", "values"):
            node = getattr(node, part, node)
    return ".".join(names) or None, node


def _rule_at(parts: list[str], node: object) -> str:
    """Which rule a path reports when one result holds several kinds: the paths Avro gives
    each kind have their own shape (see avro.compatibility's calls to incompatible())."""
    if parts and parts[-1] in _SUFFIX_RULES:
        return _SUFFIX_RULES[parts[-1]]
    if len(parts) >= 2 and parts[-2] == "fields":
        return "READER_FIELD_MISSING_DEFAULT_VALUE"
    if isinstance(node, avro.schema.UnionSchema):
        return "MISSING_UNION_BRANCH"
    return "TYPE_MISMATCH"
