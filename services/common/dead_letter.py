"""Dead letters: a record the bus could not take, kept with where it came from and why, and
with no personal data in clear.

A dead letter on ``govbus.dlq`` is JSON: stage, reason, detail, resource, grant, the source
position, and the record's field names with their values masked by sensitivity (L1 and L2
kept, L3 and L4 masked; a field the catalog does not describe is masked too). The original is
never copied: when it is on a source topic, the position references it, and ``govbus dlq
redrive`` reads it there; when it never reached one (an ingest reject), it travels sealed to the
authority's public key (``authority_seal``), which only the authority can open.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from services.common.catalog import CatalogEntry, Sensitivity
from services.common.idnumbers import find_resident_ids
from services.common.masking import REDACTED, partial
from services.common.topics import DLQ

OPEN_LEVELS = (Sensitivity.L1, Sensitivity.L2)
DETAIL_MAX = 1000


@dataclass(frozen=True)
class DeadLetter:
    stage: str  # ingest | router | sink
    reason: str  # short code: not_avro, unknown_schema_id, unknown_resource, invalid_id_number ...
    detail: str
    topic: str | None = None  # where the original is, when it reached a source topic
    partition: int | None = None
    offset: int | None = None
    grant: str | None = None  # the one grant whose delivery failed; None: the whole event
    resource: str | None = None  # <provider>.<code>, when known
    record: Mapping[str, Any] | None = None  # masked view (``masked_change``), when decoded
    sealed: str | None = None  # the original sealed to the authority's key (ingest rejects)

    def headers(self) -> list[tuple[str, bytes]]:
        pairs = {
            "govbus.stage": self.stage,
            "govbus.reason": self.reason,
            "govbus.detail": scrub(self.detail)[:DETAIL_MAX],
            "govbus.source.topic": self.topic,
            "govbus.source.partition": self.partition,
            "govbus.source.offset": self.offset,
            "govbus.grant": self.grant,
            "govbus.resource": self.resource,
        }
        return [(k, str(v).encode()) for k, v in pairs.items() if v is not None]

    def key(self) -> bytes:
        """Its source position, else its resource: never the original key, which may be an ID."""
        if self.topic is not None:
            return f"{self.topic}:{self.partition}:{self.offset}".encode()
        return (self.resource or "").encode()

    def body(self) -> dict[str, Any]:
        source = None
        if self.topic is not None:
            source = {"topic": self.topic, "partition": self.partition, "offset": self.offset}
        return {
            "stage": self.stage,
            "reason": self.reason,
            "detail": scrub(self.detail)[:DETAIL_MAX],
            "resource": self.resource,
            "grant": self.grant,
            "source": source,
            "record": dict(self.record) if self.record is not None else None,
            "sealed": self.sealed,
        }

    def value(self) -> bytes:
        return json.dumps(self.body(), ensure_ascii=False, default=str).encode()


def produce_dead_letter(producer, letter: DeadLetter, on_delivery=None) -> None:
    """Queue a dead letter on a confluent-kafka producer (the caller flushes)."""
    producer.produce(
        DLQ,
        value=letter.value(),
        key=letter.key(),
        headers=letter.headers(),
        on_delivery=on_delivery,
    )


def header_map(headers: list[tuple[str, bytes]] | None) -> dict[str, str]:
    return {k: (v.decode() if v is not None else "") for k, v in (headers or [])}


def scrub(text: str) -> str:
    """``text`` with every resident ID in it masked 6+4 (details may quote a value)."""
    for found in set(find_resident_ids(text)):
        text = text.replace(found, partial(found, head=6, tail=4))
    return text


def mask_value(entry: CatalogEntry | None, name: str, value: Any) -> Any:
    """A field's value as a dead letter shows it: L1/L2 kept, anything else masked."""
    if value is None:
        return None
    spec = entry.fields.get(name) if entry is not None else None
    if spec is not None and spec.sensitivity in OPEN_LEVELS:
        return scrub(value) if isinstance(value, str) else value
    if spec is not None and spec.format is not None and isinstance(value, str):
        # An identifier shows as on an ID card (6+4): enough to find the record, not to read it.
        return partial(value, head=6, tail=4)
    return REDACTED


def masked_record(entry: CatalogEntry | None, record: Any) -> Any:
    if not isinstance(record, Mapping):
        return None if record is None else REDACTED
    return {str(name): mask_value(entry, str(name), v) for name, v in record.items()}


def masked_change(change: Mapping[str, Any], entry: CatalogEntry | None) -> dict[str, Any]:
    """The masked view of a change (an envelope, a stored change, a rejected change): its op
    and its before/after with every field named and L3/L4 values masked."""
    return {
        "op": change.get("op"),
        "before": masked_record(entry, change.get("before")),
        "after": masked_record(entry, change.get("after")),
    }
