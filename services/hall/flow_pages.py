"""Flow (运行监测): the bus's throughput, lag, dead letters and freshness, live.

The page renders the figures once, then ``/flow/stream`` (server-sent events) sends them again
every ``STREAM_EVERY_S`` from the processes' own /metrics, and flow.js updates the tables in
place. For the authority and ops.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import AsyncIterator

import httpx
from fastapi import APIRouter, Request
from starlette.responses import Response, StreamingResponse

from services.catalog.scorecard import FRESHNESS_LIMIT
from services.hall.flow_view import Sample, flow_figures, parse_metrics
from services.hall.ops_state import WATCHERS, Ops, get_ops, require
from services.hall.pages import Who, page

router = APIRouter()
STREAM_EVERY_S = 2.0
SCRAPE_TIMEOUT_S = 1.5


async def sample(ops: Ops) -> Sample:
    """Every process's /metrics now; one that does not answer counts as nothing."""
    async with httpx.AsyncClient(timeout=SCRAPE_TIMEOUT_S) as client:
        answers = await asyncio.gather(
            *(client.get(url) for url in ops.metrics_urls().values()), return_exceptions=True
        )
    texts = [a.text for a in answers if isinstance(a, httpx.Response) and a.status_code == 200]
    return Sample(time.monotonic(), parse_metrics(texts))


def freshness(ops: Ops) -> list[dict]:
    try:
        card = ops.scorecard.latest()
    except Exception:  # noqa: BLE001 - a store away: no freshness this time
        return []
    now = dt.datetime.now(dt.UTC)
    return [
        {
            "resource": r.resource,
            "frequency": r.update_frequency,
            "age_s": None if r.last_change is None else int((now - r.last_change).total_seconds()),
            "limit_s": int(FRESHNESS_LIMIT[r.update_frequency].total_seconds()),
            "fresh": r.fresh,
        }
        for r in card.resources
    ]


@router.get("/flow")
async def flow(request: Request, viewer: Who) -> Response:
    require(viewer.actor, *WATCHERS)
    ops = get_ops(request)
    figures = flow_figures(None, await sample(ops))
    fresh = await asyncio.to_thread(freshness, ops)  # may compute the scorecard: not on the loop
    return page(request, viewer, "flow.html", figures=figures, freshness=fresh)


@router.get("/flow/stream")
async def stream(request: Request, viewer: Who) -> Response:
    require(viewer.actor, *WATCHERS)
    ops = get_ops(request)

    async def events() -> AsyncIterator[str]:
        previous = None
        while not await request.is_disconnected():
            current = await sample(ops)
            fresh = await asyncio.to_thread(freshness, ops)
            figures = {**flow_figures(previous, current), "freshness": fresh}
            previous = current
            yield f"data: {json.dumps(figures, ensure_ascii=False)}\n\n"
            await asyncio.sleep(STREAM_EVERY_S)

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)
