"""Source rows (database rows, spreadsheet lines) as records of a catalog resource. Pure.

Columns are renamed by the adapter file's mapping (source name -> field); a column that maps
to no field of the resource is left out. Values are converted to the field's Avro type where
the conversion is unambiguous (a datetime to epoch ms for a ``long``, a numeric cell to text
for a ``string``); a value that does not convert is passed on unchanged, so the publisher's
validation rejects the row naming the field.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.common.catalog_feed import CatalogRecord

INTEGER = ("int", "long")
REAL = ("float", "double")
TRUE = frozenset({"true", "1", "yes", "y", "是", "t"})
FALSE = frozenset({"false", "0", "no", "n", "否", "f"})


def avro_types(value_schema: Mapping[str, Any]) -> dict[str, frozenset[str]]:
    """Each field's primitive Avro types (a union gives several)."""

    def prims(t: Any) -> set[str]:
        if isinstance(t, list):
            return set().union(*(prims(x) for x in t))
        if isinstance(t, dict):
            return prims(t["type"])
        return {t}

    return {f["name"]: frozenset(prims(f["type"])) for f in value_schema["fields"]}


def epoch_ms(value: dt.datetime | dt.date) -> int:
    if not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    if value.tzinfo is None:  # a naive source time is taken as UTC
        value = value.replace(tzinfo=dt.UTC)
    return int(value.timestamp() * 1000)


def convert(value: Any, types: frozenset[str]) -> Any:
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    if isinstance(value, bool):
        return value if "boolean" in types else str(value).lower()
    if isinstance(value, dt.date):  # datetime too
        if "string" in types:
            return value.isoformat()
        return epoch_ms(value) if any(t in types for t in INTEGER) else value
    if isinstance(value, int | float | decimal.Decimal):
        return _number(value, types)
    if isinstance(value, str):
        return _text(value.strip(), types)
    return value


def _number(value: int | float | decimal.Decimal, types: frozenset[str]) -> Any:
    integral = value == int(value)
    if any(t in types for t in INTEGER) and integral:
        return int(value)
    if any(t in types for t in REAL):
        return float(value)
    if "string" in types:
        return str(int(value)) if integral else str(value)
    return value


def _text(value: str, types: frozenset[str]) -> Any:
    if "string" in types:
        return value
    if "boolean" in types and value.lower() in TRUE | FALSE:
        return value.lower() in TRUE
    for t in types:
        try:
            if t in INTEGER:
                return int(value) if value.lstrip("-").isdigit() else epoch_ms(_when(value))
            if t in REAL:
                return float(value)
        except ValueError:
            continue
    return value


def _when(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("/", "-"))


@dataclass(frozen=True)
class RowMapper:
    """How one adapter turns a source row into a record of its resource."""

    columns: Mapping[str, str]  # source column -> field
    types: Mapping[str, frozenset[str]]
    key_fields: tuple[str, ...]

    @classmethod
    def build(cls, record: CatalogRecord, columns: Mapping[str, str]) -> RowMapper:
        return cls(
            dict(columns), avro_types(record.value_schema), tuple(record.resource.key_fields)
        )

    def field(self, column: str) -> str | None:
        name = self.columns.get(column, column)
        return name if name in self.types else None

    def source_column(self, field: str) -> str:
        for column, name in self.columns.items():
            if name == field:
                return column
        return field

    def record(self, source: Mapping[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for column, value in source.items():
            name = self.field(column)
            if name is not None:
                out[name] = convert(value, self.types[name])
        return out

    def ignored(self, columns: list[str]) -> list[str]:
        return [c for c in columns if self.field(c) is None]

    def missing_keys(self, record: Mapping[str, Any]) -> list[str]:
        return [k for k in self.key_fields if record.get(k) is None]

    def key(self, record: Mapping[str, Any]) -> dict[str, Any]:
        return {k: record[k] for k in self.key_fields}
