"""Where the scorecard's facts come from: the central store, the bus's topics, the control store.

- the central store: rows and the latest change (``_ts_ms``) of each resource's current table;
- Kafka: the end offsets of the source topics (changes published) and the dead-letter topic,
  read on from where the last reading stopped and tallied by resource and stage;
- the control store: the change log's grant entries (the providers' answers) and the cases.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Iterable

from sqlalchemy import Engine, func, inspect, select

from services.catalog.control_store import ControlStore, changes
from services.catalog.scorecard import (
    FlowFacts,
    Scorecard,
    StoreFacts,
    answers_from_changes,
    scorecard,
    waiting_answers,
)
from services.common.catalog_feed import CatalogRecord
from services.common.settings import Settings
from services.common.store_tables import resource_tables
from services.common.topic_reader import Offsets, end_offsets, read_range
from services.common.topics import DLQ


def store_facts(engine: Engine, records: Iterable[CatalogRecord]) -> dict[str, StoreFacts]:
    """Rows and latest change per resource; a resource the sink never wrote has no table."""
    present = set(inspect(engine).get_table_names())
    out = {}
    with engine.connect() as conn:
        for record in records:
            table = resource_tables(record).current
            if table.name not in present:
                out[record.resource_id] = StoreFacts(0, None)
                continue
            rows, last = conn.execute(select(func.count(), func.max(table.c._ts_ms))).one()
            out[record.resource_id] = StoreFacts(int(rows), None if last is None else int(last))
    return out


class DeadLetterTally:
    """Dead letters per resource, all stages and ingest alone, read on incrementally."""

    def __init__(self) -> None:
        self.read_to: Offsets = {}
        self.all: Counter[str] = Counter()
        self.ingest: Counter[str] = Counter()

    def read(self, settings: Settings) -> None:
        end = end_offsets(settings, [DLQ])
        for msg in read_range(settings, self.read_to, end):
            try:
                body = json.loads(msg.value() or b"{}")
            except ValueError:
                continue  # not written by the bus: nothing to tally
            resource = body.get("resource") if isinstance(body, dict) else None
            if resource:
                self.all[resource] += 1
                if body.get("stage") == "ingest":
                    self.ingest[resource] += 1
        self.read_to = {**self.read_to, **end}


def flow_facts(
    settings: Settings, records: Iterable[CatalogRecord], tally: DeadLetterTally
) -> dict[str, FlowFacts]:
    """Changes offered and dead letters per resource, from Kafka."""
    records = list(records)
    tally.read(settings)
    ends = end_offsets(settings, [r.resource.topic for r in records])
    published: Counter[str] = Counter()
    for (topic, _), offset in ends.items():
        published[topic] += offset
    return {
        r.resource_id: FlowFacts(
            offered=published[r.resource.topic] + tally.ingest[r.resource_id],
            dead_letters=tally.all[r.resource_id],
        )
        for r in records
    }


def grant_changes(store: ControlStore) -> list[dict]:
    """Every grant entry of the change log, oldest first."""
    query = (
        select(changes.c.at, changes.c.before, changes.c.after)
        .where(changes.c.kind == "grant")
        .order_by(changes.c.seq)
    )
    with store.reading() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def compute(
    store: ControlStore,
    central: Engine,
    settings: Settings | None,
    tally: DeadLetterTally,
    now: dt.datetime,
) -> Scorecard:
    """The scorecard now; ``settings`` None leaves out what Kafka tells (no flow facts)."""
    records = [r.record() for r in store.resources()]
    cases = store.cases()
    flow = flow_facts(settings, records, tally) if settings is not None else {}
    answers = answers_from_changes(grant_changes(store)) + waiting_answers(cases)
    return scorecard(
        [r.resource for r in records], store_facts(central, records), flow, answers, cases, now
    )
