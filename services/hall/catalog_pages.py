"""Catalog pages (数据资源目录): search the resources, and one resource's page."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from services.catalog.workflow import default_masking, visible_to
from services.common.catalog import GrantState, ShareType
from services.hall.catalog_view import Search, schema_history, search
from services.hall.pages import HallDep, Who, page

router = APIRouter()


@router.get("/catalog")
def catalog(
    request: Request,
    hall: HallDep,
    viewer: Who,
    q: str = "",
    provider: str = "",
    category: str = "",
    share_type: str = "",
) -> Response:
    query = Search(q[:200], provider[:64], category[:20], share_type[:20])
    found = search(hall.plane.store.resources(), query)
    return page(
        request,
        viewer,
        "catalog.html",
        query=query,
        resources=found,
        departments=hall.plane.store.departments(),
        share_types=[s.value for s in ShareType],
    )


@router.get("/catalog/{resource_id}")
def resource(request: Request, hall: HallDep, viewer: Who, resource_id: str) -> Response:
    res = hall.plane.resource(resource_id)  # NotFound: 404 page
    grants = [
        c
        for c in hall.plane.store.cases(resource=resource_id, state=GrantState.ACTIVE.value)
        if visible_to(viewer.actor, c)
    ]
    return page(
        request,
        viewer,
        "resource.html",
        res=res,
        entry=res.entry,
        schema=schema_history(hall.plane.registry, res),
        defaults={name: default_masking(res.entry, name).method for name in res.entry.fields},
        grants=grants,
        departments=hall.plane.store.departments(),
    )
