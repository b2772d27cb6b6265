"""Grants (供需对接): the viewer's grants, one grant's page with its timeline and delivery
count, and the workflow's actions, each taken by the control plane as the API takes it."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from starlette.responses import RedirectResponse, Response

from services.catalog.workflow import Action, Case, NotFound, visible_to
from services.common.catalog import TEXT_MAX, GrantState
from services.hall.grant_view import (
    HALL_ACTIONS,
    NEEDS_REASON,
    is_overdue,
    offered_actions,
    timeline,
)
from services.hall.listing import narrowing, shown
from services.hall.pages import HallDep, Poster, Viewer, Who, base_path, page

router = APIRouter()
LIST_MAX = 100  # grants on one page of the list, in grant id order


def visible_case(hall, viewer: Viewer, grant_id: str) -> Case:
    """The grant if the viewer may see it; another department's is 'not found', as in the API."""
    case = hall.plane.case(grant_id)
    if not visible_to(viewer.actor, case):
        raise NotFound(f"no grant {grant_id!r}")
    return case


@router.get("/grants")
def grants(
    request: Request,
    hall: HallDep,
    viewer: Who,
    state: str = "",
    page_no: Annotated[int, Query(alias="page", ge=1, le=10_000)] = 1,
) -> Response:
    wanted = state if state in {s.value for s in GrantState} else None
    bodies = hall.plane.store.case_bodies(
        state=wanted,
        limit=LIST_MAX + 1,
        offset=(page_no - 1) * LIST_MAX,
        **narrowing(viewer.actor),
    )
    return page(
        request,
        viewer,
        "grants.html",
        cases=shown(viewer.actor, bodies[:LIST_MAX]),
        more=len(bodies) > LIST_MAX,
        page_no=page_no,
        state=wanted or "",
        states=[s.value for s in GrantState],
        today=dt.date.today(),
        is_overdue=is_overdue,
    )


@router.get("/grants/{grant_id}")
def grant(request: Request, hall: HallDep, viewer: Who, grant_id: str) -> Response:
    case = visible_case(hall, viewer, grant_id)
    return page(
        request,
        viewer,
        "grant.html",
        case=case,
        g=case.grant,
        overdue=is_overdue(case, dt.date.today()),
        actions=offered_actions(viewer.actor, case),
        needs_reason=NEEDS_REASON,
        steps=timeline(hall.plane.store.changes(grant_id)),
    )


@router.get("/grants/{grant_id}/deliveries")
def deliveries(request: Request, hall: HallDep, viewer: Who, grant_id: str) -> Response:
    """The count of records delivered on the grant's topic (polled by the grant's page)."""
    case = visible_case(hall, viewer, grant_id)
    count = hall.deliveries.count(case.grant.topic) if hall.deliveries else None
    return page(request, viewer, "_deliveries.html", g=case.grant, count=count)


@router.post("/grants/{grant_id}/{action}")
def act(
    request: Request,
    hall: HallDep,
    viewer: Poster,
    grant_id: str,
    action: Action,
    reason: Annotated[str, Form(max_length=TEXT_MAX)] = "",
    back: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    if action not in HALL_ACTIONS:
        raise NotFound(f"{action} is not an action anyone takes; a grant {action}s by itself")
    hall.plane.act(viewer.actor, grant_id, action, reason.strip() or None)
    if hall.relay is not None:
        hall.relay.notify()
    base = base_path(request)
    target = back if back.startswith(f"{base}/") else f"{base}/grants/{grant_id}"
    return RedirectResponse(target, 303)
