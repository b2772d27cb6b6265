"""``GET /api/scorecard``: the scorecard, for the authority and ops (mounted with control_api)."""

from __future__ import annotations

from fastapi import APIRouter

from services.catalog.control_api import Who, _require
from services.catalog.scorecard import Scorecard
from services.catalog.scorecard_watch import ScorecardWatch
from services.catalog.workflow import Role


def scorecard_router(watch: ScorecardWatch) -> APIRouter:
    router = APIRouter()

    @router.get("/scorecard")
    def scorecard(actor: Who) -> Scorecard:
        """Every providing department's score per category (department ``*``: the province)."""
        _require(actor, Role.AUTHORITY, Role.OPS)
        return watch.latest()

    return router
