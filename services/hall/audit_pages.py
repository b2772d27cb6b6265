"""Audit (审计): the share trail searched by grant, consumer, resource and time; the chains'
verification; and, for the authority, the citizen data-use ledger (who received data about an
ID number), as ``govbus audit verify`` and ``govbus audit who-got`` compute them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from services.audit_ledger import audit_records, pseudonyms, shares_of, valid_id_number
from services.catalog.workflow import Refused, Role
from services.hall.ops_state import WATCHERS, get_ops, kafka_answers, require
from services.hall.pages import Poster, Who, base_path, page

router = APIRouter()
SHOWN = 200  # the newest matching records listed


def _day_ms(day: str, end: bool) -> int | None:
    if not day:
        return None
    try:
        start = dt.datetime.combine(dt.date.fromisoformat(day), dt.time(), dt.UTC)
    except ValueError as exc:
        raise Refused(f"not a date (YYYY-MM-DD): {day!r}") from exc
    return int((start + dt.timedelta(days=1 if end else 0)).timestamp() * 1000)


def search(
    records: Iterable[Mapping[str, Any]],
    grant: str = "",
    consumer: str = "",
    resource: str = "",
    since_ms: int | None = None,
    until_ms: int | None = None,
) -> list[Mapping[str, Any]]:
    """Share records matching every given criterion (time: ``since <= ts < until``)."""
    found = []
    for r in records:
        ts = r.get("ts_ms", 0)
        if (
            (not grant or r.get("grant_id") == grant)
            and (not consumer or r.get("consumer") == consumer)
            and (not resource or r.get("resource") == resource)
            and (since_ms is None or ts >= since_ms)
            and (until_ms is None or ts < until_ms)
        ):
            found.append(r)
    return found


@router.get("/audit")
def audit(
    request: Request,
    viewer: Who,
    grant: str = "",
    consumer: str = "",
    resource: str = "",
    since: str = "",
    until: str = "",
) -> Response:
    require(viewer.actor, *WATCHERS)
    ops = get_ops(request)
    query = {"grant": grant[:200], "consumer": consumer[:64], "resource": resource[:200]}
    window = _day_ms(since[:10], False), _day_ms(until[:10], True)
    with kafka_answers():
        records = list(audit_records(ops.settings))
    found = search(records, **query, since_ms=window[0], until_ms=window[1])
    return page(
        request,
        viewer,
        "audit.html",
        query={**query, "since": since[:10], "until": until[:10]},
        records=found[-SHOWN:][::-1],
        total=len(found),
        check=ops.audit,
        when=lambda ms: dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S"),
    )


@router.post("/audit/verify")
def verify(request: Request, viewer: Poster) -> Response:
    require(viewer.actor, *WATCHERS)
    ops = get_ops(request)
    ops.audit.start(ops.settings)
    return RedirectResponse(f"{base_path(request)}/audit", 303)


@router.get("/audit/ledger")
def ledger_form(request: Request, viewer: Who) -> Response:
    require(viewer.actor, Role.AUTHORITY)
    return page(request, viewer, "ledger.html", shares=None, id_number="")


@router.post("/audit/ledger")
def ledger(request: Request, viewer: Poster, id_number: str = Form("")) -> Response:
    """Posted, not a query: an ID number stays out of URLs, logs and the browser's history."""
    require(viewer.actor, Role.AUTHORITY)
    try:
        number = valid_id_number(id_number[:40])
    except ValueError as exc:  # its message quotes the number: the page does not
        raise Refused(f"not a valid resident ID number: {exc.__cause__ or exc}") from exc
    settings = get_ops(request).settings
    secret = settings.mask_secret.get_secret_value().encode()
    with kafka_answers():
        shares = shares_of(audit_records(settings), number, pseudonyms(secret, number))
    masked = number[:6] + "*" * 8 + number[-4:]  # the page shows whom it is about, masked
    return page(request, viewer, "ledger.html", shares=shares, id_number=masked)
