"""Inboxes: the provider answers requests on its resources (approve, or reject with a
reason); the authority activates approved grants and revokes live ones. Due dates are
shown; overdue steps stand out, the longest overdue first."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Request
from starlette.responses import Response

from services.catalog.workflow import Forbidden, Role
from services.hall.grant_view import NEEDS_REASON, is_overdue, offered_actions
from services.hall.listing import by_due_date, narrowing, shown
from services.hall.pages import HallDep, Who, page

router = APIRouter()
QUEUE_MAX = 50  # rows shown per queue, the earliest due first; the count says how many wait
# Which grants wait for whom: the provider answers requests, the authority activates approved
# (or suspended) grants and may revoke live ones.
# Live grants have no due date: they come in grant id order, which needs no sort.
QUEUES = {
    Role.PROVIDER: [("inbox.provider", ("requested",), True)],
    Role.AUTHORITY: [
        ("inbox.authority_activate", ("approved", "suspended"), True),
        ("inbox.authority_live", ("active",), False),
    ],
}


@router.get("/inbox")
def inbox(request: Request, hall: HallDep, viewer: Who) -> Response:
    actor = viewer.actor
    if actor.role not in QUEUES:
        raise Forbidden(
            f"the inbox is the provider's and the authority's; {actor.user} is {actor.role}"
        )
    queues = []
    store = hall.plane.store
    narrow = narrowing(actor)
    for label, states, due in QUEUES[actor.role]:
        bodies, total = [], 0
        for state in states:
            bodies += store.case_bodies(state=state, limit=QUEUE_MAX, by_due=due, **narrow)
            total += store.count_cases(state=state, **narrow)
        ordered = by_due_date(bodies) if due else bodies
        queues.append((label, shown(actor, ordered[:QUEUE_MAX]), total))
    return page(
        request,
        viewer,
        "inbox.html",
        queues=queues,
        today=dt.date.today(),
        is_overdue=is_overdue,
        offered=lambda c: offered_actions(actor, c),
        needs_reason=NEEDS_REASON,
    )
