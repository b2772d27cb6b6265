"""Sample records to preview a request on: the demo feed's records for the demo resources,
else records made from the resource's Avro schema. The user may edit them before previewing."""

from __future__ import annotations

import itertools
from typing import Any

from services.catalog.control_store import Resource
from services.common.schemas import field_types
from services.ingest.demo_data import RESOURCES, DemoFeed

SAMPLE_COUNT = 3
_PRIMITIVE = {
    "string": lambda i: f"示例{i + 1}",
    "int": lambda i: i + 1,
    "long": lambda i: i + 1,
    "float": lambda i: 1.5 * (i + 1),
    "double": lambda i: 1.5 * (i + 1),
    "boolean": lambda i: i % 2 == 0,
}


def _demo_resource(code: str) -> str | None:
    return next((r for r in RESOURCES if r.split(".", 1)[1] == code), None)


def _from_type(avro_type: Any, i: int) -> Any:
    if isinstance(avro_type, list):  # a union: its first non-null branch
        branches = [t for t in avro_type if t != "null"]
        return _from_type(branches[0], i) if branches else None
    if isinstance(avro_type, dict):
        if avro_type.get("type") == "enum":
            return avro_type["symbols"][i % len(avro_type["symbols"])]
        logical = avro_type.get("logicalType")
        if logical == "date":
            return 19000 + i
        if logical in ("timestamp-millis", "timestamp-micros"):
            return 1_717_000_000_000 + i
        return _from_type(avro_type.get("type"), i)
    make = _PRIMITIVE.get(avro_type)
    return make(i) if make else None


def sample_records(res: Resource, count: int = SAMPLE_COUNT) -> list[dict[str, Any]]:
    demo = _demo_resource(res.entry.code)
    if demo is not None:
        feed = DemoFeed(seed=7)
        for _ in feed.changes(2000):
            if len(feed.live_records(demo)) >= count:
                break
        return [dict(r) for r in itertools.islice(feed.live_records(demo).values(), count)]
    types = field_types(res.value_schema)
    return [{name: _from_type(t, i) for name, t in types.items()} for i in range(count)]
