"""What the sink stores of one decoded change event, or why it cannot (a poison record).

Avro decoding with the resource's current schema already checks every type; what is left is
what a schema cannot say: a delete carries the record it deleted, a create or update carries
the new record, the key is there and unchanged, the event is of this topic's resource, and
the source position gives a version.
"""

from __future__ import annotations

from typing import Any

from services.common.catalog_feed import CatalogRecord
from services.common.schemas import OPS
from services.common.store_tables import source_version
from services.sink.central_store import StoredChange


class Poison(ValueError):
    """A record the sink can never store: it goes to the dead-letter topic with ``reason``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        # Set once the event is decoded: its resource and masked view, for the dead letter.
        self.resource: str | None = None
        self.view: dict[str, Any] | None = None


def stored_change(
    event: dict[str, Any], record: CatalogRecord, topic: str, partition: int, offset: int
) -> StoredChange:
    entry = record.resource
    op, before, after, source = event["op"], event["before"], event["after"], event["source"]
    if op not in OPS:
        raise Poison("invalid_op", f"op {op!r} is not one of {', '.join(OPS)}")
    if (source["provider"], source["resource"]) != (entry.provider, entry.code):
        raise Poison(
            "wrong_resource",
            f"source names {source['provider']}.{source['resource']}, "
            f"the topic is {entry.resource_id}'s",
        )
    if op == "d" and before is None:
        raise Poison("delete_without_before", "a delete must carry the deleted record in before")
    if op != "d" and after is None:
        raise Poison("missing_after", f"op {op!r} must carry the new record in after")
    row = after if after is not None else before
    missing = [k for k in entry.key_fields if row.get(k) is None]
    if missing:
        raise Poison("missing_key", f"key fields {missing} are null")
    if before is not None and after is not None:
        moved = [k for k in entry.key_fields if before.get(k) != after.get(k)]
        if moved:
            # A new key is a delete and a create at the source; as an update it would leave
            # the old key's row live.
            raise Poison("key_changed", f"an update changes key fields {moved}")
    try:
        version = source_version(source["position"])
    except ValueError as exc:
        raise Poison("bad_position", str(exc)) from exc
    return StoredChange(
        resource=entry.resource_id,
        event_id=event["event_id"],
        op=op,
        before=before,
        after=after,
        ts_ms=event["ts_ms"],
        source_ts_ms=source["ts_ms"],
        version=version,
        topic=topic,
        partition=partition,
        offset=offset,
    )
