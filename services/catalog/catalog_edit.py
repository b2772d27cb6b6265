"""What a catalog edit may change, as pure functions: fields, keys and schema versions.

A resource's key is the identity of its records on the bus and in the central store, so an
edit may not change which fields make it up or their types; everything else goes through the
registry's compatibility rules (subjects.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from services.common.catalog import CatalogEntry
from services.common.schemas import field_types

# A value schema is a few dozen fields; anything near Kafka's message size is a mistake.
MAX_VALUE_SCHEMA_BYTES = 256 * 1024


def check_schema_fields(entry: CatalogEntry, schema: Mapping[str, Any]) -> list[str]:
    """The schema and the entry must name the same fields: every field needs a sensitivity."""
    if schema.get("type") != "record" or not isinstance(schema.get("fields"), list):
        return ["it must be an Avro record with a list of fields"]
    names = [f.get("name") for f in schema["fields"] if isinstance(f, Mapping)]
    problems = []
    if undeclared := [n for n in names if n not in entry.fields]:
        problems.append(f"schema fields {undeclared} have no catalog entry (sensitivity)")
    if absent := [n for n in entry.fields if n not in names]:
        problems.append(f"fields {absent} are not in the value schema")
    return problems


def schema_size_problem(schema: Mapping[str, Any]) -> str | None:
    size = len(json.dumps(schema, ensure_ascii=False).encode())
    if size > MAX_VALUE_SCHEMA_BYTES:
        return f"it is {size} bytes; at most {MAX_VALUE_SCHEMA_BYTES} are taken"
    return None


def key_changes(
    before_entry: CatalogEntry,
    before_schema: Mapping[str, Any],
    entry: CatalogEntry,
    schema: Mapping[str, Any],
) -> list[str]:
    """How an edit changes the resource's key (which fields, or their types); empty if not."""
    if tuple(entry.key_fields) != tuple(before_entry.key_fields):
        return [
            f"key_fields: {list(before_entry.key_fields)} cannot become {list(entry.key_fields)}"
        ]
    old, new = field_types(dict(before_schema)), field_types(dict(schema))
    return [
        f"key field {k}: its type {old.get(k)!r} cannot become {new.get(k)!r}"
        for k in entry.key_fields
        if old.get(k) != new.get(k)
    ]


def next_schema_version(
    before_schema: Mapping[str, Any] | None, before_version: int, schema: Mapping[str, Any]
) -> int:
    """1 for a new resource, +1 when the value schema changes, else the same version."""
    if before_schema is None:
        return 1
    return before_version if dict(before_schema) == dict(schema) else before_version + 1
