"""Compile a grant into a delivery plan, and apply a plan to a change event. Pure functions.

A plan is built once per grant: the row filter is parsed into a closure, every granted
field gets its masking closure, and the consumer's own key and value schemas are derived.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from services.common.catalog import CatalogEntry, Grant
from services.common.catalog_feed import CatalogRecord
from services.common.grant_feed import GrantRecord
from services.common.masking import MaskSpec, build_masker, consumer_key, output_type
from services.common.rowfilter import compile_filter
from services.common.schemas import field_types

KEEP = MaskSpec(method="keep")
Masker = Callable[[Any], Any] | None  # None: deliver the value unchanged


@dataclass(frozen=True, eq=False)  # identity: plans are counted per batch in dicts
class DeliveryPlan:
    grant: Grant
    topic: str
    accepts: Callable[[Mapping[str, Any]], bool]
    fields: tuple[tuple[str, Masker], ...]
    key_fields: tuple[str, ...]  # masked like the record (keep or hmac), taken from it
    key_schema: dict[str, Any]
    value_schema: dict[str, Any]
    masked_per_record: Mapping[str, int]  # method -> masked fields in one delivered record
    delivered_fields: Mapping[str, str]  # field -> masking method, as the audit records it


@dataclass(frozen=True)
class Delivery:
    key: dict[str, Any]
    value: dict[str, Any]


def _always(_: Mapping[str, Any]) -> bool:
    return True


def compile_plan(
    grant: Grant, entry: CatalogEntry, value_schema: dict[str, Any], master_secret: bytes
) -> DeliveryPlan:
    """The grant's plan on the resource's current ``value_schema``.

    A granted field the schema no longer has is left out (the consumer's delivery schema loses
    it, a compatible change for the consumer); a key field must stay, else ValueError.
    """
    types = field_types(value_schema)
    lost_keys = [k for k in entry.key_fields if k not in types]
    if lost_keys:
        raise ValueError(f"grant {grant.id}: key fields {lost_keys} are not in the schema")
    key = consumer_key(master_secret, grant.consumer)
    granted = [name for name in grant.fields if name in types]
    specs = {name: grant.masking.get(name, KEEP) for name in granted}
    kept = [name for name in granted if specs[name].method != "drop"]

    def masker(name: str) -> Masker:
        spec = specs[name]
        return None if spec.method == "keep" else build_masker(spec, key)

    defaults = {f["name"]: f["default"] for f in value_schema["fields"] if "default" in f}

    def out_field(name: str) -> dict[str, Any]:
        out = {"name": name, "type": output_type(specs.get(name, KEEP), types[name])}
        # A field kept as it is keeps its default: a field the provider adds with a default,
        # once granted, is then a compatible change of the consumer's delivery schema too.
        if specs.get(name, KEEP).method == "keep" and name in defaults:
            out["default"] = defaults[name]
        return out

    namespace = f"govbus.deliver.{grant.consumer}.{entry.code}"
    record_schema = {
        "type": "record",
        "name": "Record",
        "namespace": namespace,
        "fields": [out_field(n) for n in kept],
    }
    value_schema_out = {
        "type": "record",
        "name": "Delivery",
        "namespace": namespace,
        "doc": f"{entry.name_zh} for {grant.consumer} under grant {grant.id}",
        "fields": [
            {"name": "op", "type": "string"},
            {"name": "event_id", "type": "string"},
            {"name": "ts_ms", "type": "long"},
            {"name": "grant_id", "type": "string"},
            {"name": "record", "type": ["null", record_schema], "default": None},
        ],
    }
    key_schema_out = {
        "type": "record",
        "name": "Key",
        "namespace": namespace,
        "fields": [out_field(k) for k in entry.key_fields],
    }
    masked = Counter(specs[n].method for n in kept if specs[n].method != "keep")
    return DeliveryPlan(
        grant=grant,
        topic=grant.topic,
        accepts=compile_filter(grant.row_filter, set(types)) if grant.row_filter else _always,
        fields=tuple((n, masker(n)) for n in kept),
        key_fields=entry.key_fields,
        key_schema=key_schema_out,
        value_schema=value_schema_out,
        masked_per_record=dict(masked),
        delivered_fields={n: specs[n].method for n in kept},
    )


def _project(fields: tuple[tuple[str, Masker], ...], record: Mapping[str, Any]) -> dict[str, Any]:
    return {name: record[name] if m is None else m(record[name]) for name, m in fields}


def plan_delivery(plan: DeliveryPlan, event: Mapping[str, Any]) -> Delivery | None:
    """What the grant's consumer receives for one change event, or None.

    A row that leaves the consumer's filter on update reaches it as a delete, so the
    consumer's copy never keeps a row it is no longer entitled to.
    """
    before, after, op = event["before"], event["after"], event["op"]
    was_visible = before is not None and plan.accepts(before)
    is_visible = after is not None and op != "d" and plan.accepts(after)
    if is_visible:
        out_op, row = ("c" if op == "u" and before is not None and not was_visible else op), after
    elif was_visible:
        out_op, row = "d", before
    else:
        return None
    record = _project(plan.fields, row)
    return Delivery(
        key={k: record[k] for k in plan.key_fields},
        value={
            "op": out_op,
            "event_id": event["event_id"],
            "ts_ms": event["ts_ms"],
            "grant_id": plan.grant.id,
            "record": record,
        },
    )


def live_plans(
    records: Iterable[GrantRecord],
    catalog: Mapping[str, CatalogRecord],
    master_secret: bytes,
    today: dt.date,
) -> list[DeliveryPlan]:
    """Plans of the grants live today, each joined with its resource's catalog record (by
    resource id) and compiled with that record's current value schema. A grant whose resource
    is not in ``catalog`` delivers nothing, so it has no plan."""
    return [
        compile_plan(r.grant, found.resource, found.value_schema, master_secret)
        for r in records
        if r.grant.is_live(today) and (found := catalog.get(r.grant.resource)) is not None
    ]


def expected_deliveries(
    plans: Iterable[DeliveryPlan], published: Iterable[tuple[str, Any]]
) -> dict[str, set[str]]:
    """Event ids each delivery topic must carry, given (event id, change) pairs published."""
    published = list(published)
    expected: dict[str, set[str]] = {}
    for plan in plans:
        ids = expected.setdefault(plan.topic, set())
        for event_id, c in published:
            if c.resource != plan.grant.resource:
                continue
            event = {"before": c.before, "after": c.after, "op": c.op, "event_id": event_id}
            if plan_delivery(plan, {**event, "ts_ms": 0}) is not None:
                ids.add(event_id)
    return expected
