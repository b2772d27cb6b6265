"""The operations pages' routers, installed on the hall by the catalog service."""

from __future__ import annotations

from services.hall import audit_pages, deadletter_pages, flow_pages, scorecard_pages

OPS_ROUTERS = [
    flow_pages.router,
    deadletter_pages.router,
    audit_pages.router,
    scorecard_pages.router,
]
