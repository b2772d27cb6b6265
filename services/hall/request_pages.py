"""Requests (供需对接): a consumer files a request for a resource.

The form shows each field's sensitivity and default masking; the row filter is checked as the
user types (htmx, the API's own filter parser, against the resource's fields); the preview
runs the API's preview on sample records, counted against the same per-user limit. Whether
the viewer may request at all is the control plane's decision, as for the API.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from services.catalog.workflow import default_masking
from services.common.catalog import TEXT_MAX
from services.common.rowfilter import FilterError, compile_filter
from services.hall.pages import HallDep, Poster, Who, base_path, page
from services.hall.request_form import FORM_METHODS, FormData, grant_request, samples
from services.hall.samples import sample_records

router = APIRouter()
DEFAULT_DAYS = 365


async def _form(request: Request) -> FormData:
    form = await request.form()
    return FormData({k: [v for v in form.getlist(k) if isinstance(v, str)] for k in form})


@router.get("/requests/new")
def new_request(request: Request, hall: HallDep, viewer: Who, resource: str) -> Response:
    res = hall.plane.resource(resource)
    today = dt.date.today()
    return page(
        request,
        viewer,
        "request_form.html",
        res=res,
        entry=res.entry,
        defaults={name: default_masking(res.entry, name).method for name in res.entry.fields},
        methods=FORM_METHODS,
        valid_from=today,
        valid_until=today + dt.timedelta(days=DEFAULT_DAYS),
        samples=json.dumps(sample_records(res), ensure_ascii=False, indent=1),
    )


@router.post("/requests/check-filter")
def check_filter(
    request: Request,
    hall: HallDep,
    viewer: Poster,
    resource: Annotated[str, Form(max_length=200)],
    row_filter: Annotated[str, Form(max_length=TEXT_MAX)] = "",
) -> Response:
    """The row filter's problem, if any, as the API would state it (an htmx fragment)."""
    entry = hall.plane.resource(resource).entry
    problem = None
    if row_filter.strip():
        try:
            compile_filter(row_filter, set(entry.fields))
        except FilterError as exc:
            problem = str(exc)
    return page(request, viewer, "_filter_check.html", problem=problem, empty=not row_filter)


@router.post("/requests/preview")
async def preview(request: Request, hall: HallDep, viewer: Poster) -> Response:
    form = await _form(request)
    asked = grant_request(form)
    records = samples(form.one("samples"))
    hall.previews.take(viewer.actor.user)
    out = hall.plane.preview_request(viewer.actor, asked, records)
    columns = list(asked.fields)
    return page(request, viewer, "_preview.html", rows=out, columns=columns)


@router.post("/requests")
async def file_request(request: Request, hall: HallDep, viewer: Poster) -> Response:
    case = hall.plane.request(viewer.actor, grant_request(await _form(request)))
    if hall.relay is not None:
        hall.relay.notify()
    return RedirectResponse(f"{base_path(request)}/grants/{case.grant.id}", 303)
