"""The audit trail of shares: who received which records, when, under which grant.

Records go to the single-partition ``govbus.audit`` topic as JSON, each sealed with the hash
of the one before it, so removing or editing a record breaks the chain where it happened.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

GENESIS = "0" * 64


def _canonical(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def seal(body: Mapping[str, Any], prev_hash: str) -> dict[str, Any]:
    """The body with its place in the chain: the previous hash and its own."""
    digest = hashlib.sha256(prev_hash.encode() + _canonical(body)).hexdigest()
    return {**body, "prev_hash": prev_hash, "hash": digest}


def share_record(
    grant_id: str,
    consumer: str,
    resource: str,
    deliveries: list[tuple[str, Mapping[str, Any]]],
    ts_ms: int,
    kind: str = "live",
    fields: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One batch of deliveries under one grant: event ids and the keys as delivered (masked).

    ``kind`` is "live" for routed changes, "backfill" for the current state sent on activation.
    ``fields``: each field delivered and its masking method (the citizen data-use ledger).
    """
    body = {
        "kind": kind,
        "grant_id": grant_id,
        "consumer": consumer,
        "resource": resource,
        "ts_ms": ts_ms,
        "count": len(deliveries),
        "event_ids": [event_id for event_id, _ in deliveries],
        "keys": [dict(key) for _, key in deliveries],
    }
    if fields is not None:
        body["fields"] = dict(fields)
    return body


def first_broken_link(records: Iterable[Mapping[str, Any]], start: str = GENESIS) -> int | None:
    """Index of the first record that does not follow from the ones before it, else None."""
    prev = start
    for index, record in enumerate(records):
        body = {k: v for k, v in record.items() if k not in ("prev_hash", "hash")}
        if record.get("prev_hash") != prev or seal(body, prev)["hash"] != record.get("hash"):
            return index
        prev = record["hash"]
    return None
