"""The live view of grants: the compacted ``govbus.grants`` topic.

The control store publishes a grant's whole state on every change (through its outbox),
keyed by grant id. The record names its resource by id only: the resource and its schema
come from ``govbus.catalog``, the one live view of the catalog, so a follower joins the two.
The last record per id is the grant's state.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pydantic import Field

from services.common.catalog import Grant, Strict
from services.common.topics import source_topic


class GrantRecord(Strict):
    grant: Grant
    # Counts the grant's activations: a suspended grant that the authority activates again is
    # a new activation, and each activation gets its own backfill.
    activation: int = Field(0, ge=0)

    @property
    def source_topic(self) -> str:
        return source_topic(*self.grant.resource.split(".", 1))

    @property
    def backfill_id(self) -> str:
        """What a completed backfill is recorded under: once per grant and activation."""
        return self.grant.id if self.activation <= 1 else f"{self.grant.id}@{self.activation}"


def encode(record: GrantRecord) -> bytes:
    return record.model_dump_json().encode()


def decode(raw: bytes) -> GrantRecord:
    return GrantRecord.model_validate_json(raw)


def for_sources(records: Iterable[GrantRecord], source_pattern: str) -> dict[str, GrantRecord]:
    """The records on resources whose source topic matches ``source_pattern``, by grant id."""
    pattern = re.compile(source_pattern)
    return {r.grant.id: r for r in records if pattern.match(r.source_topic)}
