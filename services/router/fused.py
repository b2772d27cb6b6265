"""One grant's delivery of a decoded event as one fused step: filter, project, mask, encode.

The semantics are ``plan_delivery``'s (services/common/plan.py), the one definition that the
control plane's preview, the backfill and the tests use. This is the same logic unrolled for
the data path, where per-event Python overhead is most of the router's cost: no ``Delivery``
or ``Output`` object, no dict beyond the record, key and envelope themselves. A unit test
holds its bytes equal to ``plan_delivery`` and the route's encoders on the demo data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from services.common.plan import DeliveryPlan
from services.common.serde import Encoder

# (encoded key, encoded value, record key as delivered) or None: the row filter holds it back
Delivered = tuple[bytes, bytes, dict[str, Any]] | None
Fused = Callable[[Mapping[str, Any]], Delivered]


def fuse(plan: DeliveryPlan, encode_key: Encoder, encode_value: Encoder) -> Fused:
    """``plan_delivery`` then both encoders, in one step. Raises as they do (KeyError,
    MaskingError, EncodeError)."""
    accepts, fields, key_fields = plan.accepts, plan.fields, plan.key_fields
    grant_id = plan.grant.id

    def deliver(event: Mapping[str, Any]) -> Delivered:
        before, after, op = event["before"], event["after"], event["op"]
        # The filter runs only where plan_delivery's outcome depends on it (it is pure).
        if after is not None and op != "d" and accepts(after):
            row = after
            if op == "u" and before is not None and not accepts(before):
                op = "c"  # the row enters the consumer's filter
        elif before is not None and accepts(before):
            op, row = "d", before  # the row leaves it
        else:
            return None
        record = {name: row[name] if m is None else m(row[name]) for name, m in fields}
        key = {k: record[k] for k in key_fields}
        value = {
            "op": op,
            "event_id": event["event_id"],
            "ts_ms": event["ts_ms"],
            "grant_id": grant_id,
            "record": record,
        }
        return encode_key(key), encode_value(value), key

    return deliver
