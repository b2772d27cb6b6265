"""Avro schemas of a resource: value (from schemas/avro), key and change-event envelope.

The envelope is Debezium-shaped so existing tooling reads it: before/after/op/ts_ms/source.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

from services.common.catalog import CatalogEntry
from services.common.paths import OutsideDirectory, inside

OPS = ("c", "u", "d", "r")


@cache
def _load_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def value_schema(entry: CatalogEntry, schemas_dir: Path) -> dict[str, Any]:
    return copy.deepcopy(_load_json(inside(schemas_dir, entry.schema_file)))


def source_schema(schemas_dir: Path) -> dict[str, Any]:
    return copy.deepcopy(_load_json(schemas_dir / "source.avsc"))


def check_entry_schema(entry: CatalogEntry, schemas_dir: Path) -> str | None:
    """Why the entry and its Avro schema disagree, or None."""
    try:
        path = inside(schemas_dir, entry.schema_file)
    except OutsideDirectory as exc:
        return f"field 'schema_file': {exc}"
    try:
        schema = _load_json(path)
    except (OSError, ValueError) as exc:
        return f"field 'schema_file': cannot read {path.name}: {exc}"
    avro_fields = [f["name"] for f in schema.get("fields", [])]
    undeclared = [f for f in avro_fields if f not in entry.fields]
    absent = [f for f in entry.fields if f not in avro_fields]
    if undeclared:
        return f"field 'fields': schema fields {undeclared} have no catalog entry (sensitivity)"
    if absent:
        return f"field 'fields': {absent} are not in schema {path.name}"
    return None


def field_types(schema: dict[str, Any]) -> dict[str, Any]:
    return {f["name"]: f["type"] for f in schema["fields"]}


def key_schema(entry: CatalogEntry, value: dict[str, Any]) -> dict[str, Any]:
    types = field_types(value)
    return {
        "type": "record",
        "name": f"{value['name']}Key",
        "namespace": value.get("namespace", "govbus"),
        "fields": [{"name": k, "type": types[k]} for k in entry.key_fields],
    }


def envelope_schema(value: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
    namespace = value.get("namespace", "govbus")
    return {
        "type": "record",
        "name": "Envelope",
        "namespace": namespace,
        "doc": f"Change event of {value['name']}",
        "fields": [
            {"name": "before", "type": ["null", value], "default": None},
            {"name": "after", "type": ["null", f"{namespace}.{value['name']}"], "default": None},
            {"name": "op", "type": "string", "doc": "c create, u update, d delete, r snapshot"},
            {"name": "ts_ms", "type": "long", "doc": "when the bus saw the change, epoch ms"},
            {"name": "source", "type": source},
            {"name": "event_id", "type": "string", "doc": "unique id of this change event"},
        ],
    }
