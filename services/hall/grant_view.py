"""Pure functions behind the grant pages: which buttons to offer, overdue steps, timelines.

The buttons only follow the workflow's RULES table (state and role); the control plane still
decides every action when it is taken, with its own checks and reasons.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from services.catalog.workflow import RULES, Action, Actor, Case

# What a person may ask for in the hall; expiry and suspension only ever happen to a grant.
HALL_ACTIONS = (Action.APPROVE, Action.REJECT, Action.ACTIVATE, Action.REVOKE)
NEEDS_REASON = frozenset({Action.REJECT, Action.REVOKE})


def offered_actions(actor: Actor, case: Case) -> list[Action]:
    out = []
    for action in HALL_ACTIONS:
        states, roles = RULES[action]
        if case.grant.state in states and actor.role in roles:
            out.append(action)
    return out


def is_overdue(case: Case, today: dt.date) -> bool:
    return case.step_due is not None and case.step_due < today


@dataclass(frozen=True)
class Step:
    at: str
    actor: str
    action: str
    state: str | None  # the grant's state after the step
    reason: str | None


def timeline(changes: list[dict[str, Any]]) -> list[Step]:
    """A grant's change-log entries, oldest first."""
    steps = []
    for c in sorted(changes, key=lambda c: c["seq"]):
        after = c.get("after") or {}
        state = (after.get("grant") or {}).get("state")
        steps.append(
            Step(
                c["at"][:19].replace("T", " "), c["actor"], c["action"], state, after.get("reason")
            )
        )
    return steps
