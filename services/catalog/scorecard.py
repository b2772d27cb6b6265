"""The scorecard (考核) of departments against the aggregation targets, as pure functions.

Per department and per category (government or social data):

- **aggregation**: resources whose data reaches the central store (it holds rows of them) out
  of the resources catalogued, against the targets: 100 % of government data, 60 % of social;
- **freshness**: resources whose last change in the central store is no older than their
  declared update frequency allows, out of the resources catalogued;
- **dead-letter rate**: dead letters about the department's resources out of the changes
  offered (published on their source topics, or rejected at ingest before publication);
- **answered on time**: the department's answers to requests (approve or reject) given by the
  step's due date, out of those answers plus the requests still open past it;
- **active shares**: grants delivering now on the department's resources.

The inputs are plain facts (``scorecard_sources`` reads them); nothing here does I/O.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel

from services.catalog.workflow import Case
from services.common.catalog import CatalogEntry, GrantState

Category = Literal["government", "social"]
TARGETS: Mapping[str, float] = {"government": 1.0, "social": 0.6}
# How old the last change of a resource may be for its declared update frequency.
FRESHNESS_LIMIT: Mapping[str, dt.timedelta] = {
    "realtime": dt.timedelta(hours=1),
    "daily": dt.timedelta(days=1),
    "weekly": dt.timedelta(days=7),
    "monthly": dt.timedelta(days=31),
}
PROVINCE = "*"  # the department label of a category's province-wide row


@dataclass(frozen=True)
class StoreFacts:
    """What the central store holds of one resource."""

    rows: int
    last_change_ms: int | None  # when the bus saw its latest change; None: never


@dataclass(frozen=True)
class FlowFacts:
    """What the bus carried of one resource."""

    offered: int  # changes published on its source topic, plus those rejected at ingest
    dead_letters: int  # dead letters naming it, at any stage


@dataclass(frozen=True)
class Answer:
    """A provider's step on one request: due by ``due``, answered on ``answered`` (or not yet)."""

    resource: str
    due: dt.date
    answered: dt.date | None


class Score(BaseModel):
    department: str  # PROVINCE for the category's whole
    category: Category
    resources: int
    aggregated: int
    aggregation: float | None
    target: float
    meets_target: bool
    fresh: int
    freshness: float | None
    offered: int
    dead_letters: int
    dead_letter_rate: float | None
    answers_due: int
    answered_on_time: int
    on_time: float | None
    active_shares: int


class ResourceState(BaseModel):
    """One resource as the scorecard saw it: in the store or not, and how fresh."""

    resource: str
    department: str
    category: Category
    update_frequency: str
    rows: int
    last_change: dt.datetime | None
    fresh: bool


class Scorecard(BaseModel):
    at: dt.datetime
    scores: list[Score]
    resources: list[ResourceState] = []

    def resource(self, resource_id: str) -> ResourceState | None:
        return next((r for r in self.resources if r.resource == resource_id), None)

    def below_target(self) -> list[Score]:
        return [s for s in self.scores if not s.meets_target]


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def is_fresh(entry: CatalogEntry, facts: StoreFacts | None, now: dt.datetime) -> bool:
    if facts is None or facts.last_change_ms is None:
        return False
    age = now - dt.datetime.fromtimestamp(facts.last_change_ms / 1000, dt.UTC)
    return age <= FRESHNESS_LIMIT[entry.update_frequency]


def answers_from_changes(changes: Iterable[Mapping[str, Any]]) -> list[Answer]:
    """The provider's answers, from the change log's grant entries (before and after a case):
    a request (``requested``) that moved on was answered that day, due on its ``step_due``."""
    out = []
    for change in changes:
        before, after = change.get("before"), change.get("after")
        if not before or not after or before["grant"]["state"] != GrantState.REQUESTED:
            continue
        if after["grant"]["state"] == GrantState.REQUESTED or not before.get("step_due"):
            continue
        at = change["at"]
        answered = (at if isinstance(at, dt.datetime) else dt.datetime.fromisoformat(at)).date()
        out.append(
            Answer(before["grant"]["resource"], dt.date.fromisoformat(before["step_due"]), answered)
        )
    return out


def waiting_answers(cases: Iterable[Case]) -> list[Answer]:
    """Requests still waiting for their provider."""
    return [
        Answer(c.grant.resource, c.step_due, None)
        for c in cases
        if c.grant.state is GrantState.REQUESTED and c.step_due is not None
    ]


def _score(
    department: str,
    category: Category,
    entries: list[CatalogEntry],
    store: Mapping[str, StoreFacts],
    flow: Mapping[str, FlowFacts],
    answers: list[Answer],
    cases: list[Case],
    now: dt.datetime,
) -> Score:
    ids = {e.resource_id for e in entries}
    aggregated = sum(1 for e in entries if (f := store.get(e.resource_id)) and f.rows > 0)
    fresh = sum(1 for e in entries if is_fresh(e, store.get(e.resource_id), now))
    offered = sum(flow[r].offered for r in ids if r in flow)
    dead = sum(flow[r].dead_letters for r in ids if r in flow)
    today = now.date()
    # An open request counts once it is late; one still within its time is not judged yet.
    judged = [a for a in answers if a.resource in ids and (a.answered is not None or a.due < today)]
    on_time = sum(1 for a in judged if a.answered is not None and a.answered <= a.due)
    shares = sum(1 for c in cases if c.grant.resource in ids and c.grant.is_live(today))
    aggregation = _ratio(aggregated, len(entries))
    target = TARGETS[category]
    return Score(
        department=department,
        category=category,
        resources=len(entries),
        aggregated=aggregated,
        aggregation=aggregation,
        target=target,
        meets_target=aggregation is None or aggregation >= target,
        fresh=fresh,
        freshness=_ratio(fresh, len(entries)),
        offered=offered,
        dead_letters=dead,
        dead_letter_rate=_ratio(dead, offered),
        answers_due=len(judged),
        answered_on_time=on_time,
        on_time=_ratio(on_time, len(judged)),
        active_shares=shares,
    )


def scorecard(
    entries: Iterable[CatalogEntry],
    store: Mapping[str, StoreFacts],
    flow: Mapping[str, FlowFacts],
    answers: Iterable[Answer],
    cases: Iterable[Case],
    now: dt.datetime,
) -> Scorecard:
    """Every providing department's score per category, then each category's province row."""
    entries, answers, cases = list(entries), list(answers), list(cases)
    groups: dict[tuple[str, Category], list[CatalogEntry]] = {}
    for e in entries:
        groups.setdefault((e.provider, e.category), []).append(e)
        groups.setdefault((PROVINCE, e.category), []).append(e)
    scores = [
        _score(dept, cat, group, store, flow, answers, cases, now)
        for (dept, cat), group in sorted(
            groups.items(), key=lambda kv: (kv[0][0] == PROVINCE, kv[0])
        )
    ]
    states = [
        ResourceState(
            resource=e.resource_id,
            department=e.provider,
            category=e.category,
            update_frequency=e.update_frequency,
            rows=(f := store.get(e.resource_id, StoreFacts(0, None))).rows,
            last_change=None
            if f.last_change_ms is None
            else dt.datetime.fromtimestamp(f.last_change_ms / 1000, dt.UTC),
            fresh=is_fresh(e, f, now),
        )
        for e in sorted(entries, key=lambda e: e.resource_id)
    ]
    return Scorecard(at=now, scores=scores, resources=states)
