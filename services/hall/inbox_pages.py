"""Inboxes: the provider answers requests on its resources (approve, or reject with a
reason); the authority activates approved grants and revokes live ones. Due dates are
shown; overdue steps stand out, the longest overdue first."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Request
from starlette.responses import Response

from services.catalog.workflow import Case, Forbidden, Role, overdue, visible_to
from services.common.catalog import GrantState
from services.hall.grant_view import NEEDS_REASON, is_overdue, offered_actions
from services.hall.pages import HallDep, Who, page

router = APIRouter()
QUEUE_MAX = 200  # rows shown per queue; the count says how many wait in all
# Which grants wait for whom: the workflow's waiting_for, and for the authority the live ones.
QUEUES = {
    Role.PROVIDER: [("inbox.provider", (GrantState.REQUESTED,))],
    Role.AUTHORITY: [
        ("inbox.authority_activate", (GrantState.APPROVED, GrantState.SUSPENDED)),
        ("inbox.authority_live", (GrantState.ACTIVE,)),
    ],
}


def _queue(cases: list[Case], today: dt.date) -> list[Case]:
    """Overdue first (longest overdue first), then by due date, then the newest."""
    late = overdue(cases, today)
    late_ids = {c.grant.id for c in late}
    rest = [c for c in cases if c.grant.id not in late_ids]
    rest.sort(key=lambda c: (c.step_due or dt.date.max, -c.requested_at.timestamp()))
    return late + rest


@router.get("/inbox")
def inbox(request: Request, hall: HallDep, viewer: Who) -> Response:
    actor = viewer.actor
    if actor.role not in QUEUES:
        raise Forbidden(
            f"the inbox is the provider's and the authority's; {actor.user} is {actor.role}"
        )
    today = dt.date.today()
    queues = []
    for label, states in QUEUES[actor.role]:
        cases = [
            c
            for state in states
            for c in hall.plane.store.cases(state=state.value)
            if visible_to(actor, c)
        ]
        queues.append((label, _queue(cases, today)[:QUEUE_MAX], len(cases)))
    return page(
        request,
        viewer,
        "inbox.html",
        queues=queues,
        today=today,
        is_overdue=is_overdue,
        offered=lambda c: offered_actions(actor, c),
        needs_reason=NEEDS_REASON,
    )
