"""The live view of the catalog: the compacted ``govbus.catalog`` topic.

The control store is the one source of truth for resources; every change of a resource
leaves it through the outbox as one record here, keyed by resource id (``<provider>.<code>``):
the catalog entry, its current Avro value schema and that schema's version. Every process
(ingest, router, sink, lag exporter) reads the topic to its end at start-up and follows it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import Field

from services.common.catalog import CatalogEntry, Strict
from services.common.feed import Decoded, Unreadable


class CatalogRecord(Strict):
    resource: CatalogEntry
    value_schema: dict[str, Any]
    # Version of the value schema in the control store: 1 at creation, +1 per schema change.
    schema_version: int = Field(ge=1)

    @property
    def resource_id(self) -> str:
        return self.resource.resource_id

    @property
    def topic(self) -> str:
        return self.resource.topic


def encode(record: CatalogRecord) -> bytes:
    return record.model_dump_json().encode()


def decode(raw: bytes) -> CatalogRecord:
    return CatalogRecord.model_validate_json(raw)


class CatalogView:
    """A process's live view of the catalog, by source topic. Not thread-safe: apply changes
    between batches.

    A resource whose record could not be read is *blocked*: it is no longer in the view (its
    events are dead-lettered, its grants deliver nothing) until a readable record arrives.
    """

    def __init__(self, records: Iterable[CatalogRecord] = ()) -> None:
        self._by_topic: dict[str, CatalogRecord] = {}
        self.blocked: dict[str, str] = {}  # resource id -> why its record is unreadable
        self.apply({r.resource_id: r for r in records})

    def apply(self, changes: Mapping[str, Decoded[CatalogRecord]]) -> list[str]:
        """Take changes keyed by resource id; returns the resource ids that changed."""
        changed = []
        for rid, value in changes.items():
            topic = next((t for t, r in self._by_topic.items() if r.resource_id == rid), None)
            if topic is not None:
                del self._by_topic[topic]
            self.blocked.pop(rid, None)
            if isinstance(value, Unreadable):
                self.blocked[rid] = value.error
            elif value is not None:
                self._by_topic[value.topic] = value
            changed.append(rid)
        return changed

    def by_topic(self, topic: str) -> CatalogRecord | None:
        return self._by_topic.get(topic)

    def get(self, resource_id: str) -> CatalogRecord | None:
        return next((r for r in self._by_topic.values() if r.resource_id == resource_id), None)

    def records(self) -> list[CatalogRecord]:
        return sorted(self._by_topic.values(), key=lambda r: r.resource_id)

    def topics(self) -> list[str]:
        return sorted(self._by_topic)
