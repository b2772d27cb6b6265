"""Scorecard (考核): each department against the aggregation targets, with freshness, the
dead-letter rate, requests answered on time and active shares (services/catalog/scorecard.py);
the same figures as ``GET /api/scorecard``, for the authority and ops."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from services.hall.ops_state import WATCHERS, get_ops, require
from services.hall.pages import HallDep, Who, page

router = APIRouter()


@router.get("/scorecard")
def scorecard(request: Request, hall: HallDep, viewer: Who) -> Response:
    require(viewer.actor, *WATCHERS)
    card = get_ops(request).scorecard.latest()
    return page(
        request,
        viewer,
        "scorecard.html",
        card=card,
        categories=("government", "social"),
        departments=hall.plane.store.departments(),
    )
